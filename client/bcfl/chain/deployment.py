"""Deploying the contract and the per-chain deployment records (`<records>/<chainId>.json`).

A record names the contract's address, the deploying transaction and block, the configuration,
the genesis model and the hash of the artifact's bytecode. Loading one checks that it belongs to
the chain the RPC serves and that the code at the address is this contract; a record is never
overwritten silently.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from bcfl.chain.build import artifact_hash, load_artifact
from bcfl.chain.federation import PPM, ClosingRule, Federation, FederationConfig, ModelRef, ResultMode
from bcfl.chain.reverts import revert_data
from bcfl.chain.transactions import TxSender
from bcfl.errors import BcflError


class DeploymentError(BcflError):
    """A deployment record is missing, foreign, or would be overwritten."""


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    address: str
    transaction: str
    block_number: int
    genesis_block_hash: str
    deployer: str
    config: dict[str, Any]
    genesis_cid: str
    genesis_digest: str
    artifact_sha256: str
    deployed_at: float

    def federation_config(self) -> FederationConfig:
        c = dict(self.config)
        c["closing_rule"] = ClosingRule[c["closing_rule"]]
        c["result_mode"] = ResultMode[c["result_mode"]]
        return FederationConfig(**c)


def _config_json(config: FederationConfig) -> dict[str, Any]:
    data = asdict(config)
    data["closing_rule"] = config.closing_rule.name
    data["result_mode"] = config.result_mode.name
    return data


def deploy(sender: TxSender, genesis: ModelRef, config: FederationConfig) -> Deployment:
    """Deploy a FederationRegistry with `config`, starting from the `genesis` model."""
    w3 = sender.w3
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    ctor = factory.constructor(genesis.cid, genesis.digest, config.as_tuple())
    params: dict[str, Any] = {"from": sender.address, "chainId": int(w3.eth.chain_id)}
    try:
        gas = int(ctor.estimate_gas(params))
    except Exception as exc:
        data = revert_data(exc)
        if data is not None:
            raise sender.decoder.decode(data, "deploy") from None
        raise DeploymentError(f"deployment would fail: {exc}") from exc
    nonce = sender._allocate_nonce()
    tx = ctor.build_transaction({**params, "gas": int(gas * 1.2), "nonce": nonce})
    signed = sender.account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=sender.receipt_timeout)
    if int(receipt["status"]) != 1 or not receipt["contractAddress"]:
        raise DeploymentError(f"deployment transaction {tx_hash.hex()} failed")
    return Deployment(
        chain_id=int(w3.eth.chain_id),
        address=str(receipt["contractAddress"]),
        transaction="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        genesis_block_hash="0x" + bytes(w3.eth.get_block(0)["hash"]).hex(),
        deployer=sender.address,
        config=_config_json(config),
        genesis_cid=genesis.cid,
        genesis_digest="0x" + genesis.digest.hex(),
        artifact_sha256=artifact_hash(artifact),
        deployed_at=time.time(),
    )


def record_file(records_dir: Path, chain_id: int) -> Path:
    return records_dir / f"{chain_id}.json"


def save_record(records_dir: Path, deployment: Deployment, *, replace: bool = False) -> Path:
    """Write the record; an existing one is kept (error) unless `replace`, which archives it."""
    records_dir.mkdir(parents=True, exist_ok=True)
    path = record_file(records_dir, deployment.chain_id)
    if path.exists():
        if not replace:
            raise DeploymentError(
                f"deployment record {path} already exists; pass --replace to archive it and write a new one"
            )
        path.replace(path.with_name(f"{deployment.chain_id}.{int(time.time())}.json"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(deployment), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_record(path: Path) -> Deployment:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Deployment(**data)
    except FileNotFoundError as exc:
        raise DeploymentError(f"deployment record {path} does not exist (run `bcfl deploy` first)") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise DeploymentError(f"deployment record {path} is not a valid record: {exc}") from exc


def open_federation(w3: Web3, path: Path, *, sender: TxSender | None = None) -> tuple[Deployment, Federation]:
    """Load a record and check it belongs to the chain `w3` serves; return the facade."""
    record = read_record(path)
    chain_id = int(w3.eth.chain_id)
    if chain_id != record.chain_id:
        raise DeploymentError(
            f"deployment record {path} is for chain {record.chain_id}, but the RPC serves {chain_id}"
        )
    genesis_hash = "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
    if genesis_hash != record.genesis_block_hash:
        raise DeploymentError(
            f"deployment record {path} belongs to another chain with id {chain_id} (genesis differs)"
        )
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(record.address)))
    expected = bytes.fromhex(load_artifact()["deployedBytecode"][2:])
    if not code:
        raise DeploymentError(f"no contract at {record.address} (record {path}); was the chain reset?")
    # Immutables are patched into the runtime code at deployment, so the bytes differ in those
    # slots only: the size and everything before the first immutable must match.
    if len(code) != len(expected) or code[:32] != expected[:32]:
        raise DeploymentError(f"the code at {record.address} is not this FederationRegistry (record {path})")
    federation = Federation(w3, record.address, sender=sender, from_block=record.block_number)
    return record, federation


@dataclass(frozen=True)
class FederationSettings:
    """The deployment configuration as written in TOML (see deploy/federation.toml)."""

    closing_rule: str = "asynchronous"
    result_mode: str = "serverless"
    aggregator: str = ""
    min_bond_wei: int = 0
    async_quorum: int = 3
    max_staleness: int = 2
    round_duration: int = 900
    vote_duration: int = 300
    result_duration: int = 600
    quorum_bps: int = 5000
    reputation_weight_bps: int = 3000
    initial_reputation: int = 500_000
    score_threshold: int = 450_000
    server_learning_rate: float = 1.0  # aggregate = base + rate x (mean of the updates - base)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.server_learning_rate) and 0 < self.server_learning_rate <= 100):
            raise ValueError(f"server_learning_rate must be in (0, 100], got {self.server_learning_rate}")
        if self.closing_rule not in ("synchronous", "asynchronous"):
            raise ValueError(
                f"closing_rule must be 'synchronous' or 'asynchronous', got {self.closing_rule!r}"
            )
        if self.result_mode not in ("serverless", "server"):
            raise ValueError(f"result_mode must be 'serverless' or 'server', got {self.result_mode!r}")
        if self.result_mode == "server" and not Web3.is_address(self.aggregator):
            raise ValueError("result_mode 'server' needs an aggregator address")
        if self.closing_rule == "synchronous" and self.max_staleness != 0:
            raise ValueError("max_staleness must be 0 with the synchronous closing rule")

    def to_config(self) -> FederationConfig:
        zero = "0x" + "00" * 20
        return FederationConfig(
            closing_rule=ClosingRule[self.closing_rule.upper()],
            result_mode=ResultMode[self.result_mode.upper()],
            aggregator=Web3.to_checksum_address(self.aggregator) if self.result_mode == "server" else zero,
            min_bond=self.min_bond_wei,
            async_quorum=self.async_quorum,
            max_staleness=self.max_staleness,
            round_duration=self.round_duration,
            vote_duration=self.vote_duration,
            result_duration=self.result_duration,
            quorum_bps=self.quorum_bps,
            reputation_weight_bps=self.reputation_weight_bps,
            initial_reputation=self.initial_reputation,
            score_threshold=self.score_threshold,
            server_learning_rate_ppm=round(self.server_learning_rate * PPM),
        )
