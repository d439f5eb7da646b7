"""The gate: which submissions the round aggregates, from scores and on-chain reputation.

All arithmetic is on integers (parts per million, basis points), as on-chain, so every peer
reaches the same included set and the same reputation updates bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bcfl.errors import BcflError

PPM = 1_000_000
BPS = 10_000


class GateError(BcflError):
    """Gate inputs that cannot be used."""


@dataclass(frozen=True)
class GateDecision:
    included: tuple[str, ...]  # canonical order (lower-case hex): the aggregation order
    excluded: dict[str, str]  # peer -> human-readable reason, canonical order
    combined: dict[str, int]  # peer -> the ppm value compared against the threshold


def _check_ppm(what: str, peer: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= PPM:
        raise GateError(f"{what} of {peer} must be an integer in [0, {PPM}] ppm, got {value!r}")


def decide(
    scores: Mapping[str, int],
    reputations: Mapping[str, int],
    threshold_ppm: int,
    *,
    reputation_weight_bps: int = 0,
    min_reputation_ppm: int = 0,
) -> GateDecision:
    """Include a submitter iff its combined value reaches `threshold_ppm` and its reputation
    reaches `min_reputation_ppm`.

    combined = (score * (10000 - w) + reputation * w) // 10000 with w = `reputation_weight_bps`:
    w = 0 gates on this round's score alone; a larger w lets a long good record carry a peer
    through one noisy round, and keeps a peer with a bad record out until it has earned back
    its standing. A submitter missing from `reputations` is treated as reputation 0.
    """
    _check_ppm("threshold", "the gate", threshold_ppm)
    _check_ppm("minimum reputation", "the gate", min_reputation_ppm)
    if not 0 <= reputation_weight_bps <= BPS:
        raise GateError(f"reputation weight must be in [0, {BPS}] bps, got {reputation_weight_bps}")
    rep_of = {p.lower(): r for p, r in reputations.items()}
    included: list[str] = []
    excluded: dict[str, str] = {}
    combined: dict[str, int] = {}
    for peer in sorted(scores, key=str.lower):
        score = scores[peer]
        _check_ppm("score", peer, score)
        rep = rep_of.get(peer.lower(), 0)
        _check_ppm("reputation", peer, rep)
        value = (score * (BPS - reputation_weight_bps) + rep * reputation_weight_bps) // BPS
        combined[peer] = value
        if rep < min_reputation_ppm:
            excluded[peer] = f"reputation {rep} ppm is below the minimum {min_reputation_ppm} ppm"
        elif value < threshold_ppm:
            what = (
                "score"
                if reputation_weight_bps == 0
                else f"score {score} ppm with reputation {rep} ppm gives"
            )
            excluded[peer] = f"{what} {value} ppm, below the threshold {threshold_ppm} ppm"
        else:
            included.append(peer)
    return GateDecision(included=tuple(included), excluded=excluded, combined=combined)


def update_reputation(old_ppm: int, score_ppm: int, weight_bps: int) -> int:
    """The contract's reputation rule: new = (old * (10000 - w) + score * w) // 10000."""
    _check_ppm("old reputation", "the peer", old_ppm)
    _check_ppm("score", "the peer", score_ppm)
    if not 0 <= weight_bps <= BPS:
        raise GateError(f"reputation weight must be in [0, {BPS}] bps, got {weight_bps}")
    return (old_ppm * (BPS - weight_bps) + score_ppm * weight_bps) // BPS
