"""Nothing a damaged artifact holds makes the embedded store fail other than with KVError."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riad.backends.kv import EmbeddedKV, pack_bytes
from riad.devices import KVError

from .test_conformance import CONTENT, write_tree


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("site")
    write_tree(folder, CONTENT)
    return pack_bytes(folder, modified_ns=1)


def load_or_refuse(blob: bytes) -> None:
    try:
        store = EmbeddedKV(blob)
    except KVError:
        return
    for key in asyncio.run(store.list()):
        asyncio.run(store.get(key))
        asyncio.run(store.stat(key))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(blob: bytes) -> None:
    load_or_refuse(blob)
    load_or_refuse(b"RIADKV\x00\x01" + blob)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_artifacts(artifact: bytes, data: st.DataObject) -> None:
    blob = bytearray(artifact)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    load_or_refuse(bytes(blob[:cut]) if data.draw(st.booleans()) else bytes(blob))


def test_index_with_hostile_entries(tmp_path: Path) -> None:
    import hashlib
    import json
    import struct

    data = b"abc"
    for entries in (
        [["../x", 0, 3, None, '"e"', "t"]],
        [["a", 0, 4, None, '"e"', "t"]],
        [["a", -1, 1, None, '"e"', "t"]],
        [["a", 0, 1, "x", '"e"', "t"]],
        [["a", 0]],
        "nope",
        [None],
    ):
        index = json.dumps(
            {
                "data_len": 3,
                "data_blake2b": hashlib.blake2b(data, digest_size=32).hexdigest(),
                "entries": entries,
            }
        ).encode()
        with pytest.raises(KVError):
            EmbeddedKV(struct.pack(">8sI", b"RIADKV\x00\x01", len(index)) + index + data)
