"""`bcfl demo`: a whole federation on this machine, end to end, then audited."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bcfl.cli.common import STATE_DIR, err_console


def demo(
    quick: Annotated[
        bool, typer.Option(help="Tiny random model instead of SmolLM2 (about 2 minutes)")
    ] = False,
    peers: Annotated[int, typer.Option(help="Peer processes (one of them an attacker)")] = 5,
    rounds: Annotated[int, typer.Option(help="Asynchronous rounds to run")] = 3,
    attack: Annotated[str, typer.Option(help="The attacker's behaviour")] = "sign-flip",
    ipfs: Annotated[
        bool, typer.Option(help="One js-ipfs daemon per peer instead of the embedded store")
    ] = False,
    storage: Annotated[
        str,
        typer.Option(
            help="embedded (one shared store), ipfs (as --ipfs) or p2p (each peer's own store, "
            "objects fetched from the other peers over TCP along planned paths)"
        ),
    ] = "embedded",
    testbed: Annotated[
        bool,
        typer.Option(
            help="Each peer on its own network host: a namespace with shaped access links drawn from "
            "the stated bandwidth model (docs/network.md); needs root; implies --storage p2p"
        ),
    ] = False,
    workdir: Annotated[Path, typer.Option(help="Scratch folder (replaced)")] = STATE_DIR / "demo",
) -> None:
    """Devnet up, contract deployed, N peer processes with their own keys, async rounds, audit."""
    from bcfl.audit.checks import CHECKS, audit_federation
    from bcfl.demo import demo_spec, round_report
    from bcfl.orchestrate import LocalFederation

    if storage not in ("embedded", "ipfs", "p2p"):
        raise typer.BadParameter(f"--storage {storage!r} is not one of embedded, ipfs, p2p")
    if testbed and (ipfs or storage not in ("embedded", "p2p")):
        raise typer.BadParameter("--testbed moves objects between hosts itself: it implies --storage p2p")
    storage = "p2p" if testbed else storage
    spec = demo_spec(
        workdir, quick=quick, peers=peers, rounds=rounds, attack=attack, ipfs=ipfs, storage=storage
    )
    started = time.monotonic()
    err_console.print(
        f"[bold]bcfl demo[/]: {peers} peers (peer {peers - 1} attacks with {attack}), model {spec.model}, "
        f"{rounds} asynchronous rounds (K={spec.async_quorum} of {peers}), storage {spec.storage}"
    )
    with contextlib.ExitStack() as stack:
        hosts = None
        if testbed:
            from bcfl.cli.peers import measure_testbed
            from bcfl.network.hosts import TestbedHosts, drawn_testbed

            bed = stack.enter_context(drawn_testbed(peers, seed=0))
            shaped = ", ".join(
                f"{u * 8 / 1e6:.0f}/{d * 8 / 1e6:.0f}" for u, d in zip(bed.ups, bed.downs, strict=True)
            )
            err_console.print(f"testbed hosts {bed.addresses[0]}..; shaped up/down Mbit/s per peer: {shaped}")
            probes = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bcfl-probes-")))
            measured = measure_testbed(bed, probes)
            err_console.print(
                "probed up/down Mbit/s (what the peers plan with): "
                + ", ".join(f"{u:.0f}/{d:.0f}" for u, d in measured)
            )
            hosts = TestbedHosts(bed, measured)
        fed = stack.enter_context(LocalFederation(spec, hosts))
        assert fed.federation is not None and fed.devnet is not None
        err_console.print(
            f"devnet {fed.devnet.rpc_url}; contract {fed.federation.address}; logs in {workdir}/peers"
        )
        for r in range(1, rounds + 1):
            status = fed.wait_for_round(r, timeout=spec.round_duration * 3)
            report = round_report(fed, r)
            table = Table(
                title=f"round {r}: {status.name.lower()} in {report.seconds:.0f} s", title_justify="left"
            )
            for col in (
                "peer",
                "role",
                "samples",
                "staleness",
                "score",
                "included",
                "reason",
                "gas (submit)",
            ):
                table.add_column(col)
            for row in report.rows:
                table.add_row(*row)
            err_console.print(table)
            if report.note:
                err_console.print(report.note)
        store = fed.reader(workdir / "auditor")
        audits = audit_federation(fed.federation, store, rounds=list(range(1, rounds + 1)))
    table = Table(title="audit (chain + storage only)", title_justify="left")
    for col in ("round", "status", *CHECKS):
        table.add_column(col)
    for a in audits:
        marks = {c.check: ("ok" if c.ok else "-" if c.ok is None else "FAIL") for c in a.checks}
        table.add_row(str(a.round), a.status, *[marks.get(c, "") for c in CHECKS])
    err_console.print(table)
    bad = [a for a in audits if not a.ok]
    err_console.print(
        f"demo finished in {time.monotonic() - started:.0f} s; everything it started is stopped"
    )
    if bad:
        first = bad[0].first_failure()
        raise (
            typer.Exit(code=1)
            if first is None
            else SystemExit(f"audit failed: round {bad[0].round} {first.check}: {first.detail}")
        )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
