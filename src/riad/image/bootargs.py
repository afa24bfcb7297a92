"""Boot arguments on the kernel command line, and the ones PID 1 reads itself.

A vm image's boot arguments travel in one kernel parameter,
``RIAD_ARGS="..."``: space-separated words with ``%``, space, ``"`` and
control characters written as ``%XX`` (the kernel command line has no other
quoting). The kernel hands that parameter to PID 1 as an environment
variable. Imported by PID 1: keep it free of imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def encode_boot_args(args: Sequence[str]) -> str:
    """Boot arguments as one kernel parameter value (see the module docs)."""
    return " ".join(
        "".join(
            f"%{ord(ch):02X}" if ch in '% "' or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
            for ch in arg
        )
        for arg in args
    )


def decode_boot_args(text: str) -> list[str]:
    """Inverse of :func:`encode_boot_args`."""
    args = []
    for word in text.split(" "):
        if not word:
            continue
        parts = word.split("%")
        decoded = parts[0]
        for part in parts[1:]:
            decoded += chr(int(part[:2], 16)) + part[2:]
        args.append(decoded)
    return args


def split_net_args(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Find ``--ipv4`` and ``--ipv4-gateway`` (``--x=v`` or ``--x v``) in ``args``.

    Returns their values and the other arguments. PID 1 reads them to set up
    the kernel's stack; the service still gets every boot argument.
    """
    wanted = ("--ipv4", "--ipv4-gateway")
    found: dict[str, str] = {}
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, eq, value = arg.partition("=")
        if name in wanted:
            if not eq:
                if index + 1 >= len(args):
                    raise ValueError(f"{name} needs a value, e.g. {name}=10.0.0.2/24")
                index += 1
                value = args[index]
            found[name.lstrip("-")] = value
        else:
            rest.append(arg)
        index += 1
    return found, rest
