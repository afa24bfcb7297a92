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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riad`` command with ``argv`` (default: the process arguments)."""
    parser = _build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    del args
    parser.print_help()
    return 0
