"""`bcfl node`: run one peer as its own process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import KeyEnvOption, KeystoreOption, PasswordEnvOption


def node(
    config: Annotated[Path | None, typer.Option("--config", help="Node configuration (TOML)")] = None,
    rpc: Annotated[str | None, typer.Option(help="Chain JSON-RPC URL")] = None,
    deployment: Annotated[
        Path | None, typer.Option(help="Deployment record (deployments/<chainId>.json)")
    ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = None,
    key_env: KeyEnvOption = None,
    data_dir: Annotated[Path | None, typer.Option(help="This peer's data folder")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="'embedded', 'embedded:PATH', 'p2p' (own store, served to peers) or a Kubo RPC URL"
        ),
    ] = None,
    peers_file: Annotated[
        Path | None, typer.Option(help="storage p2p: TOML naming every peer's server (and its links)")
    ] = None,
    listen: Annotated[str | None, typer.Option(help="storage p2p: host:port this peer serves on")] = None,
    model: Annotated[str | None, typer.Option(help="smollm2, tiny, or a local causal-LM folder")] = None,
    role: Annotated[str | None, typer.Option(help="peer or aggregator")] = None,
    peer_index: Annotated[int | None, typer.Option(help="This peer's shard index")] = None,
    peers: Annotated[int | None, typer.Option(help="Number of shards")] = None,
    attack: Annotated[str | None, typer.Option(help="Behave as an attacker (experiments, demo)")] = None,
    max_rounds: Annotated[int | None, typer.Option(help="Stop after this round (0: never)")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json")] = None,
) -> None:
    """Run one peer: train, submit, vote, attest and aggregate, round after round."""
    from bcfl.logs import setup_logging
    from bcfl.node.config import load_node_config
    from bcfl.node.runner import run_node

    overrides = dict(
        rpc=rpc,
        deployment=str(deployment) if deployment else None,
        keystore=str(keystore) if keystore else None,
        password_env=password_env,
        key_env=key_env,
        data_dir=str(data_dir) if data_dir else None,
        storage=storage,
        peers_file=str(peers_file) if peers_file else None,
        listen=listen,
        model=model,
        role=role,
        peer_index=peer_index,
        peers=peers,
        attack=attack,
        max_rounds=max_rounds,
        log_format=log_format,
    )
    conf = load_node_config(config, overrides)
    setup_logging(conf.log_format, name=f"peer{conf.peer_index}" if conf.role == "peer" else "aggregator")
    run_node(conf)


def register(app: typer.Typer) -> None:
    app.command("node")(node)
