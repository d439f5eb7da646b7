"""Gas per peer per action as the federation grows: deploy on Anvil, run rounds, read receipts.

Every peer joins, then in each round submits, commits votes, attests the result and (from the
second round on) settles its previous score. Gas comes from the receipts of real transactions.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from web3 import Web3

from bcfl.chain.connection import connect
from bcfl.chain.deployment import FederationSettings, deploy
from bcfl.chain.devnet import start_anvil, stop_pid
from bcfl.chain.federation import Federation, ModelRef
from bcfl.chain.merkle import ScoreLeaf, included_hash, merkle_proof, merkle_root
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender

ACTIONS = ("join", "submit", "vote", "attest", "attest_finalising", "settle")


@dataclass(frozen=True)
class GasRow:
    peers: int
    action: str
    median_gas: int
    min_gas: int
    max_gas: int
    count: int


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def run_rounds(w3: Web3, n_peers: int, rounds: int = 2) -> dict[str, list[int]]:
    """Gas used by each action over `rounds` rounds with `n_peers` peers."""
    decoder = default_decoder()
    deployer = Account.create()
    peers = [Account.create() for _ in range(n_peers)]
    for acct in [deployer, *peers]:
        w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**20)])  # type: ignore[arg-type]
    settings = FederationSettings(
        async_quorum=n_peers, quorum_bps=5000, min_bond_wei=10**15, round_duration=3600, vote_duration=3600
    )
    record = deploy(
        TxSender(w3, deployer, decoder), ModelRef("bafygenesis", _digest("g")), settings.to_config()
    )
    feds = [
        Federation(w3, record.address, sender=TxSender(w3, p, decoder), from_block=record.block_number)
        for p in peers
    ]
    gas: dict[str, list[int]] = defaultdict(list)
    for fed in feds:
        gas["join"].append(fed.join(10**15).gas_used)
    previous: list[ScoreLeaf] = []
    for r in range(1, rounds + 1):
        for fed, acct in zip(feds, peers, strict=True):
            if previous:
                leaf = next(x for x in previous if x.peer == acct.address)
                gas["settle"].append(
                    fed.settle(acct.address, r - 1, leaf.score, True, merkle_proof(previous, leaf)).gas_used
                )
            gas["submit"].append(
                fed.submit_update(
                    r,
                    f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55f{r}{acct.address[-4:]}",
                    _digest(f"{r}{acct.address}"),
                    100,
                    r,
                ).gas_used
            )
        for fed, acct in zip(feds, peers, strict=True):
            gas["vote"].append(
                fed.commit_votes(r, f"bafyvotes-{r}-{acct.address}", _digest(f"v{r}{acct.address}")).gas_used
            )
        leaves = [ScoreLeaf(r, a.address, 600_000 + i % 7, True) for i, a in enumerate(peers)]
        root = merkle_root(leaves)
        inc = included_hash([(a.address, f"bafyupdate-{r}-{a.address}") for a in peers])
        aggregate = ModelRef(
            f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi{r}", _digest(f"agg{r}")
        )
        needed = feds[0].quorum()
        for i, fed in enumerate(feds[:needed]):
            used = fed.attest_result(r, root, inc, aggregate).gas_used
            gas["attest_finalising" if i == needed - 1 else "attest"].append(used)
        previous = leaves
    return gas


def benchmark(peer_counts: Sequence[int], state_dir: Path) -> list[GasRow]:
    devnet = start_anvil(state_dir)
    try:
        w3 = connect(devnet.rpc_url)
        rows = []
        for n in peer_counts:
            gas = run_rounds(w3, n)
            for action in ACTIONS:
                values = gas.get(action, [])
                if values:
                    rows.append(
                        GasRow(
                            n, action, int(statistics.median(values)), min(values), max(values), len(values)
                        )
                    )
        return rows
    finally:
        stop_pid(devnet.pid)


def per_round_total(rows: Sequence[GasRow], peers: int) -> int:
    """A peer's gas in one steady-state round: submit + vote + attest + settle (medians)."""
    by_action = {r.action: r.median_gas for r in rows if r.peers == peers}
    return sum(by_action.get(a, 0) for a in ("submit", "vote", "attest", "settle"))


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
