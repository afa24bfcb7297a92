"""``riad cert``: a development CA and a server certificate it signed.

    riad cert [DIR] [--name NAME ...] [--days N] [--force]

writes ``DIR/ca.pem`` (the certificate clients trust), ``DIR/server.pem`` (the
server certificate followed by the CA) and ``DIR/server.key`` (its key, mode
0600): the pair ``TlsServer.from_kv`` reads from a key-value store, so ``DIR``
can be given to a service as its certificate store. The certificate is valid
for every NAME and for localhost, 127.0.0.1 and ::1. Made with the standard
library alone (ECDSA P-256, see ``riad.services.tls.cert``); the CA's key is
never written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riad.services.tls.cert import LOOPBACK_NAMES, MAX_DAYS, dev_certificate

__all__ = ["add_cert_parser", "cmd_cert"]

_FILES = ("ca.pem", "server.pem", "server.key")


def add_cert_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = sub.add_parser(
        "cert",
        help="make a development CA and TLS certificate",
        description="Write DIR/ca.pem (trust this one in clients), DIR/server.pem and "
        "DIR/server.key: an ECDSA P-256 server certificate signed by a CA made for it alone, "
        "for a service's certificate store.",
    )
    cert.add_argument("dir", metavar="DIR", nargs="?", default="certs", help="default: certs")
    cert.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="a host name or IP address it is for (repeat; "
        f"{', '.join(LOOPBACK_NAMES)} are always included)",
    )
    cert.add_argument(
        "--days", type=int, default=365, help=f"validity in days (default 365, at most {MAX_DAYS})"
    )
    cert.add_argument("--force", action="store_true", help="replace an existing pair")


def cmd_cert(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    present = [name for name in _FILES if (folder / name).exists()]
    if present and not args.force:
        print(
            f"riad cert: {folder} already holds {', '.join(present)}; pass --force to replace",
            file=sys.stderr,
        )
        return 2
    try:
        made = dev_certificate(args.name or (), days=args.days)
    except ValueError as e:
        print(f"riad cert: {e}", file=sys.stderr)
        return 2
    try:
        ca, chain, key = made.save(folder)
    except OSError as e:
        print(f"riad cert: cannot write to {folder}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {chain} and {key} for {', '.join(made.names)}, valid {args.days} days")
    print(f"clients trust {ca}: curl --cacert {ca} https://localhost:PORT/")
    return 0
