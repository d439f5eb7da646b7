"""Swarm policies and the optimised planner's choice among them, simulated on the link model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bcfl.experiments.paths import run_scale, run_targets
from bcfl.network.bound import lower_bound
from bcfl.network.paths import PORTFOLIO, SwarmPolicy, optimised_choice, swarm_plan
from bcfl.network.plan import PlanError, Problem, allgather, broadcast
from bcfl.network.simulator import simulate
from bcfl.network.topology import Topology, generate


def _mesh_broadcast(seed: int = 0, n: int = 64) -> tuple[Topology, Problem]:
    topo = generate("mesh", n, seed)
    return topo, broadcast(random.Random(seed).randrange(n), 4 * 1024 * 1024, topo.peers)


def test_deadline_order_feeds_slow_downloaders_sooner_than_relay_order() -> None:
    topo, problem = _mesh_broadcast()
    relay = simulate(topo, swarm_plan(topo, problem, chunks=64, policy=SwarmPolicy("relay")))
    deadline = simulate(topo, swarm_plan(topo, problem, chunks=64, policy=SwarmPolicy("deadline", 2)))
    assert deadline.finish < relay.finish
    slowest = min(topo.peers, key=topo.down)
    assert deadline.completion[slowest] < relay.completion[slowest]


def test_choice_is_the_fastest_candidate_and_is_valid() -> None:
    topo, problem = _mesh_broadcast(seed=1, n=32)
    plan, policy, finishes = optimised_choice(topo, problem, chunks=16)
    plan.validate()
    assert set(finishes) == {p.label for p in PORTFOLIO}
    assert finishes[policy.label] == min(finishes.values())
    assert simulate(topo, plan).finish == finishes[policy.label]
    assert simulate(topo, plan).finish >= lower_bound(topo, problem).value


def test_deadline_policy_delivers_an_allgather_on_a_sparse_graph() -> None:
    topo = generate("barabasi-albert", 12, seed=3)
    problem = allgather(topo.peers, 50_000)
    plan = swarm_plan(topo, problem, chunks=4, policy=SwarmPolicy("deadline", 1, 0.3))
    plan.validate()
    assert simulate(topo, plan).finish >= lower_bound(topo, problem).value


@pytest.mark.parametrize(
    ("order", "factor", "margin"), [("fastest", 1, 0.0), ("relay", 0, 0.0), ("deadline", 1, -1.0)]
)
def test_bad_policies_are_refused(order: str, factor: int, margin: float) -> None:
    with pytest.raises(PlanError, match="swarm"):
        SwarmPolicy(order, factor, margin)


def test_targets_and_scale_entries_write_their_tables(tmp_path: Path) -> None:
    rows = run_targets(tmp_path, seeds=(0,), peers=12)
    assert len(rows) == 3 and all(r["ratio_to_bound"] >= 1.0 for r in rows)
    assert all(r["speedup_100"] > r["speedup_10000"] for r in rows)  # a faster server helps the star
    assert "star/optimised, server 1000 Mbit/s" in (tmp_path / "targets.md").read_text()
    scale = run_scale(tmp_path, sizes=(20,))
    assert {r["strategy"] for r in scale} == {"star", "naive", "optimised"}
    assert all(r["finish_s"] >= r["bound_s"] * (1 - 1e-9) for r in scale)
    assert "| waxman | 20 | optimised |" in (tmp_path / "scale.md").read_text()
