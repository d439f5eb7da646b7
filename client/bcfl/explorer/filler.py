"""Fill a devnet with finished rounds for the explorer's tests and benchmark.

Real transactions against the real contract: peers join, then each round every peer submits an
update, commits a vote file, a quorum attests one result, and every peer's score is settled with
its Merkle proof. Update, vote and aggregate bytes are stored in the given storage so their CIDs
resolve; the vote files follow `bcfl.trust.votes`' format (values and accuracies synthetic:
"bad" peers receive low votes, so they are excluded and their reputation falls).

This is not the peer node: no training happens and the scores are taken from the synthetic votes
directly. Transactions are signed locally with explicit nonces and sent without waiting for each
receipt (Anvil mines each on arrival); receipts are checked once per round in one batch.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from bcfl.chain.federation import Federation, RoundStatus
from bcfl.chain.merkle import ScoreLeaf, included_hash, merkle_proof, merkle_root
from bcfl.chain.reverts import default_decoder
from bcfl.errors import BcflError
from bcfl.explorer.rpc import RpcClient, RpcError
from bcfl.storage.base import Storage

PPM = 1_000_000


class FillError(BcflError):
    """A transaction of the synthetic federation failed."""


@dataclass(frozen=True)
class FilledRound:
    round: int
    scores: dict[str, int]  # peer -> score (ppm)
    included: list[str]
    aggregate_cid: str
    vote_cids: dict[str, str]
    update_cids: dict[str, str]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class FastSender:
    """Raw signed transactions with locally tracked nonces (one sender for many accounts)."""

    def __init__(self, w3: Web3, rpc_url: str, fed: Federation) -> None:
        self.w3 = w3
        self.rpc = RpcClient(rpc_url, timeout=30.0)
        self.contract = fed.contract
        self.address = fed.address
        self.chain_id = int(w3.eth.chain_id)
        # From the base fee, not eth_gasPrice: Anvil derives that from recent prices paid, so
        # paying a multiple of it makes it climb round after round.
        base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
        self.gas_price = 2 * base_fee + 10**9
        self._nonces: dict[str, int] = {}
        self.sent: list[tuple[str, str]] = []  # (tx hash, what)

    def send(self, account: LocalAccount, fn: str, *args: Any, value: int = 0, gas: int = 600_000) -> str:
        nonce = self._nonces.get(account.address)
        if nonce is None:
            nonce = int(self.w3.eth.get_transaction_count(account.address))
        data = self.contract.encode_abi(fn, args=list(args))
        tx = {
            "to": self.address,
            "data": data,
            "value": value,
            "gas": gas,
            "gasPrice": self.gas_price,
            "nonce": nonce,
            "chainId": self.chain_id,
        }
        signed = account.sign_transaction(tx)
        tx_hash = self.rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        self._nonces[account.address] = nonce + 1
        self.sent.append((str(tx_hash), f"{fn} from {account.address}"))
        return str(tx_hash)

    def check(self) -> None:
        """Every transaction sent since the last check was mined and succeeded."""
        sent, self.sent = self.sent, []
        # Anvil's automine mines just after answering the send, so the last receipts may lag.
        deadline = time.monotonic() + 30
        while True:
            receipts = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h, _ in sent])
            if all(r is not None for r in receipts) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for (h, what), receipt in zip(sent, receipts, strict=True):
            if receipt is None:
                raise FillError(f"transaction {h} ({what}) was not mined")
            if int(str(receipt["status"]), 16) != 1:
                raise FillError(
                    f"transaction {h} ({what}) failed: {self._why(h, int(str(receipt['blockNumber']), 16))}"
                )

    def _why(self, tx_hash: str, block: int) -> str:
        tx = self.rpc.call("eth_getTransactionByHash", [tx_hash])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.rpc.call("eth_call", [call, hex(block - 1)])
        except RpcError as exc:
            if exc.data and exc.data.startswith("0x"):
                return str(default_decoder().decode(bytes.fromhex(exc.data[2:])))
            return str(exc)
        return "it succeeds when replayed on the parent block"


def vote_file(
    round_id: int,
    voter: str,
    values: dict[str, tuple[float, float]],
    cids: dict[str, str],
    base_accuracy: float,
) -> bytes:
    """A vote file in the canonical format of `bcfl.trust.votes` (sorted keys, no whitespace)."""
    votes = [
        {
            "peer": p,
            "cid": cids[p],
            "value": round(v, 6),
            "loss": round(2.0 - acc, 6),
            "accuracy": round(acc, 6),
        }
        for p, (v, acc) in sorted(values.items(), key=lambda kv: kv[0].lower())
    ]
    doc = {
        "version": 1,
        "round": round_id,
        "voter": voter,
        "examples": 32,
        "base": {"loss": round(2.0 - base_accuracy, 6), "accuracy": round(base_accuracy, 6)},
        "votes": votes,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def fill_rounds(
    w3: Web3,
    rpc_url: str,
    fed: Federation,
    peers: Sequence[LocalAccount],
    rounds: int,
    storage: Storage,
    *,
    bad: Sequence[int] = (),
    threshold: int = 200_000,
    quorum_bps: int = 5000,
    seed: int = 0,
    bond: int = 10**15,
    advance_time: bool = True,
) -> list[FilledRound]:
    """Join `peers` (if not yet) and run `rounds` full rounds; `bad` indexes get low votes.

    Needs a synchronous-closing, serverless federation (every active peer's submission closes
    the round). `advance_time` moves Anvil's clock between phases (`evm_increaseTime`), so round
    timings are visible.
    """
    rng = random.Random(seed)
    sender = FastSender(w3, rpc_url, fed)
    for acct in peers:
        if not fed.peer(acct.address).active:
            sender.send(acct, "join", value=bond)
    sender.check()
    quorum = max(1, (len(peers) * quorum_bps + 9999) // 10_000)
    bad_set = {peers[i].address for i in bad}
    filled: list[FilledRound] = []
    for _ in range(rounds):
        rid = fed.current_round()
        base_acc = min(0.9, 0.35 + 0.05 * len(filled) + rng.uniform(-0.01, 0.01))
        update_cids: dict[str, str] = {}
        for acct in peers:
            data = f"update r{rid} {acct.address} {rng.random()}".encode()
            cid = storage.put(data)
            update_cids[acct.address] = cid
            sender.send(acct, "submitUpdate", rid, cid, _digest(data), rng.randint(50, 500), rid)
        if advance_time:
            _advance(sender.rpc, 30)
        received: dict[str, list[float]] = {a.address: [] for a in peers}
        vote_cids: dict[str, str] = {}
        for voter in peers:
            values: dict[str, tuple[float, float]] = {}
            for other in peers:
                if other.address == voter.address:
                    continue
                good = other.address not in bad_set
                value = rng.uniform(0.6, 0.9) if good else rng.uniform(0.0, 0.1)
                acc = base_acc + (rng.uniform(0.0, 0.05) if good else -rng.uniform(0.1, 0.2))
                values[other.address] = (value, max(0.0, min(1.0, acc)))
                received[other.address].append(value)
            data = vote_file(rid, voter.address, values, update_cids, base_acc)
            cid = storage.put(data)
            vote_cids[voter.address] = cid
            sender.send(voter, "commitVotes", rid, cid, _digest(data))
        if advance_time:
            _advance(sender.rpc, 20)
        scores = {p: int(statistics.fmean(v) * PPM) if v else 0 for p, v in received.items()}
        leaves = [ScoreLeaf(rid, p, s, s >= threshold) for p, s in scores.items()]
        included: list[str] = [str(a.address) for a in peers if scores[a.address] >= threshold]
        inc_hash = included_hash([(p, update_cids[p]) for p in included])
        agg_bytes = json.dumps({"round": rid, "included": included}, sort_keys=True).encode()
        agg_cid = storage.put(agg_bytes)
        root = merkle_root(leaves)
        for acct in peers[:quorum]:
            sender.send(acct, "attestResult", rid, root, inc_hash, agg_cid, _digest(agg_bytes))
        if advance_time:
            _advance(sender.rpc, 5)
        for leaf, acct in zip(leaves, peers, strict=True):
            sender.send(acct, "settle", leaf.peer, rid, leaf.score, leaf.included, merkle_proof(leaves, leaf))
        sender.check()
        if fed.round(rid).status is not RoundStatus.FINALISED:
            raise FillError(f"round {rid} did not finalise (status {fed.round(rid).status.name})")
        filled.append(FilledRound(rid, scores, included, agg_cid, vote_cids, update_cids))
    sender.rpc.close()
    return filled


def _advance(rpc: RpcClient, seconds: int) -> None:
    rpc.call("evm_increaseTime", [seconds])
