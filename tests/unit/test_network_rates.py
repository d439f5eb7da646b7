"""The broadcast rate program on graphs with known optima, and the swarm policy it guides."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from bcfl.network.bound import lower_bound
from bcfl.network.paths import RATES_POLICIES, SwarmPolicy, optimised_choice, swarm_plan
from bcfl.network.plan import PlanError, allgather, broadcast
from bcfl.network.rates import broadcast_rates, rates_fit
from bcfl.network.simulator import simulate
from bcfl.network.topology import Topology, generate

MB = 1e6
FAST = 1e12


def _graph(ups: dict[int, float], links: list[tuple[int, int]], bandwidth: float = FAST) -> Topology:
    g = nx.DiGraph()
    for node, up in ups.items():
        g.add_node(node, up=up, down=FAST, pos=(0.0, 0.0))
    for u, v in links:
        g.add_edge(u, v, latency=0.01, bandwidth=bandwidth)
        g.add_edge(v, u, latency=0.01, bandwidth=bandwidth)
    return Topology(g, "hand", tuple(ups))


def test_a_triangle_shares_the_source_and_the_relays_uploads() -> None:
    # s (10 MB/s up) feeds a and b; each relays to the other at most 4 MB/s. Every receiver
    # can get 9 MB/s: 5 straight from s and 4 relayed (the total upload 18 split over two).
    topo = _graph({0: 10 * MB, 1: 4 * MB, 2: 4 * MB}, [(0, 1), (0, 2), (1, 2)])
    rates = broadcast_rates(topo, broadcast(0, 1_000_000, topo.peers))
    assert rates.rate == pytest.approx(9 * MB, rel=1e-6)
    assert sum(z for (u, _), z in rates.edges.items() if u == 0) <= 10 * MB * (1 + 1e-9)


def test_a_leaf_behind_a_slow_hub_gets_the_hubs_upload() -> None:
    topo = _graph({0: 50 * MB, 1: 3 * MB, 2: 50 * MB}, [(0, 1), (1, 2)])
    rates = broadcast_rates(topo, broadcast(0, 1_000_000, topo.peers))
    assert rates.rate == pytest.approx(3 * MB, rel=1e-6)
    assert rates.edges[(1, 2)] == pytest.approx(3 * MB, rel=1e-6)


def test_edge_bandwidth_caps_the_rate() -> None:
    topo = _graph({0: 50 * MB, 1: 50 * MB}, [(0, 1)], bandwidth=2 * MB)
    assert broadcast_rates(topo, broadcast(0, 10, topo.peers)).rate == pytest.approx(2 * MB, rel=1e-6)


def test_the_program_needs_one_source() -> None:
    topo = generate("waxman", 6, seed=1)
    problem = allgather(topo.peers, 1000)
    assert not rates_fit(topo, problem)
    with pytest.raises(PlanError, match="one source, the problem has 6"):
        broadcast_rates(topo, problem)
    with pytest.raises(PlanError, match=r"swarm order must be one of .*'widest'"):
        SwarmPolicy("widest")
    with pytest.raises(PlanError, match="download must be 'slots' or 'flows', got 'all'"):
        SwarmPolicy("rates", download="all")


@pytest.mark.parametrize("kind", ["waxman", "barabasi-albert"])
def test_the_rates_policies_deliver_everything_and_join_the_portfolio(kind: str) -> None:
    topo = generate(kind, 20, seed=4)
    problem = broadcast(3, 2_000_000, topo.peers)
    assert rates_fit(topo, problem)
    rates = broadcast_rates(topo, problem).edges
    for policy in RATES_POLICIES:
        plan = swarm_plan(topo, problem, chunks=16, policy=policy, rates=rates)
        plan.validate()
        result = simulate(topo, plan)
        assert set(result.completion) == set(topo.peers)
        assert math.isfinite(result.finish)
        assert result.finish >= lower_bound(topo, problem).value * (1 - 1e-9)
    _, chosen, candidates = optimised_choice(topo, problem, chunks=8)
    assert {p.label for p in RATES_POLICIES} <= set(candidates)
    assert candidates[chosen.label] == min(candidates.values())


def _leaf_behind_a_hub() -> Topology:
    # hub 0 (8 MB/s up) feeds a slow leaf 1 (1 MB/s down, no other neighbour) and two fast
    # peers 2, 3 that also relay to each other. The leaf's receiver bound, 0.01 s + 1 MB / 1 MB/s,
    # is the optimum: the hub spares 1 MB/s for it from the start and the rest for 2 and 3.
    g = nx.DiGraph()
    for node, up in {0: 8 * MB, 1: 0.25 * MB, 2: 4 * MB, 3: 4 * MB}.items():
        g.add_node(node, up=up, down=4 * up, pos=(0.0, 0.0))
    for u, v in [(0, 1), (0, 2), (0, 3), (2, 3)]:
        g.add_edge(u, v, latency=0.01, bandwidth=FAST)
        g.add_edge(v, u, latency=0.01, bandwidth=FAST)
    return Topology(g, "hand", (0, 1, 2, 3))


def test_timing_flows_by_the_receivers_flows_reaches_the_optimum_behind_a_hub() -> None:
    topo = _leaf_behind_a_hub()
    problem = broadcast(0, 1_000_000, topo.peers)
    assert lower_bound(topo, problem).value == pytest.approx(1.01, rel=1e-9)
    flows, slots = SwarmPolicy("rates", download="flows"), SwarmPolicy("rates")
    by_flows = simulate(topo, swarm_plan(topo, problem, chunks=16, policy=flows))
    by_slots = simulate(topo, swarm_plan(topo, problem, chunks=16, policy=slots))
    assert by_flows.finish == pytest.approx(1.01, rel=1e-9)
    # timed at half its speed (two download slots), the leaf's lone flow leaves it idle between chunks
    assert by_slots.completion[1] > by_flows.completion[1] + 0.01


def test_a_solver_out_of_time_drops_the_rates_policy_not_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    topo = generate("waxman", 20, seed=4)
    problem = broadcast(3, 1_000_000, topo.peers)
    with pytest.raises(PlanError, match="Time limit reached"):
        broadcast_rates(topo, problem, time_limit=0.0)
    monkeypatch.setattr(broadcast_rates, "__kwdefaults__", {"time_limit": 0.0})
    plan, chosen, candidates = optimised_choice(topo, problem, chunks=8)
    assert all(candidates[p.label] == math.inf for p in RATES_POLICIES)
    assert chosen not in RATES_POLICIES
    assert set(simulate(topo, plan).completion) == set(topo.peers)
