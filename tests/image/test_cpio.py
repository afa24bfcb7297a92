"""The cpio newc writer and reader."""

import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riad.image.cpio import (
    CpioArchive,
    CpioFormatError,
    chardev_entry,
    file_entry,
    read_newc,
    symlink_entry,
    write_newc,
)


def test_single_file_bytes_are_exact() -> None:
    data = write_newc([file_entry("a", b"hi")])
    header = (
        b"070701"
        + b"00000001"  # ino
        + b"000081A4"  # mode: regular file 0644
        + b"00000000" * 2  # uid, gid
        + b"00000001"  # nlink
        + b"00000000"  # mtime
        + b"00000002"  # filesize
        + b"00000000" * 4  # dev and rdev numbers
        + b"00000002"  # namesize ("a\0")
        + b"00000000"  # check
    )
    assert data.startswith(header + b"a\0" + b"hi\0\0")
    trailer_at = len(header) + 2 + 4  # name "a\0", data "hi" + 2 padding
    assert data[trailer_at : trailer_at + 6] == b"070701"
    assert b"TRAILER!!!\0" in data[trailer_at:]
    assert len(data) % 4 == 0


def test_archive_adds_parents_sorts_and_round_trips() -> None:
    archive = CpioArchive()
    archive.add(file_entry("usr/bin/python3", b"\x7fELF", executable=True))
    archive.add(chardev_entry("dev/console", 5, 1))
    archive.add(symlink_entry("lib64", "lib"))
    entries = list(read_newc(archive.to_bytes()))
    assert [e.path for e in entries] == [
        "dev",
        "dev/console",
        "lib64",
        "usr",
        "usr/bin",
        "usr/bin/python3",
    ]
    by_path = {e.path: e for e in entries}
    assert stat.S_ISDIR(by_path["usr"].mode)
    assert by_path["usr/bin/python3"].mode == stat.S_IFREG | 0o755
    assert (by_path["dev/console"].rdev_major, by_path["dev/console"].rdev_minor) == (5, 1)
    assert by_path["lib64"].data == b"lib"


def test_same_entries_in_any_order_give_the_same_bytes() -> None:
    first, second = CpioArchive(), CpioArchive()
    for path in ("b/x", "a/y", "c"):
        first.add(file_entry(path, path.encode()))
    for path in ("c", "a/y", "b/x"):
        second.add(file_entry(path, path.encode()))
    assert first.to_bytes() == second.to_bytes()


@pytest.mark.parametrize("path", ["", "/", "a/../b", ".."])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        CpioArchive().add(file_entry(path, b""))


def test_duplicates_and_file_parents_are_refused() -> None:
    archive = CpioArchive()
    archive.add(file_entry("a", b""))
    with pytest.raises(ValueError):
        archive.add(file_entry("a", b""))
    with pytest.raises(ValueError):
        archive.add(file_entry("a/b", b""))


def test_truncated_archive_is_a_format_error() -> None:
    data = write_newc([file_entry("a", b"x" * 100)])
    with pytest.raises(CpioFormatError):
        list(read_newc(data[:150]))
    with pytest.raises(CpioFormatError):
        list(read_newc(b"not a cpio archive at all, but long enough to hold a header" * 3))


@given(
    st.dictionaries(
        st.text(alphabet="abcdef", min_size=1, max_size=6),
        st.binary(max_size=64),
        max_size=8,
    )
)
def test_round_trip(files: dict[str, bytes]) -> None:
    archive = CpioArchive()
    for name, data in files.items():
        archive.add(file_entry(f"d/{name}", data))
    parsed = {e.path: e.data for e in read_newc(archive.to_bytes()) if e.is_file}
    assert parsed == {f"d/{name}": data for name, data in files.items()}
