"""Build the static website's embedded store: ``build/htdocs.kv``.

    python examples/static-site/build.py [--out build/htdocs.kv] [--certs certs]

Copies ``htdocs/`` into a staging folder, adds ``downloads/big-5mb.bin``
(5 MiB made deterministically here, rather than kept in the repository),
and packs it all into one embedded key-value artifact (see
``riad.backends.kv.embedded``). With ``--certs DIR`` it also makes a
development certificate there unless a pair is already present, as
``riad cert DIR`` does: ``ca.pem`` for clients to trust, ``server.pem`` and
``server.key`` for the service (for localhost, 127.0.0.1, ::1 and each
``--name``).

Every value is given the newest modification time found in ``htdocs/``, so
building twice from the same sources gives the same artifact.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from riad.backends.kv import pack
from riad.services.tls import dev_certificate

HERE = Path(__file__).resolve().parent
BIG_FILE = "downloads/big-5mb.bin"
BIG_BYTES = 5 * 1024 * 1024


def big_file_bytes() -> bytes:
    """The 5 MiB download: a SHAKE-128 stream, the same on every build."""
    return hashlib.shake_128(b"riad static-site example").digest(BIG_BYTES)


def stage(htdocs: Path, folder: Path) -> int:
    """Copy ``htdocs`` into ``folder`` with the generated files; returns the pinned mtime (ns)."""
    shutil.copytree(htdocs, folder, dirs_exist_ok=True)
    big = folder / BIG_FILE
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(big_file_bytes())
    return max(p.stat().st_mtime_ns for p in htdocs.rglob("*") if p.is_file())


def build(out: Path, htdocs: Path = HERE / "htdocs") -> Path:
    """Pack the site into ``out``; returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="riad-site-") as tmp:
        modified_ns = stage(htdocs, Path(tmp))
        pack(tmp, out, modified_ns=modified_ns)
    return out


def ensure_certificate(folder: Path, names: list[str]) -> bool:
    """Make a development CA and certificate in ``folder`` unless a pair is there;
    True if made."""
    if (folder / "server.pem").exists() and (folder / "server.key").exists():
        return False
    dev_certificate(names).save(folder)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the static website's embedded store.")
    parser.add_argument("--out", type=Path, default=HERE / "build" / "htdocs.kv")
    parser.add_argument("--certs", type=Path, default=None, help="make a dev certificate here")
    parser.add_argument("--name", action="append", default=None, help="certificate host name")
    args = parser.parse_args(argv)
    out = build(args.out)
    print(f"packed {out} ({out.stat().st_size} bytes)")
    if args.certs is not None:
        if ensure_certificate(args.certs, args.name or []):
            print(f"made a development certificate in {args.certs}: trust {args.certs / 'ca.pem'}")
        elif not (args.certs / "ca.pem").exists():
            print(
                f"kept the certificate in {args.certs}; it has no ca.pem beside it "
                "(remove the folder to make a development CA and certificate)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
