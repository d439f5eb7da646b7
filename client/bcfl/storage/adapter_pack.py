"""Adapters and vote files as content-addressed objects, checked at the byte level.

An adapter travels as a UnixFS folder holding exactly PEFT's own two files,
`adapter_config.json` and `adapter_model.safetensors`, so anyone can fetch its CID into a folder
and call `PeftModel.from_pretrained` on it. The folder has no mode or mtime and its entries are
sorted, so the same two files always give the same CID.

Content digest (committed on-chain beside the CID), exactly:

    sha256( b"bcfl-adapter-v1\\n"
            || for each file, in order of the UTF-8 bytes of its name:
                 u32be(len(name)) || name || u64be(len(content)) || sha256(content) )

with `name` the UTF-8 file name. It depends only on names and contents (not on the IPFS layout),
so it can be recomputed from the two files with any sha256 tool. A vote file is one JSON
document; its digest is plain sha256 of its bytes.

The safetensors checks run on the raw bytes before any tensor is built: header length within
the file and within a limit, a UTF-8 JSON object with no duplicate keys, known dtypes, tensors
whose byte ranges match their shapes and tile the data section exactly. Tensors are then loaded
with `safetensors` only: nothing fetched is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcfl.storage.base import DEFAULT_TIMEOUT, Storage, check_digest
from bcfl.storage.errors import ObjectTooLarge, StorageError

if TYPE_CHECKING:
    import torch

ADAPTER_MODEL = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_MODEL)
DEFAULT_MAX_ADAPTER_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024 * 1024  # ~100k tensors' worth; a LoRA adapter needs tens of KB
MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024
DIGEST_DOMAIN = b"bcfl-adapter-v1\n"

# Bytes per element of every dtype the safetensors format defines.
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class AdapterFormatError(StorageError):
    """An adapter or vote file whose bytes are not what the format requires."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets relative to the data section, as in the header
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    header_size: int
    data_size: int
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]


# ---------------------------------------------------------------- JSON


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _strict_json(data: bytes, what: str) -> Any:
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise AdapterFormatError(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except (ValueError, RecursionError) as exc:
        raise AdapterFormatError(f"{what} is not valid JSON: {str(exc).splitlines()[0]}") from exc


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, ASCII, finite numbers only."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AdapterFormatError(f"value cannot be written as canonical JSON: {exc}") from exc
    return text.encode("ascii")


# ---------------------------------------------------------------- safetensors


def parse_safetensors_header(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES, what: str = ADAPTER_MODEL
) -> SafetensorsHeader:
    """Validate a safetensors file's framing and header without building any tensor."""
    if len(data) > max_bytes:
        raise ObjectTooLarge(what, len(data), max_bytes)
    if len(data) < 8:
        raise AdapterFormatError(f"{what} is {len(data)} bytes, too short for a safetensors header length")
    (header_size,) = struct.unpack_from("<Q", data, 0)
    if header_size > len(data) - 8:
        raise AdapterFormatError(
            f"{what} declares a {header_size}-byte header but only {len(data) - 8} bytes follow the length"
        )
    if header_size > MAX_HEADER_BYTES:
        raise AdapterFormatError(
            f"{what} header of {header_size} bytes exceeds the {MAX_HEADER_BYTES}-byte limit"
        )
    raw = data[8 : 8 + header_size]
    if not raw.startswith(b"{"):
        raise AdapterFormatError(f"{what} header does not start with a JSON object")
    header = _strict_json(raw, f"{what} header")
    if not isinstance(header, dict):
        raise AdapterFormatError(f"{what} header is not a JSON object")
    data_size = len(data) - 8 - header_size
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise AdapterFormatError(f"{what} __metadata__ is not a map of strings to strings")
    tensors = [_tensor_info(name, entry, data_size, what) for name, entry in header.items()]
    tensors.sort(key=lambda t: (t.start, t.end))
    position = 0
    for tensor in tensors:
        if tensor.start != position:
            problem = "overlaps the previous one" if tensor.start < position else "leaves a gap before it"
            raise AdapterFormatError(f"{what} tensor {tensor.name!r} at offset {tensor.start} {problem}")
        position = tensor.end
    if position != data_size:
        raise AdapterFormatError(f"{what} tensors cover {position} bytes of a {data_size}-byte data section")
    return SafetensorsHeader(header_size, data_size, tuple(tensors), dict(metadata))


def _tensor_info(name: str, entry: Any, data_size: int, what: str) -> TensorInfo:
    where = f"{what} tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise AdapterFormatError(f"{where} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise AdapterFormatError(f"{where} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise AdapterFormatError(f"{where} shape {shape!r} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise AdapterFormatError(f"{where} data_offsets {offsets!r} is not two non-negative integers")
    start, end = offsets
    if not start <= end <= data_size:
        raise AdapterFormatError(
            f"{where} data_offsets [{start}, {end}] fall outside the {data_size}-byte data"
        )
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - start != expected:
        raise AdapterFormatError(f"{where} spans {end - start} bytes but {dtype}{shape} needs {expected}")
    return TensorInfo(name, dtype, tuple(shape), start, end)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_tensors(data: bytes, *, max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, validated first, loaded by `safetensors` (never pickle)."""
    parse_safetensors_header(data, max_bytes=max_bytes)
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise AdapterFormatError(f"{ADAPTER_MODEL} was refused by safetensors: {exc}") from exc


# ---------------------------------------------------------------- adapter folders


def parse_adapter_config(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_BYTES:
        raise ObjectTooLarge(ADAPTER_CONFIG, len(data), MAX_CONFIG_BYTES)
    config = _strict_json(data, ADAPTER_CONFIG)
    if not isinstance(config, dict):
        raise AdapterFormatError(f"{ADAPTER_CONFIG} is not a JSON object")
    return config


def canonical_config(config: Mapping[str, Any]) -> bytes:
    """PEFT-readable config bytes that depend only on the values (sorted keys, fixed indent)."""
    try:
        text = json.dumps(dict(config), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AdapterFormatError(f"adapter config cannot be written as JSON: {exc}") from exc
    return (text + "\n").encode("ascii")


def pack_adapter(
    model: bytes, config: bytes | Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES
) -> dict[str, bytes]:
    """The folder's two files, validated; a config given as a mapping is written canonically."""
    config_bytes = canonical_config(config) if isinstance(config, Mapping) else bytes(config)
    files = {ADAPTER_CONFIG: config_bytes, ADAPTER_MODEL: bytes(model)}
    check_adapter_files(files, max_bytes=max_bytes)
    return files


def check_adapter_files(
    files: Mapping[str, bytes], *, max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES
) -> SafetensorsHeader:
    """Exactly PEFT's two files, a JSON-object config and a well-formed safetensors model."""
    names = sorted(files)
    if names != sorted(ADAPTER_FILES):
        raise AdapterFormatError(f"an adapter folder holds exactly {list(ADAPTER_FILES)}, not {names}")
    total = sum(len(content) for content in files.values())
    if total > max_bytes:
        raise ObjectTooLarge("adapter folder", total, max_bytes)
    parse_adapter_config(files[ADAPTER_CONFIG])
    return parse_safetensors_header(files[ADAPTER_MODEL], max_bytes=max_bytes)


def content_digest(files: Mapping[str, bytes]) -> bytes:
    """The 32-byte digest committed on-chain beside an adapter's CID (see the module docstring)."""
    out = hashlib.sha256(DIGEST_DOMAIN)
    for name in sorted(files, key=lambda n: n.encode("utf-8")):
        encoded = name.encode("utf-8")
        content = files[name]
        out.update(struct.pack(">I", len(encoded)) + encoded)
        out.update(struct.pack(">Q", len(content)) + hashlib.sha256(content).digest())
    return out.digest()


def store_adapter(storage: Storage, files: Mapping[str, bytes]) -> tuple[str, bytes]:
    """Validate, store and pin an adapter folder; (CID, content digest)."""
    check_adapter_files(files)
    cid = storage.put_directory(files)
    storage.pin(cid)
    return cid, content_digest(files)


def fetch_adapter(
    storage: Storage,
    cid: str,
    *,
    digest: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, bytes]:
    """An adapter folder verified against its CID, its committed digest and the byte-level checks."""
    files = storage.get_directory(cid, max_bytes=max_bytes, timeout=timeout)
    if digest is not None:
        check_digest(content_digest(files), digest, f"adapter {cid}")
    try:
        check_adapter_files(files, max_bytes=max_bytes)
    except AdapterFormatError as exc:
        raise AdapterFormatError(f"adapter {cid}: {exc}") from exc
    return files


def write_adapter_dir(files: Mapping[str, bytes], path: Path) -> Path:
    """Write the files as a folder for `PeftModel.from_pretrained` (whole or not at all)."""
    check_adapter_files(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        for name in ADAPTER_FILES:
            (staging / name).write_bytes(files[name])
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_adapter_dir(path: Path, *, max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES) -> dict[str, bytes]:
    """PEFT's two files from a folder (other files there, such as a README, are left out)."""
    files: dict[str, bytes] = {}
    for name in ADAPTER_FILES:
        file = path / name
        if not file.is_file():
            raise AdapterFormatError(f"{file} is missing")
        size = file.stat().st_size
        if size > max_bytes:
            raise ObjectTooLarge(str(file), size, max_bytes)
        files[name] = file.read_bytes()
    check_adapter_files(files, max_bytes=max_bytes)
    return files


# ---------------------------------------------------------------- JSON documents (votes)


def json_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def parse_json_document(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES, what: str = "JSON document"
) -> Any:
    if len(data) > max_bytes:
        raise ObjectTooLarge(what, len(data), max_bytes)
    return _strict_json(data, what)


def store_json(storage: Storage, obj: Any) -> tuple[str, bytes]:
    """Store a document as canonical JSON and pin it; (CID, sha256 of its bytes)."""
    data = canonical_json(obj)
    cid = storage.put(data)
    storage.pin(cid)
    return cid, json_digest(data)


def fetch_json(
    storage: Storage,
    cid: str,
    *,
    digest: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """A JSON document verified against its CID and (when given) its committed sha256 digest."""
    data = storage.get(cid, max_bytes=max_bytes, timeout=timeout)
    if digest is not None:
        check_digest(json_digest(data), digest, f"JSON document {cid}")
    return parse_json_document(data, max_bytes=max_bytes, what=f"JSON document {cid}")
