"""Classic BPF, as the kernel's seccomp filter runs it: instructions and an assembler.

A seccomp filter is a classic BPF program over ``struct seccomp_data``
(``nr``, ``arch``, ``instruction_pointer``, ``args[6]``), every word read with
an absolute 32-bit load, ending in a ``ret`` whose value is the action. This
module knows only the instructions riad emits (absolute word load, ``and``
with a constant, the four conditional jumps against a constant, ``ja``,
``ret``) and resolves symbolic labels into the forward offsets the kernel
demands. It performs no I/O; :mod:`riad.targets.sandbox.seccomp` installs what
it builds.

Invariants of an assembled program: every jump goes forward and lands inside
the program, conditional offsets fit in 8 bits, the last instruction is a
``ret``, and the length is at most ``BPF_MAXINSNS``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "BPF_MAXINSNS",
    "SECCOMP_DATA_ARCH",
    "SECCOMP_DATA_NR",
    "Assembler",
    "BpfError",
    "Insn",
    "Op",
    "encode",
    "seccomp_arg_hi",
    "seccomp_arg_lo",
]

BPF_MAXINSNS = 4096
"""The kernel's limit on one classic BPF program (``include/uapi/linux/bpf_common.h``)."""

# Offsets in struct seccomp_data (include/uapi/linux/seccomp.h), little-endian.
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
_SECCOMP_DATA_ARGS = 16


def seccomp_arg_lo(index: int) -> int:
    """Offset of the low 32 bits of system call argument ``index`` (0..5)."""
    if not 0 <= index <= 5:
        raise BpfError(f"system call argument index {index} is outside 0..5")
    return _SECCOMP_DATA_ARGS + 8 * index


def seccomp_arg_hi(index: int) -> int:
    """Offset of the high 32 bits of system call argument ``index`` (0..5)."""
    return seccomp_arg_lo(index) + 4


class BpfError(ValueError):
    """A program that the kernel would refuse (bad jump, too long, no final ``ret``)."""


class Op:
    """Opcodes (``code`` field) of the instructions riad emits."""

    LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = data[k:k+4]
    ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: A &= k
    JMP_JA = 0x05  # BPF_JMP | BPF_JA: pc += k
    JMP_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: pc += (A == k) ? jt : jf
    JMP_JGT_K = 0x25  # A > k
    JMP_JGE_K = 0x35  # A >= k
    JMP_JSET_K = 0x45  # A & k != 0
    RET_K = 0x06  # BPF_RET | BPF_K: return k

    CONDITIONAL = frozenset({JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K})


_SOCK_FILTER = struct.Struct("=HBBI")


@dataclass(frozen=True, slots=True)
class Insn:
    """One ``struct sock_filter``: opcode, jump-if-true, jump-if-false, constant."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def encode(self) -> bytes:
        """The 8 bytes of this instruction in the host's byte order."""
        return _SOCK_FILTER.pack(self.code, self.jt, self.jf, self.k)

    @classmethod
    def decode_program(cls, data: bytes) -> list[Insn]:
        """Split an encoded program back into instructions."""
        if len(data) % _SOCK_FILTER.size:
            raise BpfError(f"program length {len(data)} is not a multiple of 8")
        return [cls(*fields) for fields in _SOCK_FILTER.iter_unpack(data)]


Target = str | int
"""A jump target: a label name, or 0 meaning the next instruction."""


@dataclass(slots=True)
class _Pending:
    code: int
    jt: Target
    jf: Target
    k: int


class Assembler:
    """Builds a program from instructions whose jump targets are label names.

    ``label(name)`` marks the position of the next instruction. Jumps name a
    label (or pass ``0`` for "fall through"); :meth:`assemble` resolves them,
    refusing backward jumps, unknown labels and conditional jumps longer than
    255 instructions (the compiler keeps bodies small; long distances go
    through ``ja``, whose offset is 32 bits).
    """

    def __init__(self) -> None:
        self._insns: list[_Pending] = []
        self._labels: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._insns)

    def label(self, name: str) -> None:
        if name in self._labels:
            raise BpfError(f"label {name!r} defined twice")
        self._labels[name] = len(self._insns)

    def load(self, offset: int) -> None:
        """``A = seccomp_data[offset]`` (one 32-bit word)."""
        self._insns.append(_Pending(Op.LD_W_ABS, 0, 0, offset))

    def and_(self, mask: int) -> None:
        self._insns.append(_Pending(Op.ALU_AND_K, 0, 0, mask & 0xFFFFFFFF))

    def jump(self, code: int, k: int, jt: Target, jf: Target) -> None:
        if code not in Op.CONDITIONAL:
            raise BpfError(f"opcode {code:#x} is not a conditional jump")
        self._insns.append(_Pending(code, jt, jf, k & 0xFFFFFFFF))

    def ja(self, target: str) -> None:
        self._insns.append(_Pending(Op.JMP_JA, 0, 0, 0))
        self._insns[-1].jt = target  # resolved into k by assemble()

    def ret(self, value: int) -> None:
        self._insns.append(_Pending(Op.RET_K, 0, 0, value & 0xFFFFFFFF))

    def _offset(self, pc: int, target: Target, limit: int) -> int:
        if isinstance(target, int):
            if target != 0:
                raise BpfError("numeric jump targets must be 0 (fall through)")
            return 0
        if target not in self._labels:
            raise BpfError(f"jump to undefined label {target!r}")
        offset = self._labels[target] - (pc + 1)
        if offset < 0:
            raise BpfError(f"backward jump to {target!r} at instruction {pc}")
        if offset > limit:
            raise BpfError(f"jump to {target!r} at instruction {pc} spans {offset} (> {limit})")
        return offset

    def assemble(self) -> list[Insn]:
        """Resolve labels; return the final instruction list."""
        out: list[Insn] = []
        for pc, p in enumerate(self._insns):
            if p.code == Op.JMP_JA:
                out.append(Insn(p.code, 0, 0, self._offset(pc, p.jt, 0xFFFFFFFF)))
            elif p.code in Op.CONDITIONAL:
                out.append(
                    Insn(p.code, self._offset(pc, p.jt, 255), self._offset(pc, p.jf, 255), p.k)
                )
            else:
                out.append(Insn(p.code, 0, 0, p.k))
        if not out or out[-1].code != Op.RET_K:
            raise BpfError("a seccomp program must end with a ret instruction")
        if len(out) > BPF_MAXINSNS:
            raise BpfError(f"program has {len(out)} instructions (limit {BPF_MAXINSNS})")
        return out


def encode(program: list[Insn]) -> bytes:
    """The program as the kernel reads it (an array of ``struct sock_filter``)."""
    return b"".join(insn.encode() for insn in program)
