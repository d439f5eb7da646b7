"""Options and output shared by the subcommands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

# Human output (tables, progress) goes to stderr; stdout carries only results (or JSON).
err_console = Console(stderr=True)
out_console = Console()

STATE_DIR = Path(".bcfl")

RpcOption = Annotated[str, typer.Option("--rpc", help="Chain JSON-RPC URL", envvar="BCFL_RPC")]
KeystoreOption = Annotated[
    Path | None, typer.Option("--keystore", help="Encrypted v3 keystore file holding the wallet key")
]
PasswordEnvOption = Annotated[
    str | None,
    typer.Option("--password-env", help="Environment variable holding the keystore password (else a prompt)"),
]
KeyEnvOption = Annotated[
    str | None, typer.Option("--key-env", help="Environment variable holding the private key (hex)")
]
FormatOption = Annotated[str, typer.Option("--format", help="Output format: table or json")]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
