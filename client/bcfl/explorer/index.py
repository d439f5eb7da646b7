"""The explorer's index: follows the chain block by block and keeps per-round and per-peer views.

`ChainIndex` holds decoded blocks, transactions and events and folds them into `RoundView`s and
`PeerView`s as they arrive; pages read only from it. `Follower` is the background thread that
polls `eth_blockNumber`, fetches each new block with its transactions (batched), decodes every
transaction sent to the contract (successful or reverted) and every event it emitted, and hands
them to the index. Only standard `eth_` methods are used, so any EVM RPC URL works. The index
can persist its raw records to a JSON file and resume from it; a reorganised chain (the last
indexed block's hash changed) makes it start over from the deployment block.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from bcfl.chain.build import load_artifact
from bcfl.chain.connection import ChainUnavailable
from bcfl.chain.deployment import Deployment, open_federation, read_record
from bcfl.chain.federation import Federation
from bcfl.chain.reverts import default_decoder
from bcfl.errors import BcflError
from bcfl.explorer.decode import AbiDecoder
from bcfl.explorer.model import (
    AttestationView,
    BlockRecord,
    EventRecord,
    PeerView,
    ReputationPoint,
    RoundView,
    SubmissionView,
    TxRecord,
    VoteView,
)
from bcfl.explorer.rpc import RpcClient, RpcError

STATE_VERSION = 1
PPM = 1_000_000


@dataclass(frozen=True)
class FederationMeta:
    """What the deployment record says about the federation being explored."""

    chain_id: int
    address: str
    deploy_block: int
    deploy_tx: str
    genesis_block_hash: str
    genesis_cid: str
    genesis_digest: str
    score_threshold: int
    config: dict[str, Any]

    @staticmethod
    def from_record(record: Deployment) -> FederationMeta:
        return FederationMeta(
            chain_id=record.chain_id,
            address=Web3.to_checksum_address(record.address),
            deploy_block=record.block_number,
            deploy_tx=record.transaction.lower(),
            genesis_block_hash=record.genesis_block_hash,
            genesis_cid=record.genesis_cid,
            genesis_digest=record.genesis_digest,
            score_threshold=int(record.config.get("score_threshold", 0)),
            config=dict(record.config),
        )


@dataclass
class VoteFileInfo:
    """A fetched (or unfetchable) vote file, as the round page shows it."""

    status: str  # "ok" or the error message
    base_accuracy: float | None = None
    base_loss: float | None = None
    votes: dict[str, dict[str, float | None]] = field(default_factory=dict)  # peer -> metrics


@dataclass
class AuditVerdict:
    status: str  # "ok", "fail", "unavailable", "error", "pending"
    detail: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    at: float = 0.0


class ChainIndex:
    """Decoded chain data and the views folded from it; every access holds `lock`."""

    def __init__(self, meta: FederationMeta | None = None) -> None:
        self.lock = threading.RLock()
        self.meta = meta
        self.version = 0  # bumps on every change, so pages can tell when to refresh
        self.error: str | None = None  # why the chain cannot be followed right now
        self.error_since: float | None = None
        self.head: int | None = None
        self.synced_at: float | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.last_block: int | None = None
            self.last_hash: str | None = None
            self.blocks: dict[int, BlockRecord] = {}
            self.txs: dict[str, TxRecord] = {}
            self.rounds: dict[int, RoundView] = {}
            self.peers: dict[str, PeerView] = {}
            self.vote_files: dict[tuple[int, str], VoteFileInfo] = {}
            self.audits: dict[int, AuditVerdict] = {}
            self.version += 1

    @contextmanager
    def reading(self) -> Iterator[ChainIndex]:
        with self.lock:
            yield self

    # -- status -------------------------------------------------------------------------------

    def set_error(self, message: str | None) -> None:
        with self.lock:
            if message != self.error:
                self.version += 1
            if message is None:
                self.error, self.error_since = None, None
            elif self.error is None:
                self.error, self.error_since = message, time.time()
            else:
                self.error = message

    # -- ingestion ----------------------------------------------------------------------------

    def add_block(self, block: BlockRecord, txs: list[TxRecord]) -> None:
        """Add one scanned block and its federation transactions (in block order)."""
        with self.lock:
            if txs:
                block.txs = [t.hash for t in txs]
                self.blocks[block.number] = block
                for tx in txs:
                    self.txs[tx.hash] = tx
                    self._fold(tx, block)
                self.version += 1
            self.last_block, self.last_hash = block.number, block.hash

    def _fold(self, tx: TxRecord, block: BlockRecord) -> None:
        sender = tx.sender
        if tx.function not in ("constructor", "?"):
            peer = self.peers.get(sender)
            if peer is not None:
                peer.txs.append(tx.hash)
                peer.gas_total += tx.gas_used
        round_arg = tx.args.get("round")
        if isinstance(round_arg, int) and round_arg in self.rounds:
            self.rounds[round_arg].gas_total += tx.gas_used
        for ev in tx.events:
            self._apply_event(ev, tx, block)

    def _apply_event(self, ev: EventRecord, tx: TxRecord, block: BlockRecord) -> None:
        a = ev.args
        name = ev.event
        if name == "PeerJoined":
            peer = self.peers.get(a["peer"])
            if peer is None:
                peer = self.peers[a["peer"]] = PeerView(address=a["peer"], joined_block=block.number)
                peer.joined_tx = tx.hash
                peer.txs.append(tx.hash)
                peer.gas_total += tx.gas_used
            peer.active, peer.bond, peer.reputation = True, int(a["bond"]), int(a["reputation"])
        elif name == "PeerLeft":
            peer = self.peers[a["peer"]]
            peer.active, peer.bond = False, 0
        elif name == "BondWithdrawn":
            self.peers[a["peer"]].withdrawn += int(a["amount"])
        elif name == "RoundOpened":
            rid = int(a["round"])
            self.rounds[rid] = RoundView(
                round=rid,
                base_round=int(a["baseRound"]),
                opened_block=block.number,
                opened_at=block.timestamp,
                opened_tx=tx.hash,
            )
        elif name == "UpdateSubmitted":
            rid = int(a["round"])
            self.rounds[rid].submissions.append(
                SubmissionView(
                    peer=a["peer"],
                    cid=a["cid"],
                    digest=a["digest"],
                    samples=int(a["samples"]),
                    trained_from=int(a["trainedFrom"]),
                    staleness=rid - int(a["trainedFrom"]),
                    reputation=int(a["reputation"]),
                    tx=tx.hash,
                    block=block.number,
                    timestamp=block.timestamp,
                    gas_used=tx.gas_used,
                    reason="awaiting the round's result",
                )
            )
            self.peers[a["peer"]].submissions.append(rid)
        elif name == "RoundClosed":
            r = self.rounds[int(a["round"])]
            r.status, r.closed_block, r.closed_at = "closed", block.number, block.timestamp
            r.closed_tx, r.voting_ends_at = tx.hash, int(a["votingEndsAt"])
        elif name == "VotesCommitted":
            rid = int(a["round"])
            self.rounds[rid].votes.append(
                VoteView(
                    voter=a["voter"],
                    cid=a["cid"],
                    digest=a["digest"],
                    reputation=int(a["reputation"]),
                    bond=int(a["bond"]),
                    tx=tx.hash,
                    block=block.number,
                    timestamp=block.timestamp,
                    gas_used=tx.gas_used,
                )
            )
            if a["voter"] in self.peers:
                self.peers[a["voter"]].votes.append(rid)
            self._apply_vote_file(rid)
        elif name == "ResultAttested":
            rid = int(a["round"])
            self.rounds[rid].attestations.append(
                AttestationView(
                    attester=a["attester"],
                    proposal=a["proposal"],
                    scores_root=a["scoresRoot"],
                    included_hash=a["includedHash"],
                    aggregate_cid=a["aggregateCid"],
                    aggregate_digest=a["aggregateDigest"],
                    tx=tx.hash,
                    block=block.number,
                    timestamp=block.timestamp,
                    gas_used=tx.gas_used,
                    function=tx.function,
                )
            )
            if a["attester"] in self.peers:
                self.peers[a["attester"]].attestations.append(rid)
        elif name == "RoundFinalised":
            r = self.rounds[int(a["round"])]
            r.status, r.ended_block, r.ended_at, r.ended_tx = (
                "finalised",
                block.number,
                block.timestamp,
                tx.hash,
            )
            r.proposal = a["proposal"]
            for att in r.attestations:
                if att.proposal == r.proposal:
                    r.aggregate_cid, r.aggregate_digest = att.aggregate_cid, att.aggregate_digest
                    r.scores_root, r.included_hash = att.scores_root, att.included_hash
                    att.finalising = att.tx == tx.hash
            for sub in r.submissions:
                if sub.included is None:
                    sub.reason = "finalised; score not settled on-chain yet"
        elif name == "RoundExpired":
            r = self.rounds[int(a["round"])]
            r.status, r.ended_block, r.ended_at, r.ended_tx = (
                "expired",
                block.number,
                block.timestamp,
                tx.hash,
            )
            for sub in r.submissions:
                sub.reason = "round expired without a result: nothing aggregated"
        elif name == "ReputationSettled":
            rid, score, included = int(a["round"]), int(a["score"]), bool(a["included"])
            peer = self.peers[a["peer"]]
            peer.reputation = int(a["newReputation"])
            peer.reputation_history.append(
                ReputationPoint(
                    round=rid,
                    block=block.number,
                    timestamp=block.timestamp,
                    score=score,
                    included=included,
                    old=int(a["oldReputation"]),
                    new=int(a["newReputation"]),
                    tx=tx.hash,
                )
            )
            for sub in self.rounds[rid].submissions if rid in self.rounds else []:
                if sub.peer == a["peer"]:
                    sub.score, sub.included, sub.settle_tx = score, included, tx.hash
                    sub.reason = self._reason(sub)

    def _reason(self, sub: SubmissionView) -> str:
        threshold = f"threshold {(self.meta.score_threshold if self.meta else 0) / PPM:.3f}"
        score = f"score {sub.score / PPM:.3f}" if sub.score is not None else "no score"
        if sub.included:
            return f"included: {score} ≥ {threshold}"
        if sub.score is not None and self.meta is not None and sub.score < self.meta.score_threshold:
            return f"excluded: {score} below {threshold}"
        return f"excluded by the gate: {score}, reputation {sub.reputation / PPM:.3f} at submission"

    # -- storage-derived data -----------------------------------------------------------------

    def set_vote_file(self, round_id: int, voter: str, info: VoteFileInfo) -> None:
        with self.lock:
            self.vote_files[(round_id, voter)] = info
            self._apply_vote_file(round_id)
            self.version += 1

    def _apply_vote_file(self, round_id: int) -> None:
        r = self.rounds.get(round_id)
        if r is None:
            return
        per_peer_acc: dict[str, list[float]] = {}
        per_peer_val: dict[str, list[float]] = {}
        for v in r.votes:
            info = self.vote_files.get((round_id, v.voter))
            if info is None:
                continue
            v.file_status = info.status
            v.base_accuracy, v.base_loss = info.base_accuracy, info.base_loss
            v.votes = len(info.votes) if info.status == "ok" else None
            for peer, metrics in info.votes.items():
                if metrics.get("accuracy") is not None:
                    per_peer_acc.setdefault(peer.lower(), []).append(float(metrics["accuracy"] or 0.0))
                if metrics.get("value") is not None:
                    per_peer_val.setdefault(peer.lower(), []).append(float(metrics["value"] or 0.0))
        for sub in r.submissions:
            accs, vals = per_peer_acc.get(sub.peer.lower()), per_peer_val.get(sub.peer.lower())
            sub.accuracy = statistics.fmean(accs) if accs else None
            sub.vote_value = statistics.fmean(vals) if vals else None

    def set_audit(self, round_id: int, verdict: AuditVerdict) -> None:
        with self.lock:
            self.audits[round_id] = verdict
            self.version += 1

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            meta = self.meta
            return {
                "version": STATE_VERSION,
                "chain_id": meta.chain_id if meta else None,
                "address": meta.address if meta else None,
                "genesis_block_hash": meta.genesis_block_hash if meta else None,
                "last_block": self.last_block,
                "last_hash": self.last_hash,
                "blocks": [vars(b) for b in sorted(self.blocks.values(), key=lambda b: b.number)],
                "txs": [t.to_json() for t in self.txs.values()],
            }

    def load_json(self, doc: dict[str, Any]) -> bool:
        """Replay persisted records; False (and nothing loaded) when they are for another federation."""
        meta = self.meta
        if (
            meta is None
            or doc.get("version") != STATE_VERSION
            or doc.get("chain_id") != meta.chain_id
            or doc.get("address") != meta.address
            or doc.get("genesis_block_hash") != meta.genesis_block_hash
        ):
            return False
        txs = {t["hash"]: TxRecord.from_json(t) for t in doc.get("txs", [])}
        with self.lock:
            self.reset()
            for raw in doc.get("blocks", []):
                block = BlockRecord(**raw)
                self.add_block(block, [txs[h] for h in block.txs])
            self.last_block, self.last_hash = doc.get("last_block"), doc.get("last_hash")
        return True


class IndexStore:
    """The index's records as one JSON file in a state folder (written atomically)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "explorer-index.json"

    def load_into(self, index: ChainIndex) -> bool:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False  # no state yet, or unreadable: index from the chain instead
        return isinstance(doc, dict) and index.load_json(doc)

    def save(self, index: ChainIndex) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index.to_json(), separators=(",", ":")), encoding="utf-8")
        tmp.replace(self.path)


# ---------------------------------------------------------------------------------- following


def _int(value: Any) -> int:
    return int(str(value), 16) if isinstance(value, str) else int(value or 0)


class Follower:
    """Keeps a `ChainIndex` up to date with the chain behind `rpc_url` (a daemon thread)."""

    def __init__(
        self,
        index: ChainIndex,
        rpc_url: str,
        deployment: Path,
        *,
        poll_interval: float = 1.0,
        batch_blocks: int = 100,
        store: IndexStore | None = None,
        on_connect: Callable[[Web3, Federation], None] | None = None,
    ) -> None:
        self.index = index
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.poll_interval = poll_interval
        self.batch_blocks = batch_blocks
        self.store = store
        self.on_connect = on_connect
        self.rpc = RpcClient(rpc_url)
        abi = load_artifact()["abi"]
        self.decoder = AbiDecoder(abi)
        self.reverts = default_decoder()
        self.federation: Federation | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_save = 0.0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="explorer-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.rpc.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
                self.index.set_error(None)
            except BcflError as exc:
                self.index.set_error(str(exc))
                self.federation = None  # check the record against the chain again on recovery
            except Exception as exc:  # never let the thread die: show the problem on the page
                self.index.set_error(f"following the chain failed: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_interval)

    # -- one round of following ----------------------------------------------------------------

    def connect(self) -> Federation:
        """Check the deployment record against the chain (chain id, genesis, code)."""
        from bcfl.chain.connection import connect

        w3 = connect(self.rpc_url, timeout=10.0)
        record, fed = open_federation(w3, self.deployment)
        meta = FederationMeta.from_record(record)
        with self.index.lock:
            if self.index.meta != meta:
                self.index.meta = meta
                self.index.reset()
                if self.store is not None:
                    self.store.load_into(self.index)
        if self.on_connect is not None:
            self.on_connect(w3, fed)
        return fed

    def sync_once(self) -> int:
        """Index every block up to the head; returns how many blocks were scanned."""
        if self.federation is None:
            self.federation = self.connect()
        meta = self.index.meta
        assert meta is not None
        head = _int(self.rpc.call("eth_blockNumber"))
        self.index.head = head
        last = self.index.last_block
        if last is not None and last > head:
            self.index.reset()  # the chain went backwards (reset or reorg)
            last = None
        if last is not None:
            block = self.rpc.call("eth_getBlockByNumber", [hex(last), False])
            if block is None or block.get("hash") != self.index.last_hash:
                self.index.reset()
                last = None
        start = meta.deploy_block if last is None else last + 1
        scanned = 0
        while start <= head and not self._stop.is_set():
            end = min(head, start + self.batch_blocks - 1)
            self._scan(start, end, meta)
            scanned += end - start + 1
            start = end + 1
            self._maybe_save()
        self.index.synced_at = time.time()
        self._maybe_save(force=scanned > 0)
        return scanned

    def _maybe_save(self, *, force: bool = False) -> None:
        if self.store is None:
            return
        now = time.monotonic()
        if force or now - self._last_save > 5.0:
            self.store.save(self.index)
            self._last_save = now

    def _scan(self, start: int, end: int, meta: FederationMeta) -> None:
        numbers = list(range(start, end + 1))
        blocks = self.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
        address = meta.address.lower()
        # Logs catch federation transactions that reach the contract through another contract.
        logs = self.rpc.call(
            "eth_getLogs", [{"address": meta.address, "fromBlock": hex(start), "toBlock": hex(end)}]
        )
        via_logs = {str(lg["transactionHash"]).lower() for lg in logs or []}
        picked: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for raw in blocks:
            if raw is None:
                raise RpcError(f"chain RPC {self.rpc_url} has no block in {start}..{end} below its head")
            for tx in raw.get("transactions", []):
                h = str(tx["hash"]).lower()
                if str(tx.get("to") or "").lower() == address or h == meta.deploy_tx or h in via_logs:
                    picked.append((raw, tx))
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for _, tx in picked])
        by_block: dict[int, list[TxRecord]] = {}
        for (_raw, tx), receipt in zip(picked, receipts, strict=True):
            record = self._decode_tx(tx, receipt or {}, meta)
            by_block.setdefault(record.block, []).append(record)
        for raw in blocks:
            number = _int(raw["number"])
            block = BlockRecord(
                number=number,
                hash=str(raw["hash"]),
                parent_hash=str(raw["parentHash"]),
                timestamp=_int(raw["timestamp"]),
                tx_count=len(raw.get("transactions", [])),
                gas_used=_int(raw.get("gasUsed")),
            )
            self.index.add_block(block, sorted(by_block.get(number, []), key=lambda t: t.index))

    def _decode_tx(self, tx: dict[str, Any], receipt: dict[str, Any], meta: FederationMeta) -> TxRecord:
        h = str(tx["hash"]).lower()
        block = _int(tx["blockNumber"])
        ok = _int(receipt.get("status", "0x1")) == 1
        if h == meta.deploy_tx:
            function, args = "constructor", dict[str, Any]()
        else:
            call = self.decoder.decode_call(str(tx.get("input") or tx.get("data") or "0x"))
            function, args = (call.function, call.args) if call else ("?", {})
        record = TxRecord(
            hash=h,
            block=block,
            index=_int(tx.get("transactionIndex")),
            sender=Web3.to_checksum_address(tx["from"]),
            to=Web3.to_checksum_address(tx["to"]) if tx.get("to") else None,
            value=_int(tx.get("value")),
            function=function,
            args=args,
            gas_limit=_int(tx.get("gas")),
            gas_used=_int(receipt.get("gasUsed")),
            gas_price=_int(receipt.get("effectiveGasPrice") or tx.get("gasPrice")),
            ok=ok,
        )
        for lg in receipt.get("logs", []):
            if str(lg.get("address", "")).lower() != meta.address.lower():
                continue
            ev = self.decoder.decode_log(lg)
            if ev is not None:
                record.events.append(EventRecord(ev.event, ev.args, ev.log_index, h, block))
        if not ok:
            record.error = self._replay_revert(tx, block)
        return record

    def _replay_revert(self, tx: dict[str, Any], block: int) -> str:
        """Why a transaction reverted: replay it as a call on its parent block's state."""
        call = {
            "from": tx["from"],
            "to": tx.get("to"),
            "data": tx.get("input") or "0x",
            "value": tx.get("value"),
        }
        try:
            self.rpc.call("eth_call", [call, hex(max(block - 1, 0))])
        except RpcError as exc:
            if exc.data and exc.data.startswith("0x"):
                return str(self.reverts.decode(bytes.fromhex(exc.data[2:])))
            return str(exc)
        except ChainUnavailable:
            raise
        return "reverted (the replay on the parent block succeeds: it depended on its position in the block)"


def record_meta(deployment: Path) -> FederationMeta:
    """The federation a deployment record names, without touching the chain."""
    return FederationMeta.from_record(read_record(deployment))
