"""CID parity: the project's CIDs equal a real IPFS daemon's for sizes around every boundary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests

from bcfl.storage.cid import CHUNK_SIZE, MAX_LINKS, cid_of_bytes, cid_of_directory, parse_cid
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.ipfs_daemons import IpfsDaemon
from bcfl.storage.kubo import KuboStorage
from tests.integration import ipfs_fixtures

ipfs_pair = ipfs_fixtures.ipfs_pair  # the fixture, used by name below

pytestmark = pytest.mark.integration

# Independent of the project's client code: the daemon's own add, parameters as Kubo's CLI flags.
ADD_PARAMS = {"cid-version": "1", "raw-leaves": "true", "chunker": f"size-{CHUNK_SIZE}", "pin": "false"}


def content(n: int) -> bytes:
    return hashlib.shake_128(f"parity-{n}".encode()).digest(n)


def daemon_add(daemon: IpfsDaemon, files: dict[str, bytes], *, directory: bool = False) -> str:
    parts = [
        ("file", ((f"d/{name}" if directory else name), data, "application/octet-stream"))
        for name, data in files.items()
    ]
    # The folder is implied by the "d/" paths (js-ipfs refuses an explicit directory part).
    reply = requests.post(f"{daemon.api_url}/api/v0/add", params=ADD_PARAMS, files=parts, timeout=120)
    reply.raise_for_status()
    answers = [json.loads(line) for line in reply.text.splitlines() if line.strip()]  # one JSON per line
    if directory:
        return str(parse_cid(next(a["Hash"] for a in answers if a["Name"] == "d")))
    assert len(answers) == 1
    return str(parse_cid(answers[0]["Hash"]))


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, MAX_LINKS * CHUNK_SIZE, MAX_LINKS * CHUNK_SIZE + 1],
    ids=["0B", "1B", "chunk-1", "chunk", "chunk+1", "one-full-node", "two-levels"],
)
def test_file_cid_parity(ipfs_pair: list[IpfsDaemon], size: int) -> None:
    data = content(size)
    assert daemon_add(ipfs_pair[0], {"f": data}) == cid_of_bytes(data)


def test_directory_cid_parity(ipfs_pair: list[IpfsDaemon]) -> None:
    files = {
        "adapter_model.safetensors": content(CHUNK_SIZE + 3),
        "adapter_config.json": b'{"r": 8}',
        "z": b"",
    }
    assert daemon_add(ipfs_pair[0], files, directory=True) == cid_of_directory(files)


def test_both_backends_give_the_same_cids(ipfs_pair: list[IpfsDaemon], tmp_path: Path) -> None:
    embedded = EmbeddedStorage(tmp_path / "peer")
    daemon = KuboStorage(ipfs_pair[0].api_url)
    data = content(3 * CHUNK_SIZE + 11)
    assert embedded.put(data) == daemon.put(data)
    files = {"a.json": b"{}", "b.bin": data}
    assert embedded.put_directory(files) == daemon.put_directory(files)
    assert daemon.get(cid_of_bytes(data)) == data
    assert daemon.has(cid_of_bytes(data))
