"""Path algorithms, plans, the lower bound and the simulator on graphs with known answers."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from bcfl.network.bound import lower_bound
from bcfl.network.paths import (
    naive_plan,
    optimised_plan,
    shortest_time_tree,
    star_plan,
    tree_plan,
    whole_object_plan,
    widest_path_tree,
)
from bcfl.network.plan import Plan, PlanError, Transfer, allgather, broadcast, plan_from_dict, plan_to_dict
from bcfl.network.simulator import simulate
from bcfl.network.topology import Topology, TopologyError, generate, uniform_mesh

MB = 1e6


def line_graph(rates: list[float], latency: float = 0.01) -> Topology:
    """0 -> 1 -> ... -> n with the given edge bandwidths; access links far faster."""
    g = nx.DiGraph()
    for i in range(len(rates) + 1):
        g.add_node(i, up=1e12, down=1e12, pos=(0.0, 0.0))
    for i, r in enumerate(rates):
        g.add_edge(i, i + 1, latency=latency, bandwidth=r)
        g.add_edge(i + 1, i, latency=latency, bandwidth=r)
    return Topology(g, "line", tuple(range(len(rates) + 1)))


def test_single_link_time_is_size_over_bandwidth_plus_latency() -> None:
    topo = uniform_mesh([2 * MB, 1e12], [1e12, 1e12], 0.05)
    plan = Plan("one", broadcast(0, 4_000_000, (1,)), {"aggregate": 1}, (Transfer(0, 1, "aggregate", 0),))
    result = simulate(topo, plan)
    assert result.finish == pytest.approx(4_000_000 / (2 * MB) + 0.05)
    assert result.bytes_sent == 4_000_000


def test_chunked_single_link_pipelines_to_the_same_time() -> None:
    topo = uniform_mesh([2 * MB, 1e12], [1e12, 1e12], 0.05)
    problem = broadcast(0, 4_000_000, (1,))
    plan = tree_plan(problem, {"aggregate": {1: 0}}, chunks=8)
    assert simulate(topo, plan).finish == pytest.approx(2.0 + 0.05)


def test_two_flows_share_the_sender_upload() -> None:
    topo = uniform_mesh([2 * MB, 1e12, 1e12], [1e12] * 3, 0.0)
    plan = Plan(
        "fan",
        broadcast(0, 1_000_000, (1, 2)),
        {"aggregate": 1},
        (Transfer(0, 1, "aggregate", 0), Transfer(0, 2, "aggregate", 0)),
        default_slots=2,
    )
    # both at 1 MB/s: 1 s each, finishing together
    result = simulate(topo, plan)
    assert result.completion[1] == pytest.approx(1.0)
    assert result.completion[2] == pytest.approx(1.0)


def test_receiver_download_caps_the_rate() -> None:
    topo = uniform_mesh([10 * MB, 1e12], [1e12, 0.5 * MB], 0.0)
    plan = Plan("one", broadcast(0, 1_000_000, (1,)), {"aggregate": 1}, (Transfer(0, 1, "aggregate", 0),))
    assert simulate(topo, plan).finish == pytest.approx(2.0)


def test_widest_path_tree_takes_the_wide_detour() -> None:
    # 0->2 directly is narrow (1 MB/s); 0->1->2 is 5 MB/s all the way
    g = nx.DiGraph()
    for i in range(3):
        g.add_node(i, up=1e12, down=1e12, pos=(0.0, 0.0))
    for u, v, bw in [(0, 2, 1 * MB), (0, 1, 5 * MB), (1, 2, 5 * MB)]:
        g.add_edge(u, v, latency=0.01, bandwidth=bw)
        g.add_edge(v, u, latency=0.01, bandwidth=bw)
    topo = Topology(g, "tri", (0, 1, 2))
    assert widest_path_tree(topo, 0) == {1: 0, 2: 1}
    # the shortest-time tree agrees for a big object (5 MB: 1.02 s via 1 vs 5.01 s direct) ...
    assert shortest_time_tree(topo, 0, 5_000_000) == {1: 0, 2: 1}
    # ... and goes direct for a tiny one, where the extra hop's latency dominates
    assert shortest_time_tree(topo, 0, 10) == {1: 0, 2: 0}


def test_line_bound_and_tree_meet_when_pipelined() -> None:
    topo = line_graph([4 * MB, 2 * MB, 4 * MB], latency=0.0)
    problem = broadcast(0, 8_000_000, topo.peers)
    bound = lower_bound(topo, problem)
    parents = {"aggregate": {i + 1: i for i in range(3)}}
    # the 2 MB/s link is the bottleneck: receiver 2 and 3 need at least 4 s
    assert bound.value == pytest.approx(4.0)
    assert bound.binding == "flow"
    fine = simulate(topo, tree_plan(problem, parents, chunks=400)).finish
    coarse = simulate(topo, tree_plan(problem, parents, chunks=1)).finish
    assert coarse == pytest.approx(2.0 + 4.0 + 2.0)  # store-and-forward: every hop in full
    assert bound.value <= fine < 1.02 * bound.value


def test_cut_bound_on_a_homogeneous_mesh() -> None:
    # 9 peers at 1 MB/s upload: 8 receivers x 8 MB over 9 MB/s of upload
    topo = uniform_mesh([1 * MB] * 9, [100 * MB] * 9, 0.0)
    bound = lower_bound(topo, broadcast(0, 8_000_000, topo.peers))
    assert bound.source == pytest.approx(8.0)  # the source must push 8 MB out at 1 MB/s
    assert bound.cut == pytest.approx(64 / 9)
    assert bound.binding == "source"


@pytest.mark.parametrize("kind", ["mesh", "waxman", "barabasi-albert"])
def test_every_strategy_beats_no_bound(kind: str) -> None:
    topo = generate(kind, 24, seed=3)
    problem = broadcast(5, 2_000_000, topo.peers)
    bound = lower_bound(topo, problem).value
    with_server = topo.with_server()
    server_bound = lower_bound(with_server, problem).value
    for plan, net, b in [
        (optimised_plan(topo, problem, chunks=16), topo, bound),
        (naive_plan(topo, problem), topo, bound),
        (star_plan(with_server, problem, chunks=16), with_server, server_bound),
    ]:
        plan.validate()
        result = simulate(net, plan)
        assert math.isfinite(result.finish)
        assert result.finish >= b * (1 - 1e-9), (plan.strategy, result.finish, b)
        assert set(result.completion) == set(topo.peers)


def test_optimised_beats_star_and_naive_on_a_heterogeneous_mesh() -> None:
    topo = generate("mesh", 64, seed=1)
    problem = broadcast(int(sorted(topo.peers, key=topo.up)[32]), 4_000_000, topo.peers)
    star_net = topo.with_server()
    optimised = simulate(topo, optimised_plan(topo, problem, chunks=32)).finish
    star = simulate(star_net, star_plan(star_net, problem, chunks=32)).finish
    naive = simulate(topo, naive_plan(topo, problem)).finish
    assert optimised < star < naive
    assert optimised < 2.0 * lower_bound(topo, problem).value


def test_whole_object_plans_move_each_object_in_one_piece() -> None:
    topo = generate("mesh", 8, seed=0)
    problem = allgather(topo.peers, 1_000_000)
    plan = whole_object_plan(topo, problem)
    plan.validate()
    assert set(plan.chunks.values()) == {1}
    # Each receiver gets each object once, from one sender: the routes a node follows.
    assert len({(t.obj, t.dst) for t in plan.transfers}) == len(plan.transfers)
    assert simulate(topo, plan).finish < simulate(topo, naive_plan(topo, problem)).finish


def test_allgather_plans_deliver_everything() -> None:
    topo = generate("waxman", 8, seed=2)
    problem = allgather(topo.peers, 100_000)
    plan = optimised_plan(topo, problem, chunks=4)
    plan.validate()
    result = simulate(topo, plan)
    assert math.isfinite(result.finish)
    assert result.finish >= lower_bound(topo, problem).value


def test_validate_rejects_a_relay_that_sends_before_holding() -> None:
    problem = broadcast(0, 10, (1, 2))
    bad = Plan(
        "bad", problem, {"aggregate": 1}, (Transfer(1, 2, "aggregate", 0), Transfer(0, 1, "aggregate", 0))
    )
    with pytest.raises(PlanError, match="node 1 sends"):
        bad.validate()
    missing = Plan("short", problem, {"aggregate": 1}, (Transfer(0, 1, "aggregate", 0),))
    with pytest.raises(PlanError, match="never delivers"):
        missing.validate()


def test_plan_round_trips_through_json() -> None:
    topo = generate("mesh", 6, seed=0)
    plan = optimised_plan(topo, broadcast(0, 1000, topo.peers), chunks=4)
    assert plan_from_dict(plan_to_dict(plan)) == plan


def test_simulator_refuses_a_link_the_topology_lacks() -> None:
    topo = line_graph([1 * MB, 1 * MB])
    plan = Plan("jump", broadcast(0, 10, (2,)), {"aggregate": 1}, (Transfer(0, 2, "aggregate", 0),))
    with pytest.raises(TopologyError, match="no link 0->2"):
        simulate(topo, plan)


def test_generators_are_seeded_connected_and_heterogeneous() -> None:
    for kind in ("mesh", "waxman", "barabasi-albert"):
        a, b = generate(kind, 40, seed=7), generate(kind, 40, seed=7)
        assert nx.utils.graphs_equal(a.graph, b.graph)
        assert nx.is_strongly_connected(a.graph)
        ups = [a.up(p) for p in a.peers]
        assert max(ups) > 3 * min(ups)
    with pytest.raises(TopologyError, match="unknown topology"):
        generate("ring", 4, seed=0)


def test_simulator_scales_to_thousands_of_peers() -> None:
    topo = generate("barabasi-albert", 1000, seed=0)
    problem = broadcast(0, 4_000_000, topo.peers)
    result = simulate(topo, optimised_plan(topo, problem, chunks=8))
    assert len(result.completion) == 1000
    assert result.finish >= lower_bound(topo, problem).value
