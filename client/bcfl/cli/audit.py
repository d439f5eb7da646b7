"""`bcfl audit`: re-check every round from the chain and storage alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bcfl.cli.common import FormatOption, RpcOption, err_console, print_json
from bcfl.errors import BcflError


class AuditFailed(BcflError):
    """At least one round failed a check."""


def audit(
    rpc: RpcOption,
    deployment: Annotated[Path, typer.Option(help="Deployment record")] = Path(
        "deploy/deployments/31337.json"
    ),
    storage: Annotated[str, typer.Option(help="'embedded', 'embedded:PATH' or a Kubo RPC URL")] = "embedded",
    data_dir: Annotated[Path, typer.Option(help="Folder for the auditor's own storage")] = Path(
        ".bcfl/audit"
    ),
    rounds: Annotated[str, typer.Option(help="Comma-separated rounds (default: all)")] = "",
    fmt: FormatOption = "table",
) -> None:
    """Walk every round: updates resolve, scores/included set/aggregate recompute, bases chain."""
    from bcfl.audit.checks import CHECKS, audit_federation
    from bcfl.chain.connection import connect
    from bcfl.chain.deployment import open_federation
    from bcfl.node.work import open_storage_spec

    w3 = connect(rpc)
    _, fed = open_federation(w3, deployment)
    store = open_storage_spec(storage, data_dir)
    wanted = [int(r) for r in rounds.split(",") if r.strip()] or None
    audits = audit_federation(fed, store, rounds=wanted)
    if fmt == "json":
        print_json(
            [
                {
                    "round": a.round,
                    "status": a.status,
                    "ok": a.ok,
                    "seconds": round(a.seconds, 3),
                    "checks": [{"check": c.check, "ok": c.ok, "detail": c.detail} for c in a.checks],
                }
                for a in audits
            ]
        )
    else:
        table = Table("round", "status", *CHECKS, "s")
        for a in audits:
            marks = {c.check: ("ok" if c.ok else "-" if c.ok is None else "FAIL") for c in a.checks}
            table.add_row(str(a.round), a.status, *[marks.get(c, "") for c in CHECKS], f"{a.seconds:.2f}")
        err_console.print(table)
    failed = next((a for a in audits if not a.ok), None)
    if failed is not None:
        first = failed.first_failure()
        assert first is not None
        raise AuditFailed(f"round {failed.round} fails check '{first.check}': {first.detail}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
