"""Link model and heterogeneous topology generators (pure: no I/O).

A topology is a networkx `DiGraph` whose nodes are integers. Peers are `0..n-1`; an optional
server (the star baseline's relay) is node `n`. Attributes:

- node `up`, `down`: access-link capacity in bytes/s (upload, download);
- node `pos`: (x, y) in the unit square, from which latencies derive;
- edge `latency`: one-way propagation delay in seconds;
- edge `bandwidth`: capacity of the path between the two endpoints in bytes/s, excluding the
  access links (`inf` when only the access links limit it).

An edge is a connection a plan may use directly; bytes reach non-neighbours only through peers
that relay them.

Bandwidth distribution (`BandwidthModel`): a peer's upload is log-normal with median
`upload_median` and log-space standard deviation `upload_sigma`, clipped to
[`min_rate`, `max_rate`]; download is `download_ratio` times upload (asymmetric residential
access). Overlay links of the sparse topologies draw their own log-normal core bandwidth
(`link_median`, `link_sigma`). Latency of an edge is `base_latency + distance * latency_per_unit`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx
import numpy as np

from bcfl.errors import BcflError

MBIT = 1e6 / 8  # bytes/s in one Mbit/s
MESH_MAX_PEERS = 1024  # a complete digraph holds n^2 edges: beyond this use a sparse topology


class TopologyError(BcflError):
    """A topology that cannot be built or does not carry what a plan needs."""


@dataclass(frozen=True)
class BandwidthModel:
    """How access and core bandwidths are drawn; all rates in bytes/s."""

    upload_median: float = 50 * MBIT  # a typical fibre/cable upload
    upload_sigma: float = 0.75  # log-space spread: the 5%..95% range is about 0.3x..3.4x the median
    download_ratio: float = 4.0  # residential access is asymmetric
    link_median: float = 200 * MBIT  # core path between two overlay neighbours
    link_sigma: float = 0.5
    min_rate: float = 1 * MBIT
    max_rate: float = 1000 * MBIT
    base_latency: float = 0.002  # seconds: last-mile and switching
    latency_per_unit: float = 0.05  # seconds per unit of distance in the unit square

    def __post_init__(self) -> None:
        for name in ("upload_median", "link_median", "min_rate", "max_rate", "download_ratio"):
            if not getattr(self, name) > 0:
                raise TopologyError(f"BandwidthModel.{name} must be positive, got {getattr(self, name)}")
        for name in ("upload_sigma", "link_sigma", "base_latency", "latency_per_unit"):
            if getattr(self, name) < 0:
                raise TopologyError(f"BandwidthModel.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_rate > self.max_rate:
            raise TopologyError(f"BandwidthModel.min_rate {self.min_rate} exceeds max_rate {self.max_rate}")


@dataclass(frozen=True)
class Topology:
    """A graph with the link model above; `peers` are the nodes that must receive data."""

    graph: nx.DiGraph
    kind: str
    peers: tuple[int, ...]
    server: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for node in self.peers:
            if node not in self.graph:
                raise TopologyError(f"peer {node} is not a node of the {self.kind} topology")
        if self.server is not None and self.server not in self.graph:
            raise TopologyError(f"server {self.server} is not a node of the {self.kind} topology")

    @property
    def n(self) -> int:
        return len(self.peers)

    def up(self, node: int) -> float:
        return float(self.graph.nodes[node]["up"])

    def down(self, node: int) -> float:
        return float(self.graph.nodes[node]["down"])

    def has_link(self, u: int, v: int) -> bool:
        return bool(self.graph.has_edge(u, v))

    def latency(self, u: int, v: int) -> float:
        return float(self._edge(u, v)["latency"])

    def bandwidth(self, u: int, v: int) -> float:
        return float(self._edge(u, v)["bandwidth"])

    def rate(self, u: int, v: int) -> float:
        """The most u can push to v alone: the narrowest of upload, link and download."""
        return min(self.up(u), self.bandwidth(u, v), self.down(v))

    def out_neighbours(self, u: int) -> Iterator[int]:
        return iter(self.graph.successors(u))

    def _edge(self, u: int, v: int) -> dict[str, float]:
        try:
            return self.graph.edges[u, v]  # type: ignore[no-any-return]
        except KeyError:
            raise TopologyError(f"no link {u}->{v} in the {self.kind} topology") from None

    def with_server(
        self,
        *,
        up: float = 1000 * MBIT,
        down: float = 1000 * MBIT,
        pos: tuple[float, float] = (0.5, 0.5),
        latency: float | None = None,
    ) -> Topology:
        """A copy with a server linked both ways to every peer (a cloud relay in the middle).

        The server's links are limited only by the access links at both ends.
        """
        if self.server is not None:
            raise TopologyError(f"the {self.kind} topology already has server {self.server}")
        graph = self.graph.copy()
        server = max(graph.nodes) + 1
        graph.add_node(server, up=float(up), down=float(down), pos=pos)
        model = self.graph.graph.get("model", BandwidthModel())
        for peer in self.peers:
            lat = _latency(model, pos, graph.nodes[peer]["pos"]) if latency is None else latency
            graph.add_edge(server, peer, latency=lat, bandwidth=math.inf)
            graph.add_edge(peer, server, latency=lat, bandwidth=math.inf)
        return Topology(graph, self.kind + "+server", self.peers, server, self.seed)


# ---------------------------------------------------------------- generators


def _latency(model: BandwidthModel, a: tuple[float, float], b: tuple[float, float]) -> float:
    return model.base_latency + math.dist(a, b) * model.latency_per_unit


def _base_graph(n: int, rng: np.random.Generator, model: BandwidthModel) -> tuple[nx.DiGraph, np.ndarray]:
    if n < 1:
        raise TopologyError(f"a topology needs at least one peer, got n={n}")
    pos = rng.random((n, 2))
    ups = np.clip(
        model.upload_median * np.exp(model.upload_sigma * rng.standard_normal(n)),
        model.min_rate,
        model.max_rate,
    )
    downs = np.clip(ups * model.download_ratio, model.min_rate, model.max_rate * model.download_ratio)
    graph = nx.DiGraph(model=model)
    for i in range(n):
        graph.add_node(i, up=float(ups[i]), down=float(downs[i]), pos=(float(pos[i, 0]), float(pos[i, 1])))
    return graph, pos


def _add_undirected(
    graph: nx.DiGraph, edges: list[tuple[int, int]], rng: np.random.Generator, model: BandwidthModel
) -> None:
    """Both directions of each edge, with its latency and an independent core bandwidth each way."""
    bws = np.clip(
        model.link_median * np.exp(model.link_sigma * rng.standard_normal((len(edges), 2))),
        model.min_rate,
        model.max_rate,
    )
    for k, (u, v) in enumerate(edges):
        lat = _latency(model, graph.nodes[u]["pos"], graph.nodes[v]["pos"])
        graph.add_edge(u, v, latency=lat, bandwidth=float(bws[k, 0]))
        graph.add_edge(v, u, latency=lat, bandwidth=float(bws[k, 1]))


def _connect_components(graph: nx.DiGraph, pos: np.ndarray) -> list[tuple[int, int]]:
    """Edges that join every component to the largest one through its geometrically nearest node."""
    comps = sorted(nx.weakly_connected_components(graph), key=len, reverse=True)
    main = np.array(sorted(comps[0]))
    extra: list[tuple[int, int]] = []
    for comp in comps[1:]:
        members = np.array(sorted(comp))
        d = np.linalg.norm(pos[members][:, None, :] - pos[main][None, :, :], axis=2)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        extra.append((int(members[i]), int(main[j])))
        main = np.concatenate([main, members])
    return extra


def waxman(
    n: int, seed: int, *, mean_degree: float = 6.0, alpha: float = 0.15, model: BandwidthModel | None = None
) -> Topology:
    """Waxman graph: P(link u,v) = beta * exp(-d(u,v) / (alpha * sqrt 2)), beta set for `mean_degree`.

    Built block by block with numpy (networkx's generator is quadratic in Python), then made
    connected by joining each stray component to its nearest node.
    """
    model = model or BandwidthModel()
    rng = np.random.default_rng(seed)
    graph, pos = _base_graph(n, rng, model)
    scale = alpha * math.sqrt(2)
    if n > 1:
        sample = rng.random((20000, 2, 2))
        mean_p = float(np.mean(np.exp(-np.linalg.norm(sample[:, 0] - sample[:, 1], axis=1) / scale)))
        beta = min(1.0, mean_degree / ((n - 1) * mean_p))
    edges: list[tuple[int, int]] = []
    block = 512
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        d = np.linalg.norm(pos[rows][:, None, :] - pos[None, :, :], axis=2)
        p = beta * np.exp(-d / scale)
        hit = rng.random(p.shape) < p
        for i, j in zip(*np.nonzero(hit), strict=True):
            u, v = int(rows[i]), int(j)
            if u < v:
                edges.append((u, v))
    graph.add_edges_from(edges)
    edges += _connect_components(graph, pos) if n > 1 else []
    _add_undirected(graph, edges, rng, model)
    return Topology(graph, "waxman", tuple(range(n)), seed=seed)


def barabasi_albert(n: int, seed: int, *, m: int = 3, model: BandwidthModel | None = None) -> Topology:
    """Barabási-Albert preferential attachment (m links per arriving peer), positions uniform."""
    model = model or BandwidthModel()
    rng = np.random.default_rng(seed)
    graph, _ = _base_graph(n, rng, model)
    if n > 1:
        ba = nx.barabasi_albert_graph(n, min(m, n - 1), seed=int(rng.integers(2**31)))
        _add_undirected(graph, [(int(u), int(v)) for u, v in ba.edges], rng, model)
    return Topology(graph, "barabasi-albert", tuple(range(n)), seed=seed)


def full_mesh(n: int, seed: int, *, model: BandwidthModel | None = None) -> Topology:
    """Every peer linked to every other; only the heterogeneous access links limit bandwidth."""
    if n > MESH_MAX_PEERS:
        raise TopologyError(f"full mesh of {n} peers holds {n * n} links; use at most {MESH_MAX_PEERS}")
    model = model or BandwidthModel()
    rng = np.random.default_rng(seed)
    graph, pos = _base_graph(n, rng, model)
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
    lat = model.base_latency + d * model.latency_per_unit
    graph.add_edges_from(
        (u, v, {"latency": float(lat[u, v]), "bandwidth": math.inf})
        for u in range(n)
        for v in range(n)
        if u != v
    )
    return Topology(graph, "mesh", tuple(range(n)), seed=seed)


def uniform_mesh(
    ups: list[float], downs: list[float], latency: float, *, bandwidth: float = math.inf
) -> Topology:
    """A full mesh with given access rates and one latency everywhere (testbeds, known optima)."""
    if len(ups) != len(downs):
        raise TopologyError(f"{len(ups)} upload rates but {len(downs)} download rates")
    graph = nx.DiGraph()
    for i, (u, d) in enumerate(zip(ups, downs, strict=True)):
        graph.add_node(i, up=float(u), down=float(d), pos=(0.0, 0.0))
    for u in range(len(ups)):
        for v in range(len(ups)):
            if u != v:
                graph.add_edge(u, v, latency=float(latency), bandwidth=float(bandwidth))
    return Topology(graph, "uniform-mesh", tuple(range(len(ups))))


GENERATORS = {"mesh": full_mesh, "waxman": waxman, "barabasi-albert": barabasi_albert}


def generate(kind: str, n: int, seed: int, model: BandwidthModel | None = None) -> Topology:
    """One of `GENERATORS` by name."""
    try:
        gen = GENERATORS[kind]
    except KeyError:
        raise TopologyError(f"unknown topology {kind!r}; choose one of {sorted(GENERATORS)}") from None
    return gen(n, seed, model=model)  # type: ignore[operator]
