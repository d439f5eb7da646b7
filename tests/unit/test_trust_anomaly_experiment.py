"""The anomaly sweep runs end to end on the real LoRA task (tiny model, tiny configuration)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bcfl.experiments.anomaly import (
    LoraTask,
    SweepConfig,
    attackers,
    main,
    run,
    simulate,
    spread,
    task_label,
)

TINY = SweepConfig(
    peers=4, warmup_rounds=1, rounds=1, repeats=1, local_steps=4, batch_size=4, val_examples=8,
    test_examples=4, backdoor_examples=2, root_examples=4, attacks=("sign-flip",),
    fractions=(0.25,), defences=("none", "pagerank", "krum"),
)  # fmt: skip


@pytest.fixture(scope="module")
def task() -> LoraTask:
    return LoraTask(TINY, 0)


def test_tiny_sweep_writes_results_table_and_plot(tmp_path: Path, task: LoraTask) -> None:
    run(tmp_path, quick=True, config=TINY)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    cells = [r for r in records if "defence" in r]
    assert {(r["attack"], r["defence"]) for r in cells} == {
        (a, d) for a in ("none", "sign-flip") for d in ("none", "pagerank", "krum")
    }
    assert all(r["task"] == task_label(TINY) and 0.0 <= r["precision"] <= 1.0 for r in cells)
    table = (tmp_path / "table.md").read_text()
    assert "tiny model, medical-transcriptions" in table and "| sign-flip | 1 (25%) | pagerank |" in table
    assert (tmp_path / "anomaly_25pct.png").stat().st_size > 1000


def test_no_defence_includes_the_attacker_and_pagerank_drops_a_sign_flipper(task: LoraTask) -> None:
    m = simulate(task, "sign-flip", 0.25, "none")
    assert m["attackers"] == 1
    assert m["precision"] == 0.75 and m["recall"] == 1.0
    gated = simulate(task, "sign-flip", 0.25, "pagerank")
    assert gated["precision"] == 1.0  # x3 sign flip raises every voter's loss far past the bar


def test_updates_are_trained_once_per_base_and_peer(task: LoraTask) -> None:
    b = task.zero()
    first = task.delta(b, 0, 1)
    assert task.delta(b, 0, 1) is first  # cached, not retrained
    assert np.any(first != 0)
    assert set(attackers(10, 0.1, 3)) <= set(attackers(10, 0.3, 3))  # nested attacker sets


def test_spread_is_median_with_range() -> None:
    assert spread([0.9, 1.0, 0.95]) == "0.950 [0.900, 1.000]"
    assert spread([0.5, 0.5]) == "0.500"
    assert spread([None]) == "-"


def _records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def _cells(folder: Path) -> list[dict[str, Any]]:
    timed = ("defence_s_per_round", "time")
    return [{k: v for k, v in r.items() if k not in timed} for r in _records(folder) if "defence" in r]


def test_seeds_in_parallel_processes_give_the_same_cells(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, repeats=2, defences=("none", "pagerank"))
    run(tmp_path / "serial", quick=True, config=cfg, jobs=1)
    run(tmp_path / "parallel", quick=True, config=cfg, jobs=2)
    serial = _cells(tmp_path / "serial")
    assert {r["seed"] for r in serial} == {0, 1}
    assert _cells(tmp_path / "parallel") == serial


def test_command_line_overrides_reach_the_config_and_the_table(tmp_path: Path) -> None:
    main([str(tmp_path), "--quick", "--model", "tiny", "--peers", "4", "--rounds", "1", "--repeats", "1",
          "--fractions", "0.25", "--attacks", "sign-flip", "--defences", "none,median",
          "--test-examples", "4"])  # fmt: skip
    config = _records(tmp_path)[0]["config"]
    assert (config["peers"], config["rounds"], config["fractions"], config["test_examples"]) == (
        4,
        1,
        [0.25],
        4,
    )
    table = (tmp_path / "table.md").read_text()
    assert "`python -m bcfl.experiments.anomaly OUT --quick --model tiny --peers 4" in table
    assert "| sign-flip | 1 (25%) | median |" in table
