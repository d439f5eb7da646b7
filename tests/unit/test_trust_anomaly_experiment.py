"""The anomaly sweep runs end to end on a tiny configuration and writes what it promises."""

from __future__ import annotations

import json
from pathlib import Path

from bcfl.experiments.anomaly import TASK_LABEL, SweepConfig, run, simulate

TINY = SweepConfig(
    peers=8, rounds=2, repeats=1, k=3, train_per_peer=30, val_per_peer=15, test_size=100,
    attacks=("sign-flip",), fractions=(0.25,), defences=("none", "pagerank", "krum"),
)  # fmt: skip


def test_tiny_sweep_writes_results_table_and_plot(tmp_path: Path) -> None:
    run(tmp_path, quick=True, config=TINY)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    cells = [r for r in records if not r.get("summary")]
    assert {(r["attack"], r["defence"]) for r in cells} == {
        (a, d) for a in ("none", "sign-flip") for d in ("none", "pagerank", "krum")
    }
    assert all(r["task"] == TASK_LABEL and 0.0 <= r["precision"] <= 1.0 for r in cells)
    table = (tmp_path / "table.md").read_text()
    assert "stand-in task" in table and "| sign-flip | 2 (25%) | pagerank |" in table
    assert (tmp_path / "anomaly_25pct.png").stat().st_size > 1000


def test_attackers_are_counted_and_no_defence_includes_them() -> None:
    m = simulate(TINY, "sign-flip", 0.25, "none", 0)
    assert m["attackers"] == 2
    assert m["precision"] == 0.75 and m["recall"] == 1.0
