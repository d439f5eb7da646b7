"""Content-addressed storage: adapters and vote files by CID, verified on every read.

`open_storage("embedded" | "http://...", data_dir)` gives a `Storage`; `bcfl.storage.cid`
computes Kubo-identical CIDs; `bcfl.storage.adapter_pack` packs and checks adapters and votes;
`bcfl.storage.ipfs_daemons` runs local js-ipfs daemons.
"""

from bcfl.storage.base import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, Storage, check_digest, open_storage
from bcfl.storage.cid import cid_of_bytes, cid_of_directory, cid_of_file, cid_of_path, parse_cid
from bcfl.storage.errors import (
    CidNotFound,
    CidParseError,
    CidTimeout,
    IntegrityError,
    ObjectTooLarge,
    StorageError,
    StorageUnavailable,
    UnsupportedObject,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "CidNotFound",
    "CidParseError",
    "CidTimeout",
    "IntegrityError",
    "ObjectTooLarge",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "UnsupportedObject",
    "check_digest",
    "cid_of_bytes",
    "cid_of_directory",
    "cid_of_file",
    "cid_of_path",
    "open_storage",
    "parse_cid",
]
