"""The one storage interface peers use, and the choice of backend by a spec string.

`open_storage("embedded", data_dir)` gives the on-disk blockstore (the default, no daemon);
`open_storage("http://host:5001", data_dir)` gives a Kubo-RPC daemon (Kubo, or js-ipfs here).
Both compute the same CIDs, and both verify every byte they return against the CID asked for.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

from bcfl.storage.errors import IntegrityError, StorageError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # far above a LoRA adapter (SmolLM2 r=8: 3.7 MB)
DEFAULT_TIMEOUT = 30.0
EMBEDDED = "embedded"


@runtime_checkable
class Storage(Protocol):
    """Content-addressed storage. Every get returns only bytes that hash to the CID asked for."""

    @property
    def location(self) -> str:
        """Where the data lives (a folder or a URL), as error messages name it."""
        ...

    def put(self, data: bytes) -> str:
        """Store bytes; return their CID (the one `ipfs add --cid-version=1 --raw-leaves` gives)."""
        ...

    def put_file(self, path: Path) -> str:
        """Store a file's content, read in constant memory; return its CID."""
        ...

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        """Store a flat folder of named files; return the folder's CID."""
        ...

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        """The file's bytes, verified against `cid`; refused before reading if over `max_bytes`."""
        ...

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        """Every file of a folder by relative path, verified; `max_bytes` bounds their total."""
        ...

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        """Keep the object (fetching it first where the backend can)."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the object is kept here: every block present (embedded), pinned (daemon).
        Never fetches from the network."""
        ...


def open_storage(spec: str, data_dir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Storage:
    """`embedded` (a blockstore under `data_dir/blocks`) or the http(s) URL of a Kubo RPC API."""
    spec = spec.strip()
    if spec == EMBEDDED:
        from bcfl.storage.embedded import EmbeddedStorage

        return EmbeddedStorage(data_dir)
    parsed = urlparse(spec)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        from bcfl.storage.kubo import KuboStorage

        return KuboStorage(spec, timeout=timeout, staging_dir=data_dir / "staging")
    raise StorageError(f"storage spec {spec!r} is neither 'embedded' nor an http(s) URL of a Kubo RPC API")


def check_digest(actual: bytes, expected: bytes, what: str) -> None:
    """Compare a computed digest with the committed one (constant time); mismatch is an error."""
    if len(expected) != len(actual) or not hmac.compare_digest(actual, expected):
        raise IntegrityError(f"{what}: digest {actual.hex()} does not match the committed {expected.hex()}")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
