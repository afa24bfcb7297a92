"""Boot arguments as they are written and carried: one scanner, one encoding.

A service's boot arguments (riad's own, ``--ipv4`` and the like, and the ones
the service declares) are written the same way on every target::

    --name value     --name=value     --flag

A value never looks like an option (``--x``; a negative number such as
``--delta -5`` or ``--delta --5`` does not count); when a name is given
twice the last one wins, so a target can put defaults first and the user's
choices after. :func:`scan` is the one reader of that syntax. On top of it:

- :func:`riad.app.args.parse_boot_args` gives every argument a type and
  checks the whole line (unknown names, missing values, required arguments);
  that is what a service's configuration comes from on every target;
- :func:`split` takes a few known arguments out of a line and leaves the
  rest as it is, for the parts of riad that read one argument before the
  service does: a vm's PID 1 (the network of the ``socket`` kernel,
  ``--seal``), the vm runner and image builder (the guest's address).

On the ``vm`` target the arguments travel on the kernel command line, in one
parameter, ``RIAD_ARGS="..."`` (:func:`kernel_parameter`): space-separated
words with ``%``, space, ``"`` and control characters written as ``%XX`` (the
kernel command line has no other quoting). The kernel hands that parameter
to PID 1 as an environment variable (:func:`from_environment`).

A vm's PID 1 imports this module before anything else of riad's: it imports
nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (not typing's: a vm's PID 1 imports this before typing)
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

__all__ = [
    "BOOT_ARGS_ENV",
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "NET_ARGS",
    "ConfigError",
    "decode",
    "encode",
    "from_environment",
    "kernel_parameter",
    "scan",
    "shutdown_timeout_s",
    "split",
]

BOOT_ARGS_ENV = "RIAD_ARGS"
"""The kernel parameter (and so PID 1's environment variable) holding a vm's boot arguments."""

NET_ARGS: dict[str, str] = {
    "--ipv4": "ADDRESS/PREFIX",
    "--ipv4-gateway": "ADDRESS",
    "--ipv6": "ADDRESS/PREFIX",
    "--ipv6-gateway": "ADDRESS",
}
"""riad's own arguments that set up a network, with their metavars: read by a vm's PID 1
(the ``socket`` kernel's address and route) and by the vm runner and image builder."""


DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
"""How long a graceful stop may take unless ``--shutdown-timeout`` says otherwise."""


class ConfigError(Exception):
    """A configuration mistake. ``str(error)`` is one line naming what to fix."""


def _looks_like_option(token: str) -> bool:
    return token.startswith("--") and len(token) > 2 and not token[2].isdigit()


def scan(
    argv: Sequence[str], takes: Mapping[str, str | None]
) -> Iterator[tuple[str | None, str | None]]:
    """Read ``argv`` left to right against the known names in ``takes``.

    ``takes`` maps each known name to the metavar of its value (``"PORT"``),
    or to ``None`` for a flag. Yields ``(name, value)`` for each known
    argument (``value`` is ``None`` for a flag) and ``(None, token)`` for every
    other token, in order. An unknown ``--name`` is yielded alone: whether the
    next token is its value is for the caller to say. Raises ``ConfigError``
    for a known argument written wrong (a flag given a value, a value missing).
    """
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        name, eq, inline = token.partition("=")
        if not token.startswith("--") or name not in takes:
            yield None, token
            continue
        metavar = takes[name]
        if metavar is None:
            if eq:
                raise ConfigError(f"{name} takes no value: write {name} alone")
            yield name, None
        elif eq:
            yield name, inline
        elif index < len(argv) and not _looks_like_option(argv[index]):
            yield name, argv[index]
            index += 1
        else:
            raise ConfigError(f"{name} needs a value: {name} {metavar}")


def split(
    argv: Sequence[str], takes: Mapping[str, str | None]
) -> tuple[dict[str, str | None], list[str]]:
    """Take the arguments named in ``takes`` out of ``argv`` (see :func:`scan`).

    Returns their values by name (the last one given; ``None`` for a flag) and
    every other token, in order.
    """
    found: dict[str, str | None] = {}
    rest: list[str] = []
    for name, value in scan(argv, takes):
        if name is None:
            assert value is not None
            rest.append(value)
        else:
            found[name] = value
    return found, rest


def _escape(ch: str) -> str:
    return f"%{ord(ch):02X}" if ch in '% "' or ord(ch) < 0x20 or ord(ch) == 0x7F else ch


def encode(args: Sequence[str]) -> str:
    """Boot arguments as the value of one kernel parameter (see the module docs)."""
    return " ".join("".join(_escape(ch) for ch in arg) for arg in args)


def decode(text: str) -> list[str]:
    """Inverse of :func:`encode`; ``ConfigError`` for a malformed ``%XX`` escape."""
    args = []
    for word in text.split(" "):
        if not word:
            continue
        first, *escaped = word.split("%")
        parts = [first]
        for part in escaped:
            code = part[:2]
            if len(code) != 2 or not all(c in "0123456789abcdefABCDEF" for c in code):
                raise ConfigError(f"{BOOT_ARGS_ENV}: {word!r} has a bad %XX escape")
            parts += [chr(int(code, 16)), part[2:]]
        args.append("".join(parts))
    return args


def kernel_parameter(args: Sequence[str]) -> str:
    """``RIAD_ARGS="..."``: the kernel command-line word carrying ``args`` to a vm's PID 1."""
    return f'{BOOT_ARGS_ENV}="{encode(args)}"'


def from_environment(environ: Mapping[str, str]) -> list[str]:
    """The boot arguments PID 1 was given (none if the parameter is absent)."""
    return decode(environ.get(BOOT_ARGS_ENV, ""))


def shutdown_timeout_s(args: Sequence[str]) -> float:
    """The ``--shutdown-timeout`` among ``args``, for a target waiting for a service to stop.

    Its default when absent, or when it is no positive number (the service
    itself reports such a mistake).
    """
    try:
        text = split(args, {"--shutdown-timeout": "SECONDS"})[0].get("--shutdown-timeout")
        value = float(text) if text is not None else DEFAULT_SHUTDOWN_TIMEOUT_S
    except (ConfigError, ValueError):
        return DEFAULT_SHUTDOWN_TIMEOUT_S
    return value if 0 < value <= 3600 else DEFAULT_SHUTDOWN_TIMEOUT_S
