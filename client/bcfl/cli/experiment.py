"""`bcfl experiment NAME` (run one experiment) and `bcfl report DIR...` (one markdown report)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import err_console


def experiment(
    name: Annotated[str, typer.Argument(help="Experiment name (see the list below)")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results.jsonl, table.md and plots")],
    quick: Annotated[
        bool, typer.Option(help="Tiny model, fewer peers and rounds: minutes instead of hours")
    ] = False,
    seeds: Annotated[
        int | None,
        typer.Option(
            help="Repeats, seeds 0..N-1 (default: 2 with --quick, 3 without; 1 for sweeps that repeat inside)"
        ),
    ] = None,
) -> None:
    """Run one experiment; its results are appended to OUT/results.jsonl and its table and plots rebuilt."""
    from bcfl.experiments.registry import get, run_experiment
    from bcfl.experiments.report import MARKER

    exp = get(name)
    out.mkdir(parents=True, exist_ok=True)
    command = "bcfl " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.monotonic()
    err_console.print(f"[bold]bcfl experiment {name}[/]: {exp.summary}; results in {out}")
    folders = run_experiment(name, out, quick=quick, seeds=seeds)
    for folder in folders:
        (folder / MARKER).write_text(
            json.dumps({"name": name, "quick": quick, "seeds": seeds, "command": command}, indent=2) + "\n",
            encoding="utf-8",
        )
    err_console.print(f"{name} finished in {time.monotonic() - started:.0f} s")
    for folder in folders:
        table = folder / "table.md"
        if table.exists():
            print(table.read_text(encoding="utf-8"))


def report(
    dirs: Annotated[list[Path], typer.Argument(help="Result folders (searched recursively)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report here (default: print it)")
    ] = None,
) -> None:
    """One markdown report from any set of experiment result folders, regenerated from results.jsonl."""
    from bcfl.experiments.report import build_report

    text = build_report(dirs, out_file=out)
    if out is None:
        print(text)
    else:
        err_console.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    from bcfl.experiments.registry import EXPERIMENTS

    listing = "; ".join(f"{e.name}: {e.summary}" for e in EXPERIMENTS.values())
    app.command("experiment", help=f"Run one experiment. Experiments: {listing}.")(experiment)
    app.command("report")(report)
