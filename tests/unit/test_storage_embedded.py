"""The embedded blockstore: same CIDs, verified reads, typed errors, atomic writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcfl.storage import open_storage
from bcfl.storage.cid import CHUNK_SIZE, cid_of_bytes, cid_of_directory, parse_cid
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.errors import (
    CidNotFound,
    CidParseError,
    IntegrityError,
    ObjectTooLarge,
    StorageError,
    UnsupportedObject,
)
from bcfl.storage.kubo import KuboStorage


def content(n: int) -> bytes:
    return hashlib.shake_128(b"embedded").digest(n)


@pytest.fixture()
def store(tmp_path: Path) -> EmbeddedStorage:
    return EmbeddedStorage(tmp_path / "peer")


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5])
def test_put_get_round_trip_with_daemon_cids(store: EmbeddedStorage, size: int) -> None:
    data = content(size)
    cid = store.put(data)
    assert cid == cid_of_bytes(data)
    assert store.get(cid) == data
    assert store.has(cid)


def test_put_file_streams_same_cid(store: EmbeddedStorage, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(content(2 * CHUNK_SIZE + 3))
    cid = store.put_file(path)
    assert cid == cid_of_bytes(path.read_bytes())
    assert store.get(cid) == path.read_bytes()


def test_directory_round_trip(store: EmbeddedStorage) -> None:
    files = {"adapter_config.json": b"{}", "adapter_model.safetensors": content(CHUNK_SIZE + 9)}
    cid = store.put_directory(files)
    assert cid == cid_of_directory(files)
    assert store.get_directory(cid) == files
    with pytest.raises(UnsupportedObject, match="is a directory"):
        store.get(cid)
    with pytest.raises(UnsupportedObject, match="not a directory"):
        store.get_directory(store.put(b"file"))


def test_missing_object_names_the_cid(store: EmbeddedStorage) -> None:
    cid = cid_of_bytes(b"never stored")
    with pytest.raises(CidNotFound, match=cid):
        store.get(cid)
    assert not store.has(cid)
    with pytest.raises(CidNotFound):
        store.pin(cid)


def test_missing_leaf_names_the_root(store: EmbeddedStorage) -> None:
    data = content(2 * CHUNK_SIZE)
    cid = store.put(data)
    leaf = store.block_path(b"\x01\x55\x12\x20" + hashlib.sha256(data[:CHUNK_SIZE]).digest())
    leaf.unlink()
    assert not store.has(cid)
    with pytest.raises(CidNotFound, match=f"{cid}.*missing"):
        store.get(cid)


def test_corrupt_block_is_refused_and_removed(store: EmbeddedStorage) -> None:
    cid = store.put(b"precious bytes")
    path = store.block_path(parse_cid(cid).binary)
    path.write_bytes(b"precious bytez")
    with pytest.raises(IntegrityError, match=cid):
        store.get(cid)
    assert not path.exists()
    assert store.put(b"precious bytes") == cid  # a later put restores it
    assert store.get(cid) == b"precious bytes"


def test_size_limit_is_checked_before_leaves_are_read(store: EmbeddedStorage) -> None:
    data = content(4 * CHUNK_SIZE)
    cid = store.put(data)
    for i in range(4):  # with every leaf gone, only the root's declaration can trigger the error
        store.block_path(
            b"\x01\x55\x12\x20" + hashlib.sha256(data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]).digest()
        ).unlink()
    with pytest.raises(ObjectTooLarge, match=f"{cid}.*{len(data)} bytes over the limit of 1000"):
        store.get(cid, max_bytes=1000)
    small = store.put(b"x" * 2000)
    with pytest.raises(ObjectTooLarge):
        store.get(small, max_bytes=1999)
    assert store.get(small, max_bytes=2000) == b"x" * 2000


def test_directory_size_limit(store: EmbeddedStorage) -> None:
    cid = store.put_directory({"a": b"x" * 600, "b": b"y" * 600})
    with pytest.raises(ObjectTooLarge, match=cid):
        store.get_directory(cid, max_bytes=1000)


def test_bad_cid_is_a_parse_error(store: EmbeddedStorage) -> None:
    with pytest.raises(CidParseError, match="not-a-cid"):
        store.get("not-a-cid")


def test_failed_write_leaves_nothing_behind(store: EmbeddedStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # die while committing the second leaf, before the root
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    data = content(CHUNK_SIZE + 1)  # two leaves + a root
    with pytest.raises(OSError, match="disk full"):
        store.put(data)
    monkeypatch.setattr(os, "replace", real_replace)
    cid = cid_of_bytes(data)
    assert not store.has(cid)
    assert list((store._tmp).iterdir()) == []  # the temp file was removed
    assert store.put(data) == cid and store.get(cid) == data


def test_leftover_temp_files_are_cleaned(store: EmbeddedStorage) -> None:
    store.put(b"prepare")
    (store._tmp / "blk-killed").write_bytes(b"half a bl")
    assert store.clean_partial_writes() == 1
    assert list(store._tmp.iterdir()) == []


def test_root_written_last(store: EmbeddedStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[bytes] = []
    real = store._write_block
    monkeypatch.setattr(store, "_write_block", lambda cid, block: (order.append(cid), real(cid, block)))
    cid = store.put_directory({"f": content(CHUNK_SIZE * 2)})
    assert order[-1] == parse_cid(cid).binary
    assert order[-2][1] == 0x70 and all(c[1] == 0x55 for c in order[:2])


def test_pin_records_roots(store: EmbeddedStorage) -> None:
    cid = store.put(b"keep me")
    store.pin(cid)
    store.pin(cid)
    assert store.pins() == [cid]
    store.unpin(cid)
    assert store.pins() == []


def test_open_storage_specs(tmp_path: Path) -> None:
    assert isinstance(open_storage("embedded", tmp_path), EmbeddedStorage)
    assert isinstance(open_storage("http://127.0.0.1:5001", tmp_path), KuboStorage)
    with pytest.raises(StorageError, match="ftp://x"):
        open_storage("ftp://x", tmp_path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), flip=st.integers(0, 10_000))
def test_any_tampered_block_is_refused(store: EmbeddedStorage, data: bytes, flip: int) -> None:
    cid = store.put(data)
    path = store.block_path(parse_cid(cid).binary)
    block = bytearray(path.read_bytes())
    if not block:
        block = bytearray(b"\x00")
    else:
        block[flip % len(block)] ^= 0x01
    path.write_bytes(bytes(block))
    with pytest.raises(IntegrityError):
        store.get(cid)
