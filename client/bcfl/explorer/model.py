"""What the explorer's index holds: raw decoded records, and the per-round/per-peer views folded
from them.

The raw records (blocks with federation activity, decoded transactions with their events) are
what gets persisted; the views are rebuilt by replaying them in chain order, so persisted state
can never disagree with the views derived from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EventRecord:
    event: str
    args: dict[str, Any]
    log_index: int
    tx: str
    block: int


@dataclass
class TxRecord:
    hash: str
    block: int
    index: int
    sender: str
    to: str | None
    value: int
    function: str  # decoded function name ("constructor" for the deployment, "?" if unknown)
    args: dict[str, Any]
    gas_limit: int
    gas_used: int
    gas_price: int
    ok: bool
    events: list[EventRecord] = field(default_factory=list)
    error: str | None = None  # the decoded revert (replayed) of a failed transaction

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(doc: dict[str, Any]) -> TxRecord:
        events = [EventRecord(**e) for e in doc.get("events", [])]
        return TxRecord(**{**doc, "events": events})


@dataclass
class BlockRecord:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    tx_count: int  # all transactions in the block, the federation's or not
    gas_used: int
    txs: list[str] = field(default_factory=list)  # the federation's transactions, in block order


# ---------------------------------------------------------------------------------- views


@dataclass
class SubmissionView:
    peer: str
    cid: str
    digest: str
    samples: int
    trained_from: int
    staleness: int
    reputation: int  # at submission, the value the gate uses
    tx: str
    block: int
    timestamp: int
    gas_used: int
    score: int | None = None  # from settlement, parts per million
    included: bool | None = None
    reason: str = ""  # why included/excluded, or why not known yet
    settle_tx: str | None = None
    accuracy: float | None = None  # mean accuracy voters measured for this update
    vote_value: float | None = None  # mean vote value it received


@dataclass
class VoteView:
    voter: str
    cid: str
    digest: str
    reputation: int
    bond: int
    tx: str
    block: int
    timestamp: int
    gas_used: int
    file_status: str = "not fetched"  # "ok", "not fetched", or an error message
    base_accuracy: float | None = None
    base_loss: float | None = None
    votes: int | None = None


@dataclass
class AttestationView:
    attester: str
    proposal: str
    scores_root: str
    included_hash: str
    aggregate_cid: str
    aggregate_digest: str
    tx: str
    block: int
    timestamp: int
    gas_used: int
    function: str  # attestResult or postResult
    finalising: bool = False


@dataclass
class RoundView:
    round: int
    status: str = "open"
    base_round: int = 0
    opened_block: int = 0
    opened_at: int = 0
    opened_tx: str = ""
    closed_block: int | None = None
    closed_at: int | None = None
    closed_tx: str | None = None
    voting_ends_at: int | None = None
    ended_block: int | None = None  # finalised or expired
    ended_at: int | None = None
    ended_tx: str | None = None
    proposal: str | None = None
    aggregate_cid: str | None = None
    aggregate_digest: str | None = None
    scores_root: str | None = None
    included_hash: str | None = None
    submissions: list[SubmissionView] = field(default_factory=list)
    votes: list[VoteView] = field(default_factory=list)
    attestations: list[AttestationView] = field(default_factory=list)
    gas_total: int = 0


@dataclass
class ReputationPoint:
    round: int
    block: int
    timestamp: int
    score: int
    included: bool
    old: int
    new: int
    tx: str


@dataclass
class PeerView:
    address: str
    active: bool = False
    bond: int = 0
    reputation: int = 0
    joined_block: int = 0
    joined_tx: str = ""
    withdrawn: int = 0
    reputation_history: list[ReputationPoint] = field(default_factory=list)
    submissions: list[int] = field(default_factory=list)  # rounds
    votes: list[int] = field(default_factory=list)
    attestations: list[int] = field(default_factory=list)
    txs: list[str] = field(default_factory=list)
    gas_total: int = 0
