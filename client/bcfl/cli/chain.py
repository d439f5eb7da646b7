"""`bcfl devnet`, `bcfl deploy` and `bcfl account`: the chain side of a federation."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bcfl.cli.common import (
    STATE_DIR,
    FormatOption,
    KeyEnvOption,
    KeystoreOption,
    PasswordEnvOption,
    RpcOption,
    err_console,
    print_json,
)

devnet_app = typer.Typer(help="A local Anvil devnet (and IPFS daemons) on loopback.", no_args_is_help=True)
account_app = typer.Typer(help="Wallet keys as encrypted keystore files.", no_args_is_help=True)

DevnetDir = Annotated[Path, typer.Option("--state-dir", help="Where the devnet keeps its state")]


@devnet_app.command("up")
def devnet_up(
    state_dir: DevnetDir = STATE_DIR / "devnet",
    ipfs: Annotated[int, typer.Option("--ipfs", help="Also start N connected IPFS daemons")] = 0,
    block_time: Annotated[float | None, typer.Option(help="Seconds per block (default: automine)")] = None,
) -> None:
    """Start Anvil on a free loopback port (state persisted, so a restart keeps history)."""
    from bcfl.chain import devnet

    existing = devnet.load_record(state_dir)
    if existing and devnet.pid_alive(existing.pid) and devnet.rpc_alive(existing.rpc_url):
        err_console.print(f"devnet already running at {existing.rpc_url} (pid {existing.pid})")
    else:
        info = devnet.start_anvil(state_dir, block_time=block_time, persist=True)
        devnet.save_record(state_dir, info)
        err_console.print(f"anvil up at {info.rpc_url} (pid {info.pid}, state {info.state_file})")
    if ipfs:
        import bcfl.storage.ipfs_daemons as ipfs_daemons

        daemons = ipfs_daemons.start_daemons(ipfs, state_dir)
        ipfs_daemons.save_daemons(state_dir, daemons)
        for d in daemons:
            err_console.print(f"ipfs daemon up: api {d.api_url} (pid {d.pid})")
    record = devnet.load_record(state_dir)
    assert record is not None
    print(record.rpc_url)


@devnet_app.command("down")
def devnet_down(state_dir: DevnetDir = STATE_DIR / "devnet") -> None:
    """Stop the devnet's Anvil (and IPFS daemons) by their recorded PIDs."""
    from bcfl.chain import devnet

    record = devnet.load_record(state_dir)
    if record is None:
        err_console.print(f"no devnet recorded in {state_dir}")
    else:
        stopped = devnet.stop_pid(record.pid)
        err_console.print(f"anvil (pid {record.pid}) {'stopped' if stopped else 'was not running'}")
        devnet.record_path(state_dir).unlink()
    import bcfl.storage.ipfs_daemons as ipfs_daemons

    daemons = ipfs_daemons.load_daemons(state_dir)
    if daemons:
        ipfs_daemons.stop_daemons(daemons)
        ipfs_daemons.clear_record(state_dir)
        err_console.print(f"stopped {len(daemons)} IPFS daemon(s)")


@devnet_app.command("status")
def devnet_status(state_dir: DevnetDir = STATE_DIR / "devnet", fmt: FormatOption = "table") -> None:
    """Show whether the recorded devnet is running."""
    from bcfl.chain import devnet

    record = devnet.load_record(state_dir)
    alive = bool(record and devnet.pid_alive(record.pid) and devnet.rpc_alive(record.rpc_url))
    status = {"running": alive, **(asdict(record) if record else {})}
    if fmt == "json":
        print_json(status)
        return
    if record is None:
        err_console.print(f"no devnet recorded in {state_dir}")
        raise typer.Exit(1)
    err_console.print(f"anvil {'running' if alive else 'NOT running'} at {record.rpc_url} (pid {record.pid})")
    if not alive:
        raise typer.Exit(1)


def deploy(
    rpc: RpcOption,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = None,
    key_env: KeyEnvOption = None,
    config: Annotated[Path, typer.Option(help="Federation configuration (TOML)")] = Path(
        "deploy/federation.toml"
    ),
    genesis_cid: Annotated[str, typer.Option(help="CID of the genesis adapter")] = "",
    genesis_digest: Annotated[str, typer.Option(help="sha256 digest (hex) of the genesis adapter")] = "",
    records: Annotated[Path, typer.Option(help="Folder of per-chain deployment records")] = Path(
        "deploy/deployments"
    ),
    replace: Annotated[bool, typer.Option(help="Archive an existing record for this chain")] = False,
) -> None:
    """Deploy the federation contract to any EVM RPC URL and write `<records>/<chainId>.json`."""
    from bcfl import config as cfg
    from bcfl.chain.connection import connect
    from bcfl.chain.deployment import DeploymentError, FederationSettings, record_file, save_record
    from bcfl.chain.deployment import deploy as do_deploy
    from bcfl.chain.federation import ModelRef
    from bcfl.chain.reverts import default_decoder
    from bcfl.chain.transactions import TxSender
    from bcfl.chain.wallet import load_account

    settings = cfg.load(FederationSettings, config)
    if not genesis_cid or not genesis_digest:
        raise DeploymentError("give the genesis model with --genesis-cid and --genesis-digest")
    try:
        digest = bytes.fromhex(genesis_digest.removeprefix("0x"))
    except ValueError as exc:
        raise DeploymentError(f"--genesis-digest {genesis_digest!r} is not hex") from exc
    if len(digest) != 32:
        raise DeploymentError("--genesis-digest must be 32 bytes (64 hex digits)")
    account = load_account(keystore=keystore, password_env=password_env, key_env=key_env)
    w3 = connect(rpc)
    existing = record_file(records, int(w3.eth.chain_id))
    if existing.exists() and not replace:
        raise DeploymentError(f"deployment record {existing} already exists; pass --replace to archive it")
    sender = TxSender(w3, account, default_decoder())
    deployment = do_deploy(sender, ModelRef(genesis_cid, digest), settings.to_config())
    path = save_record(records, deployment, replace=replace)
    err_console.print(
        f"deployed FederationRegistry at {deployment.address} (block {deployment.block_number})"
    )
    print(path)


@account_app.command("new")
def account_new(
    directory: Annotated[Path, typer.Option("--dir", help="Keystore folder")] = STATE_DIR / "keystores",
    password_env: PasswordEnvOption = None,
) -> None:
    """Create a key in a standard v3 keystore file (readable by other Ethereum tools)."""
    from bcfl.chain.wallet import new_keystore, resolve_password

    password = resolve_password(password_env, prompt=True, what="the new keystore")
    entry = new_keystore(directory, password)
    err_console.print(f"new key {entry.address} in {entry.path}")
    print(entry.address)


@account_app.command("list")
def account_list(
    directory: Annotated[Path, typer.Option("--dir", help="Keystore folder")] = STATE_DIR / "keystores",
    fmt: FormatOption = "table",
) -> None:
    """List keystore files and their addresses (no password needed)."""
    from bcfl.chain.wallet import list_keystores

    entries = list_keystores(directory)
    if fmt == "json":
        print_json([{"address": e.address, "path": str(e.path)} for e in entries])
        return
    table = Table("address", "keystore")
    for e in entries:
        table.add_row(e.address, str(e.path))
    err_console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(devnet_app, name="devnet")
    app.add_typer(account_app, name="account")
    app.command("deploy")(deploy)
