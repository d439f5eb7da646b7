"""The vectorised scoring gives exactly the bits of the pure-Python specification."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcfl.trust.assignment import assign_evaluations
from bcfl.trust.attacks import ring_votes
from bcfl.trust.pagerank import (
    RoundVotes,
    Standing,
    TrustConfig,
    _GroupSums,
    personalised_pagerank,
    score_round,
)
from bcfl.trust.votes import Metrics, RejectedVotes, Vote, VoteFile
from tests.unit import _pagerank_reference as reference

PEERS = [f"0x{i:02X}{'cd' * 19}" for i in range(40)]


def _round(seed: int, k: int, *, ring: int = 0, extra_voter: bool = False) -> RoundVotes:
    rng = random.Random(seed)
    subs = PEERS[: rng.randrange(5, len(PEERS))]
    ring_set = set(subs[:ring])
    voters = list(subs) + (["0x" + "ee" * 20] if extra_voter else [])
    files = []
    for voter in voters:
        assigned = assign_evaluations(seed.to_bytes(4, "big"), voter, subs, k)
        if voter in ring_set:
            votes = ring_votes({p: f"cid-{p}" for p in assigned}, ring_set)
        else:
            # Values with few bits (0, 0.5, 1) make exact ties and cancellations likely.
            votes = [
                Vote(p, f"cid-{p}", rng.choice([0.0, 0.5, 1.0, rng.random()]), Metrics(1.0)) for p in assigned
            ]
        # Spell some candidates in upper-case hex: the scorer must match them case-insensitively.
        votes = [
            Vote(v.peer.upper() if rng.random() < 0.2 else v.peer, v.cid, v.value, v.metrics) for v in votes
        ]
        files.append(VoteFile(round=1, voter=voter, base=Metrics(1.0), votes=tuple(votes)))
    standing = {
        v: Standing(rng.choice([0, 1, 500_000, rng.randrange(1_000_000)]), rng.randrange(3) * 10**18)
        for v in voters
    }
    rejected = [RejectedVotes(voter=subs[-1], reason="schema", message="bad")] if seed % 3 == 0 else []
    return RoundVotes(
        round=1,
        submitters=subs,
        votes=[f for f in files if not rejected or f.voter != subs[-1]],
        standing=standing,
        rejected=rejected,
        pretrusted=frozenset(subs[1:3]) if seed % 2 else frozenset(),
    )


@pytest.mark.parametrize("seed", range(12))
def test_scores_bit_identical_to_reference(seed: int) -> None:
    inputs = _round(seed, k=1 + seed % 7, ring=seed % 4 * 3, extra_voter=seed % 2 == 1)
    config = TrustConfig(bond_unit_wei=10**18) if seed % 4 == 1 else TrustConfig()
    assert score_round(inputs, config) == reference.score_round(inputs, config)


def test_scores_bit_identical_without_standing_and_without_agreement() -> None:
    inputs = _round(5, k=4)
    nobody = RoundVotes(inputs.round, inputs.submitters, inputs.votes, {})
    assert score_round(nobody) == reference.score_round(nobody)
    plain = TrustConfig(agreement_rounds=0)
    assert score_round(inputs, plain) == reference.score_round(inputs, plain)


def test_empty_round_and_round_without_votes() -> None:
    empty = RoundVotes(1, [], [], {})
    assert score_round(empty) == reference.score_round(empty)
    silent = RoundVotes(1, PEERS[:4], [], {})
    assert score_round(silent) == reference.score_round(silent)


@pytest.mark.parametrize("seed", range(4))
def test_pagerank_bit_identical_to_reference(seed: int) -> None:
    r = random.Random(seed)
    nodes = [f"n{i}" for i in range(30)]
    edges = {
        (a, b): r.choice([0.0, 1.0, r.random(), r.random() * 1e-12])
        for a in nodes
        for b in nodes
        if a != b and r.random() < 0.2
    }
    hub = {(a, "n0"): r.random() for a in nodes[1:]}  # 29 in-edges: the widest side-by-side group
    edges.update(hub)
    pers = {n: r.random() for n in nodes[:10]}
    cap = {n: r.random() * 3 for n in nodes[::2]} if seed % 2 else None
    ours = personalised_pagerank(nodes, edges, pers, capacity=cap, damping=0.8)
    theirs = reference.personalised_pagerank(nodes, edges, pers, capacity=cap, damping=0.8)
    assert ours == theirs


def test_pagerank_with_a_wide_hub_bit_identical() -> None:
    r = random.Random(9)
    nodes = [f"n{i}" for i in range(80)]  # n0 receives 79 edges: summed by the math.fsum path
    edges = {(a, "n0"): r.random() for a in nodes[1:]}
    edges.update({("n0", b): r.random() for b in nodes[1:40]})
    pers = {n: r.random() for n in nodes}
    assert personalised_pagerank(nodes, edges, pers) == reference.personalised_pagerank(nodes, edges, pers)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(finite | st.sampled_from([0.0, -0.0, 1.0, 1e-300, 2.0**-1074, 1e16, -1e16]), max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_group_sums_equal_fsum(groups: list[list[float]]) -> None:
    values = [x for g in groups for x in g]
    group = np.array([i for i, g in enumerate(groups) for _ in g], dtype=np.intp)
    got = _GroupSums(group, len(groups)).sums(np.array(values, dtype=np.float64))
    want = [math.fsum(g) for g in groups]
    assert [x.hex() for x in got.tolist()] == [x.hex() for x in want]


def test_group_sums_shuffled_entries_and_cancellation() -> None:
    # 1e16 + 1 - 1e16 loses the 1 in naive order; exact rounding keeps it whatever the order.
    values = np.array([1e16, 1.0, -1e16, 0.1, 0.2, 0.3, 2.0**-60, 1.0], dtype=np.float64)
    group = np.array([0, 0, 0, 1, 1, 1, 2, 2], dtype=np.intp)
    rng = np.random.default_rng(0)
    for _ in range(5):
        perm = rng.permutation(len(values))
        got = _GroupSums(group[perm], 3).sums(values[perm]).tolist()
        assert got == [1.0, math.fsum([0.1, 0.2, 0.3]), math.fsum([2.0**-60, 1.0])]
