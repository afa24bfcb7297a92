"""Certificates and keys put into an SSL context from memory, with no file at all.

The chains are made by the ``openssl`` program (a root, an intermediate, a
leaf); the handshakes run between two ``ssl.MemoryBIO`` ends in this process.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from riad.services.tls import memory
from riad.services.tls.context import TlsConfigError, server_context

from .memory_pair import MemoryPair


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        pytest.fail("openssl is missing: run scripts/system-deps as root")
    subprocess.run([tool, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Chain:
    root_pem: bytes
    intermediate_pem: bytes
    leaf_pem: bytes
    leaf_key: bytes
    other_key: bytes
    encrypted_key: bytes


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    d = tmp_path_factory.mktemp("chain")
    ext = d / "ca.ext"
    ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    leaf_ext = d / "leaf.ext"
    leaf_ext.write_text("subjectAltName=DNS:riad.test\n")
    for name in ("root", "mid", "leaf", "other"):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", f"{name}.key", cwd=d)  # fmt: skip
    _openssl("req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=riad test root",
             "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", "-out", "root.pem", cwd=d)  # fmt: skip
    for name, issuer, extfile, cn in (("mid", "root", ext, "riad test intermediate"),
                                      ("leaf", "mid", leaf_ext, "riad.test")):  # fmt: skip
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}",
                 "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem",
                 "-CAkey", f"{issuer}.key", "-CAcreateserial", "-days", "2",
                 "-extfile", str(extfile), "-out", f"{name}.pem", cwd=d)  # fmt: skip
    _openssl("pkey", "-in", "leaf.key", "-aes128", "-passout", "pass:secret",
             "-out", "leaf.enc.key", cwd=d)  # fmt: skip
    return Chain(
        root_pem=(d / "root.pem").read_bytes(),
        intermediate_pem=(d / "mid.pem").read_bytes(),
        leaf_pem=(d / "leaf.pem").read_bytes(),
        leaf_key=(d / "leaf.key").read_bytes(),
        other_key=(d / "other.key").read_bytes(),
        encrypted_key=(d / "leaf.enc.key").read_bytes(),
    )


def _handshake(server: ssl.SSLContext, root_pem: bytes) -> str:
    """Run a TLS handshake between ``server`` and a client trusting ``root_pem`` only."""
    client = ssl.create_default_context(cadata=root_pem.decode())
    return str(MemoryPair(server, client, hostname="riad.test").handshake().client.version())


def test_chain_and_key_from_memory_serve_a_verified_handshake(chain: Chain) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert memory.load_chain(context, chain.leaf_pem + chain.intermediate_pem, chain.leaf_key)
    # the client trusts the root only: the intermediate must have been sent as the chain
    assert _handshake(context, chain.root_pem).startswith("TLSv1.")


def test_without_the_intermediate_the_client_refuses(chain: Chain) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert memory.load_chain(context, chain.leaf_pem, chain.leaf_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, chain.root_pem)


def test_server_context_needs_no_file(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_files(*args: object, **kwargs: object) -> object:
        raise AssertionError("a file was used")

    monkeypatch.setattr(os, "memfd_create", no_files)
    monkeypatch.setattr(os, "open", no_files)
    context = server_context(chain.leaf_pem + chain.intermediate_pem, chain.leaf_key)
    assert _handshake(context, chain.root_pem).startswith("TLSv1.")


@pytest.mark.parametrize(
    ("cert", "key", "reason"),
    [
        ("leaf", "other", "key values mismatch"),
        ("leaf", "encrypted", "reading the private key"),
        ("leaf", "garbage", "reading the private key"),
        ("garbage", "leaf", "reading the certificate"),
        ("empty", "leaf", "reading the certificate"),
    ],
)
def test_unusable_pem_is_a_clear_error(chain: Chain, cert: str, key: str, reason: str) -> None:
    pems = {
        "leaf": chain.leaf_pem,
        "garbage": b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
        "empty": b"",
    }
    keys = {"leaf": chain.leaf_key, "other": chain.other_key, "encrypted": chain.encrypted_key,
            "garbage": b"not a key"}  # fmt: skip
    with pytest.raises(memory.PemError, match=reason):
        memory.load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), pems[cert], keys[key])
    with pytest.raises(TlsConfigError, match="certificate or key is unusable"):
        server_context(pems[cert], keys[key])
