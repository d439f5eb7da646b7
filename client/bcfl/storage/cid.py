"""CIDs computed by the project, byte-identical to `ipfs add --cid-version=1 --raw-leaves`.

The file layout is Kubo's default importer: fixed 256 KiB chunks stored as raw blocks, grouped
174 to a dag-pb/UnixFS node (Kubo's DefaultLinksPerBlock), level by level, into a balanced tree
whose root is the CID; a file of one chunk (or none) is its own raw leaf. A folder is a dag-pb
UnixFS directory node whose links are its entries sorted by name, unwrapped, with no mode or
mtime. All CIDs are v1, sha2-256, printed in base32.

The builders stream: memory stays at one chunk plus one pending link list per tree level, so a
file of any size is hashed in constant memory. An optional sink receives every block as it is
made; the embedded store writes them there, `cid_of_*` just drops them.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID as _MfCid

from bcfl.storage import unixfs
from bcfl.storage.errors import CidParseError, IntegrityError, UnsupportedObject

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
HASH_SHA2_256 = 0x12
HASH_IDENTITY = 0x00
# Kubo turns a directory into a HAMT shard above this estimated size (sum of name + CID bytes).
HAMT_THRESHOLD = 256 * 1024

_RAW_PREFIX = bytes((0x01, CODEC_RAW, HASH_SHA2_256, 32))
_PB_PREFIX = bytes((0x01, CODEC_DAG_PB, HASH_SHA2_256, 32))

BlockSink = Callable[[bytes, bytes | memoryview], None]
"""Receives (binary CID, block bytes) for each block built; it must consume the bytes at once."""


# ---------------------------------------------------------------- CID values


@dataclass(frozen=True)
class Cid:
    """A parsed CID this project can verify: raw or dag-pb, sha2-256 (or identity)."""

    binary: bytes
    version: int
    codec: int
    hash_code: int
    digest: bytes

    def __str__(self) -> str:
        return cid_string(self.binary)

    @property
    def is_raw(self) -> bool:
        return self.codec == CODEC_RAW

    def matches(self, block: bytes | memoryview) -> bool:
        """Whether `block` hashes to this CID."""
        if self.hash_code == HASH_IDENTITY:
            return bytes(block) == self.digest
        return hashlib.sha256(block).digest() == self.digest

    def verify(self, block: bytes | memoryview) -> None:
        if not self.matches(block):
            raise IntegrityError(f"block of {len(block)} bytes does not hash to CID {self}")


def cid_string(binary: bytes) -> str:
    """The canonical text form: base58btc for v0 (`Qm...`), multibase base32 (`b...`) for v1."""
    if len(binary) == 34 and binary[:2] == b"\x12\x20":
        return str(_MfCid.decode(binary))
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def parse_cid(text: str | bytes) -> Cid:
    """Parse a CID in text (any multibase, or v0) or binary form; refuse what cannot be verified."""
    fast = _parse_common(text)
    if fast is not None:
        return fast
    shown = text if isinstance(text, str) else text.hex()
    if isinstance(text, str):
        text = text.strip()
        if not text:
            raise CidParseError(shown, "empty")
    try:
        parsed = _MfCid.decode(text)
    except Exception as exc:  # multiformats raises several unrelated types for bad input
        raise CidParseError(shown, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    codec, hash_code = parsed.codec.code, parsed.hashfun.code
    if codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise CidParseError(shown, f"codec {parsed.codec.name} is neither raw nor dag-pb")
    if hash_code == HASH_SHA2_256:
        if len(parsed.raw_digest) != 32:
            raise CidParseError(shown, "sha2-256 digest is not 32 bytes")
    elif hash_code != HASH_IDENTITY:
        raise CidParseError(shown, f"hash function {parsed.hashfun.name} is not supported (sha2-256 only)")
    return Cid(bytes(parsed), parsed.version, codec, hash_code, bytes(parsed.raw_digest))


def _parse_common(text: str | bytes) -> Cid | None:
    """The CIDs this project makes (v1, raw or dag-pb, sha2-256), parsed without multiformats'
    per-call type validation, which costs more than hashing a block; None for anything else."""
    if isinstance(text, str):
        if len(text) != 59 or text[0] != "b":
            return None
        try:
            binary = base64.b32decode(text[1:].upper() + "=", casefold=False)
        except ValueError:
            return None
    else:
        binary = bytes(text)
    if len(binary) != 36 or binary[:4] not in (_RAW_PREFIX, _PB_PREFIX):
        return None
    return Cid(binary, 1, binary[1], HASH_SHA2_256, binary[4:])


def raw_leaf_cid(block: bytes | memoryview) -> bytes:
    return _RAW_PREFIX + hashlib.sha256(block).digest()


def dag_pb_cid(block: bytes | memoryview) -> bytes:
    return _PB_PREFIX + hashlib.sha256(block).digest()


# ---------------------------------------------------------------- builders


@dataclass(frozen=True)
class DagRoot:
    """The root of a built DAG: its binary CID, cumulative block size and content size."""

    cid: bytes
    tsize: int  # what a parent link records: every block of the DAG, headers included
    size: int  # file bytes (for a folder: the sum over its files)

    @property
    def text(self) -> str:
        return cid_string(self.cid)


class FileDagBuilder:
    """Streams bytes into Kubo's balanced UnixFS file DAG; `finish()` gives the root."""

    def __init__(
        self, sink: BlockSink | None = None, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
    ) -> None:
        # chunk_size and max_links other than Kubo's exist for tests that need deep trees.
        if chunk_size < 1 or max_links < 2:
            raise ValueError(f"chunk_size {chunk_size} must be >= 1 and max_links {max_links} >= 2")
        self._chunk = chunk_size
        self._max_links = max_links
        self._sink = sink
        self._pending = bytearray()
        self._levels: list[list[DagRoot]] = [[]]
        self._leaves = 0
        self._done = False

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise RuntimeError("update() after finish()")
        view = memoryview(data).cast("B")
        if self._pending:
            take = self._chunk - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < self._chunk:
                return
            self._leaf(bytes(self._pending))
            self._pending.clear()
        offset, end = 0, len(view)
        chunk = self._chunk
        while end - offset >= chunk:  # whole chunks are hashed in place, uncopied
            self._leaf(view[offset : offset + chunk])
            offset += chunk
        if offset < end:
            self._pending += view[offset:]

    def finish(self) -> DagRoot:
        if self._done:
            raise RuntimeError("finish() called twice")
        self._done = True
        if self._pending or self._leaves == 0:  # an empty file is one empty raw leaf, as in Kubo
            self._leaf(bytes(self._pending))
            self._pending.clear()
        level = 0
        while True:
            entries = self._levels[level]
            if level == len(self._levels) - 1 and len(entries) == 1:
                return entries[0]
            self._levels[level] = []
            self._push(level + 1, self._node(entries))
            level += 1

    def _leaf(self, chunk: bytes | memoryview) -> None:
        cid = _RAW_PREFIX + hashlib.sha256(chunk).digest()
        if self._sink is not None:
            self._sink(cid, chunk)
        self._leaves += 1
        self._push(0, DagRoot(cid, len(chunk), len(chunk)))

    def _push(self, level: int, entry: DagRoot) -> None:
        if level == len(self._levels):
            self._levels.append([])
        entries = self._levels[level]
        if len(entries) == self._max_links:  # full: only now is it certain a parent is needed
            self._levels[level] = []
            self._push(level + 1, self._node(entries))
            entries = self._levels[level]
        entries.append(entry)

    def _node(self, children: list[DagRoot]) -> DagRoot:
        links = b"".join(unixfs.encode_link(c.cid, c.tsize) for c in children)
        sizes = [c.size for c in children]
        total = sum(sizes)
        block = unixfs.encode_node(links, unixfs.encode_file_data(total, sizes))
        cid = _PB_PREFIX + hashlib.sha256(block).digest()
        if self._sink is not None:
            self._sink(cid, block)
        return DagRoot(cid, len(block) + sum(c.tsize for c in children), total)


def build_bytes(data: bytes | bytearray | memoryview, sink: BlockSink | None = None) -> DagRoot:
    builder = FileDagBuilder(sink)
    builder.update(data)
    return builder.finish()


def read_chunks(path: Path, size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Successive full chunks of a file (the last may be short), through one reused buffer."""
    buf = bytearray(size)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while True:
            filled = 0
            while filled < size:
                n = fh.readinto(view[filled:])
                if not n:
                    break
                filled += n
            if filled:
                yield view[:filled]
            if filled < size:
                return


def build_file(path: Path, sink: BlockSink | None = None) -> DagRoot:
    builder = FileDagBuilder(sink)
    for chunk in read_chunks(path):
        builder.update(chunk)
    return builder.finish()


def check_entry_name(name: str) -> None:
    """A single path component, as UnixFS directories hold."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsupportedObject(f"directory entry name {name!r} is not a single path component")


def build_directory_node(entries: Iterable[tuple[str, DagRoot]], sink: BlockSink | None = None) -> DagRoot:
    """A UnixFS directory over already built children, links sorted by name bytes."""
    items = sorted(entries, key=lambda item: item[0].encode("utf-8"))
    names = [name for name, _ in items]
    for name in names:
        check_entry_name(name)
    if len(set(names)) != len(names):
        raise UnsupportedObject(f"duplicate directory entry names in {names}")
    estimate = sum(len(name.encode("utf-8")) + len(root.cid) for name, root in items)
    if estimate > HAMT_THRESHOLD:
        raise UnsupportedObject(
            f"directory of {len(items)} entries would be a HAMT shard in Kubo (estimate {estimate} bytes)"
        )
    links = b"".join(unixfs.encode_link(root.cid, root.tsize, name) for name, root in items)
    block = unixfs.encode_node(links, unixfs.DIRECTORY_DATA)
    cid = _PB_PREFIX + hashlib.sha256(block).digest()
    if sink is not None:
        sink(cid, block)
    return DagRoot(cid, len(block) + sum(root.tsize for _, root in items), sum(r.size for _, r in items))


def build_directory(files: Mapping[str, bytes], sink: BlockSink | None = None) -> DagRoot:
    """A flat folder of named files (what `ipfs add -r` gives for such a folder, unwrapped)."""
    return build_directory_node(((name, build_bytes(data, sink)) for name, data in files.items()), sink)


def build_path(path: Path, sink: BlockSink | None = None) -> DagRoot:
    """A file, or a folder walked recursively the way `ipfs add -r` does (dot-files skipped)."""
    if path.is_symlink():
        raise UnsupportedObject(f"{path} is a symbolic link (UnixFS symlinks are not supported)")
    if path.is_file():
        return build_file(path, sink)
    if not path.is_dir():
        raise UnsupportedObject(f"{path} is neither a regular file nor a directory")
    children = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        children.append((entry.name, build_path(Path(entry.path), sink)))
    return build_directory_node(children, sink)


def cid_of_bytes(data: bytes | bytearray | memoryview) -> str:
    """The CID `ipfs add --cid-version=1 --raw-leaves` gives these bytes."""
    return build_bytes(data).text


def cid_of_file(path: Path) -> str:
    """The CID of a file, read in constant memory."""
    return build_file(path).text


def cid_of_directory(files: Mapping[str, bytes]) -> str:
    """The CID of a flat folder holding `files` (name -> content)."""
    return build_directory(files).text


def cid_of_path(path: Path) -> str:
    """The CID `ipfs add -r --cid-version=1 --raw-leaves PATH` prints last, for a file or folder."""
    return build_path(path).text
