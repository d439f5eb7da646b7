"""A Kubo-RPC daemon as storage (Kubo in production, js-ipfs here), never trusted for bytes.

Spoken to through `ipfshttpclient.Client(addr)` (not `connect()`, which refuses daemons newer
than 0.8). Adds always name every import parameter (CIDv1, raw leaves, 256 KiB chunks,
sha2-256, balanced) so a daemon configured otherwise still produces the project's CIDs, and the
CID the daemon answers is compared with the one computed here. Reads fetch the root block first
(verified) to learn the declared size and refuse oversized objects before any content moves;
then the content is streamed with `cat` and its CID recomputed, and when that does not give the
CID asked for (another importer's layout, or a lying daemon) the DAG is walked block by block
with `block/get`, each block checked against its CID. Bytes that fail both are never returned.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import ipfshttpclient
from ipfshttpclient import exceptions as ipfs_exc

from bcfl.storage import dag
from bcfl.storage.base import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT
from bcfl.storage.cid import (
    CHUNK_SIZE,
    Cid,
    FileDagBuilder,
    build_bytes,
    build_directory,
    build_file,
    check_entry_name,
    parse_cid,
)
from bcfl.storage.errors import (
    CidNotFound,
    CidTimeout,
    IntegrityError,
    ObjectTooLarge,
    StorageError,
    StorageUnavailable,
)

T = TypeVar("T")

# Every parameter that decides the CID, named explicitly. They must go through add()'s own
# keyword arguments: add() overwrites same-named entries of `opts` with its defaults, and its
# default for raw-leaves is false even with cid_version=1.
ADD_KWARGS: dict[str, Any] = {
    "cid_version": 1,
    "raw_leaves": True,
    "chunker": f"size-{CHUNK_SIZE}",
    "trickle": False,
    "wrap_with_directory": False,
    "pin": True,
}
ADD_EXTRA_OPTS: dict[str, str] = {"hash": "sha2-256", "cid-base": "base32"}


def url_to_multiaddr(url: str) -> tuple[str, str]:
    """(multiaddr, API base path) for ipfshttpclient from an http(s) URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StorageUnavailable(f"IPFS API URL {url!r} is not an http(s) URL")
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host.replace(".", "").isdigit():
        proto = "ip4"
    elif ":" in host:
        proto = "ip6"
    else:
        proto = "dns"
    base = parsed.path.strip("/") or "api/v0"
    return f"/{proto}/{host}/tcp/{port}/{parsed.scheme}", base


class KuboStorage:
    """Storage behind a Kubo RPC API URL; no network I/O until a method is called."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, staging_dir: Path | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._staging = staging_dir
        addr, base = url_to_multiaddr(self.url)
        self._client = ipfshttpclient.Client(addr, base, timeout=timeout)

    @property
    def location(self) -> str:
        return f"IPFS API {self.url}"

    # ------------------------------------------------------------ daemon calls

    def _call(
        self, what: str, fn: Callable[[], T], *, cid: str | None = None, timeout: float | None = None
    ) -> T:
        """Run one RPC call, turning the client's exceptions into the project's typed errors."""
        with self._translate(what, cid=cid, timeout=timeout):
            return fn()

    @contextlib.contextmanager
    def _translate(
        self, what: str, *, cid: str | None = None, timeout: float | None = None
    ) -> Iterator[None]:
        limit = timeout or self.timeout
        try:
            yield
        except ipfs_exc.TimeoutError as exc:
            if cid is not None:
                raise CidTimeout(cid, self.location, limit) from exc
            raise StorageUnavailable(f"{self.location} did not answer {what} within {limit:g} s") from exc
        except ipfs_exc.ConnectionError as exc:
            raise StorageUnavailable(f"{self.location} is unreachable ({what}): {_first_line(exc)}") from exc
        except ipfs_exc.ErrorResponse as exc:
            message = _first_line(exc)
            lowered = message.lower()
            if cid is not None and any(
                word in lowered for word in ("timeout", "timed out", "deadline", "aborted")
            ):
                raise CidTimeout(cid, self.location, limit) from exc
            if cid is not None and "not found" in lowered:
                raise CidNotFound(cid, self.location, message) from exc
            raise StorageError(f"{self.location} refused {what}: {message}") from exc
        except ipfs_exc.Error as exc:
            raise StorageError(f"{self.location} failed {what}: {_first_line(exc)}") from exc

    def _opts(self, timeout: float) -> dict[str, str]:
        # The daemon-side timeout stops it searching the network for a missing block.
        return {"timeout": f"{max(1, int(timeout * 1000))}ms"}

    def _block_get(self, cid: Cid, timeout: float, root: str) -> bytes:
        result = self._call(
            f"block/get {cid}",
            lambda: self._client.block.get(str(cid), timeout=timeout, opts=self._opts(timeout)),
            cid=root,
            timeout=timeout,
        )
        if not isinstance(result, bytes):
            raise StorageError(f"{self.location} answered block/get {cid} with {type(result).__name__}")
        return result

    def _fetch_for(self, root: str, timeout: float) -> dag.BlockFetch:
        return lambda cid: self._block_get(cid, timeout, root)

    def _add(self, target: Any, **extra: Any) -> Any:
        return self._client.add(
            target, **ADD_KWARGS, **extra, opts=dict(ADD_EXTRA_OPTS), timeout=self.timeout
        )

    def _check_added(self, reply: Any, expected: str, what: str) -> str:
        got = reply.get("Hash") if hasattr(reply, "get") else None
        if not isinstance(got, str):
            raise StorageError(f"{self.location} answered add of {what} without a CID: {reply!r}")
        if parse_cid(got).binary != parse_cid(expected).binary:
            raise IntegrityError(
                f"{self.location} stored {what} as CID {got}, but its content's CID is {expected}"
            )
        return expected

    # ------------------------------------------------------------ Storage

    def put(self, data: bytes) -> str:
        expected = build_bytes(data).text
        reply = self._call("add", lambda: self._add(io.BytesIO(data)))
        return self._check_added(reply, expected, f"{len(data)} bytes")

    def put_file(self, path: Path) -> str:
        expected = build_file(path).text
        reply = self._call(f"add {path}", lambda: self._add(str(path)))
        return self._check_added(reply, expected, str(path))

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        expected = build_directory(files).text
        for name in files:
            check_entry_name(name)
        parent = None
        if self._staging is not None:
            self._staging.mkdir(parents=True, exist_ok=True)
            parent = str(self._staging)
        folder = Path(tempfile.mkdtemp(prefix="dir-", dir=parent))
        try:
            for name, content in files.items():
                (folder / name).write_bytes(content)
            replies = self._call(
                "add (directory)",
                lambda: self._add(str(folder), recursive=True),
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        top = [r for r in replies if r.get("Name") == folder.name]
        if len(top) != 1:
            raise StorageError(f"{self.location} answered a directory add without the folder's own CID")
        return self._check_added(top[0], expected, f"a folder of {len(files)} files")

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        root = parse_cid(cid)
        text = str(root)
        limit = timeout or self.timeout
        fetch = self._fetch_for(text, limit)
        node, size = dag.declared_size(root, fetch)
        if size > max_bytes:
            raise ObjectTooLarge(f"object {text}", size, max_bytes)
        if node.fs is None:
            return node.block  # a raw block, already verified
        if node.is_directory:
            return dag.read_file_from(node, fetch, max_bytes=max_bytes)  # raises the clear "is a directory"
        data = self._cat_matching(root, size, limit)
        if data is not None:
            return data
        return dag.read_file_from(node, fetch, max_bytes=max_bytes)

    def _cat_matching(self, root: Cid, size: int, timeout: float) -> bytes | None:
        """Stream the file and rebuild its CID; the bytes when it matches, None when it does not."""
        text = str(root)
        stream = self._call(
            f"cat {text}",
            lambda: self._client.cat(text, stream=True, timeout=timeout, opts=self._opts(timeout)),
            cid=text,
            timeout=timeout,
        )
        builder = FileDagBuilder()
        parts: list[bytes] = []
        received = 0
        try:
            with self._translate(f"cat {text}", cid=text, timeout=timeout):
                for piece in stream:
                    if not isinstance(piece, bytes):
                        return None
                    received += len(piece)
                    if received > size:  # more than the verified root declares: stop reading
                        return None
                    builder.update(piece)
                    parts.append(piece)
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        if received != size or builder.finish().cid != root.binary:
            return None
        return b"".join(parts)

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        root = parse_cid(cid)
        limit = timeout or self.timeout
        return dag.read_directory(root, self._fetch_for(str(root), limit), max_bytes=max_bytes)

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        text = str(parse_cid(cid))
        limit = timeout or self.timeout
        self._call(
            f"pin/add {text}",
            lambda: self._client.pin.add(text, timeout=limit, opts=self._opts(limit)),
            cid=text,
            timeout=limit,
        )

    def has(self, cid: str) -> bool:
        """Whether the daemon keeps the object pinned. (Asking for a block "offline" is not
        enough: js-ipfs ignores `offline` and fetches it by bitswap, so pins are the answer.)"""
        text = str(parse_cid(cid))
        try:
            reply = self._call(
                f"pin/ls {text}",
                lambda: self._client.pin.ls(
                    text, type="recursive", timeout=self.timeout, opts=self._opts(5.0)
                ),
                cid=text,
                timeout=self.timeout,
            )
        except StorageUnavailable:
            raise
        except StorageError:  # "is not pinned" comes back as an error response
            return False
        keys = reply.get("Keys", {}) if hasattr(reply, "get") else {}
        return any(parse_cid(key).binary == parse_cid(text).binary for key in keys)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)  # the cause, not urllib3's whole chain
    if errno:
        return errno.group(0).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
