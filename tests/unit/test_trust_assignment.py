"""Evaluation assignment: bounded, seeded, balanced, independent of input order."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bcfl.trust.assignment import (
    AssignmentError,
    Ring,
    assign_evaluations,
    assignment_table,
    evaluation_counts,
    seeded_ring,
)

PEERS = [f"0x{i:040X}" for i in range(1, 21)]


def test_bounded_excludes_self_and_deterministic() -> None:
    for voter in PEERS:
        got = assign_evaluations(b"seed", voter, PEERS, 4)
        assert len(got) == 4
        assert voter not in got
        assert len(set(got)) == 4
        assert got == assign_evaluations(b"seed", voter, PEERS, 4)


def test_independent_of_candidate_order_and_case() -> None:
    shuffled = PEERS[:]
    random.Random(3).shuffle(shuffled)
    lowered = [p.lower() for p in shuffled]
    a = assign_evaluations(b"s", PEERS[5], PEERS, 5)
    assert a == assign_evaluations(b"s", PEERS[5], shuffled, 5)
    assert [x.lower() for x in a] == [
        x.lower() for x in assign_evaluations(b"s", PEERS[5].lower(), lowered, 5)
    ]


def test_seed_changes_assignment() -> None:
    tables = {seed: assignment_table(seed, PEERS, PEERS, 3) for seed in (b"a", b"b")}
    assert tables[b"a"] != tables[b"b"]


@pytest.mark.parametrize("k", [1, 3, 7])
def test_every_submitter_evaluated_exactly_k_times(k: int) -> None:
    counts = evaluation_counts(assignment_table(b"round-9", PEERS, PEERS, k))
    assert counts == {p.lower(): k for p in PEERS}


def test_k_capped_at_others_and_tiny_rounds() -> None:
    assert sorted(assign_evaluations(b"x", PEERS[0], PEERS[:3], 10)) == sorted(PEERS[1:3])
    assert assign_evaluations(b"x", PEERS[0], PEERS[:1], 3) == []
    assert assign_evaluations(b"x", PEERS[0], [], 3) == []


def test_non_submitting_voter_gets_k_candidates() -> None:
    outsider = "0x" + "ab" * 20
    got = assign_evaluations(b"x", outsider, PEERS, 6)
    assert len(got) == 6 and outsider not in got


def test_invalid_k() -> None:
    with pytest.raises(AssignmentError, match="at least 1"):
        assign_evaluations(b"x", PEERS[0], PEERS, 0)


def _naive(seed: bytes, voter: str, candidates: list[str], k: int) -> list[str]:
    """The assignment by its definition: the k ring members after the voter's ring position."""
    ring = seeded_ring(seed, candidates)
    keyed = sorted(
        [*ring, voter] if voter.lower() not in {a.lower() for a in ring} else ring,
        key=lambda a: (hashlib.sha256(b"bcfl/assign/v1" + seed + a.lower().encode()).digest(), a.lower()),
    )
    at = [a.lower() for a in keyed].index(voter.lower())
    after = [keyed[(at + j) % len(keyed)] for j in range(1, len(keyed))]
    return [a for a in after if a.lower() != voter.lower()][:k]


@given(st.integers(0, 40), st.integers(1, 6), st.binary(min_size=1, max_size=8), st.booleans())
def test_the_ring_built_once_gives_every_voter_its_defined_assignment(
    n: int, k: int, seed: bytes, outsider: bool
) -> None:
    peers = [f"0x{i:040x}" for i in range(n)]
    ring = Ring(seed, peers)
    voters = ([*peers[:5], "0x" + "ab" * 20] if outsider else peers[:5]) or ["0x" + "cd" * 20]
    for voter in voters:
        assert ring.assignment(voter, k) == _naive(seed, voter, peers, k)
        assert assign_evaluations(seed, voter, peers, k) == ring.assignment(voter, k)
