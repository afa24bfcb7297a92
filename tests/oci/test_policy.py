"""The container's seccomp allowlist, compiled and run on the tests' own BPF interpreter."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from riad.targets.oci import FIONBIO, SOCK_CLOEXEC, SOCK_NONBLOCK, container_policy
from riad.targets.sandbox.policy import SECCOMP_RET_ALLOW, Deny
from riad.targets.sandbox.profile import TIOCGWINSZ
from riad.targets.sandbox.syscalls_x86_64 import X86_64_SYSCALLS
from tests.targets.sandbox.bpf_vm import Call, run


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _allowed(loop: asyncio.AbstractEventLoop, call: str, *args: int) -> bool:
    program = container_policy(loop, Deny.KILL, threads=False).compile()
    padded = (*args, *(0,) * (6 - len(args)))
    return run(program, Call(X86_64_SYSCALLS[call], padded)) == SECCOMP_RET_ALLOW  # type: ignore[arg-type]


def test_a_connection_of_any_number_is_served(loop: asyncio.AbstractEventLoop) -> None:
    for call in ("accept4", "recvfrom", "sendto", "setsockopt", "getpeername", "shutdown"):
        assert _allowed(loop, call, 517), call
    assert _allowed(loop, "ioctl", 517, FIONBIO)
    assert _allowed(loop, "ioctl", 1, TIOCGWINSZ)
    assert not _allowed(loop, "ioctl", 517, 0x5422)  # FIOASYNC: not asked for


def test_only_internet_sockets_are_opened(loop: asyncio.AbstractEventLoop) -> None:
    flags = SOCK_NONBLOCK | SOCK_CLOEXEC
    assert _allowed(loop, "socket", socket.AF_INET, socket.SOCK_STREAM | flags)
    assert _allowed(loop, "socket", socket.AF_INET6, socket.SOCK_DGRAM | SOCK_CLOEXEC)
    for family in (socket.AF_UNIX, socket.AF_NETLINK, socket.AF_PACKET):
        assert not _allowed(loop, "socket", family, socket.SOCK_STREAM | flags), family
    assert not _allowed(loop, "socket", socket.AF_INET, socket.SOCK_SEQPACKET)


def test_no_exec_process_executable_memory_or_writing_a_file(
    loop: asyncio.AbstractEventLoop,
) -> None:
    for call in ("execve", "fork", "vfork", "ptrace", "bind", "listen", "memfd_create"):
        assert not _allowed(loop, call), call
    assert not _allowed(loop, "clone", 0x11)  # a process's flags (SIGCHLD)
    assert not _allowed(loop, "mmap", 0, 4096, 0x4)  # PROT_EXEC
    assert not _allowed(loop, "openat", 0, 0, os.O_WRONLY | os.O_CREAT)
    assert _allowed(loop, "openat", 0, 0, os.O_RDONLY)  # Landlock decides what it finds
