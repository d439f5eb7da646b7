"""Dissemination plans: star through a server, naive all-to-all, and optimised swarming (pure).

- `star_plan`: each source uploads its object to the server, which sends it to every receiver
  (chunked, so the server forwards while it still receives). The server runs `SERVER_SLOTS`
  flows at once, as a web or IPFS gateway caps concurrent connections.
- `naive_plan`: every receiver fetches every object whole from its source, over the
  shortest-latency route when the source is not a neighbour (each hop a separate store-and-forward
  copy; no peer serves another peer's fetch).
- `swarm_plan`: chunked pipelined swarming planned on the measured link model. A node with a
  free upload slot sends, to a neighbour that has a free download slot and lacks a chunk it
  holds, the rarest such chunk. Which neighbour is the `SwarmPolicy`'s choice: the largest
  upload first (`relay`: fast nodes become relays early) or, for every sender but the source,
  the receiver furthest behind the lower bound first (`deadline`: slow downloaders are fed from
  the start instead of last), or the neighbour whose edge is furthest behind its steady-state
  rate from `bcfl.network.rates` (`rates`: each sender splits its upload as the broadcast
  program says, so a hub's few slow leaves are not starved by its many fast ones; `rates-deadline`
  also serves first any receiver about to miss the bound). Upload and download slots per node
  follow its capacity relative to its neighbours', so a fast uploader feeds several slower
  downloaders at once; the policy's `download` says whether a flow is timed as if its receiver's
  download were shared by all its slots or by the flows it has (closer to the simulator). Every
  peer relays what it already holds; the order of decisions (a time-ordered event loop on the
  planner's model) is the plan order.
- `optimised_plan`: a small portfolio of swarm policies (chunk sizes x orders), each simulated
  on the same link model, the fastest kept: the planner evaluates its candidates on the model it
  was given, as a peer with measured links would.
- `widest_path_tree` and `shortest_time_tree`: single-tree building blocks (pure graph
  algorithms with known optima, tested on small graphs), usable as plans with `tree_plan`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import networkx as nx

from bcfl.network.plan import ChunkKey, Plan, PlanError, Problem, Transfer
from bcfl.network.topology import Topology

log = logging.getLogger(__name__)

SERVER_SLOTS = 64
NAIVE_SLOTS = 64
MAX_SLOTS = 16
MIN_DOWN_SLOTS = 2  # a receiver takes chunks from two senders at once: one slow sender cannot stall it


def _chunks(problem: Problem, chunks: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(chunks, int):
        return {o: max(1, min(chunks, s.size)) for o, s in problem.objects.items()}
    return {o: max(1, min(chunks.get(o, 1), s.size)) for o, s in problem.objects.items()}


# ---------------------------------------------------------------- baselines


def star_plan(topo: Topology, problem: Problem, *, chunks: int = 16, slots: int = SERVER_SLOTS) -> Plan:
    """Sources -> server -> every receiver; needs `topo.with_server()`."""
    server = topo.server
    if server is None:
        raise PlanError(f"star plan needs a server in the {topo.kind} topology (use with_server())")
    k = _chunks(problem, chunks)
    transfers: list[Transfer] = []
    for obj, spec in problem.objects.items():
        if spec.source != server:
            transfers += [Transfer(spec.source, server, obj, c) for c in range(k[obj])]
    # chunk-major: every receiver is served over its own connection, all at once (up to `slots`)
    for obj in problem.objects:
        for c in range(k[obj]):
            transfers += [Transfer(server, r, obj, c) for r in problem.receivers if obj in problem.needs(r)]
    return Plan("star", problem, k, tuple(transfers), 1, {server: slots})


def naive_plan(topo: Topology, problem: Problem, *, slots: int = NAIVE_SLOTS) -> Plan:
    """Every receiver fetches each object whole from its source (shortest-latency route)."""
    transfers: list[Transfer] = []
    for obj, spec in problem.objects.items():
        _, paths = nx.single_source_dijkstra(topo.graph, spec.source, weight="latency")
        for r in problem.receivers:
            if r == spec.source:
                continue
            path = paths.get(r)
            if path is None:
                raise PlanError(f"receiver {r} is unreachable from source {spec.source}")
            transfers += [Transfer(a, b, obj, 0) for a, b in itertools.pairwise(path)]
    # receivers fetch all at once: interleave so every source serves its fetchers concurrently
    return Plan("naive", problem, {o: 1 for o in problem.objects}, tuple(transfers), slots)


# ---------------------------------------------------------------- single trees


def widest_path_tree(topo: Topology, root: int) -> dict[int, int]:
    """Parent map of a maximum-bottleneck (widest path) tree from `root`, by `Topology.rate`.

    A modified Dijkstra (maximise the path minimum): each node's path from the root has the
    largest bottleneck rate over all paths; ties go to lower latency.
    """
    best: dict[int, tuple[float, float]] = {root: (math.inf, 0.0)}
    parent: dict[int, int] = {}
    heap: list[tuple[float, float, int]] = [(-math.inf, 0.0, root)]
    done: set[int] = set()
    while heap:
        neg_width, lat, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v in topo.out_neighbours(u):
            if v in done:
                continue
            cand = (min(-neg_width, topo.rate(u, v)), lat + topo.latency(u, v))
            old = best.get(v)
            if old is None or cand[0] > old[0] or (cand[0] == old[0] and cand[1] < old[1]):
                best[v] = cand
                parent[v] = u
                heapq.heappush(heap, (-cand[0], cand[1], v))
    return parent


def shortest_time_tree(topo: Topology, root: int, size: int) -> dict[int, int]:
    """Parent map minimising each node's store-and-forward arrival time of `size` bytes alone:
    Dijkstra with edge weight latency(u, v) + size / rate(u, v)."""
    weight: dict[tuple[int, int], float] = {}
    for u, v in topo.graph.edges:
        weight[(u, v)] = topo.latency(u, v) + size / topo.rate(u, v)
    _, paths = nx.single_source_dijkstra(topo.graph, root, weight=lambda u, v, _: weight[(u, v)])
    return {v: p[-2] for v, p in paths.items() if len(p) > 1}


def tree_plan(
    problem: Problem, parents: Mapping[str, Mapping[int, int]], *, chunks: int = 1, strategy: str = "tree"
) -> Plan:
    """Each object flows down its tree, chunk by chunk (pipelined), children in BFS order."""
    k = _chunks(problem, chunks)
    transfers: list[Transfer] = []
    for obj, spec in problem.objects.items():
        children: dict[int, list[int]] = defaultdict(list)
        for child, par in sorted(parents[obj].items()):
            children[par].append(child)
        order, queue = [], [spec.source]
        while queue:
            u = queue.pop(0)
            for c in children[u]:
                order.append((u, c))
                queue.append(c)
        for c in range(k[obj]):
            transfers += [Transfer(u, v, obj, c) for u, v in order]
    return Plan(strategy, problem, k, tuple(transfers))


# ---------------------------------------------------------------- optimised swarming


def slot_counts(topo: Topology) -> tuple[dict[int, int], dict[int, int]]:
    """Upload and download slots per node from its capacity relative to its neighbours'."""
    up_slots: dict[int, int] = {}
    down_slots: dict[int, int] = {}
    nodes = list(topo.graph.nodes)
    median_up = statistics.median(topo.up(u) for u in nodes)
    median_down = statistics.median(topo.down(u) for u in nodes)
    for u in nodes:
        up_slots[u] = max(
            1, min(MAX_SLOTS, round(topo.up(u) / (median_down / max(1, round(median_down / median_up)))))
        )
        down_slots[u] = max(MIN_DOWN_SLOTS, min(MAX_SLOTS, round(topo.down(u) / median_up)))
    return up_slots, down_slots


PORTFOLIO_MAX_PEERS = 1024  # above this the planner builds one candidate (each costs a simulation)


SWARM_ORDERS = ("relay", "deadline", "rates", "rates-deadline")


@dataclass(frozen=True)
class SwarmPolicy:
    """How a swarming sender picks its next receiver.

    `relay`: the neighbour with the largest upload first (fast nodes become relays early).
    `deadline`: sources still pick by relay value; every other sender first serves the neighbour
    whose slack is smallest when it is under `margin` x the lower bound B, where
    slack(v) = B - now - (bytes v still lacks) / (v's download capacity), i.e. the receivers
    that would miss the bound if not fed now; the rest in relay order.
    `rates`: among neighbours with a positive steady-state rate z(u, v) (`broadcast_rates`),
    the one with the largest deficit z(u, v) x now - bytes sent so far; the rest in relay order.
    `rates-deadline`: `rates`, except that every sender (sources too) first serves the neighbour
    with the smallest slack among those under `margin` x B (slack as for `deadline`).

    `download` is how the planner times a flow at its receiver v: `slots` gives it v's download
    divided by v's download slots (as if v were always full); `flows` divides it by the flows
    already planned into v at that moment plus this one, as the simulator shares a download.
    With `slots`, a slow receiver's lone flow is timed at half its real speed, so the sender's
    next chunks are planned late and the receiver idles between them.
    """

    order: str = "relay"
    chunks_factor: int = 1  # chunks = factor x the caller's chunk count
    margin: float = 0.0
    download: str = "slots"

    def __post_init__(self) -> None:
        if self.order not in SWARM_ORDERS:
            raise PlanError(f"swarm order must be one of {SWARM_ORDERS}, got {self.order!r}")
        if self.chunks_factor < 1 or self.margin < 0:
            raise PlanError(f"swarm policy needs chunks_factor >= 1 and margin >= 0, got {self}")
        if self.download not in ("slots", "flows"):
            raise PlanError(f"swarm policy download must be 'slots' or 'flows', got {self.download!r}")

    @property
    def uses_rates(self) -> bool:
        return self.order in ("rates", "rates-deadline")

    @property
    def label(self) -> str:
        extra = f", margin {self.margin:g}" if self.order in ("deadline", "rates-deadline") else ""
        timing = ", by flows" if self.download == "flows" else ""
        return f"{self.order} x{self.chunks_factor}{extra}{timing}"


PORTFOLIO = (
    SwarmPolicy("relay", 1),
    SwarmPolicy("relay", 2),
    SwarmPolicy("deadline", 2, 0.0),
    SwarmPolicy("deadline", 2, 0.3),
    SwarmPolicy("deadline", 2, 1.0),  # every receiver by slack: the one furthest behind first
)
# For whole objects (a node moves each object in one piece): the same orders, never finer, so the
# plan the portfolio picks and simulates is the one the peers carry out.
WHOLE_OBJECT_PORTFOLIO = tuple(dict.fromkeys(replace(p, chunks_factor=1) for p in PORTFOLIO))
# join the portfolio where `rates_fit` (one source, small graph); the program is solved once for both
RATES_POLICIES = (
    SwarmPolicy("rates", 4, download="flows"),
    SwarmPolicy("rates-deadline", 4, 0.0, download="flows"),
)


def optimised_plan(
    topo: Topology, problem: Problem, *, chunks: int = 32, policies: Sequence[SwarmPolicy] | None = None
) -> Plan:
    """Chunked swarming planned on the link model: every policy in `policies` (by default
    `PORTFOLIO`, plus `RATES_POLICIES` where the broadcast program is small enough, up to
    `PORTFOLIO_MAX_PEERS` peers, else relay order alone) builds a plan, each is simulated on the
    same model, and the fastest is kept (the first on a tie)."""
    return optimised_choice(topo, problem, chunks=chunks, policies=policies)[0]


def whole_object_plan(topo: Topology, problem: Problem) -> Plan:
    """The optimised plan when every object moves in one piece (one chunk, relays forward
    whole objects): the portfolio's policies at one chunk only, so a node's routes follow the
    plan that was simulated."""
    return optimised_plan(topo, problem, chunks=1, policies=WHOLE_OBJECT_PORTFOLIO)


def optimised_choice(
    topo: Topology, problem: Problem, *, chunks: int = 32, policies: Sequence[SwarmPolicy] | None = None
) -> tuple[Plan, SwarmPolicy, dict[str, float]]:
    """`optimised_plan`, with the winning policy and every candidate's simulated finish time."""
    from bcfl.network.rates import rates_fit
    from bcfl.network.simulator import simulate

    if policies is None:
        if len(problem.receivers) > PORTFOLIO_MAX_PEERS:
            policies = (SwarmPolicy(),)
        else:
            policies = (*PORTFOLIO, *RATES_POLICIES) if rates_fit(topo, problem) else PORTFOLIO
    if not policies:
        raise PlanError("optimised plan needs at least one swarm policy")
    bound = None
    if any(p.order in ("deadline", "rates-deadline") for p in policies):
        from bcfl.network.bound import lower_bound

        bound = lower_bound(topo, problem).value
    rates: Mapping[tuple[int, int], float] | None = None
    rates_failed: str | None = None
    if any(p.uses_rates for p in policies):
        from bcfl.network.rates import broadcast_rates

        try:  # one program for every policy that follows it
            rates = broadcast_rates(topo, problem).edges
        except PlanError as exc:
            if all(p.uses_rates for p in policies):
                raise
            rates_failed = str(exc)
    best: tuple[float, Plan, SwarmPolicy] | None = None
    finishes: dict[str, float] = {}
    for policy in policies:
        if policy.uses_rates and rates is None:
            log.info("planner: %s left out: %s", policy.label, rates_failed)  # e.g. the solver's time ran out
            finishes[policy.label] = math.inf
            continue
        plan = swarm_plan(
            topo, problem, chunks=chunks * policy.chunks_factor, policy=policy, bound=bound, rates=rates
        )
        finish = simulate(topo, plan).finish if len(policies) > 1 else 0.0
        finishes[policy.label] = finish
        if best is None or finish < best[0]:
            best = (finish, plan, policy)
    assert best is not None
    return best[1], best[2], finishes


def swarm_plan(
    topo: Topology,
    problem: Problem,
    *,
    chunks: int = 32,
    policy: SwarmPolicy = SwarmPolicy(),
    bound: float | None = None,
    rates: Mapping[tuple[int, int], float] | None = None,
) -> Plan:
    """One swarming plan under `policy` (see the module docstring); `bound` is B for `deadline`
    and `rates` the edge rates for `rates` (each computed when not given)."""
    k = _chunks(problem, chunks)
    keys: list[ChunkKey] = [(o, c) for o in problem.objects for c in range(k[o])]
    bit = {key: i for i, key in enumerate(keys)}  # chunk sets are int bitmasks
    sizes = [0] * len(keys)
    for o, spec in problem.objects.items():
        base = -(-spec.size // k[o])
        for c in range(k[o]):
            sizes[bit[(o, c)]] = min(base, spec.size - c * base)
    up_slots, down_slots = slot_counts(topo)
    sources = {spec.source for spec in problem.objects.values()}
    deadline = policy.order == "deadline"
    urgent = policy.order == "rates-deadline"
    by_rate = policy.order in ("rates", "rates-deadline")
    by_flows = policy.download == "flows"
    if (deadline or urgent) and bound is None:
        from bcfl.network.bound import lower_bound

        bound = lower_bound(topo, problem).value
    if by_rate and rates is None:
        from bcfl.network.rates import broadcast_rates

        rates = broadcast_rates(topo, problem).edges
    edge_rate = rates or {}
    sent: dict[tuple[int, int], float] = defaultdict(float)  # bytes planned per edge so far
    horizon = bound or 0.0
    mean_chunk = statistics.fmean(sizes)
    # what each node can take in per second: its download, or what its neighbours can push
    in_rate = {
        v: min(topo.down(v), sum(min(topo.bandwidth(u, v), topo.up(u)) for u in topo.graph.predecessors(v)))
        for v in topo.graph.nodes
    }

    have: dict[int, int] = defaultdict(int)  # chunks a node holds by the current time
    arriving: dict[int, list[tuple[float, int]]] = defaultdict(list)  # (time held, chunk index)
    pending: dict[int, int] = defaultdict(int)  # chunks a receiver lacks and is not being sent
    holders = [1] * len(keys)
    for obj, spec in problem.objects.items():
        for c in range(k[obj]):
            have[spec.source] |= 1 << bit[(obj, c)]
    for r in problem.receivers:
        for o in problem.needs(r):
            for c in range(k[o]):
                pending[r] |= 1 << bit[(o, c)]
    up_free: dict[int, list[float]] = {u: [0.0] * up_slots[u] for u in topo.graph.nodes}
    down_free: dict[int, list[float]] = {v: [0.0] * down_slots[v] for v in topo.graph.nodes}
    # neighbours by relay value: upload capacity first, then latency; finished ones are pruned
    prefs: dict[int, list[int]] = {}
    for u in topo.graph.nodes:
        rank = {v: (-topo.up(v), topo.latency(u, v)) for v in topo.out_neighbours(u)}
        prefs[u] = sorted(rank, key=rank.__getitem__)
    remaining = sum(m.bit_count() for m in pending.values())
    transfers: list[Transfer] = []
    heap: list[tuple[float, int]] = [(0.0, s) for s in sources]
    heapq.heapify(heap)
    queued: set[tuple[float, int]] = set(heap)

    def wake(t: float, u: int) -> None:
        if (t, u) not in queued:
            queued.add((t, u))
            heapq.heappush(heap, (t, u))

    while heap and remaining:
        t, u = heapq.heappop(heap)
        queued.discard((t, u))
        slot_t = min(up_free[u])
        if slot_t > t:
            wake(slot_t, u)
            continue
        inbox = arriving[u]
        while inbox and inbox[0][0] <= t:
            have[u] |= 1 << heapq.heappop(inbox)[1]
        mine = have[u]
        if not mine:
            continue
        by_slack = deadline and u not in sources
        chosen: int | None = None
        chosen_key: tuple[int, float] = (3, 0.0)
        blocked_until = math.inf
        finished = False
        for position, v in enumerate(prefs[u]):
            wanted = pending[v] & mine
            if not wanted:
                finished = finished or not pending[v]
                continue
            free_at = min(down_free[v])
            if free_at > t:
                blocked_until = min(blocked_until, free_at)
                continue
            if by_rate:
                z = edge_rate.get((u, v), 0.0)
                key = (1, sent[(u, v)] - z * t) if z > 0 else (2, float(position))
                if urgent:  # a receiver about to miss the bound comes first, whatever its rate
                    slack = horizon - t - pending[v].bit_count() * mean_chunk / in_rate[v]
                    if slack < policy.margin * horizon:
                        key = (0, slack)
                if key < chosen_key:
                    chosen, chosen_key = v, key
                continue
            if not by_slack:
                chosen = v
                break
            slack = horizon - t - pending[v].bit_count() * mean_chunk / in_rate[v]
            key = (0, slack) if slack < policy.margin * horizon else (1, float(position))
            if key < chosen_key:
                chosen, chosen_key = v, key
        if finished:
            prefs[u] = [v for v in prefs[u] if pending[v]]
        if chosen is None:
            if blocked_until < math.inf:
                wake(blocked_until, u)
            continue  # otherwise the next chunk to arrive at u wakes it
        v = chosen
        wanted = pending[v] & mine
        i, best_key = -1, (math.inf, 0)
        while wanted:  # rarest chunk first, then the earliest in the object
            low = wanted & -wanted
            j = low.bit_length() - 1
            if (holders[j], j) < best_key:
                i, best_key = j, (holders[j], j)
            wanted ^= low
        # v's download is shared by its slots, or (`flows`) by the flows it has, as the simulator does
        into_v = 1 + sum(1 for f in down_free[v] if f > t) if by_flows else down_slots[v]
        rate = min(topo.bandwidth(u, v), topo.up(u) / up_slots[u], topo.down(v) / into_v)
        end = t + sizes[i] / rate
        arrive = end + topo.latency(u, v)
        up_free[u][up_free[u].index(slot_t)] = end
        free_v = down_free[v]
        free_v[free_v.index(min(free_v))] = end
        pending[v] &= ~(1 << i)
        heapq.heappush(arriving[v], (arrive, i))
        holders[i] += 1
        remaining -= 1
        transfers.append(Transfer(u, v, keys[i][0], keys[i][1]))
        sent[(u, v)] += sizes[i]
        wake(min(up_free[u]), u)
        wake(arrive, v)
    if remaining:
        raise PlanError(
            f"optimised plan left {remaining} chunk deliveries unplanned (disconnected topology?)"
        )
    return Plan("optimised", problem, k, tuple(transfers), 1, up_slots)


STRATEGIES = ("star", "naive", "optimised")


def plan_for(strategy: str, topo: Topology, problem: Problem, *, chunks: int = 32) -> Plan:
    """A plan by strategy name; `star` needs a topology with a server."""
    if strategy == "star":
        return star_plan(topo, problem, chunks=chunks)
    if strategy == "naive":
        return naive_plan(topo, problem)
    if strategy == "optimised":
        return optimised_plan(topo, problem, chunks=chunks)
    raise PlanError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
