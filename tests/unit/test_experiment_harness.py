"""The experiments' shared harness: spread cells, protocol windows, outputs and command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bcfl.experiments import harness


def test_spread_is_median_and_range_and_skips_unmeasured() -> None:
    assert harness.spread([3.0, 1.0, 2.0]) == "2.000 [1.000-3.000]"
    assert harness.spread([4.0, None], digits=1) == "4.0"
    assert harness.spread([None]) == "-"
    assert harness.spread([2**21, 2**20], scale=2**20, digits=2) == "1.50 [1.00-2.00]"


def test_quick_windows_are_short_and_full_ones_generous() -> None:
    assert harness.windows("tiny") == harness.QUICK_WINDOWS
    assert harness.windows("smollm2") == harness.FULL_WINDOWS
    assert harness.QUICK_WINDOWS.round_duration < harness.FULL_WINDOWS.round_duration


def test_write_outputs_keeps_only_the_named_experiment(tmp_path: Path) -> None:
    lines = [{"experiment": "a", "x": 1}, {"experiment": "b", "x": 2}, {"experiment": "a", "x": 3}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    seen: list[int] = []

    def table(records: Sequence[dict[str, Any]]) -> str:
        return "|" + ",".join(str(r["x"]) for r in records) + "|"

    def plot(records: Sequence[dict[str, Any]], path: Path) -> None:
        seen.extend(r["x"] for r in records)
        path.write_bytes(b"png")

    assert harness.write_outputs(tmp_path, "a", table, plot, "a.png") == "|1,3|"
    assert (tmp_path / "table.md").read_text() == "|1,3|"
    assert seen == [1, 3] and (tmp_path / "a.png").read_bytes() == b"png"


@dataclass(frozen=True)
class _Cfg:
    model: str = "smollm2"
    peers: tuple[int, ...] = (5, 10)
    rounds: int = 3
    test_examples: int = 200
    systems: tuple[str, ...] = ("server", "flower")


def test_main_parses_and_runs_one_seed_with_the_chosen_config(tmp_path: Path) -> None:
    calls: list[tuple[Path, bool, int, Any, str | None]] = []

    def run(
        out_dir: Path, *, quick: bool, seed: int = 0, config: Any = None, command: str | None = None
    ) -> None:
        calls.append((out_dir, quick, seed, config, command))

    quick, full = _Cfg(model="tiny", peers=(3,)), _Cfg()
    harness.main("bcfl.experiments.x", run, [str(tmp_path), "--quick", "--seed", "7"], quick=quick, full=full)
    assert calls[-1] == (
        tmp_path,
        True,
        7,
        quick,
        f"python -m bcfl.experiments.x {tmp_path} --quick --seed 7",
    )
    harness.main("bcfl.experiments.x", run, [str(tmp_path)], quick=quick, full=full)
    assert calls[-1][1:4] == (False, 0, full)
    with pytest.raises(SystemExit):
        harness.main("bcfl.experiments.x", run, ["--seed", "nope"], quick=quick, full=full)


def test_overrides_parse_to_the_type_the_config_holds(tmp_path: Path) -> None:
    calls: list[Any] = []

    def run(
        out_dir: Path, *, quick: bool, seed: int = 0, config: Any = None, command: str | None = None
    ) -> None:
        calls.append(config)

    argv = [str(tmp_path), "--peers", "5,10", "--rounds", "2", "--test-examples", "100", "--model", "tiny"]
    harness.main("bcfl.experiments.x", run, argv, quick=_Cfg(), full=_Cfg())
    assert calls == [_Cfg(model="tiny", peers=(5, 10), rounds=2, test_examples=100)]
    assert harness.overridden(_Cfg(), {"peers": None, "rounds": "4"}) == _Cfg(rounds=4)
    # a tuple of names stays names (e.g. the Flower comparison's --systems)
    assert harness.overridden(_Cfg(), {"systems": "server"}) == _Cfg(systems=("server",))
    with pytest.raises(SystemExit):  # not a number: the parser's usage error, not a traceback
        harness.main("bcfl.experiments.x", run, [str(tmp_path), "--rounds", "two"], quick=_Cfg(), full=_Cfg())


def test_result_log_records_the_typed_command_or_the_experiment_command(tmp_path: Path) -> None:
    quick = harness.result_log(tmp_path, "sync-vs-async", quick=True)
    assert quick.command == "bcfl experiment sync-vs-async --quick"
    assert harness.result_log(tmp_path, "flower", quick=False).command == "bcfl experiment flower"
    typed = "python -m bcfl.experiments.flower_compare out --peers 5"
    assert harness.result_log(tmp_path, "flower", quick=False, command=typed).command == typed
