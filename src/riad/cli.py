"""The ``riad`` command line.

Verbs are registered in ``_build_parser``; each verb's handler returns the
process exit status. Configuration mistakes print one line naming what to fix
and exit with status 2, never a bare traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from riad import __version__
from riad.image import ImageError

DESCRIPTION = """\
riad seals a Python network service into a purpose-built unit.

A service is written once against riad's device interfaces (network stack,
key-value store, clock, entropy, console) and run on a target:

  unix      an ordinary process, for development; network on the host's
            sockets (--net socket) or on riad's own TCP/IP stack over a TAP
            device (--net direct)
  sandbox   a process locked down to a few system calls, no filesystem,
            speaking only through a TAP device with riad's stack
  vm        a microVM image (minimal kernel, one Python interpreter, the
            tree-shaken standard library, the service and its data) booted
            under QEMU
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riad",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"riad {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    _add_vm_verbs(sub)
    _add_cert_verb(sub)
    return parser


def _add_cert_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.services.tls.cli import add_cert_parser

    add_cert_parser(sub)


def _add_vm_verbs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.targets.vm import cli as vm

    run = sub.add_parser(
        "run",
        help="run a service on a target (boot arguments follow the options)",
        description="Run SERVICE on a target; arguments riad does not know are boot arguments.",
    )
    run.add_argument("service", metavar="SERVICE", help="a .py file, a directory or a vm image")
    run.add_argument("-t", "--target", default="vm", help="target (vm)")
    vm.add_build_options(run)
    vm.add_run_options(run)
    build = sub.add_parser("build", help="seal a service into an image (-t vm)")
    build.add_argument("service", metavar="SERVICE", help="a .py file or a directory")
    build.add_argument("-t", "--target", default="vm", help="target (vm)")
    build.add_argument("-o", "--output", metavar="DIR", help="output directory")
    vm.add_build_options(build)
    inspect = sub.add_parser("inspect", help="what is inside a vm image and what it costs")
    inspect.add_argument("image", metavar="IMAGE", help="an image directory (riad build -o)")
    _add_sandbox_options(run, inspect)
    vm.add_kernel_parser(sub)


def _add_sandbox_options(run: argparse.ArgumentParser, inspect: argparse.ArgumentParser) -> None:
    from riad.targets.sandbox import cli as sandbox

    sandbox.add_run_options(run, shared=True)
    inspect.add_argument("-t", "--target", default="vm", help="target (vm, sandbox)")
    sandbox.add_run_options(inspect, shared=True)


def _dispatch_sandbox(args: argparse.Namespace, extra: list[str]) -> int | None:
    """``riad run|inspect SERVICE -t sandbox``; None for other targets."""
    from riad.targets.sandbox import cli as sandbox

    if getattr(args, "target", None) != "sandbox":
        return None
    if args.verb == "run":
        return sandbox.cmd_run(args, extra)
    if args.verb == "inspect":
        args.service = args.image
        return sandbox.cmd_inspect(args)
    return None


def _dispatch(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from riad.targets.vm import cli as vm

    args, extra = parser.parse_known_args(argv)
    sandboxed = _dispatch_sandbox(args, extra)
    if sandboxed is not None:
        return sandboxed
    if args.verb in ("run", "build"):
        vm.check_target(args.target)
        if args.verb == "run":
            return vm.cmd_run(args, extra)
        args.boot_args = extra
        return vm.cmd_build(args)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.verb == "inspect":
        return vm.cmd_inspect(args)
    if args.verb == "kernel":
        return vm.cmd_kernel(args)
    if args.verb == "cert":
        from riad.services.tls.cli import cmd_cert

        return cmd_cert(args)
    parser.print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riad`` command with ``argv`` (default: the process arguments)."""
    parser = _build_parser()
    try:
        return _dispatch(parser, sys.argv[1:] if argv is None else list(argv))
    except ImageError as exc:
        print(f"riad: {exc}", file=sys.stderr)
        return 2
