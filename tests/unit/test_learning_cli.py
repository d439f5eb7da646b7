"""`bcfl data summary`: the partition table, JSON output and a clean error."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from bcfl.cli import learning


def _app() -> typer.Typer:
    app = typer.Typer()
    learning.register(app)
    return app


def test_data_summary_prints_one_row_per_peer() -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "data",
            "summary",
            "--peers",
            "10",
            "--partition",
            "dirichlet",
            "--alpha",
            "0.5",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["split"] == {"train": 1853, "validation": 266, "test": 533}
    assert [s["peer"] for s in data["shards"]] == list(range(10))
    assert sum(s["train"] + s["validation"] for s in data["shards"]) == 1853


def test_data_summary_table() -> None:
    result = CliRunner().invoke(_app(), ["data", "summary", "--peers", "3", "--partition", "label"])
    assert result.exit_code == 0, result.output
    assert "most common label" in result.stdout and "Surgery" in result.stdout


def test_unknown_partition_is_a_bcfl_error() -> None:
    from bcfl.errors import BcflError

    result = CliRunner().invoke(_app(), ["data", "summary", "--partition", "zipf"])
    assert isinstance(result.exception, BcflError)
    assert "unknown partition 'zipf'" in str(result.exception)
