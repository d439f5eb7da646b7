"""Adapter packing and byte-level checks: safetensors framing, digest, vote files."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from bcfl.storage.adapter_pack import (
    ADAPTER_CONFIG,
    ADAPTER_MODEL,
    AdapterFormatError,
    canonical_json,
    check_adapter_files,
    content_digest,
    fetch_adapter,
    fetch_json,
    load_tensors,
    pack_adapter,
    parse_safetensors_header,
    read_adapter_dir,
    store_adapter,
    store_json,
    write_adapter_dir,
)
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.errors import IntegrityError, ObjectTooLarge

CONFIG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}


def model_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    tensors = {
        "base_model.model.layers.0.q_proj.lora_A.weight": rng.standard_normal((8, 16)).astype(np.float32),
        "base_model.model.layers.0.q_proj.lora_B.weight": np.zeros((16, 8), dtype=np.float32),
    }
    return save(tensors, metadata={"format": "pt"})


def with_header(header: object, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def test_valid_file_parses_and_loads() -> None:
    data = model_bytes()
    header = parse_safetensors_header(data)
    assert {t.name for t in header.tensors} == {
        "base_model.model.layers.0.q_proj.lora_A.weight",
        "base_model.model.layers.0.q_proj.lora_B.weight",
    }
    assert header.metadata == {"format": "pt"}
    tensors = load_tensors(data)
    assert tuple(tensors["base_model.model.layers.0.q_proj.lora_A.weight"].shape) == (8, 16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10**12) + b"{}", "declares a 1000000000000-byte header"),
        (with_header({}, length=500), "declares a 500-byte header"),
        (struct.pack("<Q", 3) + b"[1]", "does not start with a JSON object"),
        (struct.pack("<Q", 5) + b"{bad}", "not valid JSON"),
        (struct.pack("<Q", 3) + b"{\xff}", "not UTF-8"),
        (struct.pack("<Q", 14) + b'{"a":1, "a":1}', "duplicate key"),
        (
            with_header({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"0000"),
            "unknown dtype",
        ),
        (with_header({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"0000"), "shape"),
        (with_header({"t": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"0000"), "shape"),
        (with_header({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"0000"), "fall outside"),
        (with_header({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"0000"), "needs 8"),
        (with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"00000000"), "cover 4"),
        (
            with_header(
                {
                    "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "u": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]},
                },
                b"000000",
            ),
            "overlaps",
        ),
        (with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"00000000"), "gap"),
        (with_header({"t": {"dtype": "F32", "shape": [1]}}, b"0000"), "exactly dtype"),
        (with_header({"__metadata__": {"k": 1}}), "__metadata__"),
        (
            with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"0000")[:-1],
            "fall outside",
        ),
    ],
)
def test_bad_safetensors_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(AdapterFormatError, match=message):
        parse_safetensors_header(data)
    with pytest.raises(AdapterFormatError):
        load_tensors(data)


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(ObjectTooLarge, match="over the limit of 100 bytes"):
        parse_safetensors_header(b"\xff" * 101, max_bytes=100)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.integers(0, 10_000))
def test_mutated_files_are_refused_or_load(position: int, value: int, cut: int) -> None:
    """Whatever a byte flip or truncation does, the validator answers with its own error, or
    accepts a file that safetensors then loads."""
    data = bytearray(model_bytes())
    data[position % len(data)] = value
    mutated = bytes(data[: len(data) - cut % 64])
    try:
        parse_safetensors_header(mutated)
    except (AdapterFormatError, ObjectTooLarge):
        return
    assert load_tensors(mutated)


@settings(max_examples=100, deadline=None)
@given(
    header=st.dictionaries(
        st.text(max_size=5),
        st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "F16", "I8", "BOGUS"]),
                "shape": st.lists(st.integers(-1, 4), max_size=3),
                "data_offsets": st.lists(st.integers(-1, 40), min_size=0, max_size=3),
            }
        ),
        max_size=3,
    ),
    data=st.binary(max_size=40),
)
def test_random_headers_never_crash(header: dict[str, object], data: bytes) -> None:
    blob = with_header(header, data)
    try:
        parsed = parse_safetensors_header(blob)
    except AdapterFormatError:
        return
    assert sum(t.end - t.start for t in parsed.tensors) == len(data)
    assert len(load_tensors(blob)) == len(header)


def test_pack_is_deterministic_and_digest_is_as_documented() -> None:
    a = pack_adapter(model_bytes(), CONFIG)
    b = pack_adapter(model_bytes(), dict(reversed(list(CONFIG.items()))))
    assert a == b
    expected = hashlib.sha256(b"bcfl-adapter-v1\n")
    for name in (ADAPTER_CONFIG, ADAPTER_MODEL):  # sorted by name
        expected.update(struct.pack(">I", len(name)) + name.encode())
        expected.update(struct.pack(">Q", len(a[name])) + hashlib.sha256(a[name]).digest())
    assert content_digest(a) == expected.digest()
    assert len(content_digest(a)) == 32
    assert content_digest(pack_adapter(model_bytes(seed=1), CONFIG)) != content_digest(a)


def test_adapter_folder_must_hold_exactly_peft_files() -> None:
    files = pack_adapter(model_bytes(), CONFIG)
    with pytest.raises(AdapterFormatError, match="exactly"):
        check_adapter_files({**files, "extra.bin": b""})
    with pytest.raises(AdapterFormatError, match=r"adapter_config\.json is not a JSON object"):
        check_adapter_files({**files, ADAPTER_CONFIG: b"[]"})
    with pytest.raises(ObjectTooLarge):
        check_adapter_files(files, max_bytes=100)


def test_store_and_fetch_adapter(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "peer")
    files = pack_adapter(model_bytes(), CONFIG)
    cid, digest = store_adapter(store, files)
    assert store.pins() == [cid]
    assert fetch_adapter(store, cid, digest=digest) == files
    with pytest.raises(IntegrityError, match=cid):
        fetch_adapter(store, cid, digest=b"\x00" * 32)
    not_an_adapter = store.put_directory({ADAPTER_CONFIG: b"{}", ADAPTER_MODEL: b"\x00"})
    with pytest.raises(AdapterFormatError, match=not_an_adapter):
        fetch_adapter(store, not_an_adapter)


def test_adapter_dir_round_trip(tmp_path: Path) -> None:
    files = pack_adapter(model_bytes(), CONFIG)
    folder = write_adapter_dir(files, tmp_path / "adapter")
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_CONFIG, ADAPTER_MODEL]
    assert read_adapter_dir(folder) == files
    write_adapter_dir(pack_adapter(model_bytes(seed=2), CONFIG), folder)  # replaces whole
    assert read_adapter_dir(folder)[ADAPTER_MODEL] == model_bytes(seed=2)
    (folder / ADAPTER_MODEL).unlink()
    with pytest.raises(AdapterFormatError, match="missing"):
        read_adapter_dir(folder)


def test_vote_files(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "peer")
    votes = {"round": 3, "scores": {"0xabc": 0.5}}
    cid, digest = store_json(store, votes)
    assert digest == hashlib.sha256(canonical_json(votes)).digest()
    assert fetch_json(store, cid, digest=digest) == votes
    with pytest.raises(IntegrityError):
        fetch_json(store, cid, digest=hashlib.sha256(b"other").digest())
    with pytest.raises(ObjectTooLarge):
        fetch_json(store, cid, max_bytes=5)
    bad = store.put(b'{"a": NaN}')
    with pytest.raises(AdapterFormatError, match=bad):
        fetch_json(store, bad)
    with pytest.raises(AdapterFormatError):
        canonical_json({"x": float("inf")})
