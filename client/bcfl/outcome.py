"""A round's outcome as a function of public inputs only (the chain and content-addressed storage).

Peers compute it to attest (or the aggregator to post) a result, and the auditor recomputes it
to check one: both call the same functions, so an honest peer and an auditor always agree.

    submissions + vote files + voters' standing  --score_round-->  scores
    scores + submitters' reputation + threshold  --decide----->    included set
    included updates + base, weighted            --aggregate--->   aggregate adapter (CID)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bcfl.chain.federation import Federation, ModelRef, ResultMode, Submission, VoteCommit
from bcfl.chain.merkle import ScoreLeaf, included_hash, merkle_root
from bcfl.errors import BcflError
from bcfl.storage.adapter_pack import content_digest, fetch_adapter, json_digest
from bcfl.storage.base import Storage
from bcfl.storage.cid import cid_of_directory
from bcfl.trust.gate import decide
from bcfl.trust.pagerank import RoundScores, RoundVotes, Standing, score_round
from bcfl.trust.votes import MAX_VOTE_FILE_BYTES, RejectedVotes, check_vote_files

log = logging.getLogger("bcfl.outcome")

# Protocol constants: every peer and the auditor must use the same values.
MAX_VOTES_PER_PEER = 5  # updates each submitter evaluates (fewer when the round is small)
GATE_REPUTATION_WEIGHT_BPS = 2000  # share of the on-chain reputation in the gate's combined value
AGGREGATION_SCHEME: Final = "ffa"  # A frozen at the genesis init, B averaged: an exact average


def votes_per_peer(submitters: int, *, server: bool = False, cap: int = MAX_VOTES_PER_PEER) -> int:
    """k: how many other updates each voter evaluates in a round with this many submitters
    (`cap`: the protocol's unless an experiment replays another). In server mode the
    aggregator is the round's only voter, so it evaluates every update."""
    if server:
        return max(0, submitters)
    return max(0, min(cap, submitters - 1))


def assignment_seed(contract: str, round_id: int, closed_at: int) -> bytes:
    """The public seed of a round's evaluation assignment (fixed once the round closes)."""
    return bytes.fromhex(contract[2:].lower()) + round_id.to_bytes(8, "big") + closed_at.to_bytes(8, "big")


@dataclass(frozen=True)
class FetchedVotes:
    commit: VoteCommit
    data: bytes | None
    error: str | None = None
    unavailable: bool = False  # True: the CID did not resolve (not the voter's provable fault)


def fetch_votes(
    storage: Storage, commits: Sequence[VoteCommit], *, timeout: float = 30.0
) -> list[FetchedVotes]:
    """Every committed vote file, verified against its CID and on-chain digest."""
    from bcfl.storage.errors import CidNotFound, IntegrityError, ObjectTooLarge

    fetched = []
    for commit in commits:
        try:
            data = storage.get(commit.cid, max_bytes=MAX_VOTE_FILE_BYTES, timeout=timeout)
            if json_digest(data) != commit.digest:
                raise IntegrityError(f"vote file {commit.cid} does not match its on-chain digest")
            fetched.append(FetchedVotes(commit, data))
        except CidNotFound as exc:
            fetched.append(FetchedVotes(commit, None, str(exc), unavailable=True))
        except (IntegrityError, ObjectTooLarge, BcflError) as exc:
            fetched.append(FetchedVotes(commit, None, str(exc)))
    return fetched


@dataclass(frozen=True)
class RoundDecision:
    round: int
    scores: RoundScores
    leaves: list[ScoreLeaf]
    scores_root: bytes
    included: list[Submission]  # aggregation order
    included_hash: bytes
    excluded: dict[str, str]  # peer -> reason
    rejected_votes: list[RejectedVotes] = field(default_factory=list)


def decide_from(
    round_id: int,
    seed: bytes,
    threshold_ppm: int,
    submissions: Sequence[Submission],
    fetched: Sequence[FetchedVotes],
    *,
    server: bool = False,
    k: int | None = None,
) -> RoundDecision:
    """The pure part: scores, gate and commitments from already-fetched inputs (`server`: the
    federation's result mode is Server, whose aggregator votes on every update; `k`: votes per
    voter, the protocol's `votes_per_peer` unless an experiment replays another)."""
    by_peer = {s.peer: s for s in submissions}
    cids = {s.peer: s.cid for s in submissions}
    files = {v.commit.voter: v.data for v in fetched if v.data is not None}
    valid, rejected = check_vote_files(
        files,
        round=round_id,
        submissions=cids,
        seed=seed,
        k=votes_per_peer(len(submissions), server=server) if k is None else k,
    )
    for v in fetched:
        if v.data is None and not v.unavailable:
            rejected.append(RejectedVotes(voter=v.commit.voter, reason="unverifiable", message=v.error or ""))
    standing = {v.commit.voter: Standing(v.commit.reputation, v.commit.bond) for v in fetched}
    scores = score_round(
        RoundVotes(
            round=round_id, submitters=list(by_peer), votes=valid, standing=standing, rejected=rejected
        )
    )
    ppm = scores.ppm()
    gate = decide(
        ppm,
        {s.peer: s.reputation for s in submissions},
        threshold_ppm,
        reputation_weight_bps=GATE_REPUTATION_WEIGHT_BPS,
    )
    included_set = {p.lower() for p in gate.included}
    leaves = [ScoreLeaf(round_id, p, ppm[p], p.lower() in included_set) for p in ppm]
    included = [by_peer[p] for p in gate.included]
    return RoundDecision(
        round=round_id,
        scores=scores,
        leaves=leaves,
        scores_root=merkle_root(leaves),
        included=included,
        included_hash=included_hash([(s.peer, s.cid) for s in included]),
        excluded=dict(gate.excluded),
        rejected_votes=list(rejected),
    )


def decide_round(
    fed: Federation, round_id: int, submissions: Sequence[Submission], fetched: Sequence[FetchedVotes]
) -> RoundDecision:
    """`decide_from` with the round's seed and threshold read from the chain."""
    info = fed.round(round_id)
    seed = assignment_seed(fed.address, round_id, info.closed_at)
    config = fed.config()
    server = config.result_mode is ResultMode.SERVER
    return decide_from(round_id, seed, config.score_threshold, submissions, fetched, server=server)


def adapter_state(files: dict[str, bytes], what: str) -> Any:
    """An adapter's tensors, parsed safely (safetensors only) and checked finite."""
    import torch

    from bcfl.learning.adapter import ADAPTER_CONFIG, ADAPTER_MODEL, AdapterState, spec_from_config
    from bcfl.storage.adapter_pack import load_tensors

    spec = spec_from_config(files[ADAPTER_CONFIG])
    tensors = load_tensors(files[ADAPTER_MODEL])
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise BcflError(f"{what}: tensor {name} holds NaN or Inf")
    return AdapterState(spec, tensors)


BaseOf = Callable[[int], ModelRef]  # round -> the base model that round trained from


def rebased_update(
    storage: Storage, sub: Submission, base_state: Any, round_id: int, base_of: BaseOf, *, timeout: float
) -> Any:
    """A submission's adapter as used in `round_id`: as submitted when it trained from this
    round's base, else its change applied to this round's base (`bcfl.learning.aggregate.rebase`),
    so a late update adds what it learned instead of undoing the rounds it missed."""
    from bcfl.learning.aggregate import rebase

    files = fetch_adapter(storage, sub.cid, digest=sub.digest, timeout=timeout)
    state = adapter_state(files, f"update {sub.cid}")
    if sub.trained_from == round_id:
        return state
    start = base_of(sub.trained_from)
    start_files = fetch_adapter(storage, start.cid, digest=start.digest, timeout=timeout)
    return rebase(state, adapter_state(start_files, f"base {start.cid}"), base_state)


def aggregate_files(
    storage: Storage,
    base: ModelRef,
    round_id: int,
    decision: RoundDecision,
    *,
    base_of: BaseOf,
    server_lr: float,
    timeout: float = 30.0,
) -> dict[str, bytes]:
    """The aggregate adapter's files: the included updates (late ones rebased onto this round's
    base) averaged (FFA: exact), each weighted by its samples with the staleness discount, in
    CID order so every peer gets the same bits, then taken as a step of `server_lr` (the
    federation's server learning rate) from the base. `base_of` names each round's base."""
    from bcfl.learning.adapter import to_files
    from bcfl.learning.aggregate import (
        AggregationError,
        WeightedUpdate,
        aggregate,
        incompatibility,
        server_step,
        staleness_weight,
    )

    base_files = fetch_adapter(storage, base.cid, digest=base.digest, timeout=timeout)
    base_state = adapter_state(base_files, f"base {base.cid}")
    updates = []
    for sub in decision.included:
        try:
            state = rebased_update(storage, sub, base_state, round_id, base_of, timeout=timeout)
        except AggregationError as exc:
            log.warning("round %d: update %s left out of the aggregate: %s", round_id, sub.cid, exc)
            continue
        # Votes already give such an update 0; this keeps a colluding quorum from including it.
        problem = incompatibility(base_state, state, AGGREGATION_SCHEME)
        if problem is not None:
            log.warning("round %d: update %s left out of the aggregate: %s", round_id, sub.cid, problem)
            continue
        weight = staleness_weight(sub.samples, round_id - sub.trained_from)
        updates.append(WeightedUpdate(sub.cid, state, weight))
    if not updates:
        return base_files
    mean = aggregate(updates, AGGREGATION_SCHEME)
    return to_files(server_step(base_state, mean, server_lr))


def aggregate_round(
    storage: Storage,
    base: ModelRef,
    round_id: int,
    decision: RoundDecision,
    *,
    base_of: BaseOf,
    server_lr: float,
    timeout: float = 30.0,
) -> ModelRef:
    """The aggregate's CID and digest, computed without storing anything."""
    files = aggregate_files(
        storage, base, round_id, decision, base_of=base_of, server_lr=server_lr, timeout=timeout
    )
    return ModelRef(cid_of_directory(files), content_digest(files))
