"""The Flower comparison's command-line overrides reach its configuration, and a setting it does
not know is refused before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bcfl.experiments import flower_compare


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="settings must be a non-empty subset of none, attack"):
        flower_compare.Config(settings=("none", "typo"))
    with pytest.raises(ValueError, match="settings must be"):
        flower_compare.Config(settings=())


def test_overrides_replace_only_the_fields_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(out_dir: Path, **kwargs: Any) -> None:
        seen.update(kwargs, out_dir=out_dir)

    monkeypatch.setattr(flower_compare, "run", fake_run)
    argv = [str(tmp_path), "--model", "smollm2", "--peers", "5", "--rounds", "2", "--settings", "none"]
    flower_compare.main(argv)
    cfg = seen["config"]
    assert (cfg.model, cfg.peers, cfg.rounds, cfg.settings) == ("smollm2", 5, 2, ("none",))
    assert cfg.test_examples == flower_compare.Config().test_examples
    assert seen["command"] == "python -m bcfl.experiments.flower_compare " + " ".join(argv)


def test_systems_pick_the_sides_that_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="systems must be a non-empty subset"):
        flower_compare.Config(systems=("server", "flwr"))
    seen: dict[str, Any] = {}
    monkeypatch.setattr(flower_compare, "run", lambda out_dir, **kw: seen.update(kw))
    flower_compare.main([str(tmp_path), "--systems", "server"])
    assert seen["config"].systems == ("server",)
    with pytest.raises(SystemExit):  # refused by the config: a usage error, nothing run
        flower_compare.main([str(tmp_path), "--systems", "flwr"])
    assert seen["config"].systems == ("server",)


def test_the_worker_flag_runs_the_flower_side_from_its_job_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_flower starts `python -m bcfl.experiments.flower_compare --flower-worker WORK`."""
    seen: list[tuple[dict[str, Any], Path]] = []
    monkeypatch.setattr(flower_compare, "flower_worker", lambda job, out: seen.append((job, out)))
    monkeypatch.setattr(
        flower_compare, "run", lambda *a, **kw: pytest.fail("the worker must not run a comparison")
    )
    (tmp_path / "job.json").write_text('{"peers": 3}', encoding="utf-8")
    flower_compare.main(["--flower-worker", str(tmp_path)])
    assert seen == [({"peers": 3}, tmp_path)]
