"""The peer node's round loop: read the chain, do the next thing this peer owes, repeat.

The loop holds no round state of its own beyond the journal: every decision is taken from the
chain (round status, what this peer already sent) so a node restarted at any point picks up
where it stopped. The work itself (training, evaluating, scoring, aggregating) is delegated to
a `RoundWork`, so this module is only the protocol's mechanism.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from bcfl.chain.federation import (
    Federation,
    FederationConfig,
    ModelRef,
    PeerInfo,
    ResultMode,
    RoundInfo,
    RoundStatus,
    Submission,
    VoteCommit,
)
from bcfl.chain.merkle import ScoreLeaf, merkle_proof
from bcfl.chain.reverts import ContractRevert
from bcfl.chain.transactions import Receipt
from bcfl.errors import BcflError
from bcfl.node.journal import Journal, PendingUpdate, save_journal
from bcfl.node.timing import PhaseRecorder

log = logging.getLogger("bcfl.node")

# What `step` returns when it found nothing to do: its time counts as waiting.
IDLE_STEPS = frozenset({"waiting", "idle"})


@dataclass(frozen=True)
class Outcome:
    """A round's result as computed by this peer: what it attests (or posts)."""

    leaves: list[ScoreLeaf]
    scores_root: bytes
    included_hash: bytes
    aggregate: ModelRef


class RoundWork(Protocol):
    """The computation a peer does for the protocol (see bcfl.node.work)."""

    def train(self, base: ModelRef, trained_from: int) -> PendingUpdate: ...

    def votes(self, round_id: int, base: ModelRef, submissions: list[Submission]) -> ModelRef: ...

    def outcome(
        self, round_id: int, base: ModelRef, submissions: list[Submission], commits: list[VoteCommit]
    ) -> Outcome: ...

    def leaves_of(self, round_id: int) -> list[ScoreLeaf]: ...

    def score_of(self, round_id: int, peer: str) -> ScoreLeaf | None: ...


class Clock(Protocol):
    def now(self) -> float: ...


class ChainClock:
    """Time as the chain sees it (deadlines compare against block timestamps)."""

    def __init__(self, fed: Federation) -> None:
        self.fed = fed

    def now(self) -> float:
        return float(self.fed.w3.eth.get_block("latest")["timestamp"])


class PeerNode:
    def __init__(
        self,
        fed: Federation,
        work: RoundWork,
        journal: Journal,
        *,
        address: str,
        role: str,
        data_dir: Path,
        clock: Clock | None = None,
        slowdown: float = 0.0,
        on_event: Callable[[str, dict[str, object]], None] | None = None,
        timer: PhaseRecorder | None = None,
    ) -> None:
        self.fed = fed
        self.work = work
        self.journal = journal
        self.address = address
        self.role = role
        self.data_dir = data_dir
        self.clock = clock or ChainClock(fed)
        self.slowdown = slowdown
        self.on_event = on_event or (lambda kind, data: None)
        self.timer = timer or PhaseRecorder()
        self._config: FederationConfig | None = None

    # -- helpers ------------------------------------------------------------------------------

    @property
    def config(self) -> FederationConfig:
        if self._config is None:
            self._config = self.fed.config()
        return self._config

    @property
    def is_aggregator(self) -> bool:
        return self.role == "aggregator"

    def _save(self) -> None:
        save_journal(self.data_dir, self.journal)

    def _send(self, send: Callable[[], Receipt]) -> Receipt:
        """Send a transaction (the wait for its receipt included) as chain time; count its gas."""
        with self.timer.phase("chain"):
            receipt = send()
        self.timer.transaction(receipt.gas_used)
        return receipt

    def _emit(self, kind: str, **data: object) -> None:
        log.info("%s %s", kind, " ".join(f"{k}={v}" for k, v in data.items()), extra={"event": kind, **data})
        self.on_event(kind, data)

    # -- the loop -----------------------------------------------------------------------------

    def step(self) -> str:
        """Do the one next thing this peer owes the federation; return what it did."""
        with self.timer.step() as record:
            current = self.fed.current_round()
            record.serves(current)
            did = self._step(current)
            record.idle = did in IDLE_STEPS
            return did

    def _step(self, current: int) -> str:
        info = self.fed.round(current)
        me = self.fed.peer(self.address)
        if info.status is RoundStatus.OPEN:
            return self._open_round(info, me)
        if info.status is RoundStatus.CLOSED:
            return self._closed_round(info, me)
        return "idle"

    def _open_round(self, info: RoundInfo, me: PeerInfo) -> str:
        if self.is_aggregator:
            return self._maybe_close(info)
        if me.last_submitted == info.round:
            self._forget_pending(info.round)
            return self._maybe_close(info)
        if not me.active:
            return "idle"
        pending = self.journal.pending
        if pending is not None and info.round - pending.trained_from > self.config.max_staleness:
            self._emit("update_too_stale", trained_from=pending.trained_from, round=info.round)
            self.journal.pending = None
            self._save()
            pending = None
        if pending is None:
            base = self.fed.base_model(info.round)
            pending = self.work.train(base, info.round)
            if self.slowdown:
                with self.timer.phase("training"):  # a straggler is a slow trainer
                    time.sleep(self.slowdown)
            self.journal.pending = pending
            self.journal.note(info.round, update=pending.cid)
            self._save()
            self._emit("trained", round=info.round, cid=pending.cid, samples=pending.samples)
            return "trained"
        self._settle_self(me)
        current = self.fed.current_round()
        if current != info.round or self.fed.round(current).status is not RoundStatus.OPEN:
            return "round_moved"  # the round closed while we trained; try the next one
        try:
            receipt = self._send(
                lambda: self.fed.submit_update(
                    current, pending.cid, bytes.fromhex(pending.digest), pending.samples, pending.trained_from
                )
            )
        except ContractRevert as exc:
            if exc.name in ("FederationWrongRoundStatus", "FederationNotCurrentRound"):
                return "round_moved"
            if exc.name == "FederationAlreadySubmitted":  # sent by an earlier life of this key
                self._forget_pending(current)
                return "round_moved"
            if exc.name == "FederationUpdateTooStale":
                # The contract will never take this update: drop it and train afresh, not retry forever.
                log.warning("update %s refused by the contract: %s; training a new one", pending.cid, exc)
                self.journal.pending = None
                self._save()
                self._emit("update_refused", round=current, cid=pending.cid, error=exc.name)
                return "update_refused"
            raise
        self.journal.pending = None
        self.journal.submitted_rounds.append(current)
        self.journal.note(current, submitted=pending.cid, submit_gas=receipt.gas_used)
        self._save()
        self._emit("submitted", round=current, cid=pending.cid, gas=receipt.gas_used)
        return "submitted"

    def _forget_pending(self, round_id: int) -> None:
        # The chain has our submission for this round (e.g. we died after sending it).
        if self.journal.pending is not None:
            self.journal.pending = None
            if round_id not in self.journal.submitted_rounds:
                self.journal.submitted_rounds.append(round_id)
            self._save()

    def _settle_self(self, me: PeerInfo) -> None:
        """Fold our last finalised score into our reputation (the contract requires it)."""
        last = me.last_submitted
        if last == 0 or me.last_settled == last:
            return
        if self.fed.round(last).status is not RoundStatus.FINALISED:
            return
        leaf = self.work.score_of(last, self.address)
        if leaf is None:
            raise BcflError(f"cannot settle round {last}: this peer is missing from its scores")
        leaves = self.work.leaves_of(last)
        receipt = self._send(
            lambda: self.fed.settle(self.address, last, leaf.score, leaf.included, merkle_proof(leaves, leaf))
        )
        self._emit("settled", round=last, score=leaf.score, included=leaf.included, gas=receipt.gas_used)

    def _maybe_close(self, info: RoundInfo) -> str:
        if info.submissions > 0 and self.clock.now() >= info.submit_deadline:
            try:
                self._send(lambda: self.fed.close_round(info.round))
            except ContractRevert as exc:
                if exc.name != "FederationWrongRoundStatus":
                    raise
            self._emit("closed", round=info.round, reason="deadline")
            return "closed"
        return "waiting"

    def _closed_round(self, info: RoundInfo, me: PeerInfo) -> str:
        voter = self.is_aggregator if self.config.result_mode is ResultMode.SERVER else me.active
        voted = (info.votes > 0) if self.is_aggregator else (me.last_voted == info.round)
        if not self.fed.voting_closed(info.round):
            if voter and not voted and (self.is_aggregator or me.last_submitted == info.round):
                return self._vote(info)
            return "waiting"
        now = self.clock.now()
        if now >= info.result_deadline:
            try:
                self._send(lambda: self.fed.expire_round(info.round))
            except ContractRevert as exc:
                if exc.name != "FederationWrongRoundStatus":
                    raise
            self._emit("expired", round=info.round)
            return "expired"
        if self.config.result_mode is ResultMode.SERVER:
            return self._post(info) if self.is_aggregator else "waiting"
        if not me.active or me.last_attested == info.round:
            return "waiting"
        return self._attest(info)

    def _vote(self, info: RoundInfo) -> str:
        submissions = self.fed.submissions(info.round)
        base = self.fed.base_model(info.round)
        ref = self.work.votes(info.round, base, submissions)
        try:
            receipt = self._send(lambda: self.fed.commit_votes(info.round, ref.cid, ref.digest))
        except ContractRevert as exc:
            if exc.name in ("FederationVotingClosed", "FederationAlreadyVoted"):
                return "vote_late"
            raise
        self.journal.note(info.round, votes=ref.cid)
        self._save()
        self._emit("voted", round=info.round, cid=ref.cid, gas=receipt.gas_used)
        return "voted"

    def _compute(self, info: RoundInfo) -> Outcome:
        submissions = self.fed.submissions(info.round)
        commits = self.fed.vote_commits(info.round)
        base = self.fed.base_model(info.round)
        return self.work.outcome(info.round, base, submissions, commits)

    def _attest(self, info: RoundInfo) -> str:
        outcome = self._compute(info)
        try:
            receipt = self._send(
                lambda: self.fed.attest_result(
                    info.round, outcome.scores_root, outcome.included_hash, outcome.aggregate
                )
            )
        except ContractRevert as exc:
            if exc.name in (
                "FederationWrongRoundStatus",
                "FederationAlreadyAttested",
                "FederationResultWindowClosed",
            ):
                return "attest_late"
            raise
        self.journal.note(info.round, attested=outcome.aggregate.cid)
        self._save()
        self._emit("attested", round=info.round, aggregate=outcome.aggregate.cid, gas=receipt.gas_used)
        return "attested"

    def _post(self, info: RoundInfo) -> str:
        outcome = self._compute(info)
        receipt = self._send(
            lambda: self.fed.post_result(
                info.round, outcome.scores_root, outcome.included_hash, outcome.aggregate
            )
        )
        self._emit("posted", round=info.round, aggregate=outcome.aggregate.cid, gas=receipt.gas_used)
        return "posted"

    def run(
        self,
        *,
        max_rounds: int = 0,
        poll_interval: float = 0.5,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Step until stopped (or until round `max_rounds` has finished)."""
        stop = should_stop or (lambda: False)
        failures = 0
        while not stop():
            try:
                if max_rounds and self.fed.current_round() > max_rounds:
                    self._emit("done", rounds=max_rounds)
                    return
                did = self.step()
            except Exception as exc:  # chain/storage down, a revert after a race: wait, re-read
                failures += 1
                delay = min(30.0, poll_interval * 2**failures)
                log.warning(
                    "round step failed (%s); retrying in %.1f s (attempt %d)",
                    self._describe(exc),
                    delay,
                    failures,
                    extra={"event": "step_failed", "attempt": failures},
                )
                time.sleep(delay)
                continue
            if failures:
                self._emit("resumed", after_failures=failures)
                failures = 0
            if did in ("waiting", "idle", "vote_late", "attest_late"):
                time.sleep(poll_interval)

    def _describe(self, exc: Exception) -> str:
        """One line on why a step failed; an unreachable chain is named by its URL."""
        from bcfl.storage.errors import StorageError  # its daemon client also speaks HTTP

        reason = str(exc) if isinstance(exc, BcflError) else f"{type(exc).__name__}: {exc}"
        cause: BaseException | None = exc
        while cause is not None and not isinstance(exc, StorageError):
            if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
                url = getattr(self.fed.w3.provider, "endpoint_uri", "the chain RPC")
                return f"chain RPC {url} is not answering: {reason}"
            cause = cause.__cause__ or cause.__context__
        return reason
