"""The subcommand groups wired into the `bcfl` command (one module each)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from bcfl.cli import audit, bench, chain, demo, experiment, explorer, learning, node, peers, storage

REGISTRARS: list[Callable[[typer.Typer], None]] = [
    chain.register,
    node.register,
    demo.register,
    audit.register,
    explorer.register,
    storage.register,
    learning.register,
    experiment.register,
    bench.register,
    peers.register,
]
