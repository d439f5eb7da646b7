"""Storage that fetches objects from other peers along a planned path, verified by CID.

`PlannedStorage` wraps a peer's own storage (embedded or IPFS) and implements the same
`bcfl.storage.base.Storage` protocol, so a peer node uses it in place of its storage without
any change to its round loop. Writes, pins and `has` go to the inner storage. A `get` or
`get_directory` of an object the peer does not hold asks the peers its route names, in order:

- each answer is checked against the CID asked for (`cid_of_bytes` / `cid_of_directory`);
  bytes that do not match are discarded and that peer is not asked again by this storage;
- a peer that cannot be reached, drops the connection, says it does not hold the object or
  sends more than `max_bytes` is skipped;
- what arrives is put into the inner storage, so this peer then serves it on to the peers
  whose routes name it (relaying along the plan);
- when no peer on the route delivers, the inner storage is asked (IPFS resolves it from
  anywhere; the embedded store raises `CidNotFound`).

`ObjectServer` serves what the inner storage holds over TCP. A request may wait: a peer asked
for an object it is itself still fetching answers once it holds it (up to `wait` seconds).

Wire protocol (one request per connection):

    request:  GET <cid> <file|dir> <wait_ms>\\n
    response: OK <length>\\n<payload>   or   NO <reason>\\n

A file's payload is its bytes; a folder's is a JSON header line {"names": [...], "sizes": [...]}
followed by the files' bytes in that order.

`routes_from_plan` turns a dissemination plan (`bcfl.network.plan.Plan`) into each object's
route for one peer: the peers the plan sends it that object from, in plan order, then every
other peer the plan gives the object to before it, then the object's source.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bcfl.network.plan import Plan
from bcfl.network.transfer import Address
from bcfl.storage.base import DEFAULT_MAX_BYTES, Storage
from bcfl.storage.cid import cid_of_bytes, cid_of_directory
from bcfl.storage.errors import CidNotFound, IntegrityError, ObjectTooLarge, StorageError

Routes = Mapping[str, Sequence[Address]] | Callable[[str], Sequence[Address]]
_LINE_LIMIT = 64 * 1024
_T = TypeVar("_T")


class PeerFetchError(StorageError):
    """One peer did not deliver an object (the storage then asks the next one)."""


# ---------------------------------------------------------------- serving


class _Handler(socketserver.StreamRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        try:
            line = self.rfile.readline(_LINE_LIMIT).decode("ascii").split()
            if len(line) != 4 or line[0] != "GET" or line[2] not in ("file", "dir"):
                self.wfile.write(b"NO bad request\n")
                return
            cid, kind, wait = line[1], line[2], int(line[3]) / 1000.0
            payload = owner.payload(cid, kind, wait)
            if payload is None:
                self.wfile.write(f"NO {cid} not held\n".encode())
                return
            self.wfile.write(f"OK {len(payload)}\n".encode() + payload)
        except (OSError, ValueError, StorageError):
            return  # the client sees a short or missing answer and routes around


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ObjectServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class ObjectServer:
    """Serves the objects `storage` holds to other peers over TCP, until `stop()`."""

    def __init__(self, storage: Storage, host: str = "127.0.0.1", port: int = 0) -> None:
        self.storage = storage
        self._server = _TCPServer((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bcfl-object-server", daemon=True
        )
        self.served = 0

    @property
    def address(self) -> Address:
        host, port = self._server.server_address[:2]
        return Address(str(host), int(port))

    def start(self) -> ObjectServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ObjectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def payload(self, cid: str, kind: str, wait: float) -> bytes | None:
        """The bytes to send for `cid`, waiting up to `wait` s for it to arrive; None if not held."""
        deadline = time.monotonic() + max(0.0, wait)
        while not self.storage.has(cid):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        self.served += 1
        if kind == "file":
            return self.storage.get(cid)
        return encode_directory(self.storage.get_directory(cid))


def encode_directory(files: Mapping[str, bytes]) -> bytes:
    names = sorted(files)
    header = json.dumps({"names": names, "sizes": [len(files[n]) for n in names]}).encode()
    return header + b"\n" + b"".join(files[n] for n in names)


def decode_directory(payload: bytes, where: str) -> dict[str, bytes]:
    head, sep, body = payload.partition(b"\n")
    try:
        if not sep:
            raise ValueError("no header line")
        doc = json.loads(head)
        names, sizes = doc["names"], doc["sizes"]
        if len(names) != len(sizes) or sum(sizes) != len(body):
            raise ValueError("sizes do not add up")
    except (ValueError, TypeError, KeyError) as exc:
        raise PeerFetchError(f"folder from {where} does not parse: {exc}") from None
    files: dict[str, bytes] = {}
    offset = 0
    for name, size in zip(names, sizes, strict=True):
        files[str(name)] = body[offset : offset + int(size)]
        offset += int(size)
    return files


# ---------------------------------------------------------------- fetching


def fetch_payload(
    address: Address, cid: str, kind: str, *, wait: float, timeout: float, max_bytes: int
) -> bytes:
    """One request to one peer; raises PeerFetchError (or ObjectTooLarge) when it does not deliver."""
    where = f"peer {address.host}:{address.port}"
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.settimeout(timeout + wait)
            sock.sendall(f"GET {cid} {kind} {int(wait * 1000)}\n".encode("ascii"))
            reader = sock.makefile("rb")
            status = reader.readline(_LINE_LIMIT).decode("ascii", "replace").split(maxsplit=1)
            if len(status) != 2 or status[0] != "OK":
                reason = status[1].strip() if len(status) == 2 else "no answer"
                raise PeerFetchError(f"{where} did not serve {cid}: {reason}")
            length = int(status[1])
            if length > max_bytes + _LINE_LIMIT:
                raise ObjectTooLarge(f"{cid} from {where}", length, max_bytes)
            data = reader.read(length)
            if len(data) != length:
                raise PeerFetchError(
                    f"{where} dropped the connection after {len(data)} of {length} bytes of {cid}"
                )
            return data
    except (OSError, ValueError) as exc:
        raise PeerFetchError(f"{where} could not be asked for {cid}: {exc}") from None


@dataclass
class FetchEvent:
    cid: str
    peer: str  # host:port, or "inner" for the peer's own storage
    outcome: str  # "ok", or why that source was skipped
    seconds: float


@dataclass
class PlannedStorage:
    """A `Storage` whose misses are fetched from the peers on the object's route (see module doc)."""

    inner: Storage
    routes: Routes
    wait: float = 30.0  # how long a route's peer may take to obtain the object itself
    connect_timeout: float = 5.0
    events: list[FetchEvent] = field(default_factory=list)
    banned: set[Address] = field(default_factory=set)  # peers caught serving bytes of another CID

    @property
    def location(self) -> str:
        return f"{self.inner.location} (misses fetched from planned peers)"

    def put(self, data: bytes) -> str:
        return self.inner.put(data)

    def put_file(self, path: Path) -> str:
        return self.inner.put_file(path)

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        return self.inner.put_directory(files)

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        self.inner.pin(cid, timeout=timeout)

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def route(self, cid: str) -> list[Address]:
        found = self.routes(cid) if callable(self.routes) else self.routes.get(cid, ())
        return [a for a in found if a not in self.banned]

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        if not self.inner.has(cid):
            data = self._from_route(cid, "file", max_bytes, lambda b: cid_of_bytes(b) == cid)
            if data is not None:
                self.inner.put(data)
                return data
        return self._inner(cid, lambda: self.inner.get(cid, max_bytes=max_bytes, timeout=timeout))

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        if not self.inner.has(cid):
            payload = self._from_route(cid, "dir", max_bytes, lambda b: _directory_matches(b, cid))
            if payload is not None:
                files = decode_directory(payload, "a verified peer")
                self.inner.put_directory(files)
                return files
        return self._inner(cid, lambda: self.inner.get_directory(cid, max_bytes=max_bytes, timeout=timeout))

    def _inner(self, cid: str, read: Callable[[], _T]) -> _T:
        started = time.monotonic()
        try:
            out = read()
        except CidNotFound as exc:
            self.events.append(FetchEvent(cid, "inner", f"not found: {exc}", time.monotonic() - started))
            raise
        self.events.append(FetchEvent(cid, "inner", "ok", time.monotonic() - started))
        return out

    def _from_route(
        self, cid: str, kind: str, max_bytes: int, matches: Callable[[bytes], bool]
    ) -> bytes | None:
        for address in self.route(cid):
            where = f"{address.host}:{address.port}"
            started = time.monotonic()
            try:
                payload = fetch_payload(
                    address, cid, kind, wait=self.wait, timeout=self.connect_timeout, max_bytes=max_bytes
                )
                if not matches(payload):
                    self.banned.add(address)
                    raise IntegrityError(f"peer {where} served bytes that are not {cid}")
            except (PeerFetchError, ObjectTooLarge, IntegrityError) as exc:
                self.events.append(FetchEvent(cid, where, str(exc), time.monotonic() - started))
                continue
            self.events.append(FetchEvent(cid, where, "ok", time.monotonic() - started))
            return payload
        return None


def _directory_matches(payload: bytes, cid: str) -> bool:
    try:
        return cid_of_directory(decode_directory(payload, "a peer")) == cid
    except (PeerFetchError, StorageError):
        return False


def routes_from_plan(
    plan: Plan, me: int, cids: Mapping[str, str], addresses: Mapping[int, Address]
) -> dict[str, list[Address]]:
    """CID -> the peers `me` asks for that object, from `plan` (see the module docstring)."""
    routes: dict[str, list[Address]] = {}
    for obj, cid in cids.items():
        if obj not in plan.problem.objects:
            continue
        senders: list[int] = []
        earlier: list[int] = []
        reached_me = False
        for t in plan.transfers:
            if t.obj != obj:
                continue
            if t.dst == me:
                reached_me = True
                if t.src not in senders:
                    senders.append(t.src)
            elif not reached_me and t.dst not in earlier:
                earlier.append(t.dst)
        source = plan.problem.objects[obj].source
        order = [*senders, *(n for n in earlier if n not in senders), source]
        seen: set[int] = set()
        route = []
        for node in order:
            if node != me and node not in seen and node in addresses:
                seen.add(node)
                route.append(addresses[node])
        routes[cid] = route
    return routes
