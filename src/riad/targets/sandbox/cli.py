"""``riad run SERVICE -t sandbox`` and ``riad inspect SERVICE -t sandbox``.

The riad command's dispatcher calls :func:`add_run_options` on its ``run``
parser and :func:`cmd_run` / :func:`cmd_inspect` when ``-t sandbox`` is
chosen. ``SERVICE`` names a sandbox entry (``module:attr``, a factory
``(argv, net_fds) -> SandboxEntry``, see :mod:`.child`); the application
model's services are adapted to that shape by riad.

``cmd_run`` prepares what the service may use — a TAP device, created when
running as root (and removed when the run ends) or named with ``--tap`` —
then supervises the sealed child in the foreground.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from riad.targets.sandbox.child import ChildConfig
from riad.targets.sandbox.policy import Deny
from riad.targets.sandbox.profile import DeviceFds, service_policy
from riad.targets.sandbox.seal import NAMESPACES, Limits
from riad.targets.sandbox.supervisor import Sandbox, SandboxStartError

__all__ = ["add_run_options", "cmd_inspect", "cmd_run", "describe_seal"]

EXIT_USAGE = 2
_MODES = ("enforce", "audit", "kill")


def add_run_options(parser: argparse.ArgumentParser, *, shared: bool = False) -> None:
    """The sandbox's options of ``riad run`` (and of ``riad inspect``).

    ``shared``: the parser is shared with other targets, which already define
    ``--tap`` (same meaning) and ``--memory`` (theirs); only ``--seal`` is added
    and the address-space limit keeps its default.
    """
    group = parser.add_argument_group("sandbox target (-t sandbox)")
    if not shared:
        group.add_argument(
            "--tap",
            metavar="NAME",
            help="an existing TAP device to use (default: create one as root)",
        )
    group.add_argument(
        "--seal",
        choices=_MODES,
        default="enforce",
        help="a call outside the policy: enforce = report it and end the service (default), "
        "audit = report it and fail the call with EPERM, kill = the kernel kills at once",
    )
    if not shared:
        group.add_argument(
            "--memory",
            dest="sandbox_memory",
            metavar="MiB",
            type=int,
            default=1024,
            help="address-space limit (MiB)",
        )


_MODE_TEXT = {
    "enforce": "a call outside the policy is reported, fails, and the service is ended",
    "audit": "a call outside the policy is reported and fails with EPERM; the service goes on",
    "kill": "a call outside the policy makes the kernel kill the service at once",
}


def _deny(mode: str) -> Deny:
    return {"enforce": Deny.NOTIFY, "audit": Deny.NOTIFY, "kill": Deny.KILL}[mode]


def describe_seal(mode: str = "enforce", memory_mib: int = 1024) -> list[str]:
    """The sealed policy as ``riad inspect`` prints it (descriptors by role)."""
    from riad.targets.sandbox import linux

    layout = DeviceFds(net=(3,), epoll=5, wakeup_read=6, wakeup_write=7, report=4)
    policy = service_policy(layout, _deny(mode))
    abi = linux.landlock_abi()
    lines = [
        "target: sandbox (a host process sealed before it serves)",
        f"namespaces: new {', '.join(NAMESPACES)} (the network namespace is empty)",
        "root: an empty read-only tmpfs; no capabilities; no_new_privs",
        *("limit: " + line for line in Limits(memory_bytes=memory_mib << 20).describe()),
        "landlock: "
        + (f"ABI {abi}, all filesystem access denied" if abi else "not in this kernel"),
        f"seal mode: {mode} ({_MODE_TEXT[mode]})",
        "descriptors: net = the TAP device (3), console = 1 and 2, epoll and loop wakeup = "
        "the event loop's own, supervisor = the report socket (numbers as laid out at start)",
        "system calls (x86_64):",
        *("  " + line for line in policy.describe()),
    ]
    return lines


def cmd_inspect(args: argparse.Namespace) -> int:
    for line in describe_seal(args.seal, getattr(args, "sandbox_memory", 1024)):
        print(line)
    return 0


def _open_tap(name: str | None) -> tuple[object, int] | str:
    """(device, fd) or a one-line message naming the fix."""
    from riad.backends.tap import TapDevice, TapError

    if name is None and os.geteuid() != 0:
        return (
            "the sandbox target needs a TAP device: creating one needs root; run as root, or "
            "create one (ip tuntap add dev NAME mode tap user $USER) and pass --tap NAME"
        )
    tap_name = name or f"riad{secrets.token_hex(3)}"
    try:
        device = TapDevice.open(tap_name)
    except TapError as exc:
        return str(exc)
    return device, device.fileno()


def cmd_run(args: argparse.Namespace, service_args: list[str]) -> int:
    """Run ``args.service`` sealed; return its exit status."""
    opened = _open_tap(getattr(args, "tap", None))
    if isinstance(opened, str):
        print(f"riad: {opened}", file=sys.stderr)
        return EXIT_USAGE
    device, fd = opened
    os.set_inheritable(fd, True)
    config = ChildConfig(
        entry=args.service,
        argv=tuple(service_args),
        net_fds=(fd,),
        report_fd=-1,
        mode=args.seal,
        memory_mib=getattr(args, "sandbox_memory", 1024),
    )
    sandbox = Sandbox(config, (fd,))
    try:
        sandbox.start()
        return sandbox.run()
    except SandboxStartError as exc:
        print(f"riad: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        close = getattr(device, "close", None)
        if close is not None:
            close()
