"""The supervisor: starts the sandbox child, reports what the seal stops, ends it cleanly.

The supervisor is the unsealed ``riad run -t sandbox`` process. It forks the
child (:func:`riad.targets.sandbox.child.run_child`: a fork, not a new
interpreter, so the child starts with everything the supervisor already
imported and loaded), which keeps the network descriptors and one end of a
``SOCK_SEQPACKET`` pair; every other descriptor it inherited is pointed at
``/dev/null``. Then the supervisor waits on three things at once:

- the report socket: the service's pid and the keeper's seal (from the
  keeper), the service's seal and the seccomp listener descriptor (passed
  with ``SCM_RIGHTS``), or a start-up error;
- the listener: each call the policy refuses arrives here; the supervisor
  reports it as ``riad sandbox: stopped openat(AT_FDCWD, "/etc/passwd", 0x0)``
  and answers ``EPERM`` — in ``audit`` mode the service goes on, in
  ``enforce`` mode the supervisor then kills it (status :data:`EXIT_POLICY`);
- the child's pidfd: its exit ends the run with its status.

SIGTERM and SIGINT are forwarded to the service (a second one too: the
service then stops at once); if it has not finished ``config.stop_grace_s``
seconds after the first it is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from riad.targets.sandbox import notify
from riad.targets.sandbox.child import EXIT_CRASH, ChildConfig, run_child

__all__ = ["EXIT_POLICY", "Sandbox", "SandboxStartError"]

EXIT_POLICY = 3
"""Exit status when ``enforce`` mode stopped the service for a call outside its policy."""
_PREFIX = "riad sandbox: "


class SandboxStartError(RuntimeError):
    """The child failed before it was sealed; the message says why."""


def _print_report(line: str) -> None:
    print(_PREFIX + line, file=sys.stderr, flush=True)


@dataclass
class Sandbox:
    """One sealed service and the supervisor loop around it.

    ``report`` receives each line meant for the operator (default: stderr).
    ``stopped`` collects the calls the seal refused, described. ``sealed_steps``
    and ``keeper_steps`` are what the service (PID 1) and its keeper applied.
    """

    config: ChildConfig
    pass_fds: tuple[int, ...] = ()
    report: Callable[[str], None] = _print_report
    stopped: list[str] = field(default_factory=list)
    sealed_steps: list[str] = field(default_factory=list)
    keeper_steps: list[str] = field(default_factory=list)
    service_pid: int | None = None
    _proc: _Child | None = None
    _sock: socket.socket | None = None
    _listener: int | None = None
    _pidfd: int | None = None
    _service_pidfd: int | None = None
    _kill_at: float | None = None
    _violation: bool = False
    _error: str | None = None

    def start(self) -> None:
        """Fork the child (it seals itself; :meth:`wait_sealed` waits for that)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keep = {*self.pass_fds, theirs.fileno()}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            status = EXIT_CRASH
            try:
                ours.close()
                _only_these_fds(keep)
                _console_on_1_and_2()
                status = run_child(self.config, theirs)
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        theirs.close()
        self._sock = ours
        self._proc = _Child(pid)
        self._pidfd = os.pidfd_open(pid)

    def _handle_message(self) -> None:
        assert self._sock is not None
        try:
            data, fds, _flags, _addr = socket.recv_fds(self._sock, 65536, 4)
        except ConnectionError:
            data, fds = b"", []
        if not data:
            self._close_sock()
            return
        message = json.loads(data)
        if "keeper" in message:
            self.keeper_steps = list(message["keeper"])
        if "pid" in message:
            self.service_pid = int(message["pid"])
            try:
                self._service_pidfd = os.pidfd_open(self.service_pid)
            except ProcessLookupError:
                self._service_pidfd = None
        if "error" in message:
            self._error = str(message["error"])
            self.report(f"cannot start the service: {self._error}")
        if "sealed" in message:
            self.sealed_steps = list(message["sealed"])
            for step in self.sealed_steps:
                self.report(f"sealed {step}")
        for fd in fds:
            if self._listener is None:
                self._listener = fd
            else:
                os.close(fd)

    def _close_sock(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _handle_notification(self) -> None:
        assert self._listener is not None
        note = notify.receive(self._listener)
        if note is None:
            if notify.listener_closed(self._listener):
                os.close(self._listener)
                self._listener = None
            return
        call = notify.describe(note)
        self.stopped.append(call)
        if self.config.mode == "audit":
            self.report(f"stopped {call}: outside the policy, answered EPERM")
            notify.deny(self._listener, note)
            return
        self.report(f"stopped {call}: outside the policy, ending the service")
        self._violation = True
        self.kill()
        notify.deny(self._listener, note)

    def kill(self) -> None:
        """Kill the service at once (its whole PID namespace goes with it)."""
        if self._service_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._service_pidfd, signal.SIGKILL)
        elif self._proc is not None:
            self._proc.kill()

    def terminate(self) -> None:
        """Ask the service to stop (SIGTERM); it is killed if it lingers."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            if self._kill_at is None:
                self._kill_at = time.monotonic() + self.config.stop_grace_s

    def _selector(self) -> selectors.DefaultSelector:
        sel = selectors.DefaultSelector()
        if self._sock is not None:
            sel.register(self._sock, selectors.EVENT_READ, "sock")
        if self._listener is not None:
            sel.register(self._listener, selectors.EVENT_READ, "listener")
        assert self._pidfd is not None
        sel.register(self._pidfd, selectors.EVENT_READ, "exit")
        return sel

    def step(self, timeout: float | None) -> bool:
        """Handle whatever is ready within ``timeout`` seconds; False once the child exited."""
        assert self._proc is not None
        if self._kill_at is not None:
            remaining = self._kill_at - time.monotonic()
            if remaining <= 0:
                self.kill()
                self._proc.kill()
                self._kill_at = None
            timeout = max(0.0, remaining) if timeout is None else min(timeout, max(0.0, remaining))
        with self._selector() as sel:
            events = sel.select(timeout)
        for key, mask in events:
            if key.data == "sock":
                self._handle_message()
            elif key.data == "listener":
                if mask & selectors.EVENT_READ:
                    self._handle_notification()
            elif key.data == "exit":
                return self._drain_and_finish()
        return True

    def _drain_and_finish(self) -> bool:
        while self._sock is not None:  # messages sent just before exiting
            with selectors.DefaultSelector() as sel:
                sel.register(self._sock, selectors.EVENT_READ)
                if not sel.select(0):
                    break
            self._handle_message()
        return False

    @property
    def keeper_pid(self) -> int | None:
        """The keeper's pid on the host (the process :meth:`start` forked)."""
        return None if self._proc is None else self._proc.pid

    def wait_sealed(self, timeout: float) -> None:
        """Return once the service and its keeper are sealed; raise
        :class:`SandboxStartError` if either failed."""
        deadline = time.monotonic() + timeout
        while not (self.sealed_steps and self.keeper_steps):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxStartError(f"the service was not sealed within {timeout} s")
            if not self.step(remaining):
                raise SandboxStartError(self._error or f"the service exited ({self.returncode()})")

    def returncode(self) -> int:
        """The run's exit status (call after :meth:`step` returned False)."""
        assert self._proc is not None
        code = self._proc.wait()
        if self._violation:
            return EXIT_POLICY
        return 128 - code if code < 0 else code

    def run(self) -> int:
        """Supervise until the child exits; SIGTERM/SIGINT stop it. Returns its status."""
        previous = {
            signum: signal.signal(signum, lambda _s, _f: self.terminate())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            while self.step(None):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.close()
        return self.returncode()

    def close(self) -> None:
        self._close_sock()
        for fd in (self._listener, self._pidfd, self._service_pidfd):
            if fd is not None:
                os.close(fd)
        self._listener = self._pidfd = self._service_pidfd = None


class _Child:
    """The forked child, with the parts of ``subprocess.Popen`` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None

    def _reap(self, options: int) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, options)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        return self.status

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        status = self._reap(0)
        assert status is not None
        return status

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _only_these_fds(keep: set[int]) -> None:
    """In the forked child: standard input and every inherited descriptor not in
    ``keep`` (or 1, 2) become ``/dev/null``.

    Pointed elsewhere rather than closed: objects of the parent's still hold
    those numbers, and when one is collected it closes its number, which must
    not be a descriptor of the child's by then.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd in keep or fd in (1, 2, null):
                continue
            with contextlib.suppress(OSError):
                os.fstat(fd)  # still open (not the listing's own descriptor)
                os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _console_on_1_and_2() -> None:
    """In the forked child: ``sys.stdout``/``sys.stderr`` write to descriptors 1 and 2.

    The console the seal allows; the parent's may have been other descriptors
    (a test runner capturing output, say).
    """
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115


def run(config: ChildConfig, pass_fds: Sequence[int] = ()) -> int:
    """Start and supervise a sealed service in the foreground; return its exit status."""
    sandbox = Sandbox(config, tuple(pass_fds))
    sandbox.start()
    return sandbox.run()
