"""A classic BPF interpreter for seccomp programs, written for the tests.

It checks a program the way the kernel's ``seccomp_check_filter`` and
``bpf_check_classic`` would (known opcodes, aligned absolute loads inside
``struct seccomp_data``, forward jumps in range, final ``ret``), then runs it
over a ``struct seccomp_data`` built from a system call number, architecture
and six 64-bit arguments. It shares no code with the compiler it tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from riad.targets.sandbox.bpf import Insn

_SECCOMP_DATA = struct.Struct("=iIQ6Q")
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003


class Rejected(Exception):
    """The kernel would refuse to load this program."""


@dataclass(frozen=True)
class Call:
    nr: int
    args: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
    arch: int = AUDIT_ARCH_X86_64
    ip: int = 0x400000

    def data(self) -> bytes:
        return _SECCOMP_DATA.pack(
            self.nr, self.arch, self.ip, *(a & (2**64 - 1) for a in self.args)
        )


def check(program: list[Insn]) -> None:
    if not 0 < len(program) <= 4096:
        raise Rejected(f"length {len(program)}")
    for pc, insn in enumerate(program):
        code = insn.code
        if code == 0x20:
            if insn.k % 4 or insn.k + 4 > _SECCOMP_DATA.size:
                raise Rejected(f"bad load offset {insn.k} at {pc}")
        elif code == 0x54 or code == 0x06:
            pass
        elif code == 0x05:
            if pc + 1 + insn.k >= len(program):
                raise Rejected(f"ja out of range at {pc}")
        elif code in (0x15, 0x25, 0x35, 0x45):
            if pc + 1 + max(insn.jt, insn.jf) >= len(program):
                raise Rejected(f"jump out of range at {pc}")
        else:
            raise Rejected(f"opcode {code:#x} at {pc}")
    if program[-1].code != 0x06:
        raise Rejected("no final ret")


def run(program: list[Insn], call: Call) -> int:
    """The 32-bit value the program returns for ``call``."""
    check(program)
    data = call.data()
    a = 0
    pc = 0
    steps = 0
    while True:
        steps += 1
        if steps > len(program):  # forward-only jumps: each instruction runs once at most
            raise AssertionError("program looped")
        insn = program[pc]
        code = insn.code
        pc += 1
        if code == 0x20:
            (a,) = struct.unpack_from("=I", data, insn.k)
        elif code == 0x54:
            a &= insn.k
        elif code == 0x05:
            pc += insn.k
        elif code == 0x15:
            pc += insn.jt if a == insn.k else insn.jf
        elif code == 0x25:
            pc += insn.jt if a > insn.k else insn.jf
        elif code == 0x35:
            pc += insn.jt if a >= insn.k else insn.jf
        elif code == 0x45:
            pc += insn.jt if a & insn.k else insn.jf
        elif code == 0x06:
            return insn.k
        else:  # pragma: no cover - check() refused it
            raise AssertionError(code)
