"""Which updates each peer evaluates in a round: a bounded, seeded, balanced subset.

Every peer can recompute every other peer's assignment from the round seed alone, so a vote
for an update the voter was not assigned is detectable (and a colluder cannot pick whom to
vote on). The round's submitters are laid on a ring in a seeded order (each address keyed by
sha256(seed || address)); a submitter evaluates the `k` submitters that follow it on the ring.
Every submitter is therefore evaluated by exactly `k` submitters, and each voter does O(k)
work. A voter that did not submit (the aggregator in server mode, a peer whose update missed
the round) is placed on the ring by its own key and likewise takes the next `k`.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence

from bcfl.errors import BcflError


class AssignmentError(BcflError):
    """The inputs of an evaluation assignment are unusable."""


def _key(seed: bytes, address: str) -> bytes:
    # Lower-cased hex so that checksummed and plain spellings of an address agree.
    return hashlib.sha256(b"bcfl/assign/v1" + seed + address.lower().encode("ascii")).digest()


def seeded_ring(seed: bytes, candidates: Sequence[str]) -> list[str]:
    """The candidates (deduplicated case-insensitively) in the round's seeded ring order."""
    unique: dict[str, str] = {}
    for address in candidates:
        unique.setdefault(address.lower(), address)
    return sorted(unique.values(), key=lambda a: (_key(seed, a), a.lower()))


class Ring:
    """A round's candidates in seeded ring order, built once so that every voter's assignment
    costs O(k + log n) (checking all n voters' files is then O(n log n), not O(n^2))."""

    def __init__(self, seed: bytes, candidates: Sequence[str]) -> None:
        if not isinstance(seed, bytes | bytearray):
            raise AssignmentError(f"assignment seed must be bytes, got {type(seed).__name__}")
        self.seed = bytes(seed)
        self.order = seeded_ring(self.seed, candidates)
        self._keys = [_key(self.seed, a) for a in self.order]
        self._index = {a.lower(): i for i, a in enumerate(self.order)}

    def assignment(self, voter: str, k: int) -> list[str]:
        """The `k` candidates (never the voter itself) that `voter` evaluates, in ring order."""
        if k < 1:
            raise AssignmentError(f"evaluation count k must be at least 1, got {k}")
        n = len(self.order)
        own = self._index.get(voter.lower())
        if own is not None:
            # A candidate takes the ones after it, wrapping round, never itself.
            return [self.order[(own + j) % n] for j in range(1, min(k, n - 1) + 1)]
        # Not a candidate: slot the voter into the ring by its own key.
        start = bisect.bisect_right(self._keys, _key(self.seed, voter))
        return [self.order[(start + j) % n] for j in range(min(k, n))]


def assign_evaluations(seed: bytes, voter: str, candidates: Sequence[str], k: int) -> list[str]:
    """The `k` candidates (never the voter itself) that `voter` evaluates this round.

    Deterministic for the same seed, voter and candidate set (their order does not matter);
    at most `len(candidates) - 1` when the voter is a candidate. Returned in ring order.
    """
    if k < 1:
        raise AssignmentError(f"evaluation count k must be at least 1, got {k}")
    return Ring(seed, candidates).assignment(voter, k)


def assignment_table(
    seed: bytes, voters: Sequence[str], candidates: Sequence[str], k: int
) -> dict[str, list[str]]:
    """Every voter's assignment, keyed by the voter's spelling as given."""
    ring = Ring(seed, candidates)
    return {v: ring.assignment(v, k) for v in voters}


def evaluation_counts(table: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """How many voters evaluate each candidate (keys lower-cased)."""
    counts: dict[str, int] = {}
    for targets in table.values():
        for t in targets:
            counts[t.lower()] = counts.get(t.lower(), 0) + 1
    return counts
