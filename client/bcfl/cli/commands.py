"""The list of subcommand groups wired into the `bcfl` command (one module each)."""

from __future__ import annotations

from collections.abc import Callable

import typer

REGISTRARS: list[Callable[[typer.Typer], None]] = []
