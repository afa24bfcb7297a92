"""Development certificates: the structure of the CA and the leaf, and strict
verification of the chain by ``cryptography`` (the web PKI profile) and by
``openssl verify -x509_strict``."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from riad.backends.kv import MemoryKV
from riad.services.tls import DevCertificate, TlsServer, dev_certificate
from riad.services.tls.cert import MAX_DAYS

NOW_S = 1_700_000_000
NOW = datetime.datetime.fromtimestamp(NOW_S, datetime.UTC)


def counter_entropy(seed: int) -> Callable[[int], bytes]:
    """Deterministic bytes: SHA-512 of a counter started at ``seed``."""
    state = [seed]

    def entropy(n: int) -> bytes:
        state[0] += 1
        return hashlib.sha512(b"%d" % state[0]).digest()[:n]

    return entropy


@pytest.fixture(scope="module")
def made() -> DevCertificate:
    return dev_certificate(
        ["example.test", "10.0.0.2"], days=90, entropy=counter_entropy(1), now_s=NOW_S
    )


def certificates(made: DevCertificate) -> tuple[x509.Certificate, x509.Certificate]:
    return x509.load_pem_x509_certificate(made.ca_pem), x509.load_pem_x509_certificate(
        made.leaf_pem
    )


def verify(made: DevCertificate, name: x509.DNSName | x509.IPAddress) -> list[x509.Certificate]:
    """The chain ``cryptography`` builds for ``name`` from what the server sends."""
    ca, leaf = certificates(made)
    builder = PolicyBuilder().store(Store([ca])).time(NOW)
    return builder.build_server_verifier(name).verify(leaf, [ca])


def test_the_leaf_is_an_end_entity_for_tls_servers(made: DevCertificate) -> None:
    ca, leaf = certificates(made)
    assert leaf.version is x509.Version.v3
    assert leaf.serial_number > 0
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert leaf.issuer == ca.subject != leaf.subject
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example.test"
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_encipherment)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.2"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert made.names == ("example.test", "10.0.0.2", "localhost", "127.0.0.1", "::1")


def test_the_ca_signs_certificates_only_and_one_level_deep(made: DevCertificate) -> None:
    ca, leaf = certificates(made)
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    leaf.verify_directly_issued_by(ca)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is True and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature


def test_validity_starts_an_hour_back_and_lasts_the_days_asked(made: DevCertificate) -> None:
    for cert in certificates(made):
        assert cert.not_valid_before_utc == NOW - datetime.timedelta(hours=1)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=90)


def test_the_key_is_the_leafs_and_the_ca_key_is_not_kept(made: DevCertificate) -> None:
    _, leaf = certificates(made)
    key = load_pem_private_key(made.key_pem, password=None)
    assert key.public_key() == leaf.public_key()
    assert b"PRIVATE KEY" not in made.ca_pem + made.leaf_pem
    assert made.chain_pem == made.leaf_pem + made.ca_pem


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("example.test"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.2")),
    ],
)
def test_cryptography_verifies_the_chain_strictly(
    made: DevCertificate, name: x509.DNSName | x509.IPAddress
) -> None:
    ca, leaf = certificates(made)
    assert verify(made, name) == [leaf, ca]


def test_cryptography_refuses_other_names_other_times_and_the_ca_as_a_leaf(
    made: DevCertificate,
) -> None:
    ca, leaf = certificates(made)
    with pytest.raises(VerificationError):
        verify(made, x509.DNSName("other.test"))
    with pytest.raises(VerificationError):
        verify(made, x509.IPAddress(ipaddress.ip_address("10.0.0.3")))
    late = PolicyBuilder().store(Store([ca])).time(NOW + datetime.timedelta(days=91))
    with pytest.raises(VerificationError):
        late.build_server_verifier(x509.DNSName("localhost")).verify(leaf, [ca])
    # The CA is no server certificate, even as its own trust anchor.
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca])).time(NOW).build_server_verifier(
            x509.DNSName("localhost")
        ).verify(ca, [])


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not installed: run scripts/system-deps as root")
    return path


def test_openssl_verifies_the_chain_strictly(made: DevCertificate, tmp_path: Path) -> None:
    ca, chain, key = made.save(tmp_path)
    for check in (["-verify_hostname", "example.test"], ["-verify_ip", "::1"]):
        done = subprocess.run(
            [_openssl(), "verify", "-x509_strict", "-purpose", "sslserver",
             "-attime", str(NOW_S), "-CAfile", str(ca), *check, str(chain)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    refused = subprocess.run(
        [_openssl(), "verify", "-x509_strict", "-attime", str(NOW_S), "-CAfile", str(ca),
         "-verify_hostname", "other.test", str(chain)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    checked = subprocess.run(
        [_openssl(), "pkey", "-in", str(key), "-noout", "-check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_seeded_entropy_makes_the_same_certificates() -> None:
    a = dev_certificate(["a.test"], entropy=counter_entropy(1), now_s=NOW_S)
    b = dev_certificate(["a.test"], entropy=counter_entropy(1), now_s=NOW_S)
    c = dev_certificate(["a.test"], entropy=counter_entropy(2), now_s=NOW_S)
    assert a == b
    assert a.key_pem != c.key_pem and a.ca_pem != c.ca_pem


@pytest.mark.parametrize(
    ("names", "days", "message"),
    [
        ([], 30, "at least one"),
        (["bad name"], 30, "neither a host name"),
        (["x/y"], 30, "neither a host name"),
        (["-a.test"], 30, "neither a host name"),
        (["a..test"], 30, "neither a host name"),
        (["a.*.test"], 30, "neither a host name"),
        (["*.test"], 30, "neither a host name"),
        (["a" * 64 + ".test"], 30, "neither a host name"),
        (["a.test"], 0, "between 1 and"),
        (["a.test"], MAX_DAYS + 1, "between 1 and"),
    ],
)
def test_bad_requests_say_what_to_fix(names: list[str], days: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dev_certificate(names, loopback=False, days=days)


def test_a_wildcard_name_is_taken(made: DevCertificate) -> None:
    wild = dev_certificate(["*.example.test"], loopback=False, now_s=NOW_S)
    ca = x509.load_pem_x509_certificate(wild.ca_pem)
    leaf = x509.load_pem_x509_certificate(wild.leaf_pem)
    builder = PolicyBuilder().store(Store([ca])).time(NOW)
    assert builder.build_server_verifier(x509.DNSName("www.example.test")).verify(leaf, [ca])


def test_save_writes_the_files_a_service_and_a_client_need(
    made: DevCertificate, tmp_path: Path
) -> None:
    (tmp_path / "server.key").write_bytes(b"old")
    (tmp_path / "server.key").chmod(0o644)
    ca, chain, key = made.save(tmp_path / "certs")
    assert (ca.read_bytes(), chain.read_bytes(), key.read_bytes()) == (
        made.ca_pem,
        made.chain_pem,
        made.key_pem,
    )
    assert key.stat().st_mode & 0o777 == 0o600
    made.save(tmp_path)  # over an existing key file that others could read
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    store = MemoryKV({p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()})
    asyncio.run(TlsServer.from_kv(store))  # ca.pem beside the pair is not taken for SNI


def test_riad_cert_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from riad.cli import main

    folder = tmp_path / "certs"
    assert main(["cert", str(folder), "--name", "example.test", "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert "example.test, localhost, 127.0.0.1, ::1, valid 30 days" in out
    assert f"curl --cacert {folder / 'ca.pem'}" in out
    assert (folder / "server.key").stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    leaf, sent_ca = x509.load_pem_x509_certificates((folder / "server.pem").read_bytes())
    assert sent_ca == ca
    verified = (
        PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("example.test"))
    )
    assert verified.verify(leaf, [sent_ca])[0] == leaf
    assert main(["cert", str(folder)]) == 2  # refuses to overwrite
    assert "already holds ca.pem, server.pem, server.key" in capsys.readouterr().err
    assert main(["cert", str(folder), "--force", "--name", "bad name"]) == 2
    assert main(["cert", str(folder), "--force", "--days", str(MAX_DAYS + 1)]) == 2
    assert (folder / "ca.pem").read_bytes() == ca.public_bytes(Encoding.PEM)
    assert main(["cert", str(folder), "--force"]) == 0
    assert (folder / "ca.pem").read_bytes() != ca.public_bytes(Encoding.PEM)
    asyncio.run(TlsServer.from_kv(MemoryKV({p.name: p.read_bytes() for p in folder.iterdir()})))
