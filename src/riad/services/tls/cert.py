"""Development certificates: a small CA and the server certificate it signs,
made with the standard library only.

``dev_certificate(names)`` makes two ECDSA P-256 keys and two X.509 v3
certificates (RFC 5280), each signed with ECDSA-SHA256:

- a CA: ``basicConstraints`` critical ``CA:TRUE, pathlen:0``, ``keyUsage``
  critical ``keyCertSign, cRLSign``. Its key signs the leaf and is then
  dropped: it is never returned nor written, so trusting this CA trusts this
  one leaf and nothing a stolen CA key could sign later;
- the leaf (end entity): ``basicConstraints`` critical ``CA:FALSE``,
  ``keyUsage`` critical ``digitalSignature``, ``extendedKeyUsage``
  ``serverAuth``, ``subjectAltName`` with every name (DNS names and IP
  addresses; ``localhost``, ``127.0.0.1`` and ``::1`` are added unless
  ``loopback=False``), key identifiers linking it to the CA.

Clients trust the CA (``ca.pem``); the server sends the leaf followed by the
CA (``server.pem``) with the leaf's key (``server.key``):
``DevCertificate.save(folder)`` writes those three files, the pair
``TlsServer.from_kv`` reads. Strict verifiers (Python's ``cryptography``,
``openssl verify -x509_strict``, Go, browsers) accept the chain.

No OpenSSL command and no third-party package is needed, so ``riad cert``
works wherever riad does, and nothing is added to a vm image. The curve
arithmetic is plain Python over affine coordinates and not constant-time: it
is meant for generating development keys on your own machine, never for
signing anything an attacker can time.

Entropy and the current time are parameters (``entropy``, ``now_s``), so tests
are deterministic.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOOPBACK_NAMES", "MAX_DAYS", "DevCertificate", "dev_certificate"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The longest validity clients accept for a server certificate (CA/Browser
# Forum Baseline Requirements 6.3.2; Safari refuses longer ones).
MAX_DAYS = 398

# NIST P-256 (SEC 2, section 2.4.2)
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

Point = tuple[int, int] | None


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1 = p1
    x2, y2 = p2
    if x1 == x2:
        if (y1 + y2) % _P == 0:
            return None
        slope = (3 * x1 * x1 + _A) * pow(2 * y1, -1, _P) % _P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, _P) % _P
    x3 = (slope * slope - x1 - x2) % _P
    return x3, (slope * (x1 - x3) - y1) % _P


def _mul(k: int, point: Point) -> Point:
    result: Point = None
    addend = point
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    return result


# -- DER (X.690) -----------------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
    return _tlv(0x02, raw)


_TRUE = _tlv(0x01, b"\xff")


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _bits(data: bytes) -> bytes:
    return _tlv(0x03, b"\x00" + data)


def _named_bits(*bits: int) -> bytes:
    """A BIT STRING with the named ``bits`` (0 = first) set, trailing zeros dropped (DER)."""
    value = 0
    for bit in bits:
        value |= 0x80 >> bit
    unused = (value & -value).bit_length() - 1
    return _tlv(0x03, bytes([unused, value]))


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _time(when: datetime.datetime) -> bytes:
    if when.year < 2050:
        return _tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


def _name(*attributes: tuple[str, str]) -> bytes:
    """An X.501 Name, one attribute (OID, UTF8String) per relative name."""
    return _seq(
        *(_tlv(0x31, _seq(_oid(oid), _tlv(0x0C, value.encode()))) for oid, value in attributes)
    )


def _extension(oid: str, value: bytes, *, critical: bool = False) -> bytes:
    return _seq(_oid(oid), *([_TRUE] if critical else []), _octets(value))


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label.encode(),
        b"\n".join(lines),
        label.encode(),
    )


_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_PRIME256V1 = "1.2.840.10045.3.1.7"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_COMMON_NAME = "2.5.4.3"
_ORGANIZATION = "2.5.4.10"
_BASIC_CONSTRAINTS = "2.5.29.19"
_KEY_USAGE = "2.5.29.15"
_EXTENDED_KEY_USAGE = "2.5.29.37"
_SUBJECT_ALT_NAME = "2.5.29.17"
_SUBJECT_KEY_ID = "2.5.29.14"
_AUTHORITY_KEY_ID = "2.5.29.35"
_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
_DIGITAL_SIGNATURE, _KEY_CERT_SIGN, _CRL_SIGN = 0, 5, 6  # KeyUsage bits, RFC 5280 4.2.1.3

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


# -- keys and signatures -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    private: int
    public_bits: bytes  # the uncompressed point, 0x04 || x || y

    @property
    def key_id(self) -> bytes:
        """The key identifier of RFC 5280 4.2.1.2 (1): SHA-1 of the public key bits."""
        return hashlib.sha1(self.public_bits).digest()

    @property
    def public_info(self) -> bytes:
        """SubjectPublicKeyInfo (RFC 5480)."""
        return _seq(_seq(_oid(_EC_PUBLIC_KEY), _oid(_PRIME256V1)), _bits(self.public_bits))

    @property
    def pkcs8(self) -> bytes:
        """The private key as PKCS#8 (RFC 5208) holding an ECPrivateKey (RFC 5915)."""
        ec_private = _seq(
            _int(1), _octets(self.private.to_bytes(32, "big")), _tlv(0xA1, _bits(self.public_bits))
        )
        return _seq(_int(0), _seq(_oid(_EC_PUBLIC_KEY), _oid(_PRIME256V1)), _octets(ec_private))


def _scalar(entropy: Callable[[int], bytes]) -> int:
    """A uniform integer in [1, n) by rejection sampling."""
    while True:
        value = int.from_bytes(entropy(32), "big")
        if 1 <= value < _N:
            return value


def _new_key(entropy: Callable[[int], bytes]) -> _Key:
    private = _scalar(entropy)
    public = _mul(private, _G)
    assert public is not None  # 1 <= private < n
    return _Key(private, b"\x04" + public[0].to_bytes(32, "big") + public[1].to_bytes(32, "big"))


def _signed(tbs: bytes, signer: _Key, entropy: Callable[[int], bytes]) -> bytes:
    """The Certificate: ``tbs`` with its ECDSA-SHA256 signature by ``signer`` (SEC 1, 4.1.3)."""
    digest = int.from_bytes(hashlib.sha256(tbs).digest(), "big")
    while True:
        k = _scalar(entropy)
        point = _mul(k, _G)
        assert point is not None
        r = point[0] % _N
        s = pow(k, -1, _N) * (digest + r * signer.private) % _N
        if r and s:
            break
    return _seq(tbs, _seq(_oid(_ECDSA_SHA256)), _bits(_seq(_int(r), _int(s))))


# -- certificates ------------------------------------------------------------------------


def _alt_name(name: str) -> bytes:
    """One GeneralName: an iPAddress for an IP literal, else a dNSName (RFC 5280 4.2.1.6)."""
    try:
        return _tlv(0x87, ipaddress.ip_address(name).packed)
    except ValueError:
        pass
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]  # a wildcard stands only for a whole leftmost label
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(f"{name!r} is neither a host name nor an IP address")
    return _tlv(0x82, name.encode("ascii"))


def _tbs(
    *,
    serial: int,
    issuer: bytes,
    subject: bytes,
    valid: tuple[datetime.datetime, datetime.datetime],
    key: _Key,
    extensions: Sequence[bytes],
) -> bytes:
    """TBSCertificate (RFC 5280 4.1), version 3, signed with ECDSA-SHA256."""
    return _seq(
        _tlv(0xA0, _int(2)),
        _int(serial),
        _seq(_oid(_ECDSA_SHA256)),
        issuer,
        _seq(_time(valid[0]), _time(valid[1])),
        subject,
        key.public_info,
        _tlv(0xA3, _seq(*extensions)),
    )


@dataclass(frozen=True, slots=True)
class DevCertificate:
    """A development CA certificate, the server certificate it signed and that one's key (PEM)."""

    names: tuple[str, ...]  # what the server certificate is for, as its subjectAltName lists
    ca_pem: bytes  # what clients trust: ``curl --cacert ca.pem``
    leaf_pem: bytes
    key_pem: bytes  # the leaf's private key (PKCS#8); the CA's key is gone

    @property
    def chain_pem(self) -> bytes:
        """What the server sends: the leaf, then the CA."""
        return self.leaf_pem + self.ca_pem

    def save(self, folder: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
        """Write ``ca.pem``, ``server.pem`` (the chain) and ``server.key`` (mode 0600)
        into ``folder``, made if missing; returns their paths in that order."""
        where = Path(folder)
        where.mkdir(parents=True, exist_ok=True)
        ca, chain, key = where / "ca.pem", where / "server.pem", where / "server.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode otherwise
            f.write(self.key_pem)
        chain.write_bytes(self.chain_pem)
        ca.write_bytes(self.ca_pem)
        return ca, chain, key


def dev_certificate(
    names: Sequence[str] = (),
    *,
    loopback: bool = True,
    days: int = 365,
    entropy: Callable[[int], bytes] = secrets.token_bytes,
    now_s: float | None = None,
) -> DevCertificate:
    """A CA and a server certificate it signed for ``names`` (DNS names or IP
    literals; the first is also the subject's common name), both valid from an
    hour ago for ``days`` days. ``loopback`` adds ``localhost``, ``127.0.0.1``
    and ``::1`` after ``names``."""
    wanted = list(dict.fromkeys([*names, *(LOOPBACK_NAMES if loopback else ())]))
    if not wanted:
        raise ValueError("name at least one host name or IP address for the certificate")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(
            f"days must be between 1 and {MAX_DAYS} (clients refuse longer), got {days}"
        )
    alt_names = [_alt_name(name) for name in wanted]
    now = datetime.datetime.fromtimestamp(
        time.time() if now_s is None else now_s, datetime.UTC
    ).replace(microsecond=0)
    start = now - datetime.timedelta(hours=1)  # some slack for a client's clock
    valid = (start, start + datetime.timedelta(days=days))

    def serial() -> int:
        return int.from_bytes(entropy(16), "big") >> 1 | 1  # positive, 127 random bits

    ca_key, leaf_key = _new_key(entropy), _new_key(entropy)
    ca_name = _name(
        (_ORGANIZATION, "riad development"),
        (_COMMON_NAME, f"riad development CA {ca_key.key_id[:4].hex()}"),
    )
    ca = _tbs(
        serial=serial(),
        issuer=ca_name,
        subject=ca_name,
        valid=valid,
        key=ca_key,
        extensions=[
            _extension(_BASIC_CONSTRAINTS, _seq(_TRUE, _int(0)), critical=True),
            _extension(_KEY_USAGE, _named_bits(_KEY_CERT_SIGN, _CRL_SIGN), critical=True),
            _extension(_SUBJECT_KEY_ID, _octets(ca_key.key_id)),
        ],
    )
    leaf = _tbs(
        serial=serial(),
        issuer=ca_name,
        subject=_name((_COMMON_NAME, wanted[0])),
        valid=valid,
        key=leaf_key,
        extensions=[
            _extension(_BASIC_CONSTRAINTS, _seq(), critical=True),  # cA defaults to FALSE
            _extension(_KEY_USAGE, _named_bits(_DIGITAL_SIGNATURE), critical=True),
            _extension(_EXTENDED_KEY_USAGE, _seq(_oid(_SERVER_AUTH))),
            _extension(_SUBJECT_ALT_NAME, _seq(*alt_names)),
            _extension(_SUBJECT_KEY_ID, _octets(leaf_key.key_id)),
            _extension(_AUTHORITY_KEY_ID, _seq(_tlv(0x80, ca_key.key_id))),
        ],
    )
    return DevCertificate(
        names=tuple(wanted),
        ca_pem=_pem("CERTIFICATE", _signed(ca, ca_key, entropy)),
        leaf_pem=_pem("CERTIFICATE", _signed(leaf, ca_key, entropy)),
        key_pem=_pem("PRIVATE KEY", leaf_key.pkcs8),
    )
