"""The default backend: a content-addressed blockstore in a folder, with Kubo's CIDs.

Layout: `<data_dir>/blocks/<shard>/<cid>` holds one block each (raw leaves and dag-pb nodes),
`<data_dir>/blocks/.tmp/` holds blocks being written, `<data_dir>/pins/<cid>` marks pinned
roots. A block is written to a temporary file and renamed into place, so no reader ever sees a
partial block; a DAG is written leaves first and root last, so a root that exists has all of
its blocks. Nothing is trusted on the way out either: every block read is re-hashed, and a
block that no longer matches its CID (disk corruption) is removed and reported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bcfl.storage import dag
from bcfl.storage.base import DEFAULT_MAX_BYTES
from bcfl.storage.cid import (
    Cid,
    build_bytes,
    build_directory,
    build_file,
    cid_string,
    parse_cid,
)
from bcfl.storage.errors import CidNotFound, IntegrityError, StorageUnavailable


class EmbeddedStorage:
    """An on-disk blockstore; safe for several processes sharing one folder (writes are renames)."""

    def __init__(self, data_dir: Path, *, fsync: bool = False) -> None:
        self._blocks = data_dir / "blocks"
        self._tmp = self._blocks / ".tmp"
        self._pins = data_dir / "pins"
        self._fsync = fsync  # durability across power loss; atomicity holds without it
        self._prepared = False

    @property
    def location(self) -> str:
        return str(self._blocks)

    def _prepare(self) -> None:
        if self._prepared:
            return
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._pins.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"embedded store {self._blocks} cannot be created: {exc}") from exc
        self._prepared = True

    # ------------------------------------------------------------ blocks

    def block_path(self, cid: bytes) -> Path:
        text = cid_string(cid)
        return self._blocks / text[-3:-1] / text

    def _write_block(self, cid: bytes, block: bytes | memoryview) -> None:
        path = self.block_path(cid)
        if path.exists():  # content-addressed: same name, same bytes
            return
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="blk-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(block)
                if self._fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _read_block(self, cid: Cid) -> bytes:
        path = self.block_path(cid.binary)
        try:
            block = path.read_bytes()
        except FileNotFoundError:
            raise CidNotFound(str(cid), f"embedded store {self._blocks}") from None
        if not cid.matches(block):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # corrupt on disk: drop it so a later put can restore it
            raise IntegrityError(f"stored block {path} no longer hashes to {cid}; removed it")
        return block

    def _fetch_for(self, root: str) -> dag.BlockFetch:
        # _read_block verifies (and drops corrupt blocks), so the DAG reader need not hash again.
        def fetch(cid: Cid) -> bytes:
            try:
                return self._read_block(cid)
            except CidNotFound as exc:
                if str(cid) == root:
                    raise
                raise CidNotFound(root, f"embedded store {self._blocks}", f"block {cid} missing") from exc

        return dag.VerifyingFetch(fetch)

    def clean_partial_writes(self) -> int:
        """Remove temporary files left by a process killed mid-write; returns how many."""
        if not self._tmp.exists():
            return 0
        count = 0
        for entry in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                count += 1
        return count

    # ------------------------------------------------------------ Storage

    def put(self, data: bytes) -> str:
        self._prepare()
        return build_bytes(data, self._write_block).text

    def put_file(self, path: Path) -> str:
        self._prepare()
        return build_file(path, self._write_block).text

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        self._prepare()
        return build_directory(files, self._write_block).text

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        root = parse_cid(cid)
        return dag.read_file(root, self._fetch_for(str(root)), max_bytes=max_bytes)

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        root = parse_cid(cid)
        return dag.read_directory(root, self._fetch_for(str(root)), max_bytes=max_bytes)

    def has(self, cid: str) -> bool:
        root = parse_cid(cid)
        try:
            self._check_complete(root)
        except (CidNotFound, IntegrityError):
            return False
        return True

    def _check_complete(self, root: Cid) -> None:
        """Every block of the DAG is present; internal nodes are read (and verified), leaves only stat'ed."""
        fetch = self._fetch_for(str(root))
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid.is_raw:
                if not self.block_path(cid.binary).exists():
                    raise CidNotFound(str(root), f"embedded store {self._blocks}", f"block {cid} missing")
                continue
            node = dag.load_node(fetch, cid)
            assert node.pb is not None
            stack.extend(dag.link_cid(link.hash, cid) for link in node.pb.links)

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        root = parse_cid(cid)
        self._prepare()
        self._check_complete(root)
        marker = self._pins / str(root)
        if not marker.exists():
            fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="pin-")
            os.close(fd)
            os.replace(tmp, marker)

    def pins(self) -> list[str]:
        if not self._pins.exists():
            return []
        return sorted(p.name for p in self._pins.iterdir())

    def unpin(self, cid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._pins / str(parse_cid(cid))).unlink()

    def remove_all(self) -> None:
        """Delete the whole store (tests and `bcfl` cleanup only)."""
        shutil.rmtree(self._blocks, ignore_errors=True)
        shutil.rmtree(self._pins, ignore_errors=True)
        self._prepared = False
