"""Self-signed certificates for development, with the standard library only.

``self_signed`` makes an ECDSA P-256 key and an X.509 v3 certificate for the
given host names and IP addresses (subjectAltName), signed by that key with
ECDSA-SHA256, and returns both as PEM. No OpenSSL command and no third-party
package is needed, so ``riad cert`` works wherever riad does.

The curve arithmetic here is plain Python over affine coordinates and not
constant-time: it is meant for generating a development key on your own
machine, never for signing anything an attacker can time.

Entropy and the current time are parameters (``entropy``, ``now_s``), so tests
are deterministic.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable, Sequence

__all__ = ["SelfSigned", "self_signed"]

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


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _time(when: datetime.datetime) -> bytes:
    if when.year < 2050:
        return _tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


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


class SelfSigned:
    """A certificate and its private key, both PEM."""

    __slots__ = ("cert_pem", "key_pem")

    def __init__(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.cert_pem = cert_pem
        self.key_pem = key_pem


def self_signed(
    names: Sequence[str] = ("localhost",),
    *,
    days: int = 365,
    entropy: Callable[[int], bytes] = secrets.token_bytes,
    now_s: float | None = None,
) -> SelfSigned:
    """A self-signed certificate for ``names`` (DNS names or IP literals; the first
    is also the subject's common name), valid from a day ago for ``days`` days."""
    if not names:
        raise ValueError("name at least one host name or IP address for the certificate")
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")

    def scalar() -> int:
        while True:
            value = int.from_bytes(entropy(32), "big")
            if 1 <= value < _N:
                return value

    private = scalar()
    public = _mul(private, _G)
    assert public is not None
    public_bits = b"\x04" + public[0].to_bytes(32, "big") + public[1].to_bytes(32, "big")

    alt_names = []
    for name in names:
        try:
            alt_names.append(_tlv(0x87, ipaddress.ip_address(name).packed))
        except ValueError:
            if not name or not all(c.isalnum() or c in "-.*" for c in name):
                raise ValueError(f"{name!r} is neither a host name nor an IP address") from None
            alt_names.append(_tlv(0x82, name.encode("ascii")))
    subject = _seq(_tlv(0x31, _seq(_oid("2.5.4.3"), _tlv(0x0C, names[0].encode()))))
    now = datetime.datetime.fromtimestamp(
        time.time() if now_s is None else now_s, datetime.UTC
    ).replace(microsecond=0)
    key_id = hashlib.sha1(public_bits).digest()
    extensions = _seq(
        _seq(_oid("2.5.29.19"), _tlv(0x01, b"\xff"), _octets(_seq(_tlv(0x01, b"\xff")))),
        _seq(_oid("2.5.29.14"), _octets(_octets(key_id))),
        _seq(_oid("2.5.29.35"), _octets(_seq(_tlv(0x80, key_id)))),
        _seq(_oid("2.5.29.17"), _octets(_seq(*alt_names))),
        _seq(_oid("2.5.29.37"), _octets(_seq(_oid("1.3.6.1.5.5.7.3.1")))),
    )
    algorithm = _seq(_oid(_ECDSA_SHA256))
    tbs = _seq(
        _tlv(0xA0, _int(2)),
        _int(int.from_bytes(entropy(16), "big") >> 1 | 1),
        algorithm,
        subject,
        _seq(_time(now - datetime.timedelta(days=1)), _time(now + datetime.timedelta(days=days))),
        subject,
        _seq(_seq(_oid(_EC_PUBLIC_KEY), _oid(_PRIME256V1)), _bits(public_bits)),
        _tlv(0xA3, extensions),
    )
    digest = int.from_bytes(hashlib.sha256(tbs).digest(), "big")
    while True:
        k = scalar()
        point = _mul(k, _G)
        assert point is not None
        r = point[0] % _N
        s = pow(k, -1, _N) * (digest + r * private) % _N
        if r and s:
            break
    cert = _seq(tbs, algorithm, _bits(_seq(_int(r), _int(s))))
    ec_private = _seq(_int(1), _octets(private.to_bytes(32, "big")), _tlv(0xA1, _bits(public_bits)))
    pkcs8 = _seq(_int(0), _seq(_oid(_EC_PUBLIC_KEY), _oid(_PRIME256V1)), _octets(ec_private))
    return SelfSigned(_pem("CERTIFICATE", cert), _pem("PRIVATE KEY", pkcs8))
