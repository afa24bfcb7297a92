"""The seccomp compiler, checked by running its programs in an interpreter of the tests' own."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.targets.sandbox.bpf import Assembler, BpfError, Insn, Op, encode
from riad.targets.sandbox.policy import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_USER_NOTIF,
    ArgIn,
    ArgMaskedEq,
    Deny,
    Policy,
    SyscallRule,
    syscall_name,
)
from riad.targets.sandbox.profile import MUSL_THREAD_FLAGS, THREAD_FLAGS, DeviceFds, service_policy
from riad.targets.sandbox.syscalls_x86_64 import X86_64_SYSCALLS as NR

from .bpf_vm import AUDIT_ARCH_I386, Call, run

PROT_EXEC = 4
AT_FDCWD = -100

POLICY = Policy(
    (
        SyscallRule("epoll_wait"),
        SyscallRule("read", (ArgIn(0, (3, 5), ("tap", "wakeup")),)),
        SyscallRule("write", (ArgIn(0, (1, 2, 3)),)),
        SyscallRule("mmap", (ArgMaskedEq(2, PROT_EXEC, 0, "PROT_EXEC"),)),
        SyscallRule("openat", (ArgIn(0, (AT_FDCWD,)), ArgMaskedEq(2, 3, 0, "O_ACCMODE"))),
        SyscallRule("exit_group"),
    ),
    Deny.KILL,
)


def call(name: str, *args: int, arch: int = 0xC000003E) -> Call:
    padded = (*args, 0, 0, 0, 0, 0, 0)[:6]
    return Call(NR[name], padded, arch)  # type: ignore[arg-type]


def test_unchecked_call_is_allowed_and_unlisted_call_killed() -> None:
    program = POLICY.compile()
    assert run(program, call("epoll_wait", 4, 0, 16, -1)) == SECCOMP_RET_ALLOW
    assert run(program, call("exit_group", 0)) == SECCOMP_RET_ALLOW
    assert run(program, call("execve")) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("ptrace")) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("socket", 2, 1, 0)) == SECCOMP_RET_KILL_PROCESS


def test_fd_checks_compare_all_64_bits() -> None:
    program = POLICY.compile()
    assert run(program, call("read", 3, 0x1000, 2048)) == SECCOMP_RET_ALLOW
    assert run(program, call("read", 5)) == SECCOMP_RET_ALLOW
    assert run(program, call("read", 0)) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("read", 4)) == SECCOMP_RET_KILL_PROCESS
    # the kernel reads an int fd from the low half; garbage above it is refused too
    assert run(program, call("read", (1 << 32) | 3)) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("write", 2)) == SECCOMP_RET_ALLOW
    assert run(program, call("write", 5)) == SECCOMP_RET_KILL_PROCESS


def test_negative_values_and_two_checks_on_one_call() -> None:
    program = POLICY.compile()
    O_RDONLY, O_WRONLY = 0, 1
    assert run(program, call("openat", AT_FDCWD, 0, O_RDONLY)) == SECCOMP_RET_ALLOW
    assert run(program, call("openat", AT_FDCWD, 0, O_WRONLY)) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("openat", 7, 0, O_RDONLY)) == SECCOMP_RET_KILL_PROCESS
    # -100 with the high half cleared is another number altogether
    assert run(program, call("openat", AT_FDCWD & 0xFFFFFFFF, 0, 0)) == SECCOMP_RET_KILL_PROCESS


def test_mmap_without_prot_exec_only() -> None:
    program = POLICY.compile()
    PROT_READ, PROT_WRITE = 1, 2
    assert run(program, call("mmap", 0, 4096, PROT_READ | PROT_WRITE, 0x22, -1, 0)) == (
        SECCOMP_RET_ALLOW
    )
    assert run(program, call("mmap", 0, 4096, PROT_READ | PROT_EXEC, 0x22, -1, 0)) == (
        SECCOMP_RET_KILL_PROCESS
    )
    assert run(program, call("mmap", 0, 4096, PROT_EXEC | (1 << 40))) == SECCOMP_RET_KILL_PROCESS


def test_foreign_abis_are_killed_whatever_the_deny_action() -> None:
    program = POLICY.with_deny(Deny.ERRNO).compile()
    # i386's read is 3, x86_64's close: a filter that forgot the arch check would allow it
    assert run(program, call("read", 3, arch=AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS
    x32_read = Call(0x40000000 | NR["read"], (3, 0, 0, 0, 0, 0))
    assert run(program, x32_read) == SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize(
    ("deny", "value"),
    [
        (Deny.KILL, SECCOMP_RET_KILL_PROCESS),
        (Deny.ERRNO, SECCOMP_RET_ERRNO | errno.EPERM),
        (Deny.NOTIFY, SECCOMP_RET_USER_NOTIF),
    ],
)
def test_deny_action_applies_to_unlisted_calls_and_failed_checks(deny: Deny, value: int) -> None:
    program = POLICY.with_deny(deny).compile()
    assert run(program, call("openat", AT_FDCWD, 0, 2)) == value
    assert run(program, call("read", 9)) == value
    assert run(program, call("clone")) == value
    assert run(program, call("read", 3)) == SECCOMP_RET_ALLOW


def test_describe_lists_rules_and_count() -> None:
    lines = POLICY.describe()
    assert lines[-1] == "6 syscalls allowed"
    assert "read             fd in {3 (tap), 5 (wakeup)}" in lines
    assert "mmap             prot & PROT_EXEC == 0 (no PROT_EXEC)" in lines
    assert "anything else: kill" in lines


def test_policy_refuses_unknown_and_duplicate_calls() -> None:
    with pytest.raises(ValueError, match="unknown"):
        SyscallRule("no_such_call")
    with pytest.raises(ValueError, match="twice"):
        Policy((SyscallRule("read"), SyscallRule("read")))
    with pytest.raises(ValueError, match="never match"):
        ArgMaskedEq(0, 1, 2)


def test_assembler_refuses_what_the_kernel_would() -> None:
    asm = Assembler()
    asm.label("top")
    asm.load(0)
    asm.jump(Op.JMP_JEQ_K, 1, "top", 0)
    asm.ret(0)
    with pytest.raises(BpfError, match="backward"):
        asm.assemble()
    asm = Assembler()
    asm.jump(Op.JMP_JEQ_K, 1, "far", 0)
    for _ in range(300):
        asm.load(0)
    asm.label("far")
    asm.ret(0)
    with pytest.raises(BpfError, match="spans"):
        asm.assemble()
    asm = Assembler()
    asm.load(0)
    with pytest.raises(BpfError, match="end with a ret"):
        asm.assemble()


def test_encoding_round_trips() -> None:
    program = POLICY.compile()
    assert Insn.decode_program(encode(program)) == program
    assert len(encode(program)) == 8 * len(program)
    assert encode([Insn(Op.RET_K, 0, 0, SECCOMP_RET_ALLOW)]) == bytes.fromhex("060000000000ff7f")


def test_syscall_names() -> None:
    assert syscall_name(0) == "read"
    assert syscall_name(257) == "openat"
    assert syscall_name(9999) == "syscall_9999"


# --- the compiled program agrees with the policy read as plain Python, for any policy ---

_NAMES = sorted(NR)
_u64 = st.integers(0, 2**64 - 1)
_small = st.sampled_from([0, 1, 2, 3, 4, 5, 7, 2**32, 2**32 + 3, 2**64 - 100, 2**63])
_value = st.one_of(_u64, _small)
_check = st.one_of(
    st.builds(
        lambda i, vs: ArgIn(i, tuple(vs)),
        st.integers(0, 5),
        st.lists(_value, min_size=1, max_size=5),
    ),
    st.builds(
        lambda i, m, v: ArgMaskedEq(i, m, v & m),
        st.integers(0, 5),
        st.one_of(_u64, st.sampled_from([4, 3, 2**32, 0xFFFF_0000_0000_0004])),
        _value,
    ),
)
_rule = st.builds(
    lambda n, cs, e: SyscallRule(n, tuple(cs), errno=e),
    st.sampled_from(_NAMES),
    st.lists(_check, max_size=3),
    st.one_of(st.none(), st.sampled_from([1, 2, 13, 38, 4095])),
)
_policy = st.builds(
    lambda rs, d: Policy(tuple({r.name: r for r in rs}.values()), d),
    st.lists(_rule, max_size=40),
    st.sampled_from(list(Deny)),
)


def _expected(policy: Policy, c: Call) -> int:
    if c.arch != 0xC000003E or c.nr >= 0x40000000:
        return SECCOMP_RET_KILL_PROCESS
    for rule in policy.rules:
        if rule.number != c.nr:
            continue
        for chk in rule.args:
            arg = c.args[chk.index] & (2**64 - 1)
            if isinstance(chk, ArgIn):
                if arg not in {v & (2**64 - 1) for v in chk.values}:
                    return policy.deny.ret_value()
            elif arg & chk.mask != chk.value:
                return policy.deny.ret_value()
        return SECCOMP_RET_ALLOW if rule.errno is None else SECCOMP_RET_ERRNO | rule.errno
    return policy.deny.ret_value()


@settings(max_examples=300, deadline=None)
@given(
    policy=_policy,
    nr=st.one_of(st.sampled_from(sorted(NR.values())), st.integers(0, 2**31 - 1)),
    args=st.tuples(_value, _value, _value, _value, _value, _value),
    arch=st.sampled_from([0xC000003E, 0xC000003E, AUDIT_ARCH_I386]),
)
def test_compiled_program_matches_policy_semantics(
    policy: Policy, nr: int, args: tuple[int, int, int, int, int, int], arch: int
) -> None:
    # bias the call towards one the policy names, with arguments its checks name
    if policy.rules and nr % 3:
        rule = policy.rules[nr % len(policy.rules)]
        nr = rule.number
        lst = list(args)
        for chk in rule.args:
            if isinstance(chk, ArgIn) and args[0] % 2:
                lst[chk.index] = chk.values[args[1] % len(chk.values)]
            elif isinstance(chk, ArgMaskedEq) and args[0] % 2:
                lst[chk.index] = (lst[chk.index] & ~chk.mask) | chk.value
        args = tuple(lst)  # type: ignore[assignment]
    c = Call(nr, args, arch)
    assert run(policy.compile(), c) == _expected(policy, c)


def test_the_service_policy_lets_musls_calls_through() -> None:
    """The vm's static interpreter is linked against musl, whose epoll_wait is the
    epoll_pwait call, whose threads carry CLONE_DETACHED, whose fstat is fstat and
    whose stdio writes with writev."""
    fds = DeviceFds(packet=(3,), console=(1, 2), epoll=5, wakeup_read=6, wakeup_write=7)
    program = service_policy(fds, threads=True).compile()
    assert run(program, call("epoll_pwait", 5, 0, 16, -1, 0, 8)) == SECCOMP_RET_ALLOW
    assert run(program, call("epoll_pwait", 6, 0, 16, -1, 0, 8)) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("clone", MUSL_THREAD_FLAGS)) == SECCOMP_RET_ALLOW
    assert run(program, call("clone", THREAD_FLAGS)) == SECCOMP_RET_ALLOW
    assert run(program, call("clone", 0x11)) == SECCOMP_RET_KILL_PROCESS  # SIGCHLD: fork
    assert run(program, call("writev", 2)) == SECCOMP_RET_ALLOW
    assert run(program, call("writev", 6)) == SECCOMP_RET_KILL_PROCESS
    assert run(program, call("fstat", 9)) == SECCOMP_RET_ERRNO | errno.ENOENT
