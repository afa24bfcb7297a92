"""The ``riad`` command line.

Verbs are registered in ``_build_parser``; each sets ``handler`` to a function
``(args, extra) -> int`` returning the exit status (``extra``: the arguments
argparse did not know). Configuration mistakes print one line naming what to
fix and exit with status 2, never a bare traceback.

``riad run`` parses its own arguments in two steps: the target first
(``-t NAME``, one of :data:`riad.targets.TARGETS`), then that target's
options (:func:`riad.targets.target.add_run_options`). It builds the typed
request once (:func:`riad.targets.target.read_request`: everything after
SERVICE that is not an option of riad run is a boot argument, in order) and
hands it to the target's ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from riad import __version__

if TYPE_CHECKING:
    from riad.targets.target import Target

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

Start with:  riad new myservice && riad run myservice
"""

EPILOG = """\
exit status: 0 the service ended cleanly (or was stopped with Ctrl-C/SIGTERM),
1 the service failed, 2 a configuration mistake (the message names the fix).
See docs/writing-a-service.md and docs/targets.md.
"""

Handler = Callable[[argparse.Namespace, list[str]], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riad",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"riad {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    run = sub.add_parser("run", help="run a service on a target", add_help=False)
    run.set_defaults(handler=_run)
    _add_new(sub)
    _add_vm_verbs(sub)
    _add_cert_verb(sub)
    _add_serve_verb(sub)
    from riad.targets.kubernetes import add_deploy_parser

    add_deploy_parser(sub)
    return parser


# -- riad run ------------------------------------------------------------------

RUN_USAGE = "riad run SERVICE [-t TARGET] [options] [boot arguments]"
RUN_DESCRIPTION = """\
Run SERVICE (a .py file, a folder with service.py, or module:attr) on a target.
SERVICE is a riad.App, or an existing ASGI or WSGI application (FastAPI,
Starlette, Django, Flask...: riad run main:app), which riad serves over HTTP.
Everything after SERVICE that is not an option of riad run is a boot argument:
riad's own (--ipv4, --ipv4-gateway, --dhcp, --dns, --dns-search, --hosts,
--logs) and the service's (riad run SERVICE --help lists them). Boot arguments after -- are passed as
they are, even when riad run has an option of the same name. Each target has
its own options: riad run -t sandbox --help, riad run -t vm --help."""

NO_UVLOOP = (
    "--loop uvloop: -t {target} runs on riad's event loop (asyncio's, which its seal and "
    "stack are built around); uvloop is for -t unix on the host's sockets: leave --loop out"
)


def _run_parser(target: Target | None) -> argparse.ArgumentParser:
    from riad.targets import DEFAULT_TARGET, TARGETS
    from riad.targets.target import add_run_options

    parser = argparse.ArgumentParser(
        prog="riad run",
        usage=RUN_USAGE,
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("service", nargs="?", metavar="SERVICE")
    parser.add_argument("-h", "--help", action="store_true", help="show this help")
    targets = "; ".join(f"{name}: {about}" for name, (_, about) in TARGETS.items())
    parser.add_argument(
        "-t",
        "--target",
        default=DEFAULT_TARGET,
        metavar="TARGET",
        help=f"where to run it ({targets}); default: {DEFAULT_TARGET}",
    )
    if target is not None:
        add_run_options(parser, target)
    add_web_options(parser.add_argument_group("ASGI and WSGI applications"), target)
    return parser


def add_web_options(group: argparse._ArgumentGroup, target: Target | None) -> None:
    """``--factory`` (and ``--tls-certs`` where the target takes stores from the host)."""
    group.add_argument(
        "--factory",
        action="store_true",
        help="SERVICE's module:attr is a function that returns the application "
        "(the same as module:attr())",
    )
    group.add_argument(
        "--tls-certs",
        metavar="DIR",
        help="serve HTTPS from DIR's server.pem and server.key (riad cert DIR makes them; "
        "by default certs/ beside the application, if it is there)",
    )
    if target is not None and "loop" not in target.run_options:
        from riad.targets.target import LOOP_CHOICES

        group.add_argument(
            "--loop",
            choices=LOOP_CHOICES,
            help=f"-t {target.name} runs riad's event loop (auto and asyncio); "
            "uvloop is for -t unix on the host's sockets",
        )


NO_TLS_CERTS = (
    "--tls-certs: a vm image packs the certificate store from the application's folder: "
    "put server.pem and server.key in certs/ there (riad cert DIR/certs)"
)


def web_service_spec(service: str, factory: bool) -> str:
    """``module:attr`` as ``module:attr()`` when ``--factory`` says attr is a factory."""
    if not factory or service.endswith("()"):
        return service
    module, colon, attr = service.rpartition(":")
    if not colon or not attr.isidentifier() or not module:
        from riad.app.args import ConfigError

        raise ConfigError(f"--factory: name the function as module:function, not {service!r}")
    return f"{service}()"


def _run(_args: argparse.Namespace, rest: list[str]) -> int:
    own, after_separator = rest, []
    if "--" in rest:
        own, after_separator = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    from riad.targets import TARGETS, load_target
    from riad.targets.target import read_request

    probe, _ = _run_parser(None).parse_known_args(own)
    if probe.target not in TARGETS:
        choices = ", ".join(TARGETS)
        print(f"riad: error: unknown target {probe.target!r}: choose {choices}", file=sys.stderr)
        return 2
    target = load_target(probe.target)
    parser = _run_parser(target)
    args, boot_args = parser.parse_known_args(own)
    if args.service is None:
        if args.help:
            parser.print_help()
            return 0
        print(f"riad: error: give a SERVICE to run (usage: {RUN_USAGE})", file=sys.stderr)
        return 2
    from riad.app.args import ConfigError

    try:
        service = web_service_spec(args.service, args.factory)
    except ConfigError as exc:
        print(f"riad: error: {exc}", file=sys.stderr)
        return 2
    if args.tls_certs:
        if "kv" not in target.run_options:
            print(f"riad: error: {NO_TLS_CERTS}", file=sys.stderr)
            return 2
        args.kv = [*(args.kv or ()), f"tls={args.tls_certs}"]
    if args.loop == "uvloop" and "loop" not in target.run_options:
        print(f"riad: error: {NO_UVLOOP.format(target=target.name)}", file=sys.stderr)
        return 2
    if args.help:
        return _service_help(parser, service)
    return target.run(read_request(target, args, service, [*boot_args, *after_separator]))


def _service_help(parser: argparse.ArgumentParser, service: str) -> int:
    """``riad run SERVICE --help``: the service's arguments (and riad run's options)."""
    from riad.backends.console import FdConsole
    from riad.targets.target import RunRequest, prepare_service

    parser.print_help()
    print()
    request = RunRequest(service=service, boot_args=("--help",))
    result = prepare_service(request, FdConsole(2), help_console=FdConsole(1))
    return result if isinstance(result, int) else 0


# -- riad new ------------------------------------------------------------------


def _add_new(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.templates import TEMPLATES

    new = sub.add_parser(
        "new",
        help="create a service skeleton that runs as it is",
        description="Create folder NAME with a working service.py from a template.",
    )
    new.add_argument("name", metavar="NAME", help="the service's name and folder")
    new.add_argument(
        "--template",
        default="hello",
        choices=sorted(TEMPLATES),
        help="; ".join(f"{name}: {text}" for name, text in sorted(TEMPLATES.items()))
        + " (default: hello)",
    )
    new.set_defaults(handler=_new)


def _new(args: argparse.Namespace, extra: list[str]) -> int:
    from riad.app.args import ConfigError
    from riad.templates import create_service

    if extra:
        print(f"riad: error: unexpected arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        path = create_service(args.name, args.template)
    except ConfigError as exc:
        print(f"riad: error: {exc}", file=sys.stderr)
        return 2
    print(f"created {path}; run it with: riad run {args.name}")
    return 0


# -- riad build / inspect / kernel (vm and sandbox targets) --------------------


def _add_vm_verbs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.targets.sandbox.target import add_seal_option
    from riad.targets.vm import cli as vm

    build = sub.add_parser("build", help="seal a service into an image (-t vm, -t oci)")
    build.add_argument("service", metavar="SERVICE", help="a .py file or a directory")
    build.add_argument("-t", "--target", default="vm", help="target (vm, oci)")
    build.add_argument("-o", "--output", metavar="DIR", help="output directory")
    build.add_argument(
        "--archive",
        metavar="FILE",
        help="-t oci, -t vm --oci: write the image as an OCI archive (podman load)",
    )
    build.add_argument(
        "--oci",
        action="store_true",
        help="-t vm: also export the image as a KubeVirt containerDisk (with --archive)",
    )
    vm.add_build_options(build)
    add_web_options(build.add_argument_group("ASGI and WSGI applications"), None)
    build.set_defaults(handler=_vm_verb)
    inspect = sub.add_parser("inspect", help="what is inside a vm image and what it costs")
    inspect.add_argument("image", metavar="IMAGE", help="an image directory (riad build -o)")
    inspect.add_argument("-t", "--target", default="vm", help="target (vm, sandbox)")
    inspect.add_argument(
        "--modules",
        action="store_true",
        help="list every module and data file of a vm image with why it is there",
    )
    add_seal_option(inspect.add_argument_group("sandbox target (-t sandbox)"))
    inspect.set_defaults(handler=_vm_verb)
    vm.add_kernel_parser(sub)
    sub.choices["kernel"].set_defaults(handler=_vm_verb)


def _vm_verb(args: argparse.Namespace, extra: list[str]) -> int:
    from riad.app.args import ConfigError
    from riad.image import ImageError
    from riad.targets.sandbox.target import inspect
    from riad.targets.vm import cli as vm

    try:
        if args.verb == "inspect" and args.target == "sandbox":
            return inspect(args.image, args.seal)
        if args.verb == "build" and args.target == "oci":
            from riad.targets.oci import cmd_build

            spec = web_service_spec(args.service, args.factory)
            return cmd_build(
                spec, extra, output=args.output, archive=args.archive, include=args.include or ()
            )
        if args.verb == "build":
            if args.tls_certs:
                raise ImageError(f"error: {NO_TLS_CERTS}")
            args.service = web_service_spec(args.service, args.factory)
            if args.oci:
                return _container_disk(args, extra)
            return vm.cmd_build(args, extra)
        if extra:
            print(f"riad: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
            return 2
        if args.verb == "inspect":
            return vm.cmd_inspect(args.image, args.modules)
        return vm.cmd_kernel(args)
    except (ImageError, ConfigError) as exc:
        print(f"riad: {exc}", file=sys.stderr)
        return 2


def _container_disk(args: argparse.Namespace, extra: list[str]) -> int:
    """``riad build SERVICE -t vm --oci --archive FILE [-o DIR]``."""
    import tempfile
    from pathlib import Path

    from riad.image import ImageError
    from riad.targets.oci import container_disk, write_archive
    from riad.targets.vm import cli as vm

    if args.archive is None:
        raise ImageError("error: -t vm --oci: give --archive FILE (the containerDisk image)")
    with tempfile.TemporaryDirectory(prefix="riad-vm-oci-") as scratch:
        if args.output is None:
            args.output = scratch
        status = vm.cmd_build(args, extra)
        if status != 0:
            return status
        name = Path(args.service.rstrip("/")).stem.split(":")[0] or "service"
        layout, content = container_disk(Path(args.output), f"localhost/{name}-vm:latest")
        write_archive(layout, Path(args.archive))
    print(
        f"riad: containerDisk localhost/{name}-vm:latest: {len(content.files)} files under "
        f"/disk, manifest {content.manifest_digest}",
        file=sys.stderr,
    )
    return 0


# -- riad cert -----------------------------------------------------------------


def _add_cert_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.services.tls.cli import add_cert_parser

    add_cert_parser(sub)
    sub.choices["cert"].set_defaults(handler=_cert)


def _cert(args: argparse.Namespace, extra: list[str]) -> int:
    from riad.services.tls.cli import cmd_cert

    if extra:
        print(f"riad: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    return cmd_cert(args)


# -- riad serve ----------------------------------------------------------------


def _add_serve_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from riad.targets.vm.wake import add_serve_parser

    add_serve_parser(sub)
    sub.choices["serve"].set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, extra: list[str]) -> int:
    from riad.image import ImageError
    from riad.targets.vm.wake import cmd_serve

    if extra:
        print(f"riad: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        return cmd_serve(args)
    except ImageError as exc:
        print(f"riad serve: error: {exc}", file=sys.stderr)
        return 2


# -- entry point ---------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riad`` command with ``argv`` (default: the process arguments)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        # as ``python -m`` and uvicorn do: riad run main:app finds main.py here
        sys.path.insert(0, os.getcwd())
    if arguments[:1] == ["run"]:
        # riad run parses its own arguments: the other verbs' parsers (and
        # what they import) are not needed, and a vm boots that much sooner.
        return _run(argparse.Namespace(), arguments[1:])
    parser = _build_parser()
    rest: list[str] = []
    verb = next((i for i, a in enumerate(arguments) if not a.startswith("-")), None)
    if verb is not None and arguments[verb] == "run":
        # riad run parses its own arguments: the service's boot arguments are not riad's
        arguments, rest = arguments[: verb + 1], arguments[verb + 1 :]
    args, extra = parser.parse_known_args(arguments)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        parser.print_help()
        return 0
    return handler(args, [*extra, *rest])
