"""Reading a UnixFS DAG from untrusted blocks: every block is checked against its CID.

The reader works over any `fetch(cid) -> bytes` (a folder of block files, a daemon's
`block/get`), so whichever backend served the bytes, what comes out has been verified block by
block from the root CID down. It reads any valid UnixFS file layout (raw or dag-pb leaves,
balanced or trickle, any chunk size), checks that each node's declared sizes agree with its
children, and enforces a byte budget from the root's declared size before any leaf is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bcfl.storage import unixfs
from bcfl.storage.cid import Cid, check_entry_name, parse_cid
from bcfl.storage.errors import CidParseError, IntegrityError, ObjectTooLarge, StorageError, UnsupportedObject

BlockFetch = Callable[[Cid], bytes]
MAX_DEPTH = 64  # a balanced tree of 174-link nodes reaches exabytes long before this


@dataclass
class Budget:
    """Bytes still allowed for one get; `what` names the object in the error."""

    limit: int
    what: str
    used: int = 0

    def precheck(self, declared: int) -> None:
        if self.used + declared > self.limit:
            raise ObjectTooLarge(self.what, self.used + declared, self.limit)

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise ObjectTooLarge(self.what, None, self.limit)


class VerifyingFetch:
    """A fetch that itself checks every block against its CID, so the reader does not hash twice."""

    def __init__(self, fetch: BlockFetch) -> None:
        self._fetch = fetch

    def __call__(self, cid: Cid) -> bytes:
        return self._fetch(cid)


def fetch_verified(fetch: BlockFetch, cid: Cid) -> bytes:
    block = fetch(cid)
    if isinstance(fetch, VerifyingFetch):
        return block
    if not cid.matches(block):
        raise IntegrityError(f"block {cid} ({len(block)} bytes) served for it does not hash to that CID")
    return block


def link_cid(binary: bytes, parent: Cid) -> Cid:
    try:
        return parse_cid(binary)
    except CidParseError as exc:
        raise IntegrityError(f"node {parent} links to an unusable CID: {exc}") from exc


@dataclass(frozen=True)
class Node:
    """A verified block, decoded: raw bytes, or a dag-pb node with its UnixFS data."""

    cid: Cid
    block: bytes
    pb: unixfs.PBNode | None
    fs: unixfs.UnixFSData | None

    @property
    def is_directory(self) -> bool:
        return self.fs is not None and self.fs.type == unixfs.UnixFSType.DIRECTORY

    def file_size(self) -> int:
        """The content size this node declares (a raw block is its own content)."""
        if self.fs is None:
            return len(self.block)
        declared = len(self.fs.data) + sum(self.fs.blocksizes)
        if self.fs.filesize is not None and self.fs.filesize != declared:
            raise IntegrityError(
                f"node {self.cid} declares filesize {self.fs.filesize} but its parts sum to {declared}"
            )
        return declared


def load_node(fetch: BlockFetch, cid: Cid) -> Node:
    block = fetch_verified(fetch, cid)
    if cid.is_raw:
        return Node(cid, block, None, None)
    try:
        pb = unixfs.decode_node(block)
        if pb.data is None:
            raise unixfs.DagDecodeError("dag-pb node without UnixFS data")
        fs = unixfs.decode_unixfs(pb.data)
    except unixfs.DagDecodeError as exc:
        raise IntegrityError(f"block {cid} is not a valid UnixFS node: {exc}") from exc
    if fs.type == unixfs.UnixFSType.HAMT_SHARD:
        raise UnsupportedObject(f"{cid} is a sharded (HAMT) directory, which this project does not read")
    if fs.type in (unixfs.UnixFSType.SYMLINK, unixfs.UnixFSType.METADATA):
        raise UnsupportedObject(f"{cid} is a UnixFS {fs.type.name.lower()}, not a file or directory")
    return Node(cid, block, pb, fs)


def iter_file(node: Node, fetch: BlockFetch, budget: Budget, depth: int = 0) -> Iterator[bytes]:
    """The file's bytes in order, each block verified; sizes checked against every parent."""
    if depth > MAX_DEPTH:
        raise IntegrityError(f"file DAG under {node.cid} is deeper than {MAX_DEPTH} levels")
    if node.fs is None:
        budget.take(len(node.block))
        yield node.block
        return
    if node.is_directory:
        raise UnsupportedObject(f"{node.cid} is a directory, not a file")
    assert node.pb is not None
    node.file_size()  # consistency of the node's own declaration
    if len(node.pb.links) != len(node.fs.blocksizes):
        raise IntegrityError(
            f"node {node.cid} has {len(node.pb.links)} links but {len(node.fs.blocksizes)} block sizes"
        )
    if node.fs.data:
        budget.take(len(node.fs.data))
        yield node.fs.data
    for link, expected in zip(node.pb.links, node.fs.blocksizes, strict=True):
        child = load_node(fetch, link_cid(link.hash, node.cid))
        got = 0
        for piece in iter_file(child, fetch, budget, depth + 1):
            got += len(piece)
            if got > expected:
                raise IntegrityError(
                    f"child {child.cid} of {node.cid} holds more than its declared {expected} bytes"
                )
            yield piece
        if got != expected:
            raise IntegrityError(f"child {child.cid} of {node.cid} holds {got} bytes, declared {expected}")


def read_file(root: Cid, fetch: BlockFetch, *, max_bytes: int) -> bytes:
    """A whole file, verified; refused before its leaves are read if it declares too many bytes."""
    return read_file_from(load_node(fetch, root), fetch, max_bytes=max_bytes)


def read_file_from(node: Node, fetch: BlockFetch, *, max_bytes: int) -> bytes:
    """`read_file` from an already loaded (and so verified) root node."""
    budget = Budget(max_bytes, f"object {node.cid}")
    budget.precheck(node.file_size())
    return b"".join(iter_file(node, fetch, budget))


def read_directory(root: Cid, fetch: BlockFetch, *, max_bytes: int) -> dict[str, bytes]:
    """Every file under a UnixFS directory, by relative path ('sub/name' for nested folders)."""
    node = load_node(fetch, root)
    if not node.is_directory:
        raise UnsupportedObject(f"{root} is not a directory")
    out: dict[str, bytes] = {}
    _read_dir(node, fetch, Budget(max_bytes, f"directory {root}"), "", out, 0)
    return out


def _read_dir(
    node: Node, fetch: BlockFetch, budget: Budget, prefix: str, out: dict[str, bytes], depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"directory {node.cid} is nested deeper than {MAX_DEPTH} levels")
    assert node.pb is not None
    for link in node.pb.links:
        try:
            check_entry_name(link.name)
        except StorageError as exc:
            raise IntegrityError(f"directory {node.cid} has an unsafe entry: {exc}") from exc
        path = prefix + link.name
        if path in out:
            raise IntegrityError(f"directory {node.cid} lists {path!r} twice")
        child = load_node(fetch, link_cid(link.hash, node.cid))
        if child.is_directory:
            _read_dir(child, fetch, budget, path + "/", out, depth + 1)
        else:
            budget.precheck(child.file_size())
            out[path] = b"".join(iter_file(child, fetch, budget))


def declared_size(root: Cid, fetch: BlockFetch) -> tuple[Node, int]:
    """The root node (verified) and the file size it declares."""
    node = load_node(fetch, root)
    return node, node.file_size()
