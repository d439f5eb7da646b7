"""Shared fixtures: a real Anvil per test module, funded dev accounts, a deployed federation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bcfl.chain.connection import connect
from bcfl.chain.devnet import DevnetInfo, start_anvil, stop_pid
from bcfl.chain.federation import ClosingRule, FederationConfig, ModelRef, ResultMode


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetInfo]:
    """A real Anvil on a free loopback port, stopped after the module."""
    info = start_anvil(tmp_path_factory.mktemp("anvil"))
    try:
        yield info
    finally:
        stop_pid(info.pid)


@pytest.fixture(scope="module")
def w3(anvil: DevnetInfo) -> Web3:
    return connect(anvil.rpc_url)


def funded_accounts(w3: Web3, count: int, *, ether: int = 100) -> list[LocalAccount]:
    """Fresh accounts funded through Anvil's `anvil_setBalance` (no dev key involved)."""
    accounts = [Account.create() for _ in range(count)]
    for acct in accounts:
        w3.provider.make_request("anvil_setBalance", [acct.address, hex(ether * 10**18)])  # type: ignore[arg-type]
    return accounts


def make_config(**overrides: object) -> FederationConfig:
    base: dict[str, object] = dict(
        closing_rule=ClosingRule.ASYNCHRONOUS,
        result_mode=ResultMode.SERVERLESS,
        aggregator="0x" + "00" * 20,
        min_bond=10**15,
        async_quorum=3,
        max_staleness=2,
        round_duration=600,
        vote_duration=120,
        result_duration=300,
        quorum_bps=5000,
        reputation_weight_bps=3000,
        initial_reputation=500_000,
        score_threshold=200_000,
    )
    base.update(overrides)
    return FederationConfig(**base)  # type: ignore[arg-type]


GENESIS = ModelRef("bafkreigenesisplaceholdercid", hashlib.sha256(b"genesis").digest())


@pytest.fixture()
def tmp_records(tmp_path: Path) -> Path:
    return tmp_path / "deployments"
