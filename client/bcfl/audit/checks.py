"""Auditing rounds from the chain and storage alone: every input re-fetched, every result recomputed.

For each round, in order:
- `updates`: every submitted CID resolves and its content matches the on-chain digest;
- `votes`: every committed vote file resolves and matches its digest;
- `scores`: the scores recomputed from the posted vote files give the posted scores root;
- `included`: the included set that follows from scores, reputation and threshold gives the
  posted included-set commitment;
- `aggregate`: the aggregate recomputed from the included updates has the recorded CID/digest;
- `base`: the round trains from the aggregate of the last finalised round (or genesis).
A check that cannot run because an earlier one failed is reported as skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bcfl.chain.federation import Federation, RoundStatus
from bcfl.errors import BcflError
from bcfl.outcome import aggregate_round, decide_round, fetch_votes
from bcfl.storage.adapter_pack import fetch_adapter
from bcfl.storage.base import Storage

CHECKS = ("updates", "votes", "scores", "included", "aggregate", "base")


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool | None  # None: not applicable or skipped
    detail: str = ""


@dataclass
class RoundAudit:
    round: int
    status: str
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if c.ok is False), None)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, BcflError) else f"{type(exc).__name__}: {exc}"


def audit_round(fed: Federation, storage: Storage, round_id: int, *, timeout: float = 30.0) -> RoundAudit:
    started = time.monotonic()
    info = fed.round(round_id)
    audit = RoundAudit(round=round_id, status=info.status.name.lower())
    add = audit.checks.append
    submissions = fed.submissions(round_id)

    bad_updates: dict[str, str] = {}
    for sub in submissions:
        try:
            fetch_adapter(storage, sub.cid, digest=sub.digest, timeout=timeout)
        except Exception as exc:
            bad_updates[sub.peer] = f"{sub.peer} {sub.cid}: {_describe(exc)}"

    commits = fed.vote_commits(round_id)
    fetched = fetch_votes(storage, commits, timeout=timeout)
    bad_votes = [f"{v.commit.voter} {v.commit.cid}: {v.error}" for v in fetched if v.error]

    final = fed.finalisation(round_id) if info.status is RoundStatus.FINALISED else None
    decision = decide_round(fed, round_id, submissions, fetched) if final is not None else None
    # A bad update or vote file that the protocol excluded is the submitter's fault and already
    # accounted for; one that was included (or any, before a result) fails the audit.
    included = {s.peer for s in decision.included} if decision is not None else set(bad_updates)
    fatal = [why for peer, why in bad_updates.items() if peer in included]
    add(
        CheckResult(
            "updates", not fatal, "; ".join(fatal or bad_updates.values()) or f"{len(submissions)} verified"
        )
    )
    add(CheckResult("votes", not bad_votes, "; ".join(bad_votes) or f"{len(commits)} vote files verified"))

    if final is None or decision is None:
        for check in ("scores", "included", "aggregate"):
            add(CheckResult(check, None, f"round is {audit.status}: no result to check"))
    else:
        same_scores = decision.scores_root == final.scores_root
        add(
            CheckResult(
                "scores",
                same_scores,
                "recomputed scores root matches"
                if same_scores
                else f"recomputed 0x{decision.scores_root.hex()} != posted 0x{final.scores_root.hex()}",
            )
        )
        same_included = decision.included_hash == final.included_hash
        add(
            CheckResult(
                "included",
                same_included,
                f"{len(decision.included)} included, {len(decision.excluded)} excluded"
                if same_included
                else "recomputed included set differs from the posted commitment",
            )
        )
        try:
            aggregate = aggregate_round(
                storage,
                fed.base_model(round_id),
                round_id,
                decision,
                base_of=fed.base_model,
                server_lr=fed.config().server_learning_rate,
                timeout=timeout,
            )
            same = aggregate.cid == final.aggregate.cid and aggregate.digest == final.aggregate.digest
            detail = (
                f"aggregate {aggregate.cid} matches"
                if same
                else f"recomputed {aggregate.cid} != recorded {final.aggregate.cid}"
            )
            add(CheckResult("aggregate", same, detail))
        except Exception as exc:
            add(CheckResult("aggregate", False, f"cannot recompute the aggregate: {_describe(exc)}"))

    add(_check_base(fed, round_id, info.base_round))
    audit.seconds = time.monotonic() - started
    return audit


def _check_base(fed: Federation, round_id: int, base_round: int) -> CheckResult:
    """The base must be the most recent finalised round before this one (expired ones skipped)."""
    expected = 0
    for r in range(round_id - 1, 0, -1):
        status = fed.round(r).status
        if status is RoundStatus.FINALISED:
            expected = r
            break
    ok = base_round == expected
    what = "genesis" if expected == 0 else f"round {expected}'s aggregate"
    return CheckResult(
        "base", ok, f"trains from {what}" if ok else f"base round {base_round}, expected {expected}"
    )


def audit_federation(
    fed: Federation, storage: Storage, *, rounds: list[int] | None = None, timeout: float = 30.0
) -> list[RoundAudit]:
    """Audit every round up to the current one (or the given rounds)."""
    ids = rounds or list(range(1, fed.current_round() + 1))
    return [audit_round(fed, storage, r, timeout=timeout) for r in ids]
