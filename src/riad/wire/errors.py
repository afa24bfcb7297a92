"""Errors raised by riad's wire parsers.

Parsing validates in two steps and each step has its own family:

- ``IntegrityError``: the bytes cannot be a well-formed header at all —
  ``TruncatedError`` (fewer bytes than a field needs), ``BadLengthError`` (a
  length field that contradicts the buffer), ``ChecksumError``.
- ``SanityError``: the header is intact but breaks a protocol rule
  (an RFC "MUST"), such as a reserved value or an impossible flag combination.

Every error carries the ``layer`` (e.g. ``"tcp"``), a ``field`` naming what was
wrong and the byte ``offset`` where it was found, so a drop counter can be
keyed by reason and a log line says exactly where the packet went bad.
"""

from __future__ import annotations


class ParseError(ValueError):
    """A buffer that does not parse as the expected header."""

    layer: str
    field: str
    offset: int
    reason: str

    def __init__(self, layer: str, field: str, offset: int, reason: str) -> None:
        super().__init__(f"{layer}: {field} at byte {offset}: {reason}")
        self.layer = layer
        self.field = field
        self.offset = offset
        self.reason = reason

    @property
    def counter(self) -> str:
        """A short stable key for drop counters: ``layer.kind.field``."""
        return f"{self.layer}.{self.kind}.{self.field}"

    kind = "parse"


class IntegrityError(ParseError):
    """The bytes are damaged: too short, inconsistent lengths or a bad checksum."""

    kind = "integrity"


class TruncatedError(IntegrityError):
    """The buffer ends before the header (or a field it declares) does."""

    kind = "truncated"


class BadLengthError(IntegrityError):
    """A length field disagrees with the buffer or with the header's own rules."""

    kind = "length"


class ChecksumError(IntegrityError):
    """The checksum does not verify."""

    kind = "checksum"


class SanityError(ParseError):
    """The header is intact but violates a protocol rule."""

    kind = "sanity"
