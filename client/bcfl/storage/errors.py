"""Typed storage errors: each names the CID, URL or path at fault in one line."""

from __future__ import annotations

from bcfl.errors import BcflError


class StorageError(BcflError):
    """Any failure to store, find or verify content-addressed data."""


class CidParseError(StorageError):
    """A string that is not a CID this project can verify."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"not a usable CID {text!r}: {reason}")
        self.text = text


class CidNotFound(StorageError):
    """No backend holds the object (or one of its blocks)."""

    def __init__(self, cid: str, where: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"CID {cid} not found in {where}{extra}")
        self.cid = cid


class CidTimeout(CidNotFound):
    """The object did not resolve within the time allowed."""

    def __init__(self, cid: str, where: str, timeout: float) -> None:
        StorageError.__init__(self, f"CID {cid} did not resolve from {where} within {timeout:g} s")
        self.cid = cid
        self.timeout = timeout


class IntegrityError(StorageError):
    """Bytes that do not match the CID or digest they were fetched or committed under."""


class ObjectTooLarge(StorageError):
    """An object over the configured size limit, refused before it was read in full."""

    def __init__(self, what: str, size: int | None, limit: int) -> None:
        got = f"{size} bytes" if size is not None else "more bytes"
        super().__init__(f"{what} is too large: {got} over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class StorageUnavailable(StorageError):
    """The storage backend cannot be reached (a daemon that is down, a folder not writable)."""


class UnsupportedObject(StorageError):
    """A valid IPFS object of a kind this project does not read (a HAMT shard, a symlink)."""
