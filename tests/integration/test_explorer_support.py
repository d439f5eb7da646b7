"""Support for the explorer's integration and browser tests (no tests in this file):
a devnet federation with finished rounds, and HTTP helpers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from bcfl.chain.deployment import Deployment, deploy, save_record
from bcfl.chain.federation import ClosingRule, Federation
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.explorer.filler import FilledRound, fill_rounds
from bcfl.storage.embedded import EmbeddedStorage
from tests.conftest import GENESIS, funded_accounts, make_config

THRESHOLD = 200_000


@dataclass
class Devnet:
    w3: Web3
    rpc_url: str
    record: Deployment
    record_path: Path
    fed: Federation
    peers: list[LocalAccount]
    storage: EmbeddedStorage
    storage_dir: Path
    rounds: list[FilledRound]


def build_federation(w3: Web3, rpc_url: str, folder: Path, *, peers: int = 4, rounds: int = 3) -> Devnet:
    """Deploy a synchronous serverless federation and run `rounds` rounds; the last peer is bad."""
    deployer, *accounts = funded_accounts(w3, peers + 1)
    record = deploy(
        TxSender(w3, deployer, default_decoder()),
        GENESIS,
        make_config(closing_rule=ClosingRule.SYNCHRONOUS, max_staleness=0, score_threshold=THRESHOLD),
    )
    record_path = save_record(folder / "deployments", record)
    fed = Federation(w3, record.address, from_block=record.block_number)
    storage = EmbeddedStorage(folder / "storage")
    filled = fill_rounds(w3, rpc_url, fed, accounts, rounds, storage, bad=[peers - 1], threshold=THRESHOLD)
    return Devnet(w3, rpc_url, record, record_path, fed, accounts, storage, folder / "storage", filled)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def get_json(url: str) -> tuple[int, Any]:
    code, text = get(url)
    return code, json.loads(text)


def foreign_record(record: Deployment, path: Path, **changes: Any) -> Path:
    """A copy of `record` changed as given (say, another chain id), saved at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(record), **changes}), encoding="utf-8")
    return path
