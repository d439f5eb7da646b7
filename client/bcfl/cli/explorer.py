"""`bcfl explorer`: serve the federation's block explorer on a local web page."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import STATE_DIR, RpcOption, err_console


def explorer(
    rpc: RpcOption = "http://127.0.0.1:8545",
    deployment: Annotated[Path, typer.Option(help="Deployment record")] = Path(
        "deploy/deployments/31337.json"
    ),
    storage: Annotated[
        str,
        typer.Option(
            help="Where vote files and updates are read: 'embedded', 'embedded:PATH', "
            "a Kubo RPC URL, or 'none'"
        ),
    ] = "none",
    host: Annotated[str, typer.Option(help="Address to serve on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (0: any free port)")] = 8600,
    state_dir: Annotated[Path, typer.Option(help="Folder where the index is persisted")] = STATE_DIR
    / "explorer",
    poll: Annotated[float, typer.Option(help="Seconds between polls for new blocks")] = 1.0,
    audit: Annotated[bool, typer.Option(help="Run the audit on every finished round")] = True,
    verbose: Annotated[bool, typer.Option(help="Log every HTTP request")] = False,
) -> None:
    """Serve a block explorer for the federation: rounds, peers, blocks, transactions, audits."""
    from bcfl.explorer.app import Explorer, ExplorerConfig

    store = None
    if storage != "none":
        from bcfl.storage.base import open_storage

        spec, _, path = storage.partition(":") if storage.startswith("embedded:") else (storage, "", "")
        store = open_storage(spec, Path(path) if path else state_dir / "storage")
    config = ExplorerConfig(
        rpc_url=rpc,
        deployment=deployment,
        host=host,
        port=port,
        state_dir=state_dir,
        poll_interval=poll,
        audit=audit,
        verbose=verbose,
    )
    app = Explorer(config, storage=store)
    app.start()
    err_console.print(f"explorer on [bold]{app.url}[/bold] (chain {rpc}); Ctrl-C stops it")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()


def register(app: typer.Typer) -> None:
    app.command("explorer")(explorer)
