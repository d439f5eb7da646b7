"""Peer-to-peer storage for a node: its own blockstore, served to the other peers over TCP, and
what it lacks fetched from them along paths planned by `bcfl.network`.

A node in this mode (`storage = "p2p"`) keeps every object in an embedded blockstore in its data
folder, serves that store with an `ObjectServer`, and reads through a `PlannedStorage` whose
routes come from `ChainRoutes`: the chain says who holds each object first (an update's CID ->
its submitter, a vote file's CID -> its voter), the peers file says where each peer serves and
what its links carry, and the optimised planner (`bcfl.network.paths.whole_object_plan`) says which
peers each object travels through. Every peer computes the same plan from the same public
inputs, so a peer named as another's sender is asked to relay: it fetches the object along its
own route (peers the plan reaches before it, then the source), keeps it and serves it on.

An aggregate is computed by every attester itself, and the genesis adapter is seeded into every
peer's store; a peer that lacks one asks every other peer whether it holds it.

The peers file (TOML), shared by every peer:

    [defaults]            # optional; the stated default is a full mesh of equal links
    upload_mbit = 100.0   # each peer's access links, Mbit/s
    download_mbit = 100.0
    latency_ms = 1.0      # one-way, every pair of peers
    bandwidth_mbit = inf  # core path between two peers (inf: only the access links limit)

    [[peer]]
    address = "0x..."         # the peer's chain address
    server = "10.0.0.2:7001"  # where its ObjectServer listens (host:port)
    upload_mbit = 50.0        # optional, overrides the default
    download_mbit = 200.0     # optional

    [[link]]                  # optional: measured figures of one pair, both ways
    between = ["0x...", "0x..."]
    latency_ms = 20.0
    bandwidth_mbit = 10.0
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from bcfl.chain.federation import Federation
from bcfl.config import ConfigError, read_toml
from bcfl.errors import BcflError
from bcfl.network.paths import slot_counts, whole_object_plan
from bcfl.network.peer_storage import ObjectServer, PlannedStorage, Route, routes_from_plan
from bcfl.network.plan import ObjectSpec, Plan, Problem
from bcfl.network.topology import MBIT, Topology
from bcfl.network.transfer import Address
from bcfl.storage.base import Storage

log = logging.getLogger("bcfl.node")

P2P = "p2p"
DEFAULT_UPLOAD_MBIT = 100.0
DEFAULT_DOWNLOAD_MBIT = 100.0
DEFAULT_LATENCY_MS = 1.0
# Every update of a round has the same shape, so only the ratio of sizes shapes a plan: a
# nominal size stands in for the bytes the planner cannot know before fetching.
NOMINAL_OBJECT_BYTES = 1 << 20
# Rounds searched back from the current one for the submission or vote a CID belongs to.
LOOKBACK_ROUNDS = 4

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class PeersFileError(ConfigError):
    """A peers file that cannot be read or does not describe the peers consistently."""


def parse_server(text: str, where: str) -> Address:
    """`host:port` (IPv6 as `[addr]:port`) -> Address; PeersFileError naming `where` otherwise."""
    host, sep, port = str(text).rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PeersFileError(f"{where}: server {text!r} is not host:port with a port in 1..65535")
    return Address(host, int(port))


@dataclass(frozen=True)
class PeerEntry:
    address: str
    server: Address
    upload: float  # bytes/s
    download: float  # bytes/s


@dataclass(frozen=True)
class PeersFile:
    """Every peer's server and link figures, in file order (a peer's index is its position)."""

    path: Path
    peers: tuple[PeerEntry, ...]
    latency: float = DEFAULT_LATENCY_MS / 1000  # seconds, pairs not listed in `links`
    bandwidth: float = math.inf  # bytes/s, pairs not listed in `links`
    links: Mapping[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    def index_of(self, address: str) -> int | None:
        wanted = address.lower()
        return next((i for i, p in enumerate(self.peers) if p.address.lower() == wanted), None)

    def addresses(self) -> dict[int, Address]:
        return {i: p.server for i, p in enumerate(self.peers)}

    def topology(self) -> Topology:
        """A full mesh: each peer's access links, each pair's latency and core bandwidth."""
        graph = nx.DiGraph()
        for i, p in enumerate(self.peers):
            graph.add_node(i, up=p.upload, down=p.download, pos=(0.0, 0.0))
        for u in range(len(self.peers)):
            for v in range(len(self.peers)):
                if u != v:
                    latency, bandwidth = self.links.get((u, v), (self.latency, self.bandwidth))
                    graph.add_edge(u, v, latency=latency, bandwidth=bandwidth)
        return Topology(graph, "peers-file", tuple(range(len(self.peers))))


def _number(doc: Mapping[str, Any], key: str, default: float, where: str, *, zero_ok: bool = False) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PeersFileError(f"{where}: {key} must be a number, got {value!r}")
    if math.isnan(value) or value < 0 or (value == 0 and not zero_ok):
        raise PeersFileError(f"{where}: {key} must be {'>= 0' if zero_ok else 'positive'}, got {value!r}")
    return float(value)


def _keys(doc: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise PeersFileError(f"{where}: expected a table, got {type(doc).__name__}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PeersFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return doc


def load_peers_file(path: Path) -> PeersFile:
    """Read and check a peers file (format in the module docstring); PeersFileError otherwise."""
    try:
        doc = _keys(read_toml(path), {"defaults", "peer", "link"}, f"peers file {path}")
    except PeersFileError:
        raise
    except ConfigError as exc:
        raise PeersFileError(str(exc).replace("config file", "peers file", 1)) from None
    defaults = _keys(
        doc.get("defaults", {}),
        {"upload_mbit", "download_mbit", "latency_ms", "bandwidth_mbit"},
        f"peers file {path} [defaults]",
    )
    where = f"peers file {path} [defaults]"
    up = _number(defaults, "upload_mbit", DEFAULT_UPLOAD_MBIT, where)
    down = _number(defaults, "download_mbit", DEFAULT_DOWNLOAD_MBIT, where)
    latency = _number(defaults, "latency_ms", DEFAULT_LATENCY_MS, where, zero_ok=True) / 1000
    bandwidth = _number(defaults, "bandwidth_mbit", math.inf, where) * MBIT
    rows = doc.get("peer", [])
    if not isinstance(rows, list) or not rows:
        raise PeersFileError(f"peers file {path}: no [[peer]] entries")
    peers: list[PeerEntry] = []
    seen: dict[str, int] = {}
    servers: dict[Address, int] = {}
    for i, row in enumerate(rows):
        where = f"peers file {path} peer {i}"
        entry = _keys(row, {"address", "server", "upload_mbit", "download_mbit"}, where)
        address = entry.get("address")
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise PeersFileError(f"{where}: address {address!r} is not a 0x-prefixed 20-byte hex address")
        if address.lower() in seen:
            raise PeersFileError(f"{where}: address {address} repeats peer {seen[address.lower()]}")
        seen[address.lower()] = i
        if "server" not in entry:
            raise PeersFileError(f"{where}: no server (host:port)")
        server = parse_server(entry["server"], where)
        if server in servers:
            raise PeersFileError(f"{where}: server {entry['server']} repeats peer {servers[server]}")
        servers[server] = i
        peers.append(
            PeerEntry(
                address,
                server,
                _number(entry, "upload_mbit", up, where) * MBIT,
                _number(entry, "download_mbit", down, where) * MBIT,
            )
        )
    links: dict[tuple[int, int], tuple[float, float]] = {}
    rows = doc.get("link", [])
    if not isinstance(rows, list):
        raise PeersFileError(f"peers file {path}: link must be an array of tables ([[link]])")
    for i, row in enumerate(rows):
        where = f"peers file {path} link {i}"
        entry = _keys(row, {"between", "latency_ms", "bandwidth_mbit"}, where)
        pair = entry.get("between")
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(a, str) for a in pair):
            raise PeersFileError(f"{where}: between must name two peer addresses, got {pair!r}")
        ends = [seen.get(a.lower()) for a in pair]
        for a, end in zip(pair, ends, strict=True):
            if end is None:
                raise PeersFileError(f"{where}: {a} is not a [[peer]] of this file")
        u, v = ends[0], ends[1]
        assert u is not None and v is not None
        if u == v:
            raise PeersFileError(f"{where}: a link joins two different peers, got {pair[0]} twice")
        figures = (
            _number(entry, "latency_ms", latency * 1000, where, zero_ok=True) / 1000,
            _number(entry, "bandwidth_mbit", bandwidth / MBIT, where) * MBIT,
        )
        links[(u, v)] = links[(v, u)] = figures
    return PeersFile(path, tuple(peers), latency, bandwidth, links)


def write_peers_file(
    path: Path,
    servers: Mapping[str, Address],
    rates_mbit: Mapping[str, tuple[float, float]] | None = None,
    latency_ms: Mapping[tuple[str, str], float] | None = None,
) -> None:
    """A peers file: chain address -> where that peer serves, its (upload, download) access links
    in Mbit/s and each pair's one-way latency in ms where known (`latency_ms` keyed by either
    order of the pair); the stated defaults (full mesh, equal links) for the rest."""
    lines = [
        "# Where each peer serves its objects; links not listed: the stated default.",
        "[defaults]",
        f"upload_mbit = {DEFAULT_UPLOAD_MBIT}",
        f"download_mbit = {DEFAULT_DOWNLOAD_MBIT}",
        f"latency_ms = {DEFAULT_LATENCY_MS}",
        "",
    ]
    for address, server in servers.items():
        lines += ["[[peer]]", f'address = "{address}"', f'server = "{server.host}:{server.port}"']
        if rates_mbit is not None and address in rates_mbit:
            up, down = rates_mbit[address]
            lines += [f"upload_mbit = {up!r}", f"download_mbit = {down!r}"]
        lines.append("")
    written: set[frozenset[str]] = set()
    for (a, b), ms in sorted((latency_ms or {}).items()):
        if frozenset((a, b)) not in written:
            written.add(frozenset((a, b)))
            lines += ["[[link]]", f'between = ["{a}", "{b}"]', f"latency_ms = {ms!r}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


class ChainRoutes:
    """CID -> `Route` for peer `me`, from the chain (who holds the object first) and a plan.

    An update of round r travels on the optimised plan of "every submission of round r to every
    peer"; a vote file on that of "every vote file of round r to every peer". A round's
    submissions and votes are fixed once peers need them (voting starts when the round closes,
    scoring when voting closes), so every peer plans the same problem and gets the same plan.
    """

    def __init__(
        self,
        fed: Federation,
        peers: PeersFile,
        me: int,
        *,
        lookback: int = LOOKBACK_ROUNDS,
        planner: Callable[[Topology, Problem], Plan] | None = None,
    ) -> None:
        self.fed = fed
        self.peers = peers
        self.me = me
        self.lookback = lookback
        self.planner = planner or whole_object_plan
        self.topology = peers.topology()
        self._addresses = peers.addresses()
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()

    def any_holder(self) -> Route:
        """Every other peer, each asked once whether it holds the object now."""
        return Route(tuple(a for i, a in self._addresses.items() if i != self.me), 0, 0.0)

    def __call__(self, cid: str) -> Route:
        with self._lock:  # the node and relay requests ask at the same time; plan once
            found = self._routes.get(cid)
            if found is None:
                found = self._lookup(cid)
            return found

    def _lookup(self, cid: str) -> Route:
        current = self.fed.current_round()
        for r in range(current, max(0, current - self.lookback), -1):
            subs = [(s.peer, s.cid) for s in self.fed.submissions(r)]
            if any(c == cid for _, c in subs):
                self._plan("update", r, subs)
            else:
                votes = [(v.voter, v.cid) for v in self.fed.vote_commits(r)]
                if any(c == cid for _, c in votes):
                    self._plan("votes", r, votes)
            if cid in self._routes:
                return self._routes[cid]
        return self.any_holder()  # an aggregate, the genesis, or an object of an older round

    def _plan(self, kind: str, round_id: int, holders: list[tuple[str, str]]) -> None:
        objects: dict[str, ObjectSpec] = {}
        cids: dict[str, str] = {}
        for peer, cid in holders:
            source = self.peers.index_of(peer)
            if source is None:  # a peer missing from the peers file: ask everyone
                self._routes[cid] = self.any_holder()
                continue
            name = f"{kind}-{round_id}-{source}"
            objects[name] = ObjectSpec(source, NOMINAL_OBJECT_BYTES)
            cids[name] = cid
        if not objects:
            return
        plan = self.planner(self.topology, Problem(objects, tuple(range(len(self.peers.peers)))))
        routes = routes_from_plan(plan, self.me, cids, self._addresses, earlier_only=True)
        hops = len(self.peers.peers)
        for cid, route in routes.items():
            self._routes[cid] = Route(tuple(route), relay_hops=hops, wait=0.0)
        log.info(
            "planned %s of round %d: %d objects over %d peers (%s)",
            kind,
            round_id,
            len(objects),
            len(self.peers.peers),
            plan.strategy,
        )


def start_p2p_storage(
    inner: Storage, peers_file: Path, *, address: str, fed: Federation, listen: str | None = None
) -> tuple[PlannedStorage, ObjectServer]:
    """This peer's planned storage over `inner`, and its object server (started; stop it)."""
    peers = load_peers_file(peers_file)
    me = peers.index_of(address)
    if me is None:
        raise PeersFileError(f"peers file {peers_file}: this peer {address} is not one of its [[peer]]s")
    routes = ChainRoutes(fed, peers, me)
    storage = PlannedStorage(inner, routes, wait=0.0)
    bind = parse_server(listen, "listen") if listen else peers.peers[me].server
    # As many objects at once as the plans give this peer upload slots: a relay gets a whole
    # object sooner than when every request shares the upload (docs/network.md, node path).
    slots = slot_counts(routes.topology)[0][me]
    try:
        server = ObjectServer(storage, bind.host, bind.port, upload_slots=slots).start()
    except OSError as exc:
        raise BcflError(f"cannot serve objects on {bind.host}:{bind.port}: {exc}") from exc
    log.info(
        "serving objects on %s:%d; %d peers in %s",
        bind.host,
        server.address.port,
        len(peers.peers),
        peers_file,
        extra={"event": "p2p_serving", "port": server.address.port, "upload_slots": slots},
    )
    return storage, server
