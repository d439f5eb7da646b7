"""The real data path: peers serve chunks by CID over TCP and relay them along a plan.

Wire protocol (one request per connection, asyncio streams):

    request:  GET <cid> <wait_ms> <from_node>\\n
    response: OK <length>\\n<bytes>   or   NO <reason>\\n

A server holding the CID answers at once; otherwise it waits up to `wait_ms` for the chunk to
arrive (relaying: a peer serves what it received moments ago), then answers `NO`. It runs at
most `slots` sends at once (the plan's upload slots), admitting waiting requests in plan order
(`priority`), and, as a user-space stand-in for link
propagation delay (this kernel has no netem), sleeps `delay(from_node)` seconds before sending.

A receiver pulls each chunk the plan sends to it from the planned sender and checks it with the
verify callback (by default: the bytes must hash to the CID, via `bcfl.storage.cid`). Bytes that
fail verification, a sender that cannot be reached, and a connection dropped mid-transfer are
all routed around: the receiver asks the other nodes the plan gives that chunk to, then the
source; a sender caught serving bad bytes is not asked again.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import heapq
import socket
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bcfl.errors import BcflError
from bcfl.network.plan import ChunkKey, Plan
from bcfl.storage.cid import cid_of_bytes

Verify = Callable[[str, bytes], bool]
MAX_CHUNK = 64 * 1024 * 1024


class TransferError(BcflError):
    """A chunk that could not be fetched or verified from any holder."""


def cid_verify(cid: str, data: bytes) -> bool:
    """True when `data` is the content of `cid` (Kubo-identical CIDv1, raw leaves)."""
    return cid_of_bytes(data) == cid


def split_chunks(plan: Plan, obj: str, data: bytes) -> dict[ChunkKey, bytes]:
    """The plan's chunks of one object's bytes."""
    if len(data) != plan.problem.objects[obj].size:
        raise TransferError(
            f"object {obj!r} has {len(data)} bytes, the plan expects {plan.problem.objects[obj].size}"
        )
    out: dict[ChunkKey, bytes] = {}
    offset = 0
    for key in plan.chunk_keys(obj):
        size = plan.chunk_size(*key)
        out[key] = data[offset : offset + size]
        offset += size
    return out


def manifest(plan: Plan, objects: Mapping[str, bytes]) -> dict[ChunkKey, str]:
    """Chunk -> CID for every chunk of the plan (what the source publishes)."""
    cids: dict[ChunkKey, str] = {}
    for obj, data in objects.items():
        for key, chunk in split_chunks(plan, obj, data).items():
            cids[key] = cid_of_bytes(chunk)
    return cids


# ---------------------------------------------------------------- store and server


class ChunkStore:
    """Verified chunks by CID; waiters are woken when a chunk arrives."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._events: dict[str, asyncio.Event] = {}

    def __contains__(self, cid: str) -> bool:
        return cid in self._data

    def get(self, cid: str) -> bytes | None:
        return self._data.get(cid)

    def put(self, cid: str, data: bytes) -> None:
        self._data[cid] = data
        event = self._events.pop(cid, None)
        if event is not None:
            event.set()

    async def wait(self, cid: str, timeout: float) -> bytes | None:
        if cid not in self._data and timeout > 0:
            event = self._events.setdefault(cid, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        return self._data.get(cid)


class _PriorityGate:
    """At most `slots` holders at once; waiters are admitted lowest priority value first."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def acquire(self, priority: float) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (priority, self._seq, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as the waiter went away
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1


@dataclass
class ServerFaults:
    """Misbehaviour for tests: serve flipped bytes, or drop the connection part-way."""

    corrupt: bool = False
    drop_after: int | None = None  # bytes sent before the connection is cut


class ChunkServer:
    def __init__(
        self,
        store: ChunkStore,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        slots: int = 64,
        delay: Callable[[int], float] | None = None,
        priority: Callable[[str, int], float] | None = None,
        faults: ServerFaults | None = None,
    ) -> None:
        self.store = store
        self.host, self.port = host, port
        self.delay = delay or (lambda _node: 0.0)
        self.faults = faults or ServerFaults()
        self.priority = priority or (lambda _cid, _node: 0.0)
        self._slots = _PriorityGate(slots)
        self._server: asyncio.Server | None = None
        self.served = 0

    async def start(self) -> ChunkServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a small send buffer keeps drain() close to what is on the wire
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            parts = line.decode("ascii", "replace").split()
            if len(parts) != 4 or parts[0] != "GET":
                writer.write(b"NO bad request\n")
                return
            cid, wait_ms, requester = parts[1], int(parts[2]), int(parts[3])
            data = await self.store.wait(cid, wait_ms / 1000)
            if data is None:
                writer.write(b"NO not held\n")
                return
            lag = self.delay(requester)
            if lag > 0:  # propagation: the bytes reach the requester `lag` later, the upload stays free
                await asyncio.sleep(lag)
            await self._slots.acquire(self.priority(cid, requester))
            try:
                await self._send(writer, data)
                self.served += 1
            finally:
                self._slots.release()
        except (ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.faults.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        writer.write(b"OK %d\n" % len(data))
        body = data if self.faults.drop_after is None else data[: self.faults.drop_after]
        step = 64 * 1024
        for i in range(0, len(body), step):
            writer.write(body[i : i + step])
            await writer.drain()
        if self.faults.drop_after is not None:
            writer.transport.abort()
            return
        await _flushed(writer)


SEND_BUFFER = 64 * 1024


def _unsent(sock: socket.socket) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
    return buf[0]


async def _flushed(writer: asyncio.StreamWriter, timeout: float = 60.0) -> None:
    """Wait until the kernel has sent what we wrote, so an upload slot is held for the real
    transmission time and not just until the bytes sit in a socket buffer (Linux TIOCOUTQ)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        while _unsent(sock) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


async def fetch(
    host: str, port: int, cid: str, *, me: int = -1, wait: float = 0.0, timeout: float = 30.0
) -> bytes:
    """One chunk from one server; raises TransferError if it is not served in full."""
    where = f"{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise TransferError(f"cannot connect to {where} for CID {cid}: {exc or type(exc).__name__}") from exc
    try:
        writer.write(f"GET {cid} {int(wait * 1000)} {me}\n".encode("ascii"))
        await writer.drain()
        head = (await asyncio.wait_for(reader.readline(), timeout + wait)).decode("ascii", "replace").split()
        if len(head) != 2 or head[0] != "OK":
            raise TransferError(f"{where} did not serve CID {cid}: {' '.join(head) or 'connection closed'}")
        length = int(head[1])
        if not 0 <= length <= MAX_CHUNK:
            raise TransferError(f"{where} announced {length} bytes for CID {cid}")
        return await asyncio.wait_for(reader.readexactly(length), timeout)
    except asyncio.IncompleteReadError as exc:
        raise TransferError(
            f"{where} dropped the connection after {len(exc.partial)} bytes of CID {cid}"
        ) from exc
    except (OSError, TimeoutError, ValueError) as exc:
        raise TransferError(f"fetching CID {cid} from {where} failed: {exc or type(exc).__name__}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# ---------------------------------------------------------------- a peer executing a plan


@dataclass(frozen=True)
class Address:
    host: str
    port: int


@dataclass
class PeerReport:
    node: int
    completion: float | None = None  # seconds from start until it held every chunk it needs
    fetched: int = 0
    rerouted: int = 0
    rejected: list[str] = field(default_factory=list)  # one line per bad or failed attempt
    banned: set[int] = field(default_factory=set)
    arrivals: list[tuple[str, int, int, float]] = field(default_factory=list)  # (object, chunk, from, time)


class PlanPeer:
    """One node: serves its chunks and pulls the chunks the plan sends it, verifying each."""

    def __init__(
        self,
        node: int,
        plan: Plan,
        cids: Mapping[ChunkKey, str],
        addresses: Mapping[int, Address],
        *,
        verify: Verify = cid_verify,
        server: ChunkServer | None = None,
        wait: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        self.node, self.plan, self.cids, self.addresses = node, plan, cids, addresses
        self.verify, self.wait, self.timeout = verify, wait, timeout
        self.store = server.store if server is not None else ChunkStore()
        self.server = server
        self.report = PeerReport(node)
        self._t0 = time.time()
        self._holders: dict[ChunkKey, list[int]] = {}
        for obj in plan.problem.objects:
            for key in plan.chunk_keys(obj):
                self._holders[key] = []
        for t in plan.transfers:  # nodes that will hold a chunk, in plan order, source last
            if t.dst not in self._holders[t.key]:
                self._holders[t.key].append(t.dst)
        for obj, spec in plan.problem.objects.items():
            for key in plan.chunk_keys(obj):
                self._holders[key].append(spec.source)
        if server is not None:  # serve waiting requests in plan order, as the simulator does
            server.priority = self.send_order()

    def send_order(self) -> Callable[[str, int], float]:
        """Priority for this node's server: the plan index of its transfer of that CID to that node."""
        order: dict[tuple[str, int], float] = {}
        for i, t in enumerate(self.plan.transfers):
            if t.src == self.node:
                order.setdefault((self.cids[t.key], t.dst), float(i))
        return lambda cid, node: order.get((cid, node), float(len(self.plan.transfers)))

    def seed(self, objects: Mapping[str, bytes]) -> None:
        """Load the objects this node is the source of."""
        for obj, data in objects.items():
            for key, chunk in split_chunks(self.plan, obj, data).items():
                self.store.put(self.cids[key], chunk)

    def needed(self) -> set[ChunkKey]:
        if self.node not in self.plan.problem.receivers:
            return set()
        return {k for o in self.plan.problem.needs(self.node) for k in self.plan.chunk_keys(o)}

    def incoming(self) -> list[tuple[int, ChunkKey]]:
        """(planned sender, chunk) for every chunk the plan sends this node (a relay too) or it
        needs, in plan order; a needed chunk the plan forgot is asked of its source."""
        seen: set[ChunkKey] = set()
        out: list[tuple[int, ChunkKey]] = []
        for t in self.plan.transfers:
            if t.dst == self.node and t.key not in seen:
                seen.add(t.key)
                out.append((t.src, t.key))
        for key in sorted(self.needed() - seen):
            out.append((self.plan.problem.objects[key[0]].source, key))
        return [(s, k) for s, k in out if self.cids[k] not in self.store]

    async def run(self, start: float | None = None) -> PeerReport:
        """Fetch what the plan sends this node; `start` is the shared time.time() origin.
        A receiver's completion is when it holds every chunk it needs."""
        t0 = start if start is not None else time.time()
        self._t0 = t0
        needed = self.needed()
        tasks = {key: asyncio.ensure_future(self._get(src, key)) for src, key in self.incoming()}
        try:
            await asyncio.gather(*(task for key, task in tasks.items() if key in needed))
            if self.node in self.plan.problem.receivers:
                self.report.completion = time.time() - t0
            await asyncio.gather(*tasks.values())
        finally:
            for task in tasks.values():
                task.cancel()
        return self.report

    async def _get(self, planned: int, key: ChunkKey) -> None:
        """The planned sender first; on failure, holders that have it now, the source, then any holder."""
        cid = self.cids[key]
        source = self.plan.problem.objects[key[0]].source
        others = [h for h in self._holders[key] if h not in (planned, self.node, source)]
        attempts = [(planned, self.wait)] + [(h, 0.0) for h in others]
        attempts += [(source, self.wait)] + [(h, self.wait) for h in others]
        tried: list[int] = []
        for n, (src, wait) in enumerate(attempts):
            if src in self.report.banned or src == self.node or src not in self.addresses:
                continue
            tried.append(src)
            addr = self.addresses[src]
            try:
                data = await fetch(addr.host, addr.port, cid, me=self.node, wait=wait, timeout=self.timeout)
            except TransferError as exc:
                self.report.rejected.append(str(exc))
                continue
            if not self.verify(cid, data):
                self.report.rejected.append(
                    f"node {src} served {len(data)} bytes that do not match CID {cid}"
                )
                self.report.banned.add(src)
                continue
            self.store.put(cid, data)
            self.report.arrivals.append((key[0], key[1], src, time.time() - self._t0))
            self.report.fetched += 1
            if n > 0:
                self.report.rerouted += 1
            return
        raise TransferError(
            f"node {self.node} could not fetch CID {cid} ({key[0]}#{key[1]}) from any of {sorted(set(tried))}"
        )

    def assemble(self, obj: str) -> bytes:
        """The object's bytes from its verified chunks."""
        parts = []
        for key in self.plan.chunk_keys(obj):
            data = self.store.get(self.cids[key])
            if data is None:
                raise TransferError(f"node {self.node} lacks chunk {obj}#{key[1]} (CID {self.cids[key]})")
            parts.append(data)
        return b"".join(parts)


async def run_local(
    plan: Plan,
    objects: Mapping[str, bytes],
    *,
    faults: Mapping[int, ServerFaults] | None = None,
    verify: Verify = cid_verify,
    host: str = "127.0.0.1",
    delay: Callable[[int, int], float] | None = None,
    wait: float = 10.0,
    timeout: float = 10.0,
) -> dict[int, PeerReport]:
    """Every node of `plan` as a server and peer in this process, on `host` (loopback tests)."""
    cids = manifest(plan, objects)
    nodes = sorted(
        {t.src for t in plan.transfers} | {t.dst for t in plan.transfers} | set(plan.problem.receivers)
    )
    servers: dict[int, ChunkServer] = {}
    try:
        for node in nodes:
            lag = (lambda req, node=node: delay(node, req)) if delay is not None else None
            servers[node] = await ChunkServer(
                ChunkStore(), host, slots=plan.slots(node), delay=lag, faults=(faults or {}).get(node)
            ).start()
        addresses = {n: Address(host, s.port) for n, s in servers.items()}
        peers = {
            n: PlanPeer(
                n, plan, cids, addresses, verify=verify, server=servers[n], wait=wait, timeout=timeout
            )
            for n in nodes
        }
        for obj, spec in plan.problem.objects.items():
            peers[spec.source].seed({obj: objects[obj]})
        start = time.time()
        reports = await asyncio.gather(*(p.run(start) for p in peers.values()))
        for p in peers.values():
            for obj in plan.problem.needs(p.node) if p.node in plan.problem.receivers else []:
                if cid_of_bytes(p.assemble(obj)) != cid_of_bytes(objects[obj]):
                    raise TransferError(f"node {p.node} assembled object {obj!r} that does not match its CID")
        return {r.node: r for r in reports}
    finally:
        for s in servers.values():
            await s.close()
