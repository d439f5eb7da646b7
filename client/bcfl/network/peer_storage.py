"""Storage that fetches objects from other peers along a planned path, verified by CID.

`PlannedStorage` wraps a peer's own storage (embedded or IPFS) and implements the same
`bcfl.storage.base.Storage` protocol, so a peer node uses it in place of its storage without
any change to its round loop. Writes, pins and `has` go to the inner storage. A `get` or
`get_directory` of an object the peer does not hold asks the peers its route names, in order:

- each answer is checked against the CID asked for (`cid_of_bytes` / `cid_of_directory`);
  bytes that do not match are discarded and that peer is not asked again by this storage;
- a peer that cannot be reached, drops the connection, says it does not hold the object or
  sends more than `max_bytes` is skipped; one whose host does not answer a connection within
  `connect_timeout` is left out of every route for `unreachable_for` seconds, so a dead host
  costs one connect timeout, not one per object routed through it (a refused connection fails
  at once, e.g. a peer still starting, and is asked again next time);
- what arrives is put into the inner storage, so this peer then serves it on to the peers
  whose routes name it (relaying along the plan);
- when no peer on the route delivers, the inner storage is asked (IPFS resolves it from
  anywhere; the embedded store raises `CidNotFound`).

`ObjectServer` serves what the inner storage holds over TCP. A request may wait: a peer asked
for an object it is itself still fetching answers once it holds it (up to `wait` seconds). A
request may also ask the peer to relay: a `PlannedStorage` server that lacks the object then
fetches it along its own route (asking with one hop fewer), keeps it and serves it. Routes built
by `routes_from_plan(..., earlier_only=True)` name only peers the plan reaches first, so relay
requests follow the plan back towards the source and never go round in a circle; the hop budget
bounds them anyway.

Wire protocol (one request per connection):

    request:  GET <cid> <file|dir> <wait_ms> [<hops>]\\n
    response: [WAIT\\n ...] OK <length>\\n<payload>   or   NO <reason>\\n
              (WAIT once a second while the request waits for an upload slot)

    request:  PROBE <length>\\n           (link measurement, bcfl.network.probe)
    response: OK <length>\\n<length zero bytes>   (at most MAX_PROBE_BYTES)

A file's payload is its bytes; a folder's is a JSON header line {"names": [...], "sizes": [...]}
followed by the files' bytes in that order.

`routes_from_plan` turns a dissemination plan (`bcfl.network.plan.Plan`) into each object's
route for one peer: the peers the plan sends it that object from, in plan order, then every
other peer the plan gives the object to before it, then the object's source.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bcfl.network.plan import Plan
from bcfl.network.transfer import Address
from bcfl.storage.base import DEFAULT_MAX_BYTES, Storage
from bcfl.storage.cid import cid_of_bytes, cid_of_directory
from bcfl.storage.errors import CidNotFound, IntegrityError, ObjectTooLarge, StorageError

log = logging.getLogger("bcfl.network")


@dataclass(frozen=True)
class Route:
    """Whom to ask for one object, in order; `relay_hops` > 0 lets each of them fetch it along
    its own route first (a relay request); `wait` overrides the storage's wait for this object."""

    peers: tuple[Address, ...]
    relay_hops: int = 0
    wait: float | None = None


RouteLike = Route | Sequence[Address]
Routes = Mapping[str, RouteLike] | Callable[[str], RouteLike]
_LINE_LIMIT = 64 * 1024
KEEPALIVE_S = 1.0  # how often a queued request hears WAIT from the server
HOLD_S = 0.25  # how long a request waits for an earlier planned one to arrive
MAX_PROBE_BYTES = 64 << 20  # a probe long enough to measure a fast link, short of a flood
_T = TypeVar("_T")


class PeerFetchError(StorageError):
    """One peer did not deliver an object (the storage then asks the next one)."""


class PeerUnreachable(PeerFetchError):
    """The peer's host did not answer a connection within the timeout (down or cut off)."""


# ---------------------------------------------------------------- serving


class _Handler(socketserver.StreamRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        try:
            line = self.rfile.readline(_LINE_LIMIT).decode("ascii").split()
            if len(line) == 2 and line[0] == "PROBE":
                self._probe(int(line[1]))
                return
            if len(line) not in (4, 5) or line[0] != "GET" or line[2] not in ("file", "dir"):
                self.wfile.write(b"NO bad request\n")
                return
            cid, kind, wait = line[1], line[2], int(line[3]) / 1000.0
            hops = int(line[4]) if len(line) == 5 else 0
            payload = owner.payload(cid, kind, wait, hops) if hops else owner.payload(cid, kind, wait)
            if payload is None:
                self.wfile.write(f"NO {cid} not held\n".encode())
                return
            requester = str(self.client_address[0])
            with owner.upload_slot(lambda: self.wfile.write(b"WAIT\n"), cid=cid, requester=requester):
                self.wfile.write(f"OK {len(payload)}\n".encode() + payload)
        except (OSError, ValueError, StorageError):
            return  # the client sees a short or missing answer and routes around

    def _probe(self, length: int) -> None:
        if not 0 <= length <= MAX_PROBE_BYTES:
            self.wfile.write(f"NO probe length must be 0..{MAX_PROBE_BYTES}\n".encode())
            return
        self.wfile.write(f"OK {length}\n".encode())
        block = bytes(min(length, 1 << 16))
        left = length
        while left > 0:
            self.wfile.write(block[: min(left, len(block))])
            left -= len(block)


class _OrderedSlots:
    """Upload slots granted in a plan's order (see ObjectServer); first come, first served for
    requests the plan does not name."""

    def __init__(self, slots: int, order: Sequence[tuple[str, str]], hold: float) -> None:
        self._free = slots
        self._position = {key: i for i, key in reversed(list(enumerate(order)))}
        self._granted: set[int] = set()
        self._waiting: dict[int, tuple[int, float]] = {}  # ticket -> (position, arrival)
        self._tickets = itertools.count()
        self._hold = hold
        self._cond = threading.Condition()

    def _may_go(self, ticket: int, now: float) -> bool:
        position, arrived = self._waiting[ticket]
        key = (position, ticket)
        if any((p, t) < key for t, (p, _) in self._waiting.items() if t != ticket):
            return False  # an earlier planned (or earlier arrived) request is waiting
        missing = any(p < position and p not in self._granted for p in self._position.values())
        return not missing or now - arrived >= self._hold

    def acquire(self, key: tuple[str, str], keepalive: Callable[[], object] | None) -> None:
        """Wait for a slot (calling `keepalive` every second, outside the lock); a request that
        fails while waiting (its requester gone) leaves the queue, so it holds no one up."""
        ticket = next(self._tickets)
        planned = len(self._position)
        with self._cond:
            self._waiting[ticket] = (self._position.get(key, planned + ticket), time.monotonic())
        last_keepalive = time.monotonic()
        try:
            while True:
                with self._cond:
                    if self._free > 0 and self._may_go(ticket, time.monotonic()):
                        position, _ = self._waiting.pop(ticket)
                        if position < planned:  # only the plan's sends are remembered
                            self._granted.add(position)
                        self._free -= 1
                        self._cond.notify_all()
                        return
                    self._cond.wait(timeout=min(self._hold, KEEPALIVE_S) / 2)
                if keepalive is not None and time.monotonic() - last_keepalive >= KEEPALIVE_S:
                    keepalive()
                    last_keepalive = time.monotonic()
        except BaseException:
            with self._cond:
                self._waiting.pop(ticket, None)
                self._cond.notify_all()
            raise

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ObjectServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class ObjectServer:
    """Serves the objects `storage` holds to other peers over TCP, until `stop()`."""

    def __init__(
        self,
        storage: Storage,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        upload_slots: int | None = None,
        serve_order: Sequence[tuple[str, str]] = (),
        hold: float = HOLD_S,
    ) -> None:
        """`upload_slots`: at most this many objects are sent at once, the rest wait their turn
        (a relay then gets a whole object sooner than when every request shares the upload);
        None: every request at once. `serve_order`: (CID, requester host) in the plan's order
        of this peer's sends; a free slot goes to the waiting request earliest in it, and a
        request waits up to `hold` s for an earlier planned one that has not arrived yet (a
        request that comes first does not take the slot the plan gave another peer)."""
        if upload_slots is not None and upload_slots < 1:
            raise ValueError(f"upload_slots must be >= 1 or None, got {upload_slots}")
        self.storage = storage
        self._slots = _OrderedSlots(upload_slots, serve_order, hold) if upload_slots is not None else None
        self._server = _TCPServer((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bcfl-object-server", daemon=True
        )
        self.served = 0
        self.served_bytes = 0

    @contextlib.contextmanager
    def upload_slot(
        self, keepalive: Callable[[], object] | None = None, *, cid: str = "", requester: str = ""
    ) -> Iterator[None]:
        """Hold one upload slot; while waiting for one, call `keepalive` every second (the
        server tells the requester it is queued, so its read timeout does not run out)."""
        if self._slots is None:
            yield
            return
        self._slots.acquire((cid, requester), keepalive)
        try:
            yield
        finally:
            self._slots.release()

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

    def payload(self, cid: str, kind: str, wait: float, hops: int = 0) -> bytes | None:
        """The bytes to send for `cid`: held, relayed (`hops` > 0 and the storage can fetch
        along its route), or arriving within `wait` s; None if none of these."""
        if hops > 0 and isinstance(self.storage, PlannedStorage) and not self.storage.has(cid):
            self.storage.relay(cid, kind, hops - 1)
        deadline = time.monotonic() + max(0.0, wait)
        while not self.storage.has(cid):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        data = self.storage.get(cid) if kind == "file" else encode_directory(self.storage.get_directory(cid))
        self.served += 1
        self.served_bytes += len(data)
        return data


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
    address: Address, cid: str, kind: str, *, wait: float, timeout: float, max_bytes: int, hops: int = 0
) -> bytes:
    """One request to one peer; raises PeerFetchError (or ObjectTooLarge) when it does not deliver.
    With `hops` > 0 the peer may fetch the object along its own route before answering."""
    where = f"peer {address.host}:{address.port}"
    relay = f" {hops}" if hops > 0 else ""
    try:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
    except TimeoutError as exc:  # the costly case: a host that does not answer at all
        raise PeerUnreachable(f"{where} did not answer within {timeout:g} s for {cid}: {exc}") from None
    except OSError as exc:  # refused or unroutable: fails at once, so it is asked again next time
        raise PeerFetchError(f"{where} could not be asked for {cid}: {exc}") from None
    try:
        with sock:
            # A relay answers after its own fetch: allow each hop its connect time and wait.
            sock.settimeout((timeout + wait) * (1 + hops))
            sock.sendall(f"GET {cid} {kind} {int(wait * 1000)}{relay}\n".encode("ascii"))
            reader = sock.makefile("rb")
            line = reader.readline(_LINE_LIMIT)
            while line == b"WAIT\n":  # queued for an upload slot; each line restarts the timeout
                line = reader.readline(_LINE_LIMIT)
            status = line.decode("ascii", "replace").split(maxsplit=1)
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
    unreachable_for: float = 30.0  # seconds a host that timed out on connect is left out of routes
    unreachable: dict[Address, float] = field(default_factory=dict)  # peer -> monotonic time it failed
    fetched_bytes: int = 0  # bytes received from peers (verified), this storage's lifetime
    # One fetch per object at a time: the node and relay requests it serves share the result.
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

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

    def route_of(self, cid: str) -> Route:
        found = self.routes(cid) if callable(self.routes) else self.routes.get(cid, ())
        route = found if isinstance(found, Route) else Route(tuple(found))
        now = time.monotonic()
        usable = tuple(
            a
            for a in route.peers
            if a not in self.banned and now - self.unreachable.get(a, -math.inf) >= self.unreachable_for
        )
        return Route(usable, route.relay_hops, route.wait)

    def route(self, cid: str) -> list[Address]:
        return list(self.route_of(cid).peers)

    def _lock(self, cid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cid, threading.Lock())

    def _fetch(self, cid: str, kind: str, max_bytes: int, hops: int | None) -> bytes | None:
        """Fetch `cid` from its route into the inner storage unless it is held there; the
        verified payload when it was fetched now, None when held already or not delivered."""
        with self._lock(cid):
            if self.inner.has(cid):
                return None
            if kind == "file":
                data = self._from_route(cid, kind, max_bytes, lambda b: cid_of_bytes(b) == cid, hops)
                if data is not None:
                    self.inner.put(data)
            else:
                data = self._from_route(cid, kind, max_bytes, lambda b: _directory_matches(b, cid), hops)
                if data is not None:
                    self.inner.put_directory(decode_directory(data, "a verified peer"))
            return data

    def relay(self, cid: str, kind: str, hops: int) -> bool:
        """Fetch `cid` along this peer's route on another peer's behalf (see ObjectServer)."""
        try:
            self._fetch(cid, kind, DEFAULT_MAX_BYTES, hops)
        except StorageError as exc:
            log.warning("relaying %s failed: %s", cid, exc)
        return self.inner.has(cid)

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        data = self._fetch(cid, "file", max_bytes, None)
        if data is not None:
            return data
        return self._inner(cid, lambda: self.inner.get(cid, max_bytes=max_bytes, timeout=timeout))

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        data = self._fetch(cid, "dir", max_bytes, None)
        if data is not None:
            return decode_directory(data, "a verified peer")
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
        self, cid: str, kind: str, max_bytes: int, matches: Callable[[bytes], bool], hops: int | None
    ) -> bytes | None:
        route = self.route_of(cid)
        wait = self.wait if route.wait is None else route.wait
        ask_hops = route.relay_hops if hops is None else min(route.relay_hops, hops)
        for address in route.peers:
            where = f"{address.host}:{address.port}"
            started = time.monotonic()
            try:
                payload = fetch_payload(
                    address,
                    cid,
                    kind,
                    wait=wait,
                    timeout=self.connect_timeout,
                    max_bytes=max_bytes,
                    hops=ask_hops,
                )
                if not matches(payload):
                    self.banned.add(address)
                    raise IntegrityError(f"peer {where} served bytes that are not {cid}")
            except PeerUnreachable as exc:
                self.unreachable[address] = time.monotonic()
                self.events.append(FetchEvent(cid, where, str(exc), time.monotonic() - started))
                log.info(
                    "peer %s is unreachable, left out of routes for %.0f s: %s",
                    where,
                    self.unreachable_for,
                    exc,
                )
                continue
            except (PeerFetchError, ObjectTooLarge, IntegrityError) as exc:
                self.events.append(FetchEvent(cid, where, str(exc), time.monotonic() - started))
                log.info("peer %s did not deliver %s: %s", where, cid, exc)
                continue
            seconds = time.monotonic() - started
            self.events.append(FetchEvent(cid, where, "ok", seconds))
            self.fetched_bytes += len(payload)
            log.info(
                "fetched %s (%d bytes) from peer %s in %.3f s",
                cid,
                len(payload),
                where,
                seconds,
                extra={"event": "peer_fetch", "cid": cid, "peer": where, "bytes": len(payload)},
            )
            return payload
        return None


def _directory_matches(payload: bytes, cid: str) -> bool:
    try:
        return cid_of_directory(decode_directory(payload, "a peer")) == cid
    except (PeerFetchError, StorageError):
        return False


def routes_from_plan(
    plan: Plan,
    me: int,
    cids: Mapping[str, str],
    addresses: Mapping[int, Address],
    *,
    earlier_only: bool = False,
) -> dict[str, list[Address]]:
    """CID -> the peers `me` asks for that object, from `plan` (see the module docstring).

    With `earlier_only`, only peers the plan reaches before `me` (or the source) are named: a
    chunked plan may have two peers feed each other, and relay requests must not loop."""
    routes: dict[str, list[Address]] = {}
    for obj, cid in cids.items():
        if obj not in plan.problem.objects:
            continue
        senders: list[int] = []
        earlier: list[int] = []
        first: dict[int, int] = {}  # node -> index of the first transfer that reaches it
        reached_me = False
        for i, t in enumerate(plan.transfers):
            if t.obj != obj:
                continue
            first.setdefault(t.dst, i)
            if t.dst == me:
                reached_me = True
                if t.src not in senders:
                    senders.append(t.src)
            elif not reached_me and t.dst not in earlier:
                earlier.append(t.dst)
        source = plan.problem.objects[obj].source
        if earlier_only:
            mine = first.get(me, len(plan.transfers))
            senders = [n for n in senders if n == source or first.get(n, mine) < mine]
        order = [*senders, *(n for n in earlier if n not in senders), source]
        seen: set[int] = set()
        route = []
        for node in order:
            if node != me and node not in seen and node in addresses:
                seen.add(node)
                route.append(addresses[node])
        routes[cid] = route
    return routes
