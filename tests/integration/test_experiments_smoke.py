"""The smallest setting of a quick experiment, end to end: real peer processes on Anvil, the
aggregate scored on the test split, then results.jsonl, table.md, the plot and `bcfl report`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bcfl.cli.experiment import register
from bcfl.experiments import server_vs_serverless as svs
from bcfl.experiments.registry import EXPERIMENTS, ExperimentError, get

pytestmark = pytest.mark.e2e


def test_smallest_server_vs_serverless_writes_parseable_outputs(tmp_path: Path) -> None:
    out = tmp_path / "svs"
    cfg = replace(svs.QUICK, peers=(3,), modes=("serverless",), test_examples=8)
    svs.run(out, quick=True, seed=0, config=cfg)

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert (rec["experiment"], rec["peers"], rec["mode"], rec["seed"]) == (svs.NAME, 3, "serverless", 0)
    assert rec["env"]["versions"]["torch"], "every record names the versions it ran with"
    run = rec["run"]
    assert run["statuses"] == ["finalised"]
    assert 0 < run["latency_s"][0] < 300
    assert run["included"][0] >= 1 and run["bytes_moved"][0] > 0
    assert 0.0 <= run["accuracy"][0] <= 1.0 and run["test_examples"] == 8
    assert {e["event"] for e in run["events"]} >= {"trained", "submitted", "voted", "attested"}

    table = (out / "table.md").read_text()
    assert "| 3 | serverless | 1 | 0 |" in table
    assert f"| 1/1 | {run['included'][0]}/{run['submissions'][0]} |" in table
    assert (out / "server_vs_serverless.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "report.md")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report.md").read_text()
    assert "## server-vs-serverless" in report and "| 3 | serverless |" in report
    assert "![server_vs_serverless](svs/server_vs_serverless.png)" in report


def test_registry_names_every_experiment_and_rejects_unknown_ones() -> None:
    assert set(EXPERIMENTS) >= {
        "server-vs-serverless",
        "sync-vs-async",
        "flower",
        "anomaly",
        "anomaly-live",
        "paths",
        "learning",
    }
    with pytest.raises(ExperimentError, match="unknown experiment 'nope'"):
        get("nope")
