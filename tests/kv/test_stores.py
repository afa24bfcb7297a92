"""Store-specific behaviour: the embedded artifact format, directory confinement."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.backends.kv import DirectoryKV, EmbeddedKV, MemoryKV, pack
from riad.backends.kv.embedded import MAGIC, pack_bytes
from riad.devices import KVError, KVKeyError, ViewKV

from .test_conformance import CONTENT, write_tree


def test_embedded_format_header(tmp_path: Path) -> None:
    write_tree(tmp_path / "s", CONTENT)
    blob = pack_bytes(tmp_path / "s", modified_ns=5)
    assert blob[:8] == MAGIC
    (index_len,) = struct.unpack(">I", blob[8:12])
    data = blob[12 + index_len :]
    assert len(data) == sum(len(v) for v in CONTENT.values())
    assert pack_bytes(tmp_path / "s", modified_ns=5) == blob  # reproducible


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:5],
        lambda b: b"XXXXXX" + b[6:],
        lambda b: b[:7] + b"\x02" + b[8:],
        lambda b: b[:-1],
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),
        lambda b: b[:8] + struct.pack(">I", 10**9) + b[12:],
        lambda b: b[:12] + b"]" + b[13:],
    ],
)
def test_embedded_refuses_damaged_artifacts(tmp_path: Path, damage: object) -> None:
    write_tree(tmp_path / "s", CONTENT)
    blob = pack_bytes(tmp_path / "s")
    with pytest.raises(KVError, match="pack it again"):
        EmbeddedKV(damage(blob))  # type: ignore[operator]


def test_embedded_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KVError, match="cannot read"):
        EmbeddedKV.load(tmp_path / "nope.kv")


def test_pack_refuses_non_folder(tmp_path: Path) -> None:
    with pytest.raises(KVError, match="not a folder"):
        pack(tmp_path / "nope", tmp_path / "out.kv")


keys = st.lists(
    st.text(alphabet="abcxyz09-_.", min_size=1, max_size=8).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=3,
).map("/".join)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(keys, st.binary(max_size=300), max_size=8))
def test_embedded_round_trip(content: dict[str, bytes]) -> None:
    import tempfile

    # A key can't be both a file and a folder on disk: keep the first of each clash.
    chosen: dict[str, bytes] = {}
    for key, value in sorted(content.items()):
        parts = key.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & chosen.keys() or any(k.startswith(key + "/") for k in chosen):
            continue
        chosen[key] = value
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp) / "s", chosen)
        os.makedirs(Path(tmp) / "s", exist_ok=True)
        store = EmbeddedKV(pack_bytes(Path(tmp) / "s"))
        assert asyncio.run(store.list()) == sorted(chosen)
        for key, value in chosen.items():
            assert asyncio.run(store.get(key)) == value


def test_directory_does_not_follow_links_out(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"secret")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "ok.txt").write_bytes(b"ok")
    os.symlink(tmp_path / "secret", tmp_path / "site" / "link")
    store = DirectoryKV(tmp_path / "site")
    with pytest.raises(KVKeyError):
        asyncio.run(store.get("link"))
    assert asyncio.run(store.list()) == ["ok.txt"]


def test_directory_refuses_missing_root(tmp_path: Path) -> None:
    with pytest.raises(KVError, match="not a folder"):
        DirectoryKV(tmp_path / "missing")


@pytest.mark.parametrize("kind", ["embedded", "memory"])
def test_views_share_the_stores_bytes(tmp_path: Path, kind: str) -> None:
    """``view`` gives what ``get`` gives, read-only and without a copy."""
    value = bytes(range(256)) * 64
    if kind == "embedded":
        write_tree(tmp_path / "s", {"a/big.bin": value, "b.txt": b"bee"})
        store: ViewKV = EmbeddedKV(pack_bytes(tmp_path / "s", modified_ns=5))
    else:
        store = MemoryKV({"a/big.bin": value, "b.txt": b"bee"})
    assert isinstance(store, ViewKV)

    async def check() -> None:
        for offset, length in [(0, None), (100, 1000), (16000, 9999), (99999, 5), (3, 0)]:
            view = await store.view("a/big.bin", offset, length)
            assert isinstance(view, memoryview) and view.readonly
            assert bytes(view) == await store.get("a/big.bin", offset, length)
        whole = await store.view("a/big.bin")
        again = await store.view("a/big.bin")
        # both views point into the same memory: nothing was copied
        assert whole.obj is again.obj
        with pytest.raises(KVKeyError):
            await store.view("missing")
        with pytest.raises(ValueError):
            await store.view("b.txt", -1)

    asyncio.run(check())


def test_directory_store_offers_no_views(tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"b.txt": b"bee"})
    assert not isinstance(DirectoryKV(tmp_path / "s"), ViewKV)
