"""``riad cert``: a self-signed certificate and key for development.

    riad cert [DIR] [--name NAME ...] [--days N] [--force]

writes ``DIR/server.pem`` and ``DIR/server.key`` (mode 0600), the pair
``TlsServer.from_kv`` reads from a key-value store, so ``DIR`` can be given
to a service as its certificate store. Made with the standard library alone
(ECDSA P-256, see ``riad.services.tls.cert``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from riad.services.tls.cert import self_signed

__all__ = ["add_cert_parser", "cmd_cert"]


def add_cert_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = sub.add_parser(
        "cert",
        help="make a self-signed TLS certificate for development",
        description="Write DIR/server.pem and DIR/server.key: a self-signed ECDSA P-256 "
        "certificate and its key, for a service's certificate store.",
    )
    cert.add_argument("dir", metavar="DIR", nargs="?", default="certs", help="default: certs")
    cert.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="a host name or IP address it is for (repeat; default: localhost and 127.0.0.1)",
    )
    cert.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    cert.add_argument("--force", action="store_true", help="replace an existing pair")


def cmd_cert(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    names = args.name or ["localhost", "127.0.0.1"]
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    if not args.force and (cert_path.exists() or key_path.exists()):
        print(
            f"riad cert: {folder} already holds a pair; pass --force to replace it", file=sys.stderr
        )
        return 2
    try:
        pair = self_signed(names, days=args.days)
    except ValueError as e:
        print(f"riad cert: {e}", file=sys.stderr)
        return 2
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(pair.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pair.key_pem)
    except OSError as e:
        print(f"riad cert: cannot write to {folder}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {cert_path} and {key_path} for {', '.join(names)}, valid {args.days} days")
    return 0
