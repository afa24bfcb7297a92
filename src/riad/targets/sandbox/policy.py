"""A seccomp policy as data, and its compiler to classic BPF.

A :class:`Policy` is an allowlist: a tuple of :class:`SyscallRule`, each naming
one system call and the argument checks that must all hold for it to be
allowed. Anything else — an unlisted call, a listed call whose arguments fail
a check, a call through another ABI (x32, i386) — gets the policy's
:class:`Deny` action. The compiled program has this shape::

    ld arch;  jeq AUDIT_ARCH_X86_64 else ret KILL (a foreign ABI never gets in)
    ld nr;    jge X32_SYSCALL_BIT -> ret KILL
    jeq nr_1 -> body_1 / ... / jeq nr_n -> body_n  (two instructions per call)
    ret DENY
    body_i:   argument checks -> ret ALLOW, any failure -> ret DENY

Arguments are 64 bits and BPF words 32, so every check compares both halves.
Unchecked calls return ALLOW straight from the dispatch, which also lets the
kernel's seccomp action cache skip the filter for them.

A rule may answer instead of allowing (``SyscallRule(..., errno=ENOENT)``):
when its checks hold the call fails with that error without running (a file
lookup in a sealed service finds nothing; ``clone3``, whose flags seccomp
cannot read, is "not implemented", so the C library falls back to ``clone``,
whose flags it can).

The module is pure: it builds and describes programs, it never installs one.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from riad.targets.sandbox.bpf import (
    SECCOMP_DATA_ARCH,
    SECCOMP_DATA_NR,
    Assembler,
    BpfError,
    Insn,
    Op,
    seccomp_arg_hi,
    seccomp_arg_lo,
)
from riad.targets.sandbox.syscalls_x86_64 import X86_64_SYSCALLS

__all__ = [
    "AUDIT_ARCH_X86_64",
    "SECCOMP_RET_ALLOW",
    "SECCOMP_RET_ERRNO",
    "SECCOMP_RET_KILL_PROCESS",
    "SECCOMP_RET_USER_NOTIF",
    "ArgCheck",
    "ArgIn",
    "ArgMaskedEq",
    "Deny",
    "Policy",
    "SyscallRule",
    "errno_name",
    "syscall_name",
]

AUDIT_ARCH_X86_64 = 0xC000003E  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ALLOW = 0x7FFF0000

_MASK64 = (1 << 64) - 1

_NUMBERS = X86_64_SYSCALLS
_NAMES = {number: name for name, number in X86_64_SYSCALLS.items()}

# Parameter names, for describing argument checks (from the kernel's SYSCALL_DEFINEs).
_PARAMS: dict[str, tuple[str, ...]] = {
    "read": ("fd", "buf", "count"),
    "write": ("fd", "buf", "count"),
    "readv": ("fd", "vec", "vlen"),
    "writev": ("fd", "vec", "vlen"),
    "recvfrom": ("fd", "buf", "len", "flags", "addr", "addrlen"),
    "sendto": ("fd", "buf", "len", "flags", "addr", "addrlen"),
    "sendmsg": ("fd", "msg", "flags"),
    "recvmsg": ("fd", "msg", "flags"),
    "ioctl": ("fd", "cmd", "arg"),
    "fcntl": ("fd", "cmd", "arg"),
    "epoll_wait": ("epfd", "events", "maxevents", "timeout"),
    "epoll_pwait": ("epfd", "events", "maxevents", "timeout", "sigmask", "sigsetsize"),
    "epoll_ctl": ("epfd", "op", "fd", "event"),
    "mmap": ("addr", "len", "prot", "flags", "fd", "off"),
    "mprotect": ("start", "len", "prot"),
    "wait4": ("pid", "stat_addr", "options", "ru"),
    "kill": ("pid", "sig"),
    "rt_sigaction": ("signum", "act", "oact"),
    "openat": ("dfd", "filename", "flags", "mode"),
    "open": ("filename", "flags", "mode"),
    "clone": ("flags", "newsp", "parent_tid", "child_tid", "tls"),
    "sched_getaffinity": ("pid", "len", "user_mask_ptr"),
}


def errno_name(number: int) -> str:
    """``ENOENT`` for 2 (the number itself if Python does not know it)."""
    return errno.errorcode.get(number, str(number))


def syscall_name(number: int) -> str:
    """The kernel's name for x86_64 system call ``number`` (``syscall_N`` if unknown)."""
    return _NAMES.get(number, f"syscall_{number}")


def _param(call: str, index: int) -> str:
    names = _PARAMS.get(call, ())
    return names[index] if index < len(names) else f"arg{index}"


class Deny(enum.Enum):
    """What the filter does with a call outside the policy."""

    KILL = "kill"
    """``SECCOMP_RET_KILL_PROCESS``: the kernel kills the whole process at once."""
    ERRNO = "errno"
    """``SECCOMP_RET_ERRNO`` with ``EPERM``: the call fails, the process goes on."""
    NOTIFY = "notify"
    """``SECCOMP_RET_USER_NOTIF``: the call waits while a supervisor outside the
    sandbox is told about it; the supervisor reports it and answers ``EPERM``
    (audit mode) or kills the service (enforce mode)."""

    def ret_value(self) -> int:
        if self is Deny.KILL:
            return SECCOMP_RET_KILL_PROCESS
        if self is Deny.ERRNO:
            return SECCOMP_RET_ERRNO | errno.EPERM
        return SECCOMP_RET_USER_NOTIF


@dataclass(frozen=True, slots=True)
class ArgIn:
    """Argument ``index`` must equal one of ``values`` (all 64 bits compared).

    ``labels`` names each value for ``riad inspect`` (e.g. ``"tap"``).
    """

    index: int
    values: tuple[int, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("ArgIn needs at least one value")
        if self.labels and len(self.labels) != len(self.values):
            raise ValueError("ArgIn labels must match values one to one")

    def holds(self, args: Sequence[int]) -> bool:
        return args[self.index] & _MASK64 in {v & _MASK64 for v in self.values}

    def describe(self, call: str) -> str:
        shown = [
            f"{v} ({self.labels[i]})" if self.labels else str(v) for i, v in enumerate(self.values)
        ]
        name = _param(call, self.index)
        if len(shown) == 1:
            return f"{name} == {shown[0]}"
        return f"{name} in {{{', '.join(shown)}}}"


@dataclass(frozen=True, slots=True)
class ArgMaskedEq:
    """``(argument index & mask) == value`` over all 64 bits.

    ``ArgMaskedEq(2, PROT_EXEC, 0, "PROT_EXEC")`` reads "no PROT_EXEC in prot".
    """

    index: int
    mask: int
    value: int
    mask_name: str = ""

    def __post_init__(self) -> None:
        if self.value & ~self.mask & _MASK64:
            raise ValueError("ArgMaskedEq value has bits outside its mask: it could never match")

    def holds(self, args: Sequence[int]) -> bool:
        return args[self.index] & self.mask & _MASK64 == self.value & _MASK64

    def describe(self, call: str) -> str:
        name = _param(call, self.index)
        mask = self.mask_name or hex(self.mask)
        if self.value == 0:
            return f"{name} & {mask} == 0 (no {mask})"
        return f"{name} & {mask} == {self.value:#x}"


ArgCheck = ArgIn | ArgMaskedEq


@dataclass(frozen=True, slots=True)
class SyscallRule:
    """Allow system call ``name`` when every check in ``args`` holds.

    With ``errno``, the call is answered instead: it fails with that error
    without running (when the checks hold; otherwise the policy's deny applies).
    """

    name: str
    args: tuple[ArgCheck, ...] = ()
    why: str = ""
    errno: int | None = None

    def __post_init__(self) -> None:
        if self.name not in _NUMBERS:
            raise ValueError(f"unknown x86_64 system call {self.name!r}")
        if self.errno is not None and not 0 < self.errno < 4096:
            raise ValueError(f"errno {self.errno} of {self.name}: give one from 1 to 4095")

    @property
    def number(self) -> int:
        return _NUMBERS[self.name]

    def ret_value(self) -> int:
        """What the filter returns when the checks hold."""
        if self.errno is None:
            return SECCOMP_RET_ALLOW
        return SECCOMP_RET_ERRNO | self.errno

    def holds(self, args: Sequence[int]) -> bool:
        """Whether every check holds for a call with these arguments (as the filter decides)."""
        return all(check.holds(args) for check in self.args)

    def describe(self) -> str:
        """One line: the call and its argument rules (``read  fd in {3 (tap)}``)."""
        rules = " and ".join(check.describe(self.name) for check in self.args)
        answer = "" if self.errno is None else f" -> fails with {errno_name(self.errno)}"
        return f"{self.name:<16} {rules or 'any arguments'}{answer}"


@dataclass(frozen=True, slots=True)
class Policy:
    """An allowlist of system calls; everything else gets ``deny``."""

    rules: tuple[SyscallRule, ...]
    deny: Deny = Deny.KILL

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"system call {rule.name!r} appears twice in the policy")
            seen.add(rule.name)

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)

    def with_deny(self, deny: Deny) -> Policy:
        return Policy(self.rules, deny)

    def without(self, names: Iterable[str]) -> Policy:
        drop = set(names)
        return Policy(tuple(r for r in self.rules if r.name not in drop), self.deny)

    def describe(self) -> list[str]:
        """The policy for people: one line per allowed call, then the count."""
        lines = [rule.describe() for rule in self.rules]
        lines.append(f"anything else: {self.deny.value}")
        answered = sum(1 for rule in self.rules if rule.errno is not None)
        allowed = len(self.rules) - answered
        lines.append(
            f"{allowed} syscalls allowed"
            + (f", {answered} answered with an error without running" if answered else "")
        )
        return lines

    def compile(self) -> list[Insn]:
        """The classic BPF program enforcing this policy (see the module docstring)."""
        deny = self.deny.ret_value()
        asm = Assembler()
        asm.load(SECCOMP_DATA_ARCH)
        asm.jump(Op.JMP_JEQ_K, AUDIT_ARCH_X86_64, "arch_ok", 0)
        asm.ret(SECCOMP_RET_KILL_PROCESS)
        asm.label("arch_ok")
        asm.load(SECCOMP_DATA_NR)
        asm.jump(Op.JMP_JGE_K, X32_SYSCALL_BIT, 0, "abi_ok")
        asm.ret(SECCOMP_RET_KILL_PROCESS)
        asm.label("abi_ok")
        for i, rule in enumerate(self.rules):
            if rule.args:
                asm.jump(Op.JMP_JEQ_K, rule.number, 0, f"next{i}")
                asm.ja(f"body{i}")
            else:
                asm.jump(Op.JMP_JEQ_K, rule.number, 0, f"next{i}")
                asm.ret(rule.ret_value())
            asm.label(f"next{i}")
        asm.ret(deny)
        for i, rule in enumerate(self.rules):
            if not rule.args:
                continue
            asm.label(f"body{i}")
            for j, check in enumerate(rule.args):
                _emit_check(asm, check, ok=f"ok{i}.{j}", fail=f"deny{i}")
                asm.label(f"ok{i}.{j}")
            asm.ret(rule.ret_value())
            asm.label(f"deny{i}")
            asm.ret(deny)
        try:
            return asm.assemble()
        except BpfError as exc:  # pragma: no cover - guarded by the compiler's shape
            raise BpfError(f"policy does not compile: {exc}") from exc


def _emit_check(asm: Assembler, check: ArgCheck, ok: str, fail: str) -> None:
    """Emit one argument check that falls through (via ``ok``) or jumps to ``fail``."""
    hi_off, lo_off = seccomp_arg_hi(check.index), seccomp_arg_lo(check.index)
    if isinstance(check, ArgMaskedEq):
        mask, value = check.mask & _MASK64, check.value & _MASK64
        if mask >> 32:
            asm.load(hi_off)
            asm.and_(mask >> 32)
            asm.jump(Op.JMP_JEQ_K, value >> 32, 0, fail)
        if mask & 0xFFFFFFFF:
            asm.load(lo_off)
            asm.and_(mask & 0xFFFFFFFF)
            asm.jump(Op.JMP_JEQ_K, value & 0xFFFFFFFF, 0, fail)
        return  # both halves passed: the caller's `ok` label follows
    by_hi: dict[int, list[int]] = {}
    for v in check.values:
        by_hi.setdefault((v & _MASK64) >> 32, []).append(v & 0xFFFFFFFF)
    groups = sorted(by_hi.items())
    for g, (hi, los) in enumerate(groups):
        other = f"{ok}.hi{g + 1}" if g + 1 < len(groups) else fail
        asm.load(hi_off)
        asm.jump(Op.JMP_JEQ_K, hi, 0, other)
        asm.load(lo_off)
        for lo in sorted(set(los)):
            asm.jump(Op.JMP_JEQ_K, lo, ok, 0)
        asm.ja(fail)
        if other != fail:
            asm.label(other)
