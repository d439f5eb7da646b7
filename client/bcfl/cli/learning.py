"""`bcfl data` and `bcfl model`: the data set's split and partition, and the base model cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import FormatOption, err_console, print_json

data_app = typer.Typer(help="The medical-transcriptions data set and its partitions.", no_args_is_help=True)
model_app = typer.Typer(
    help="Base models (SmolLM2 from its PyPI package, converted once).", no_args_is_help=True
)


@data_app.command("summary")
def summary(
    peers: Annotated[int, typer.Option(help="Number of peers to partition the training split among")] = 5,
    partition: Annotated[str, typer.Option(help="iid, dirichlet or label")] = "dirichlet",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller is more skewed)")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the split and the partition")] = 0,
    fmt: FormatOption = "table",
) -> None:
    """The leak-free split of the pooled data set and each peer's shard."""
    from bcfl.errors import BcflError
    from bcfl.learning.data import SplitConfig, load_splits
    from bcfl.learning.partition import SCHEMES, PartitionConfig, summary_rows
    from bcfl.learning.partition import partition as make_partition

    if partition not in SCHEMES:
        raise BcflError(f"unknown partition {partition!r} (choose from {', '.join(SCHEMES)})")
    try:
        config = PartitionConfig(peers=peers, scheme=partition, alpha=alpha, seed=seed)
    except ValueError as exc:
        raise BcflError(str(exc)) from None
    splits = load_splits(SplitConfig(seed=seed))
    shards = make_partition(splits.train, config)
    rows = summary_rows(shards, splits.label_names)
    if fmt == "json":
        print_json(
            {
                "split": {
                    "train": len(splits.train),
                    "validation": len(splits.validation),
                    "test": len(splits.test),
                },
                "partition": {"peers": peers, "scheme": partition, "alpha": alpha, "seed": seed},
                "shards": [
                    {"peer": r[0], "train": r[1], "validation": r[2], "labels": r[3], "most_common": r[4]}
                    for r in rows
                ],
            }
        )
        return
    from rich.table import Table

    err_console.print(
        f"pooled, de-duplicated split (seed {seed}): train {len(splits.train)}, "
        f"validation {len(splits.validation)}, test {len(splits.test)}; "
        f"{partition} partition of train among {peers} peers"
        + (f" (alpha {alpha})" if partition == "dirichlet" else "")
    )
    table = Table("peer", "train", "validation", "labels", "most common label")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    from rich.console import Console

    Console().print(table)


@model_app.command("prepare")
def prepare(
    model: Annotated[
        str, typer.Option(help="smollm2, tiny, or a local Hugging Face causal-LM folder")
    ] = "smollm2",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Model cache (default ~/.cache/bcfl/models or $BCFL_CACHE_DIR/models)")
    ] = None,
) -> None:
    """Convert SmolLM2 from its packaged GGUF file once (later loads take a second) and check it loads."""
    from bcfl.learning.model import load_base

    started = time.monotonic()
    with err_console.status(f"preparing {model} (the first SmolLM2 conversion takes a minute or more)"):
        base = load_base(model, cache_dir=cache_dir)
    params = sum(p.numel() for p in base.model.parameters())
    err_console.print(f"{base.name}: {params:,} parameters, ready in {time.monotonic() - started:.1f} s")
    print(base.model_id)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(model_app, name="model")
