"""What a server's TLS handshake steps cost in OpenSSL, with no network and no loop.

Run: .venv/bin/python bench/tls_handshakes.py [--handshakes 400]

A client and a server ``ssl.SSLObject`` joined by memory BIOs in one thread;
the server's CPU time (``time.thread_time_ns``) for each of its steps, the
median over ``--handshakes``: making its ``SSL`` (``wrap_bio``), a step before
any byte arrived (what riad's server no longer takes), the step that answers
the ClientHello (key exchange, the certificate's signature, the key schedule,
the encrypted flight), and the step that reads the client's Finished (in TLS
1.3 it also sends the session tickets). For TLS 1.3 with an X25519 key share
(what OpenSSL's and most clients send first), with a P-256 one, and TLS 1.2.
The server context is riad's own (``server_context``: Mozilla's intermediate
profile, groups X25519, P-256, P-384) with a development certificate (ECDSA
P-256). What riad's event loop adds around these steps (the stack, the
streams, the HTTP connection) is measured by ``bench/soak.py``'s blame runs.
"""

# ruff: noqa: E402  (the path fix below must come before the imports)
from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import contextlib
import ssl
import statistics
import tempfile
import time
from pathlib import Path


def parts(handshakes: int) -> None:
    """The server's CPU per handshake step in memory (see the module text)."""
    from riad.services.tls import dev_certificate, libssl, server_context

    cpu = time.thread_time_ns
    with tempfile.TemporaryDirectory() as tmp:
        dev_certificate().save(tmp)
        folder = Path(tmp)
        server = server_context(
            (folder / "server.pem").read_bytes(), (folder / "server.key").read_bytes()
        )
        cafile = str(folder / "ca.pem")

        def client(groups: str | None = None, tls12: bool = False) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=cafile)
            if groups:
                libssl.set_groups(context, groups)
            if tls12:
                context.maximum_version = ssl.TLSVersion.TLSv1_2
            return context

        cases = [
            ("TLS 1.3, X25519 key share", client()),
            ("TLS 1.3, P-256 key share", client("P-256")),
            ("TLS 1.2, X25519", client(tls12=True)),
        ]
        for label, context in cases:
            steps: dict[str, list[int]] = {
                "SSL_new (wrap_bio)": [],
                "a step before any byte": [],
                "the ClientHello's step": [],
                "the client Finished's step": [],
            }
            for _ in range(handshakes):
                bios = [ssl.MemoryBIO() for _ in range(4)]
                c = context.wrap_bio(bios[0], bios[1], server_hostname="localhost")
                began = cpu()
                s = server.wrap_bio(bios[2], bios[3], server_side=True)
                steps["SSL_new (wrap_bio)"].append(cpu() - began)
                for name, end in (("a step before any byte", s), ("", c)):
                    began = cpu()
                    with contextlib.suppress(ssl.SSLWantReadError):
                        end.do_handshake()
                    if name:
                        steps[name].append(cpu() - began)
                bios[2].write(bios[1].read())
                began = cpu()
                with contextlib.suppress(ssl.SSLWantReadError):
                    s.do_handshake()
                bios[0].write(bios[3].read())
                steps["the ClientHello's step"].append(cpu() - began)
                with contextlib.suppress(ssl.SSLWantReadError):  # TLS 1.2: the server's
                    c.do_handshake()  # Finished is still to come
                bios[2].write(bios[1].read())
                began = cpu()
                s.do_handshake()
                bios[3].read()
                steps["the client Finished's step"].append(cpu() - began)
            text = "; ".join(f"{k} {statistics.median(v) / 1e3:.0f} us" for k, v in steps.items())
            print(f"{label} ({s.version()}, {s.cipher()[0]}): {text}")  # type: ignore[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--handshakes", type=int, default=400, help="per case (default 400)")
    args = parser.parse_args()
    print(f"a server's CPU per handshake step, median of {args.handshakes} handshakes")
    parts(args.handshakes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
