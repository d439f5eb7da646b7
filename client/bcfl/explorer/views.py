"""The explorer's pages as JSON-ready data, read from the index (never from the chain).

Each function takes a `ChainIndex` and returns plain dicts/lists; the HTML pages render exactly
these, and the JSON API returns them as they are. `NotFound` names the missing thing.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from bcfl.errors import BcflError
from bcfl.explorer.index import ChainIndex
from bcfl.explorer.model import RoundView

PPM = 1_000_000


class NotFound(BcflError):
    """The page asks for a round, peer, block or transaction the index does not hold."""


class BadRequest(BcflError):
    """The page's address is malformed (a round that is not a number, an address that is not one)."""


def status_view(index: ChainIndex) -> dict[str, Any]:
    with index.lock:
        meta = index.meta
        return {
            "chain_id": meta.chain_id if meta else None,
            "contract": meta.address if meta else None,
            "deploy_block": meta.deploy_block if meta else None,
            "genesis_cid": meta.genesis_cid if meta else None,
            "score_threshold": meta.score_threshold if meta else None,
            "config": meta.config if meta else None,
            "head": index.head,
            "indexed_to": index.last_block,
            "synced_at": index.synced_at,
            "error": index.error,
            "error_since": index.error_since,
            "version": index.version,
            "rounds": len(index.rounds),
            "peers": len(index.peers),
            "transactions": len(index.txs),
        }


def _audit(index: ChainIndex, round_id: int) -> dict[str, Any]:
    verdict = index.audits.get(round_id)
    if verdict is None:
        r = index.rounds.get(round_id)
        detail = "the round is not over yet" if r and r.status in ("open", "closed") else "queued"
        return {"status": "pending", "detail": detail, "checks": []}
    return {"status": verdict.status, "detail": verdict.detail, "checks": verdict.checks}


def _included(r: RoundView) -> tuple[int, int]:
    inc = sum(1 for s in r.submissions if s.included is True)
    exc = sum(1 for s in r.submissions if s.included is False)
    return inc, exc


def _base_accuracy(r: RoundView) -> float | None:
    accs = [v.base_accuracy for v in r.votes if v.base_accuracy is not None]
    return statistics.fmean(accs) if accs else None


def rounds_view(index: ChainIndex, *, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    if page < 1 or per_page < 1:
        raise BadRequest(f"page {page} (of {per_page} rounds) does not exist; pages start at 1")
    with index.lock:
        ordered = sorted(index.rounds.values(), key=lambda r: -r.round)
        total = len(ordered)
        chunk = ordered[(page - 1) * per_page : page * per_page]
        rows = []
        for r in chunk:
            inc, exc = _included(r)
            rows.append(
                {
                    "round": r.round,
                    "status": r.status,
                    "base_round": r.base_round,
                    "submissions": len(r.submissions),
                    "votes": len(r.votes),
                    "attestations": len(r.attestations),
                    "included": inc,
                    "excluded": exc,
                    "aggregate_cid": r.aggregate_cid,
                    "opened_at": r.opened_at,
                    "ended_at": r.ended_at,
                    "duration": (r.ended_at - r.opened_at) if r.ended_at is not None else None,
                    "gas_total": r.gas_total,
                    "base_accuracy": _base_accuracy(r),
                    "audit": _audit(index, r.round)["status"],
                }
            )
        return {"page": page, "per_page": per_page, "total": total, "rounds": rows}


def chart_series(index: ChainIndex, peer: str | None = None) -> dict[str, Any]:
    """Reputation per peer after each settled round, and accuracy per round (when vote files
    carry it): the data behind the plots."""
    with index.lock:
        peers = [index.peers[peer]] if peer else list(index.peers.values())
        reputation = {p.address: [[pt.round, pt.new / PPM] for pt in p.reputation_history] for p in peers}
        accuracy: list[list[float]] = []
        update_accuracy: list[list[float]] = []
        for r in sorted(index.rounds.values(), key=lambda r: r.round):
            if peer is None:
                acc = _base_accuracy(r)
                if acc is not None:
                    accuracy.append([r.round, acc])
            else:
                for s in r.submissions:
                    if s.peer == peer and s.accuracy is not None:
                        update_accuracy.append([r.round, s.accuracy])
        return {"reputation": reputation, "base_accuracy": accuracy, "update_accuracy": update_accuracy}


def round_view(index: ChainIndex, round_id: int) -> dict[str, Any]:
    with index.lock:
        r = index.rounds.get(round_id)
        if r is None:
            last = max(index.rounds) if index.rounds else 0
            raise NotFound(f"round {round_id} does not exist (the federation is at round {last})")
        meta = index.meta
        doc = asdict(r)
        if r.base_round == 0:
            doc["base_cid"] = meta.genesis_cid if meta else None
            doc["base_digest"] = meta.genesis_digest if meta else None
        else:
            base = index.rounds.get(r.base_round)
            doc["base_cid"] = base.aggregate_cid if base else None
            doc["base_digest"] = base.aggregate_digest if base else None
        last_vote = max((v.timestamp for v in r.votes), default=None)
        doc["timings"] = {
            "submission_phase": (r.closed_at - r.opened_at) if r.closed_at is not None else None,
            "voting_phase": (last_vote - r.closed_at) if last_vote is not None and r.closed_at else None,
            "result_phase": (r.ended_at - r.closed_at) if r.ended_at is not None and r.closed_at else None,
            "total": (r.ended_at - r.opened_at) if r.ended_at is not None else None,
        }
        inc, exc = _included(r)
        doc["included"], doc["excluded"] = inc, exc
        doc["base_accuracy"] = _base_accuracy(r)
        doc["audit"] = _audit(index, round_id)
        doc["score_threshold"] = meta.score_threshold if meta else None
        doc["previous"] = round_id - 1 if round_id - 1 in index.rounds else None
        doc["next"] = round_id + 1 if round_id + 1 in index.rounds else None
        return doc


def _find_peer(index: ChainIndex, address: str) -> str:
    text = address.strip()
    if not (text.startswith("0x") and len(text) == 42):
        raise BadRequest(f"{address!r} is not an address (0x followed by 40 hex digits)")
    for known in index.peers:
        if known.lower() == text.lower():
            return known
    raise NotFound(f"peer {address} never joined this federation")


def peers_view(index: ChainIndex) -> dict[str, Any]:
    with index.lock:
        rows: list[dict[str, Any]] = [
            {
                "address": p.address,
                "active": p.active,
                "bond": p.bond,
                "reputation": p.reputation,
                "submissions": len(p.submissions),
                "votes": len(p.votes),
                "attestations": len(p.attestations),
                "included": sum(1 for pt in p.reputation_history if pt.included),
                "excluded": sum(1 for pt in p.reputation_history if not pt.included),
                "gas_total": p.gas_total,
            }
            for p in index.peers.values()
        ]
        rows.sort(key=lambda row: (-int(row["reputation"]), str(row["address"])))
        return {"peers": rows}


def peer_view(index: ChainIndex, address: str) -> dict[str, Any]:
    with index.lock:
        key = _find_peer(index, address)
        p = index.peers[key]
        doc = asdict(p)
        history = []
        for rid in p.submissions:
            r = index.rounds.get(rid)
            sub = next((s for s in r.submissions if s.peer == key), None) if r else None
            if sub is not None:
                history.append({"round": rid, "status": r.status if r else "?", **asdict(sub)})
        doc["submission_rows"] = history
        doc["transactions"] = [_tx_summary(index, h) for h in p.txs]
        doc["chart"] = chart_series(index, key)
        return doc


def _tx_summary(index: ChainIndex, tx_hash: str) -> dict[str, Any]:
    t = index.txs[tx_hash]
    block = index.blocks.get(t.block)
    return {
        "hash": t.hash,
        "block": t.block,
        "timestamp": block.timestamp if block else None,
        "function": t.function,
        "round": t.args.get("round"),
        "ok": t.ok,
        "gas_used": t.gas_used,
        "events": [e.event for e in t.events],
    }


def block_view(index: ChainIndex, number: int) -> dict[str, Any]:
    with index.lock:
        b = index.blocks.get(number)
        if b is None:
            meta = index.meta
            if meta is not None and number < meta.deploy_block:
                raise NotFound(
                    f"block {number} is before the federation's deployment (block {meta.deploy_block})"
                )
            if index.last_block is None or number > index.last_block:
                raise NotFound(f"block {number} is not indexed yet (indexed up to {index.last_block})")
            raise NotFound(f"block {number} holds no transaction of this federation")
        doc = dict(vars(b))
        doc["transactions"] = [_tx_summary(index, h) for h in b.txs]
        numbers = sorted(index.blocks)
        pos = numbers.index(number)
        doc["previous"] = numbers[pos - 1] if pos > 0 else None
        doc["next"] = numbers[pos + 1] if pos + 1 < len(numbers) else None
        return doc


def tx_view(index: ChainIndex, tx_hash: str) -> dict[str, Any]:
    text = tx_hash.strip().lower()
    if not (text.startswith("0x") and len(text) == 66):
        raise BadRequest(f"{tx_hash!r} is not a transaction hash (0x followed by 64 hex digits)")
    with index.lock:
        t = index.txs.get(text)
        if t is None:
            raise NotFound(f"transaction {tx_hash} is not a transaction of this federation")
        doc = t.to_json()
        block = index.blocks.get(t.block)
        doc["timestamp"] = block.timestamp if block else None
        doc["fee"] = t.gas_used * t.gas_price
        doc["sender_is_peer"] = t.sender in index.peers
        return doc
