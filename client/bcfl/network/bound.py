"""A lower bound on the time until every receiver holds every object (pure).

Model (the one `bcfl.network.simulator` runs): node u uploads at most `up(u)` bytes/s in total
and downloads at most `down(v)`; a byte sent on edge (u, v) is held by v `latency(u, v)` seconds
after it leaves u; at most `bandwidth(u, v)` bytes/s cross an edge; a node can only send bytes
it holds. Let d(s, v) be the shortest-latency path length from s to v.

Three bounds, each valid for every plan, including fluid (byte-level cut-through) ones:

1. Source. All bytes B_s of the objects sourced at s that some other node needs must leave s,
   at rate at most C_out(s) = min(up(s), sum over out-neighbours v of min(bandwidth(s, v), down(v))).
   The last leaves at t >= B_s / C_out(s) and is held by nobody else before t + (s's smallest
   out-edge latency).
2. Receiver. v must take in N_v bytes (the objects it does not source); all senders together
   push them at rate at most C_in(v) = min(down(v), sum over in-neighbours u of
   min(bandwidth(u, v), up(u))). An in-neighbour
   u sends nothing before it holds something, at d(s, u) for the nearest source s, and what it
   sends lands at least the smallest in-edge latency l_v later. So with
   a_v = min over in-neighbours u of d(s, u), T >= a_v + N_v / C_in(v) + l_v; and for each object
   o alone (u's distance taken from o's source), T >= a_v(o) + size(o) / C_in(v) + l_v.
3. Cut over all uploads. The bytes received in total, sum of N_v, all cross some node's upload.
   A node that sources nothing holds nothing before t_u = min over sources s of d(s, u), so by
   time T it has uploaded at most C_out(u) * max(0, T - t_u). The smallest T at which
   sum_u C_out(u) * max(0, T - t_u) reaches sum_v N_v is a bound (the left side only grows).

4. Max-flow (small graphs only, `MAXFLOW_WORK`). Bytes reach v from s_o at a rate of at most
   the maximum s_o -> v flow F(v) with edge capacities min(bandwidth(u, w), up(u), down(w)) (each
   a true cap on that edge's rate, so F(v) is at least the real max flow): T >= a_v(o) + size(o) / F(v)
   + l_v, with a_v(o) and l_v as in 2. This is what catches a narrow link in the middle of a path.

The reported bound is the largest of them; each part is kept so a report can say which binds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from bcfl.network.plan import PlanError, Problem
from bcfl.network.topology import Topology

MAXFLOW_WORK = 100_000  # receivers x edges above which the per-receiver max-flows are skipped


@dataclass(frozen=True)
class Bound:
    value: float
    source: float
    receiver: float
    cut: float
    flow: float = 0.0

    @property
    def binding(self) -> str:
        parts = {"source": self.source, "receiver": self.receiver, "cut": self.cut, "flow": self.flow}
        return max(parts, key=lambda k: parts[k])


def _out_capacity(topo: Topology, u: int) -> float:
    """What u can push per second in total: its upload, or what its neighbours can take in."""
    edges = sum(min(topo.bandwidth(u, v), topo.down(v)) for v in topo.out_neighbours(u))
    return min(topo.up(u), edges)


def _in_capacity(topo: Topology, v: int) -> float:
    """What v can take in per second: its download, or what its neighbours can push to it."""
    edges = sum(min(topo.bandwidth(u, v), topo.up(u)) for u in topo.graph.predecessors(v))
    return min(topo.down(v), edges)


def lower_bound(topo: Topology, problem: Problem) -> Bound:
    """The largest of the source, receiver and cut bounds described in the module docstring."""
    sources = sorted({spec.source for spec in problem.objects.values()})
    dist: dict[int, dict[int, float]] = {
        s: nx.single_source_dijkstra_path_length(topo.graph, s, weight="latency") for s in sources
    }
    nearest = nx.multi_source_dijkstra_path_length(topo.graph, set(sources), weight="latency")

    # 1. source
    source_bound = 0.0
    for s in sources:
        sent = sum(
            spec.size
            for spec in problem.objects.values()
            if spec.source == s and any(r != s for r in problem.receivers)
        )
        if sent == 0:
            continue
        cap = _out_capacity(topo, s)
        lats = [topo.latency(s, v) for v in topo.out_neighbours(s)]
        if cap <= 0 or not lats:
            raise PlanError(f"source {s} has no outgoing capacity in the {topo.kind} topology")
        source_bound = max(source_bound, sent / cap + min(lats))

    flow_graph: nx.DiGraph | None = None
    if len(problem.receivers) * topo.graph.number_of_edges() <= MAXFLOW_WORK:
        flow_graph = nx.DiGraph()
        for u, w in topo.graph.edges:
            flow_graph.add_edge(u, w, capacity=min(topo.bandwidth(u, w), topo.up(u), topo.down(w)))
    flow_bound = 0.0

    # 2. receiver: a byte reaches v no earlier than its sender u held anything, plus the edge latency
    receiver_bound = 0.0
    total_needed = 0
    for v in problem.receivers:
        needed = problem.needs(v)
        if not needed:
            continue
        cap = _in_capacity(topo, v)
        senders = list(topo.graph.predecessors(v))
        if cap <= 0 or not senders:
            raise PlanError(f"receiver {v} has no incoming capacity in the {topo.kind} topology")
        hop = min(topo.latency(u, v) for u in senders)
        arrivals = []
        for obj in needed:
            spec = problem.objects[obj]
            first = min(dist[spec.source].get(u, math.inf) for u in senders) + hop
            if math.isinf(first):
                raise PlanError(f"receiver {v} cannot be reached from source {spec.source}")
            arrivals.append(first)
            receiver_bound = max(receiver_bound, first + spec.size / cap)
            if flow_graph is not None:
                flow = nx.maximum_flow_value(flow_graph, spec.source, v)
                if flow > 0:
                    flow_bound = max(flow_bound, first + spec.size / flow)
        n_bytes = sum(problem.objects[o].size for o in needed)
        total_needed += n_bytes
        receiver_bound = max(receiver_bound, min(arrivals) + n_bytes / cap)

    # 3. cut: smallest T with sum_u C_u * max(0, T - t_u) >= total_needed
    starts = sorted(
        (0.0 if u in dist else nearest.get(u, math.inf), _out_capacity(topo, u)) for u in topo.graph.nodes
    )
    cut_bound = 0.0
    if total_needed > 0:
        rate = 0.0  # sum of capacities of nodes already uploading
        volume = 0.0  # bytes uploadable by time t
        t = starts[0][0]
        cut_bound = math.inf
        for i, (t_u, cap) in enumerate(starts):
            if math.isinf(t_u):
                break
            volume += rate * (t_u - t)
            t = t_u
            rate += cap
            next_t = starts[i + 1][0] if i + 1 < len(starts) else math.inf
            if rate > 0 and volume + rate * (next_t - t) >= total_needed:
                cut_bound = t + (total_needed - volume) / rate
                break
    value = max(source_bound, receiver_bound, cut_bound, flow_bound)
    return Bound(value, source_bound, receiver_bound, cut_bound, flow_bound)
