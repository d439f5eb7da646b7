"""The two protobuf formats of an IPFS file tree: dag-pb nodes and the UnixFS data inside them.

Encoding follows the canonical form Kubo writes (links before data; every link carries Hash, an
empty-or-set Name and Tsize; UnixFS fields in field-number order, blocksizes unpacked), because a
CID is a hash of these exact bytes. Decoding is strict about structure and lenient only where
other writers legitimately differ (packed blocksizes, optional fields), and every failure is a
`DagDecodeError` for the caller to turn into an integrity error naming the CID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


# UnixFS Data.DataType values (unixfs.proto).
class UnixFSType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


class DagDecodeError(ValueError):
    """Bytes that are not a well-formed dag-pb node or UnixFS message."""


@dataclass(frozen=True)
class PBLink:
    hash: bytes  # binary CID of the child
    name: str
    tsize: int  # cumulative size of the child's DAG, as its parent records it


@dataclass(frozen=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True)
class UnixFSData:
    type: UnixFSType
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- varints


def varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf and multiformats use."""
    if value < 0:
        raise ValueError(f"varint of a negative number {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position); at most 10 bytes, no trailing garbage bits beyond 64."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise DagDecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >= 1 << 64:
                raise DagDecodeError("varint over 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise DagDecodeError("varint longer than 10 bytes")


def _bytes_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def _fields(buf: bytes | memoryview) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for varint (0) and length-delimited (2) fields."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DagDecodeError("field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise DagDecodeError(f"field {number} runs past the end ({length} bytes)")
            out.append((number, wire, bytes(buf[pos : pos + length])))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise DagDecodeError(f"unsupported wire type {wire} in field {number}")
        if pos > end:
            raise DagDecodeError("truncated fixed-width field")
    return out


# ---------------------------------------------------------------- dag-pb


def encode_link(cid: bytes, tsize: int, name: str = "") -> bytes:
    body = _bytes_field(1, cid) + _bytes_field(2, name.encode("utf-8")) + _varint_field(3, tsize)
    return _bytes_field(2, body)


def encode_node(encoded_links: bytes, data: bytes) -> bytes:
    """A dag-pb node from already encoded links (see `encode_link`) and its data field."""
    return encoded_links + _bytes_field(1, data)


def decode_node(block: bytes | memoryview) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    seen_data = False
    for number, wire, value in _fields(block):
        if number == 2 and wire == 2:
            if seen_data:
                raise DagDecodeError("link after the data field (not canonical dag-pb)")
            assert isinstance(value, bytes)
            links.append(_decode_link(value))
        elif number == 1 and wire == 2:
            if seen_data:
                raise DagDecodeError("two data fields")
            assert isinstance(value, bytes)
            data, seen_data = value, True
        else:
            raise DagDecodeError(f"unexpected dag-pb field {number}")
    return PBNode(tuple(links), data)


def _decode_link(buf: bytes) -> PBLink:
    hash_: bytes | None = None
    name = ""
    tsize = 0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:
            assert isinstance(value, bytes)
            hash_ = value
        elif number == 2 and wire == 2:
            assert isinstance(value, bytes)
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DagDecodeError("link name is not UTF-8") from exc
        elif number == 3 and wire == 0:
            assert isinstance(value, int)
            tsize = value
        else:
            raise DagDecodeError(f"unexpected dag-pb link field {number}")
    if hash_ is None:
        raise DagDecodeError("link without a hash")
    return PBLink(hash_, name, tsize)


# ---------------------------------------------------------------- UnixFS


def encode_file_data(filesize: int, blocksizes: list[int]) -> bytes:
    """UnixFS data of an internal file node (its bytes live only in its children)."""
    out = bytearray(_varint_field(1, UnixFSType.FILE))
    out += _varint_field(3, filesize)
    for size in blocksizes:
        out += _varint_field(4, size)
    return bytes(out)


DIRECTORY_DATA = _varint_field(1, UnixFSType.DIRECTORY)


def decode_unixfs(buf: bytes) -> UnixFSData:
    type_: int | None = None
    data = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            assert isinstance(value, int)
            type_ = value
        elif number == 2 and wire == 2:
            assert isinstance(value, bytes)
            data = value
        elif number == 3 and wire == 0:
            assert isinstance(value, int)
            filesize = value
        elif number == 4 and wire == 0:
            assert isinstance(value, int)
            blocksizes.append(value)
        elif number == 4 and wire == 2:  # packed encoding, written by some implementations
            assert isinstance(value, bytes)
            pos = 0
            while pos < len(value):
                size, pos = read_varint(value, pos)
                blocksizes.append(size)
        # hashType, fanout, mode, mtime: not needed to read a file or directory.
    if type_ is None:
        raise DagDecodeError("UnixFS data without a type")
    try:
        kind = UnixFSType(type_)
    except ValueError as exc:
        raise DagDecodeError(f"unknown UnixFS type {type_}") from exc
    return UnixFSData(kind, data, filesize, tuple(blocksizes))
