"""``python -m riad.targets.sandbox run|inspect SERVICE [options] [service args]``.

The sandbox target's verbs on their own, the same as ``riad run -t sandbox``
and ``riad inspect -t sandbox``, for use until and besides the ``riad``
command's dispatcher.
"""

from __future__ import annotations

import argparse
import sys

from riad.targets.sandbox.cli import add_run_options, cmd_inspect, cmd_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riad.targets.sandbox")
    parser.add_argument("verb", choices=("run", "inspect"))
    parser.add_argument("service", metavar="SERVICE", help="a sandbox entry, module:attr")
    add_run_options(parser)
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.verb == "inspect":
        return cmd_inspect(args)
    return cmd_run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
