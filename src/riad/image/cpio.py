"""A reproducible writer (and reader) for cpio ``newc`` archives.

The Linux kernel unpacks an initramfs in the ``newc`` format (``070701``
magic, ASCII hex header fields, names and data padded to four bytes). The
writer makes archives that depend on their contents only: entries are
sorted by path (so a directory precedes what it holds), inode numbers are
assigned in that order, and every entry has mtime 0, uid 0 and gid 0.
Parent directories are added on demand with mode 0755.

Reference: the kernel's ``Documentation/driver-api/early-userspace/buffer-format.rst``.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_HEADER_LEN = 110


@dataclass(frozen=True, slots=True)
class CpioEntry:
    """One archive member. ``mode`` carries both the file type and permissions."""

    path: str
    mode: int
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def file_entry(path: str, data: bytes, executable: bool = False) -> CpioEntry:
    """A regular file, mode 0755 when ``executable`` else 0644."""
    return CpioEntry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)


def dir_entry(path: str) -> CpioEntry:
    return CpioEntry(path, stat.S_IFDIR | 0o755)


def chardev_entry(path: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
    return CpioEntry(path, stat.S_IFCHR | perm, b"", major, minor)


def symlink_entry(path: str, target: str) -> CpioEntry:
    return CpioEntry(path, stat.S_IFLNK | 0o777, target.encode())


def _normalise(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bad archive path {path!r}")
    return "/".join(parts)


class CpioArchive:
    """Entries keyed by path; :meth:`to_bytes` gives the ``newc`` archive."""

    def __init__(self) -> None:
        self._entries: dict[str, CpioEntry] = {}

    def add(self, entry: CpioEntry) -> None:
        """Add ``entry`` (and its missing parent directories); paths are unique."""
        path = _normalise(entry.path)
        if path in self._entries:
            raise ValueError(f"duplicate archive path {path!r}")
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            existing = self._entries.get(parent)
            if existing is None:
                self._entries[parent] = dir_entry(parent)
            elif not existing.is_dir:
                raise ValueError(f"{parent!r} is not a directory")
        self._entries[path] = CpioEntry(
            path, entry.mode, entry.data, entry.rdev_major, entry.rdev_minor
        )

    def __contains__(self, path: str) -> bool:
        return _normalise(path) in self._entries

    def entries(self) -> list[CpioEntry]:
        """All entries in archive order (sorted by path)."""
        return [self._entries[p] for p in sorted(self._entries)]

    def to_bytes(self) -> bytes:
        return write_newc(self.entries())


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, entry: CpioEntry, nlink: int, namesize: int) -> bytes:
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        nlink,
        0,  # mtime
        len(entry.data),
        0,  # devmajor
        0,  # devminor
        entry.rdev_major,
        entry.rdev_minor,
        namesize,
        0,  # check
    )
    return MAGIC + b"".join(b"%08X" % value for value in fields)


def write_newc(entries: Iterable[CpioEntry]) -> bytes:
    """Serialise ``entries`` in the given order, then the trailer."""
    out = bytearray()
    for ino, entry in enumerate([*entries, CpioEntry(TRAILER, 0)], start=1):
        name = entry.path.encode() + b"\0"
        is_trailer = entry.path == TRAILER
        nlink = 2 if entry.is_dir else 1
        out += _header(0 if is_trailer else ino, entry, 0 if is_trailer else nlink, len(name))
        out += name + _pad4(_HEADER_LEN + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


class CpioFormatError(ValueError):
    """The bytes are not a well-formed ``newc`` archive."""


def read_newc(data: bytes) -> Iterator[CpioEntry]:
    """Parse a ``newc`` archive, yielding its entries up to the trailer."""
    offset = 0
    while True:
        header = data[offset : offset + _HEADER_LEN]
        if len(header) < _HEADER_LEN or header[:6] != MAGIC:
            raise CpioFormatError(f"bad cpio header at offset {offset}")
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as exc:
            raise CpioFormatError(f"bad cpio header field at offset {offset}") from exc
        mode, filesize, rmaj, rmin, namesize = (
            fields[1],
            fields[6],
            fields[9],
            fields[10],
            fields[11],
        )
        name_start = offset + _HEADER_LEN
        name_end = name_start + namesize
        if namesize < 1 or name_end > len(data):
            raise CpioFormatError(f"truncated cpio name at offset {offset}")
        name = data[name_start : name_end - 1].decode()
        data_start = name_end + (-(_HEADER_LEN + namesize) % 4)
        data_end = data_start + filesize
        if data_end > len(data):
            raise CpioFormatError(f"truncated cpio data for {name!r}")
        if name == TRAILER:
            return
        yield CpioEntry(name, mode, data[data_start:data_end], rmaj, rmin)
        offset = data_end + (-filesize % 4)
