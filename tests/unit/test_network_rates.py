"""The broadcast rate program on graphs with known optima, and the swarm policy it guides."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from bcfl.network.bound import lower_bound
from bcfl.network.paths import RATES_POLICY, SwarmPolicy, optimised_choice, swarm_plan
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
    with pytest.raises(PlanError, match="must be 'relay', 'deadline' or 'rates'"):
        SwarmPolicy("widest")


@pytest.mark.parametrize("kind", ["waxman", "barabasi-albert"])
def test_the_rates_policy_delivers_everything_and_joins_the_portfolio(kind: str) -> None:
    topo = generate(kind, 20, seed=4)
    problem = broadcast(3, 2_000_000, topo.peers)
    assert rates_fit(topo, problem)
    plan = swarm_plan(topo, problem, chunks=16, policy=RATES_POLICY)
    plan.validate()
    result = simulate(topo, plan)
    assert set(result.completion) == set(topo.peers)
    assert math.isfinite(result.finish)
    assert result.finish >= lower_bound(topo, problem).value * (1 - 1e-9)
    _, chosen, candidates = optimised_choice(topo, problem, chunks=8)
    assert RATES_POLICY.label in candidates
    assert candidates[chosen.label] == min(candidates.values())


def test_a_solver_out_of_time_drops_the_rates_policy_not_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    topo = generate("waxman", 20, seed=4)
    problem = broadcast(3, 1_000_000, topo.peers)
    with pytest.raises(PlanError, match="Time limit reached"):
        broadcast_rates(topo, problem, time_limit=0.0)
    monkeypatch.setattr(broadcast_rates, "__kwdefaults__", {"time_limit": 0.0})
    plan, chosen, candidates = optimised_choice(topo, problem, chunks=8)
    assert candidates[RATES_POLICY.label] == math.inf
    assert chosen != RATES_POLICY
    assert set(simulate(topo, plan).completion) == set(topo.peers)
