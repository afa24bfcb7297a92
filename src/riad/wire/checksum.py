"""The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

The checksum is the one's complement of the one's complement sum of the data
taken as big-endian 16-bit words. Summing word by word in Python is slow, so
riad uses an identity instead: since 2**16 == 1 (mod 0xFFFF), the one's
complement sum of a byte string equals the byte string read as one big-endian
integer, reduced modulo 0xFFFF (with 0 read as 0xFFFF unless every byte is
zero). ``int.from_bytes`` and the reduction both run in C over the whole
buffer.

Several parts (a pseudo-header, a header, a payload) can be summed together
without joining them: reading ``A || B`` as an integer is
``A * 256**len(B) + B``, and ``256**k`` is 1 or 256 modulo 0xFFFF by the parity
of ``k``, so an odd-length part in the middle is handled exactly.
"""

from __future__ import annotations

import struct

from riad.wire.common import BytesLike as Buffer

_MOD = 0xFFFF
_PSEUDO = struct.Struct("!4s4sxBH")
_PSEUDO6 = struct.Struct("!16s16sI3xB")


def ones_sum(*parts: Buffer) -> int:
    """The 16-bit one's complement sum of the concatenated ``parts``.

    The result is in ``0..0xFFFF`` and is 0 only when every byte is zero. A
    total odd length is padded with one zero byte at the end (RFC 1071).
    """
    acc = 0
    nonzero = False
    odd = False
    for part in parts:
        value = int.from_bytes(part, "big")
        length = len(memoryview(part))
        if length & 1:
            acc = (acc << 8) % _MOD
            odd = not odd
        if value:
            nonzero = True
            acc += value % _MOD
    if odd:
        acc <<= 8
    acc %= _MOD
    if acc == 0 and nonzero:
        return _MOD
    return acc


def checksum(*parts: Buffer) -> int:
    """The Internet checksum of the concatenated ``parts``.

    Computing it over data that already holds a correct checksum gives 0.
    """
    return ~ones_sum(*parts) & 0xFFFF


def add(a: int, b: int) -> int:
    """One's complement addition of two 16-bit sums (end-around carry)."""
    total = a + b
    return (total & 0xFFFF) + (total >> 16)


def pseudo_header(src: bytes, dst: bytes, protocol: int, length: int) -> bytes:
    """The pseudo-header for UDP and TCP checksums, of the addresses' version.

    ``src`` and ``dst`` are the packed addresses: 4 bytes give the IPv4
    pseudo-header (RFC 768, RFC 9293 3.1), 16 the IPv6 one (RFC 8200 8.1,
    ``ipv6_pseudo_header``). ``length`` is the transport header plus payload
    length in bytes.
    """
    if len(src) == 4:
        return _PSEUDO.pack(src, dst, protocol, length)
    return _PSEUDO6.pack(src, dst, length, protocol)


def pseudo_header_sum(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    """The one's complement sum of the pseudo-header, not complemented (IPv4 or IPv6,
    by the addresses' length, as ``pseudo_header``).

    This is what goes in a checksum field when the device finishes the
    checksum (``VIRTIO_NET_HDR_F_NEEDS_CSUM`` offload).
    """
    if len(src) == 4:
        return ones_sum(_PSEUDO.pack(src, dst, protocol, length))
    return ones_sum(_PSEUDO6.pack(src, dst, length, protocol))


def address_sum(src: bytes, dst: bytes) -> int:
    """What the packed addresses ``src`` and ``dst`` (both 4 or both 16 bytes) add to a
    pseudo-header's sum, reduced modulo 0xFFFF: kept per connection, it makes
    ``pseudo_sum`` a few integer operations per segment.
    """
    return (int.from_bytes(src, "big") + int.from_bytes(dst, "big")) % _MOD


def pseudo_sum(addresses: int, protocol: int, length: int) -> int:
    """``pseudo_header_sum(src, dst, protocol, length)`` from ``address_sum(src, dst)``.

    Both pseudo-headers' other fields are even-aligned words (IPv4: zero and
    protocol, length; IPv6: the 32-bit length, zeros and next header), so the
    sum is the addresses' part plus ``protocol`` plus ``length``. ``protocol``
    must be non-zero (6, 17, 58): the pseudo-header is then never all zeros and
    a sum of 0 reads as 0xFFFF, as in ``ones_sum``.
    """
    return (addresses + protocol + length) % _MOD or _MOD


def checksum_after(pseudo: int, *parts: Buffer) -> int:
    """``checksum(pseudo_header, *parts)`` from the pseudo-header's ``pseudo_sum``.

    The pseudo-header is never all zeros, so neither is the whole: a sum of 0
    reads as 0xFFFF. Its length is even, so ``parts`` start at an even offset.
    """
    return ~((pseudo + ones_sum(*parts)) % _MOD or _MOD) & 0xFFFF


def ipv6_pseudo_header(src: bytes, dst: bytes, next_header: int, length: int) -> bytes:
    """The IPv6 pseudo-header (RFC 8200 8.1) for UDP, TCP and ICMPv6 checksums.

    ``src`` and ``dst`` are the 16-byte addresses (``dst`` the final one: with
    a routing header, its last address), ``next_header`` the upper-layer
    protocol (not an extension header's), ``length`` the upper-layer header
    plus payload length in bytes.
    """
    return _PSEUDO6.pack(src, dst, length, next_header)


def ipv6_pseudo_header_sum(src: bytes, dst: bytes, next_header: int, length: int) -> int:
    """The one's complement sum of the IPv6 pseudo-header, not complemented.

    The IPv6 counterpart of ``pseudo_header_sum``, for checksum offload.
    """
    return ones_sum(_PSEUDO6.pack(src, dst, length, next_header))


def update(old_checksum: int, old: Buffer, new: Buffer) -> int:
    """The checksum after 16-bit-aligned bytes ``old`` were replaced by ``new``.

    RFC 1624 equation 3: ``HC' = ~(~HC + ~m + m')``. ``old`` and ``new`` must
    have the same even length and start at an even offset in the summed data.
    """
    if len(memoryview(old)) != len(memoryview(new)) or len(memoryview(old)) & 1:
        raise ValueError("update() needs old and new of the same even length")
    total = add(~old_checksum & 0xFFFF, ~ones_sum(old) & 0xFFFF)
    total = add(total, ones_sum(new))
    return ~total & 0xFFFF


def update_word(old_checksum: int, old_word: int, new_word: int) -> int:
    """The checksum after one aligned 16-bit word changed (RFC 1624 eqn 3)."""
    total = add(~old_checksum & 0xFFFF, ~old_word & 0xFFFF)
    total = add(total, new_word & 0xFFFF)
    return ~total & 0xFFFF
