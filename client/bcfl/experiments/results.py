"""Where experiment and benchmark results go: JSON lines, a markdown table, plots.

Every record carries the machine and package versions it was measured with, so a figure can
always be traced back to the command, seed and environment that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_VERSIONED = ("bcfl", "torch", "transformers", "peft", "web3", "networkx", "numpy")


def environment() -> dict[str, Any]:
    """The machine and package versions a result was measured on."""
    versions: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "versions": versions,
    }


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


@dataclass
class ResultLog:
    """Appends one JSON record per run to `<out>/results.jsonl`."""

    out_dir: Path
    command: str
    env: dict[str, Any] = field(default_factory=environment)

    def __post_init__(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.out_dir / "results.jsonl"

    def append(self, record: Mapping[str, Any]) -> None:
        full = {"command": self.command, "time": time.time(), **record, "env": self.env}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(full, sort_keys=True, default=str) + "\n")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a results.jsonl file."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def median_spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of repeated measurements."""
    if not values:
        raise ValueError("no values to summarise")
    return statistics.median(values), min(values), max(values)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def command_line(module: str, argv: Sequence[str], out_dir: Path) -> str:
    """The command as given, its output folder written OUT (a record names the command, not
    where one run put its files)."""
    return " ".join([f"python -m {module}", *("OUT" if a == str(out_dir) else a for a in argv)])


def per_seed(fn: Callable[[int], T], seeds: Sequence[int], jobs: int = 1) -> list[T]:
    """fn(seed) for every seed, in up to `jobs` processes at once (seeds are independent)."""
    if jobs <= 1 or len(seeds) <= 1:
        return [fn(s) for s in seeds]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(seeds))) as pool:
        return list(pool.map(fn, seeds))
