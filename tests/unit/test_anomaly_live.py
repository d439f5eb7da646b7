"""The live anomaly experiment's pure parts: attacker choice, included-set quality, the table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from bcfl.experiments import anomaly_live as live
from bcfl.experiments.server_vs_serverless import FederationRun


def _run(included: list[int], bad_in: list[int], statuses: list[str], accuracy: float) -> FederationRun:
    events = [
        {"event": "submitted", "round": r, "peer": p} for r in range(1, len(statuses) + 1) for p in range(7)
    ]
    n = len(statuses)
    return FederationRun(
        spec={},
        rounds=n,
        ready_at=0.0,
        opened=[0.0] * n,
        finalised=[1.0] * n,
        latency_s=[1.0] * n,
        chain_latency_s=[1] * n,
        statuses=statuses,
        aggregates=["cid"] * n,
        submissions=[7] * n,
        events=events,
        peak_rss_bytes=0,
        peak_rss_per_process_bytes=0,
        wall_s=1.0,
        included=included,
        attackers_included=bad_in,
        accuracy=[accuracy] * n,
        test_loss=[1.0] * n,
    )


def test_quick_config_has_two_attackers_among_seven_peers_at_the_end() -> None:
    assert live.QUICK.attackers == 2
    assert live.attacker_indices(live.QUICK) == [5, 6]
    with pytest.raises(ValueError, match="fewer than half"):
        live.Config(peers=4, attacker_fraction=0.5)
    with pytest.raises(ValueError, match="reference run"):
        live.Config(attacks=("none",))


def test_gate_outcome_pools_finalised_rounds_only() -> None:
    # round 1: 5 honest + 1 attacker included; round 2 expired (ignored); round 3: 4 honest, 0 bad
    run = _run([6, 0, 4], [1, 0, 0], ["finalised", "expired", "finalised"], 0.5)
    outcome = live.gate_outcome(run, [5, 6])
    assert outcome == live.GateOutcome(
        honest_submitted=10, malicious_submitted=4, honest_included=9, malicious_included=1
    )
    assert outcome.precision == pytest.approx(0.9)
    assert outcome.recall == pytest.approx(0.9)
    assert live.GateOutcome(5, 2, 0, 0).precision is None


def test_summary_table_compares_accuracy_with_the_attack_free_run_of_the_same_seed(tmp_path: Path) -> None:
    def record(attack: str, seed: int, run: FederationRun, attackers: list[int]) -> dict[str, Any]:
        outcome = live.gate_outcome(run, attackers)
        return {
            "experiment": live.NAME,
            "seed": seed,
            "attack": attack,
            "attackers": attackers,
            "config": asdict(live.QUICK),
            "gate": asdict(outcome),
            "precision": outcome.precision,
            "recall": outcome.recall,
            "run": asdict(run),
        }

    records = [
        record("none", 0, _run([7], [0], ["finalised"], 0.30), []),
        record("sign-flip", 0, _run([5], [0], ["finalised"], 0.28), [5, 6]),
    ]
    table = live.summary_table(records)
    assert "| none | 1 | 0 | 7 / 0 | 1.000 | 1.000 | 0 | 0 | 0.300 | - |" in table
    assert "| sign-flip | 1 | 0 | 7 / 2 | 1.000 | 1.000 | 0 | 0 | 0.280 | -0.020 |" in table
