"""`bcfl cid` and `bcfl bench storage`: content addresses and storage throughput."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import err_console


def cid(
    path: Annotated[Path, typer.Argument(help="A file, or a folder (walked like `ipfs add -r`)")],
) -> None:
    """Print the CID `ipfs add [-r] --cid-version=1 --raw-leaves` gives PATH, without storing it."""
    from bcfl.storage.cid import cid_of_path
    from bcfl.storage.errors import StorageError

    if not path.exists():
        raise StorageError(f"{path} does not exist")
    print(cid_of_path(path))


def bench_storage(
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/storage"),
    sizes_mib: Annotated[
        str, typer.Option("--sizes-mib", help="Comma-separated object sizes in MiB")
    ] = "4,64",
    repeats: Annotated[int, typer.Option(help="Repeats per size (fresh random bytes each)")] = 3,
    daemons: Annotated[bool, typer.Option(help="Also measure two js-ipfs daemons on loopback")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the random content")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON on stdout")] = False,
) -> None:
    """Put/get throughput of the embedded store and a daemon; CID speed against sha256 and a raw read."""
    from bcfl.experiments.results import ResultLog, markdown_table, median_spread
    from bcfl.storage import bench

    sizes = [int(float(s) * bench.MIB) for s in sizes_mib.split(",") if s.strip()]
    command = f"bcfl bench storage --sizes-mib {sizes_mib} --repeats {repeats} --seed {seed}"
    command += "" if daemons else " --no-daemons"
    log = ResultLog(out, command=command)

    def report(m: bench.Measurement) -> None:
        log.append({"kind": "storage", **asdict(m), "mib_per_s": m.mib_per_s, "seed": seed})
        err_console.print(
            f"{m.op:8} {m.backend:16} {m.size_bytes / bench.MIB:6.0f} MiB  {m.mib_per_s:9.1f} MiB/s"
        )

    rows = bench.run(out / "work", sizes=sizes, repeats=repeats, daemons=daemons, seed=seed, progress=report)
    groups: dict[tuple[str, str, int], list[float]] = {}
    for m in rows:
        groups.setdefault((m.op, m.backend, m.size_bytes), []).append(m.mib_per_s)
    sha = {size: median_spread(v)[0] for (op, _, size), v in groups.items() if op == "sha256"}
    table_rows = []
    for (op, backend, size), values in groups.items():
        med, lo, hi = median_spread(values)
        table_rows.append(
            (
                op,
                backend,
                f"{size / bench.MIB:g}",
                f"{med:.1f}",
                f"{lo:.1f}",
                f"{hi:.1f}",
                len(values),
                med / sha[size],
            )
        )
    table = markdown_table(
        ["operation", "backend", "MiB", "median MiB/s", "min", "max", "n", "vs sha256"], table_rows
    )
    (out / "table.md").write_text(f"Command: `{command}`\n\n{table}", encoding="utf-8")
    err_console.print(table)
    if as_json:
        print(json.dumps([asdict(m) | {"mib_per_s": m.mib_per_s} for m in rows], indent=2))


def register(app: typer.Typer) -> None:
    from bcfl.cli.bench import bench_app

    app.command("cid")(cid)
    bench_app.command("storage")(bench_storage)
