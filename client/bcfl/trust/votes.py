"""The vote file: one peer's evaluations of other peers' updates in one round.

A vote file is canonical JSON (sorted keys, no whitespace, ASCII, votes sorted by peer address
lower-cased), so the same content always gives the same bytes, hence the same CID and digest.
It is published on IPFS and committed on-chain; anyone recomputing the scores parses it with
`parse_votes`, which rejects (with a typed error naming the reason) anything the scoring must
not trust. Example (pretty-printed; the real file has no whitespace):

    {"base": {"accuracy": 0.41, "loss": 2.31}, "examples": 64, "round": 7,
     "version": 1, "voter": "0xAbC...",
     "votes": [{"accuracy": 0.45, "cid": "bafy...", "loss": 2.18, "peer": "0xDeF...",
                "value": 0.73}]}

`base` holds the voter's metrics of the round's base model on its validation slice, each vote
the metrics of base + that update on the same slice, and `value` the vote in [0, 1] derived
from them by the protocol's rule `vote_values` (each update against the base and a share of the
voter's typical improvement; an oversized update gets 0 unevaluated, see `oversized`;
`vote_value` is the plain "against the base" curve). Accuracy may be null where the
evaluation has none.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bcfl.errors import BcflError
from bcfl.trust.assignment import Ring

VOTE_FILE_VERSION = 1
MAX_VOTE_FILE_BYTES = 1 << 20  # a vote file lists at most k votes: 1 MiB is far more than enough


class VoteFileError(BcflError):
    """A vote file the scoring must ignore; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Metrics:
    """Loss (lower is better) and accuracy (None where not measured) on a validation slice."""

    loss: float
    accuracy: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.loss, int | float) or isinstance(self.loss, bool):
            raise VoteFileError("schema", f"loss must be a number, got {self.loss!r}")
        if self.accuracy is not None and not (
            isinstance(self.accuracy, int | float)
            and not isinstance(self.accuracy, bool)
            and 0.0 <= self.accuracy <= 1.0
        ):
            raise VoteFileError("out_of_range", f"accuracy must be null or in [0, 1], got {self.accuracy!r}")

    def to_json(self) -> dict[str, Any]:
        # A diverged update may have an infinite or NaN loss; JSON has neither, so it is
        # written as null and read back as +inf (the worst loss).
        loss = float(self.loss) if math.isfinite(self.loss) else None
        return {"loss": loss, "accuracy": None if self.accuracy is None else float(self.accuracy)}


@dataclass(frozen=True)
class Vote:
    peer: str
    cid: str
    value: float
    metrics: Metrics

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or isinstance(self.value, bool):
            raise VoteFileError("schema", f"vote value for {self.peer} must be a number, got {self.value!r}")
        if not (0.0 <= self.value <= 1.0):  # also rejects NaN
            raise VoteFileError(
                "out_of_range", f"vote value for {self.peer} must be in [0, 1], got {self.value!r}"
            )


@dataclass(frozen=True)
class VoteFile:
    round: int
    voter: str
    base: Metrics
    votes: tuple[Vote, ...]
    examples: int = 0  # validation examples behind the metrics
    version: int = VOTE_FILE_VERSION

    def __post_init__(self) -> None:
        if self.round < 0:
            raise VoteFileError("schema", f"vote file round must be >= 0, got {self.round}")
        if self.examples < 0:
            raise VoteFileError("schema", f"vote file example count must be >= 0, got {self.examples}")
        seen: set[str] = set()
        for v in self.votes:
            key = v.peer.lower()
            if key in seen:
                raise VoteFileError("duplicate", f"vote file of {self.voter} votes twice for {v.peer}")
            seen.add(key)
            if key == self.voter.lower():
                raise VoteFileError("self_vote", f"vote file of {self.voter} votes for its own update")

    def value_of(self, peer: str) -> float | None:
        for v in self.votes:
            if v.peer.lower() == peer.lower():
                return v.value
        return None


def vote_value(base_loss: float, update_loss: float, *, scale: float = 0.02) -> float:
    """The plain curve: "loss of base + update" against "loss of base" as a vote in [0, 1]
    (the protocol votes with `vote_values`, which also weighs the voter's median update).

    The relative improvement r = (base - update) / base goes through a logistic curve with
    width `scale`: vote = 1 / (1 + exp(-r / scale)). So an update that leaves the loss unchanged
    (a free-rider resubmitting the base) gets exactly 0.5, one that lowers the loss by `scale`
    (2% by default) gets 0.73, by 3 x scale 0.95; one that raises it symmetrically below 0.5.
    A NaN or infinite update loss gets 0.0; a non-finite or non-positive base loss gives the
    neutral 0.5 (nothing to compare against). Also usable for accuracy by passing
    `1 - accuracy` as the losses.
    """
    if scale <= 0:
        raise ValueError(f"vote scale must be positive, got {scale}")
    if not math.isfinite(update_loss):
        return 0.0
    if not math.isfinite(base_loss) or base_loss <= 0:
        return 0.5
    r = (base_loss - update_loss) / base_loss
    z = max(-700.0, min(700.0, r / scale))
    return 1.0 / (1.0 + math.exp(-z))


VOTE_SCALE = 0.005  # logistic width of the vote rule, as a share of the base loss
VOTE_TOLERANCE = 0.015  # how much worse than the reference still counts as fine
VOTE_MEDIAN_SHARE = 0.5  # the share of the voter's typical improvement an update must bring
# The bar's widening with the spread of what a voter sees: off by default. Measured on SmolLM2
# (docs/results.md, 4a) it keeps more honest updates once updates stop helping, but also admits
# same-size sign flips whose harm is within the honest spread.
VOTE_SPREAD = 0.0  # robust standard deviations above the median update that still count as fine
VOTE_SPREAD_CAP = 0.045  # ... never more than this share of the base loss above it, or above the base
MAX_NORM_RATIO = 2.0  # an update this many times larger than the reference is voted 0 unevaluated


def oversized(norms: Sequence[float], own: float | None, *, ratio: float = MAX_NORM_RATIO) -> list[bool]:
    """Which updates a voter rejects for their size alone: those whose change (L2 norm, see
    `bcfl.learning.aggregate.change_norm`) exceeds `ratio` x the reference, which is the norm
    of the voter's own update this round or, for a voter that trained none (a server-mode
    aggregator), the median of `norms`.

    Why: honest peers take the same number of optimiser steps at the same learning rate, so
    their changes have similar sizes (docs/results.md, section 4), while a scaled (model
    replacement) or noise update is several times larger, and its harm to the average grows
    with its size faster than one validation slice's loss shows: a noise update can raise a
    voter's loss less than an honest update trained on another peer's data does. A non-finite
    norm is oversized; without a usable reference nothing is.
    """
    if ratio <= 0:
        raise ValueError(f"norm ratio must be positive, got {ratio}")
    finite = [n for n in norms if math.isfinite(n)]
    reference = own
    if reference is None and finite:
        reference = statistics.median(finite)
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return [not math.isfinite(n) for n in norms]
    return [not (math.isfinite(n) and n <= ratio * reference) for n in norms]


def vote_values(
    base_loss: float,
    losses: Sequence[float],
    *,
    scale: float = VOTE_SCALE,
    tolerance: float = VOTE_TOLERANCE,
    median_share: float = VOTE_MEDIAN_SHARE,
    spread: float = VOTE_SPREAD,
    spread_cap: float = VOTE_SPREAD_CAP,
    against_median: bool = True,
) -> list[float]:
    """The protocol's vote rule: every update this voter evaluated, judged on the voter's own
    validation slice against the base and against how much the voter's typical update helps.

    In relative changes x_i = (L_i - L0) / L0 (L_i the loss of base + update i, L0 the base
    loss) with m the median of the finite x_i, an update passes below the bar
    t = -share x max(0, -m) + tolerance, and vote_i = 1 / (1 + exp(-(t - x_i) / scale)). So
    when the updates this voter sees help it (m < 0), an update must bring at least
    `median_share` (half) of the typical improvement, less `tolerance`; when they do not, it
    must not raise the loss by more than `tolerance` (1.5% of the base loss). An update exactly
    at the reference (the bar less `tolerance`) gets logistic(tolerance / scale) (0.95 by
    default), one at the bar 0.5, one `tolerance` past it 0.05.
    With `spread` > 0 the bar widens with the spread of what this voter sees: to `spread` robust standard
    deviations (1.4826 x the median absolute deviation of the x_i, with three or more finite
    losses) above the median, capped at `spread_cap` above the median and above the base
    (4.5% of L0).
    Why this bar: the tolerance absorbs the harm an honest update trained on another peer's
    (non-IID) shard can do to this voter's loss, which made "better than base" exclude honest
    peers; the share of the median demands real help when updates do help, without excluding
    honest updates that help less than the typical one (the full median as the reference did,
    on SmolLM2: docs/results.md); capping the reference at the base keeps attackers, who raise
    the loss, from pulling the bar up when they hold the middle of a small sample (k = 3 with
    two attackers). The spread term keeps honest updates in once the federation has converged
    and honest updates differ from each other by more than the tolerance (the gate replay at
    eight warm-up rounds, docs/results.md); its caps keep a bar that attackers widen from
    admitting updates that do not help where the typical one does, or that raise the loss by
    more than `spread_cap`. It is off by default (`spread` 0): where it helps recall most (a
    federation eight rounds along) it also lets in same-size sign-flipped updates, which the
    fixed tolerance catches (docs/results.md, section 4a).
    A non-finite loss, or one equal to the base loss to the last bit (a free-rider
    resubmitting the base: any real change of the weights moves the loss), gets 0.0, and
    non-finite losses stay out of the median; with fewer than two finite losses the reference
    is the base; a non-finite or non-positive base loss gives the neutral 0.5. With
    `against_median` off the bar is always the base's plus `tolerance` (a voter that judges
    every update of the round alone, as a server-mode aggregator does, would otherwise fail
    the weaker half).
    """
    if scale <= 0:
        raise ValueError(f"vote scale must be positive, got {scale}")
    if tolerance < 0:
        raise ValueError(f"vote tolerance must be >= 0, got {tolerance}")
    if not 0.0 <= median_share <= 1.0:
        raise ValueError(f"median share must be in [0, 1], got {median_share}")
    if spread < 0 or spread_cap < 0:
        raise ValueError(f"vote spread and its cap must be >= 0, got {spread} and {spread_cap}")
    usable = math.isfinite(base_loss) and base_loss > 0
    finite = [x for x in losses if math.isfinite(x)]
    bar = tolerance
    if usable and against_median and len(finite) >= 2:
        changes = [(x - base_loss) / base_loss for x in finite]
        median = statistics.median(changes)
        bar = tolerance - median_share * max(0.0, -median)
        if spread > 0 and len(changes) >= 3:
            sigma = 1.4826 * statistics.median([abs(c - median) for c in changes])
            bar = max(bar, min(median + min(spread * sigma, spread_cap), spread_cap))
    out = []
    for loss in losses:
        if not math.isfinite(loss) or loss == base_loss:
            # Equal to the last bit: the update changed nothing (a resubmitted base).
            out.append(0.0)
        elif not usable:
            out.append(0.5)
        else:
            z = max(-700.0, min(700.0, (bar - (loss - base_loss) / base_loss) / scale))
            out.append(1.0 / (1.0 + math.exp(-z)))
    return out


def encode_votes(vote_file: VoteFile) -> bytes:
    """The canonical bytes of a vote file (same content, same bytes)."""
    votes = sorted(vote_file.votes, key=lambda v: v.peer.lower())
    doc = {
        "version": vote_file.version,
        "round": vote_file.round,
        "voter": vote_file.voter,
        "examples": vote_file.examples,
        "base": vote_file.base.to_json(),
        "votes": [
            {"peer": v.peer, "cid": v.cid, "value": float(v.value), **v.metrics.to_json()} for v in votes
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


_TOP_KEYS = {"version", "round", "voter", "examples", "base", "votes"}
_VOTE_KEYS = {"peer", "cid", "value", "loss", "accuracy"}


def _metrics(doc: Any, where: str) -> Metrics:
    if not isinstance(doc, dict) or not {"loss", "accuracy"} <= set(doc):
        raise VoteFileError("schema", f"{where} must hold loss and accuracy")
    loss = doc["loss"]
    if loss is None:
        loss = math.inf
    if not isinstance(loss, int | float) or isinstance(loss, bool):
        raise VoteFileError("schema", f"{where} loss must be a number or null, got {loss!r}")
    return Metrics(loss=float(loss), accuracy=None if doc["accuracy"] is None else doc["accuracy"])


def _int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise VoteFileError("schema", f"{where} field {key!r} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class _RoundPeers:
    """A round's submitters and their CIDs keyed by lower-cased address, built once per round
    (rebuilding them per vote file made checking n files O(n^2))."""

    spelling: Mapping[str, str]
    cid_of: Mapping[str, str] | None

    @classmethod
    def of(cls, known_peers: Collection[str], cids: Mapping[str, str] | None) -> _RoundPeers:
        return cls(
            {p.lower(): p for p in known_peers},
            None if cids is None else {p.lower(): c for p, c in cids.items()},
        )


def parse_votes(
    data: bytes,
    *,
    round: int,
    voter: str,
    known_peers: Collection[str],
    cids: Mapping[str, str] | None = None,
    assigned: Collection[str] | None = None,
    max_bytes: int = MAX_VOTE_FILE_BYTES,
) -> VoteFile:
    """Parse and check the vote file `voter` committed for `round`.

    `known_peers` are the round's submitters; `cids` (peer -> CID), when given, must match each
    vote's CID; `assigned`, when given, are the only peers the voter may vote for. Raises
    `VoteFileError` for: too large, not JSON / wrong schema, wrong version, round or voter,
    unknown peer, wrong CID, self-vote, vote outside the assignment, duplicate vote, a value or
    accuracy out of range. Peer addresses come back spelled as in `known_peers`.
    """
    peers = _RoundPeers.of(known_peers, cids)
    return _parse_votes(data, round=round, voter=voter, peers=peers, assigned=assigned, max_bytes=max_bytes)


def _parse_votes(
    data: bytes,
    *,
    round: int,
    voter: str,
    peers: _RoundPeers,
    assigned: Collection[str] | None,
    max_bytes: int = MAX_VOTE_FILE_BYTES,
) -> VoteFile:
    who = f"vote file of {voter} for round {round}"
    if len(data) > max_bytes:
        raise VoteFileError("too_large", f"{who} is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise VoteFileError("not_json", f"{who} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != _TOP_KEYS:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise VoteFileError("schema", f"{who} must have exactly the keys {sorted(_TOP_KEYS)}, got {keys}")
    if _int(doc, "version", who) != VOTE_FILE_VERSION:
        raise VoteFileError("schema", f"{who} has version {doc['version']!r}, expected {VOTE_FILE_VERSION}")
    if _int(doc, "round", who) != round:
        raise VoteFileError("wrong_round", f"{who} says it is for round {doc['round']!r}")
    if not isinstance(doc["voter"], str) or doc["voter"].lower() != voter.lower():
        raise VoteFileError("wrong_voter", f"{who} names voter {doc['voter']!r}")
    examples = _int(doc, "examples", who)
    try:
        base = _metrics(doc["base"], f"{who} base metrics")
    except VoteFileError as exc:
        raise VoteFileError(
            exc.reason, str(exc) if who in str(exc) else f"{who} base metrics: {exc}"
        ) from None
    if not isinstance(doc["votes"], list):
        raise VoteFileError("schema", f"{who} field 'votes' must be a list")

    spelling, cid_of = peers.spelling, peers.cid_of
    allowed = None if assigned is None else {a.lower() for a in assigned}
    votes: list[Vote] = []
    for i, item in enumerate(doc["votes"]):
        where = f"{who} vote #{i}"
        if not isinstance(item, dict) or set(item) != _VOTE_KEYS:
            raise VoteFileError("schema", f"{where} must have exactly the keys {sorted(_VOTE_KEYS)}")
        peer, cid = item["peer"], item["cid"]
        if not isinstance(peer, str) or not isinstance(cid, str):
            raise VoteFileError("schema", f"{where} peer and cid must be strings")
        key = peer.lower()
        if key == voter.lower():
            raise VoteFileError("self_vote", f"{who} votes for its own update")
        if key not in spelling:
            raise VoteFileError("unknown_peer", f"{who} votes for {peer}, which submitted no update")
        if allowed is not None and key not in allowed:
            raise VoteFileError("not_assigned", f"{who} votes for {peer}, which it was not assigned")
        if cid_of is not None and cid_of.get(key) != cid:
            raise VoteFileError("wrong_cid", f"{who} votes for CID {cid} of {peer}, not its submitted one")
        try:
            votes.append(
                Vote(peer=spelling[key], cid=cid, value=item["value"], metrics=_metrics(item, where))
            )
        except VoteFileError as exc:
            raise VoteFileError(exc.reason, str(exc) if who in str(exc) else f"{where}: {exc}") from None
    return VoteFile(round=round, voter=voter, base=base, votes=tuple(votes), examples=examples)


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


@dataclass(frozen=True)
class RejectedVotes:
    voter: str
    reason: str  # VoteFileError.reason
    message: str


def check_vote_files(
    files: Mapping[str, bytes],
    *,
    round: int,
    submissions: Mapping[str, str],
    seed: bytes | None = None,
    k: int | None = None,
) -> tuple[list[VoteFile], list[RejectedVotes]]:
    """Parse every committed vote file of a round (voter -> bytes) into (valid, rejected).

    `submissions` maps each submitter to its update CID. With `seed` and `k`, votes outside
    each voter's assignment are rejected too. Output is in canonical voter order.
    """
    valid: list[VoteFile] = []
    rejected: list[RejectedVotes] = []
    peers = _RoundPeers.of(list(submissions), submissions)
    ring = Ring(seed, list(submissions)) if seed is not None and k is not None else None
    for voter in sorted(files, key=str.lower):
        assigned = ring.assignment(voter, k) if ring is not None and k is not None else None
        try:
            valid.append(_parse_votes(files[voter], round=round, voter=voter, peers=peers, assigned=assigned))
        except VoteFileError as exc:
            rejected.append(RejectedVotes(voter=voter, reason=exc.reason, message=str(exc)))
    return valid, rejected
