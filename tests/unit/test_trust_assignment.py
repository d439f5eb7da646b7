"""Evaluation assignment: bounded, seeded, balanced, independent of input order."""

from __future__ import annotations

import random

import pytest

from bcfl.trust.assignment import (
    AssignmentError,
    assign_evaluations,
    assignment_table,
    evaluation_counts,
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
