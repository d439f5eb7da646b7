"""What the federation experiments share: protocol windows, spread formatting, output writing
and the command line, so each experiment module holds only its own question."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from bcfl.experiments.results import ResultLog, median_spread, read_records
from bcfl.orchestrate import FederationSpec


@dataclass(frozen=True)
class Windows:
    """Round, voting and result windows (seconds) of an experiment's federation."""

    round_duration: int
    vote_duration: int
    result_duration: int


# Quick runs use the tiny model, whose rounds take seconds: short windows make a stuck round
# fail fast. SmolLM2 rounds take minutes per peer, so full runs leave generous room.
QUICK_WINDOWS = Windows(round_duration=180, vote_duration=60, result_duration=120)
FULL_WINDOWS = Windows(round_duration=3600, vote_duration=900, result_duration=1800)


def windows(model: str) -> Windows:
    return QUICK_WINDOWS if model == "tiny" else FULL_WINDOWS


class Training(Protocol):
    """The training settings every federation experiment's config carries."""

    @property
    def model(self) -> str: ...
    @property
    def rounds(self) -> int: ...
    @property
    def local_steps(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def eval_examples(self) -> int: ...
    @property
    def base_accuracy(self) -> bool:
        """Whether voters also measure the base's accuracy for the explorer. Off in the full
        configurations: the vote rule reads only the true label's loss, and the accuracy pass
        doubles a SmolLM2 voter's evaluation without being part of the protocol being timed.
        The quick ones keep it on, as when their documented figures were measured."""
        ...


def federation_spec(
    workdir: Path,
    cfg: Training,
    *,
    peers: int,
    seed: int,
    closing_rule: str = "synchronous",
    result_mode: str = "serverless",
    async_quorum: int | None = None,
    **overrides: Any,
) -> FederationSpec:
    """A local federation with the experiment's training settings and windows; synchronous
    (every peer's update awaited) unless `closing_rule` says otherwise."""
    return FederationSpec(
        workdir=workdir,
        peers=peers,
        model=cfg.model,
        closing_rule=closing_rule,
        result_mode=result_mode,
        async_quorum=peers if async_quorum is None else async_quorum,
        **asdict(windows(cfg.model)),
        rounds=cfg.rounds,
        local_steps=cfg.local_steps,
        learning_rate=cfg.learning_rate,
        max_tokens=cfg.max_tokens,
        eval_examples=cfg.eval_examples,
        base_accuracy=cfg.base_accuracy,
        data_seed=seed,
        **{"attackers": {}, "max_staleness": 0, **overrides},
    )


def spread(values: Sequence[float | None], *, scale: float = 1.0, digits: int = 3) -> str:
    """'median [min-max]' of the measured values (None: not measured), or '-' when none."""
    vals = [float(v) / scale for v in values if v is not None]
    if not vals:
        return "-"
    med, lo, hi = median_spread(vals)
    if len(vals) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def write_outputs(
    out_dir: Path,
    name: str,
    table: Callable[[Sequence[dict[str, Any]]], str],
    plot: Callable[[Sequence[dict[str, Any]], Path], None],
    png: str,
) -> str:
    """table.md and the plot `png` from the experiment's records in results.jsonl; returns the table."""
    records = [r for r in read_records(out_dir / "results.jsonl") if r.get("experiment") == name]
    text = table(records)
    (out_dir / "table.md").write_text(text, encoding="utf-8")
    plot(records, out_dir / png)
    return text


def result_log(out_dir: Path, name: str, *, quick: bool, command: str | None = None) -> ResultLog:
    """The experiment's result log, recording `command` as typed or else the `bcfl experiment`
    command that runs it."""
    return ResultLog(out_dir, command=command or f"bcfl experiment {name}{' --quick' if quick else ''}")


class RunFn(Protocol):
    def __call__(
        self, out_dir: Path, *, quick: bool, seed: int = 0, config: Any = None, command: str | None = None
    ) -> None: ...


# Settings a module's command line may override: (flag, help). `--peers` takes a comma list
# where the config holds several federation sizes.
OVERRIDES = (
    ("model", "base model: tiny, smollm2 or a model folder"),
    ("peers", "peers per federation (comma-separated where the experiment sweeps sizes)"),
    ("rounds", "rounds per federation"),
    ("test_examples", "held-out test examples scored per aggregate"),
)


def overridden(cfg: Any, values: dict[str, str | None]) -> Any:
    """`cfg` with each given setting replaced, parsed to the type the config holds there."""
    changes: dict[str, Any] = {}
    for name, text in values.items():
        if text is None:
            continue
        current = getattr(cfg, name)
        if isinstance(current, tuple):  # a comma list, of numbers where the config holds numbers
            numbers = all(isinstance(v, int) for v in current)
            changes[name] = tuple(int(v) if numbers else v for v in text.split(","))
        elif isinstance(current, int):
            changes[name] = int(text)
        else:
            changes[name] = text
    return replace(cfg, **changes)


def main(
    module: str,
    run: RunFn,
    argv: Sequence[str] | None = None,
    *,
    quick: Any,
    full: Any,
    extra: Sequence[tuple[str, str]] = (),
) -> argparse.Namespace:
    """`python -m <module> OUT_DIR [--quick] [--seed N] [overrides]`: parse and run one seed.

    `quick` and `full` are the module's two configs; the overrides (OVERRIDES, then the
    module's `extra` (field, help) pairs) change the chosen one, and the command as typed is
    recorded with every result."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny model, smallest settings")
    parser.add_argument("--seed", type=int, default=0)
    fields = (*OVERRIDES, *extra)
    for name, text in fields:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=f"override the {text}")
    args = parser.parse_args(argv)
    try:
        cfg = overridden(quick if args.quick else full, {n: getattr(args, n) for n, _ in fields})
    except ValueError as exc:
        parser.error(str(exc))
    command = " ".join(["python -m", module, *(argv if argv is not None else sys.argv[1:])])
    run(args.out_dir, quick=args.quick, seed=args.seed, config=cfg, command=command)
    return args
