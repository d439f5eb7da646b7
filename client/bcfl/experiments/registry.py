"""Every experiment the `bcfl experiment` command can run, by name.

Each entry names a module exposing `run(out_dir: Path, *, quick: bool, seed: int = 0) -> None`
that writes results.jsonl, table.md and PNG plots into out_dir. Modules are imported only when
run, so an experiment whose optional dependencies are missing never breaks the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from bcfl.errors import BcflError


class ExperimentError(BcflError):
    """An experiment that is unknown, cannot be imported, or failed."""


class RunFn(Protocol):
    def __call__(self, out_dir: Path, *, quick: bool, seed: int = 0) -> None: ...


@dataclass(frozen=True)
class Experiment:
    name: str
    module: str
    summary: str
    # "append": each call runs one seed and appends to the folder's results.jsonl (the table
    # is rebuilt over all seeds); "internal": the module repeats seeds itself, so extra seeds
    # go to sub-folders seed<N>.
    seeding: str = "append"
    quick_seeds: int = 2
    full_seeds: int = 3

    def __post_init__(self) -> None:
        if self.seeding not in ("append", "internal"):
            raise ValueError(f"seeding must be 'append' or 'internal', got {self.seeding!r}")

    def load(self) -> RunFn:
        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            raise ExperimentError(f"experiment {self.name!r}: cannot import {self.module}: {exc}") from exc
        fn = getattr(mod, "run", None)
        if not callable(fn):
            raise ExperimentError(f"experiment {self.name!r}: {self.module} has no run() function")
        return cast(RunFn, fn)

    def writer(self) -> Callable[[Path], object] | None:
        """The module's `write_outputs(out_dir)` (rebuilds table and plots from results.jsonl)."""
        try:
            mod = importlib.import_module(self.module)
        except ImportError:
            return None
        fn = getattr(mod, "write_outputs", None)
        return cast(Callable[[Path], object], fn) if callable(fn) else None


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "server-vs-serverless",
            "bcfl.experiments.server_vs_serverless",
            "round latency and accuracy, server vs serverless result mode, 5/10/20 peers",
        ),
        Experiment(
            "sync-vs-async",
            "bcfl.experiments.sync_vs_async",
            "information-passing time and time to target, synchronous vs asynchronous, stragglers",
        ),
        Experiment(
            "flower",
            "bcfl.experiments.flower_compare",
            "the same LoRA task with Flower (FedAvg, Krum, trimmed mean) beside bcfl server/serverless",
            quick_seeds=1,  # seven systems x settings per seed; quick keeps to one seed
        ),
        Experiment(
            "anomaly",
            "bcfl.experiments.anomaly",
            "PageRank/EigenTrust vs baseline defences under attacks (offline sweep)",
            seeding="internal",
            quick_seeds=1,
            full_seeds=1,
        ),
        Experiment(
            "anomaly-live",
            "bcfl.experiments.anomaly_live",
            "the trust gate under each attack at one setting, through real peer processes",
            quick_seeds=1,  # five federations of seven peer processes per seed
        ),
        Experiment(
            "paths",
            "bcfl.experiments.paths",
            "weight-transfer paths: star, all-to-all, optimised trees vs the lower bound",
            seeding="internal",
            quick_seeds=1,
            full_seeds=1,
        ),
        Experiment(
            "learning",
            "bcfl.experiments.learning",
            "learning: LoRA schemes, aggregation, compression, memory and bytes per round",
            seeding="internal",
            quick_seeds=1,
            full_seeds=1,
        ),
    )
}


def get(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ExperimentError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}") from None


def run_experiment(name: str, out_dir: Path, *, quick: bool, seeds: int | None = None) -> list[Path]:
    """Run `seeds` repeats (seeds 0..seeds-1); return the folders that received results."""
    exp = get(name)
    n = seeds if seeds is not None else (exp.quick_seeds if quick else exp.full_seeds)
    if n < 1:
        raise ExperimentError(f"--seeds must be at least 1, got {n}")
    fn = exp.load()
    folders: list[Path] = []
    for seed in range(n):
        target = out_dir if exp.seeding == "append" or n == 1 else out_dir / f"seed{seed}"
        fn(target, quick=quick, seed=seed)
        if target not in folders:
            folders.append(target)
    return folders
