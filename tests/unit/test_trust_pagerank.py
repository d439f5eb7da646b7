"""PageRank scores: networkx agreement, determinism, collusion resistance, bad vote files."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest

from bcfl.trust.assignment import assign_evaluations
from bcfl.trust.attacks import ring_votes
from bcfl.trust.gate import decide
from bcfl.trust.pagerank import (
    RoundVotes,
    Standing,
    TrustConfig,
    TrustError,
    personalised_pagerank,
    score_round,
)
from bcfl.trust.votes import Metrics, RejectedVotes, Vote, VoteFile

PEERS = [f"0x{i:02X}{'ab' * 19}" for i in range(20)]


def _honest_value(rng: np.random.Generator, bad: bool) -> float:
    return float(np.clip((0.15 if bad else 0.7) + rng.normal(0.0, 0.1), 0.0, 1.0))


def _round(
    seed: int,
    *,
    ring: set[str] = frozenset(),
    bad: set[str] = frozenset(),
    k: int = 6,
    peers: list[str] = PEERS,
) -> RoundVotes:
    """Honest voters rate bad updates ~0.15 and good ones ~0.7; ring members collude."""
    rng = np.random.default_rng(seed)
    files = []
    for voter in peers:
        assigned = assign_evaluations(seed.to_bytes(4, "big"), voter, peers, k)
        if voter in ring:
            votes = ring_votes({p: f"cid-{p}" for p in assigned}, ring)
        else:
            votes = [Vote(p, f"cid-{p}", _honest_value(rng, p in bad | ring), Metrics(1.0)) for p in assigned]
        files.append(VoteFile(round=1, voter=voter, base=Metrics(1.0), votes=tuple(votes)))
    return RoundVotes(round=1, submitters=peers, votes=files, standing={p: Standing(500_000) for p in peers})


# -- the power iteration ----------------------------------------------------------------------


def _random_graph(seed: int) -> tuple[list[str], dict[tuple[str, str], float], dict[str, float]]:
    r = random.Random(seed)
    nodes = [f"n{i}" for i in range(12)]
    edges = {(a, b): r.random() for a in nodes for b in nodes if a != b and r.random() < 0.3}
    nodes.append("sink")  # dangling
    edges[("n0", "sink")] = 0.5
    pers = {n: r.random() for n in nodes[:6]}
    return nodes, edges, pers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_networkx(seed: int) -> None:
    nodes, edges, pers = _random_graph(seed)
    ours = personalised_pagerank(nodes, edges, pers, damping=0.8, tolerance=1e-15, max_iterations=1000)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_weighted_edges_from((a, b, w) for (a, b), w in edges.items())
    full = {n: pers.get(n, 0.0) for n in nodes}
    theirs = nx.pagerank(g, alpha=0.8, personalization=full, dangling=full, tol=1e-15, max_iter=1000)
    for n in nodes:
        assert ours[n] == pytest.approx(theirs[n], abs=1e-10)


def test_capacity_returns_unspent_trust_to_personalisation() -> None:
    # a votes 0.25 for b out of a capacity of 1: b gets a quarter of a's followed mass,
    # the other three quarters jump back to the personalisation (all on a).
    t = personalised_pagerank(["a", "b"], {("a", "b"): 0.25}, {"a": 1.0}, damping=0.5, capacity={"a": 1.0})
    # t_b = d * 0.25 * t_a, t_a + t_b = 1  ->  t_b = 0.125 / 1.125
    assert t["b"] == pytest.approx(0.125 / 1.125)
    assert t["a"] + t["b"] == pytest.approx(1.0)


def test_bad_graph_inputs() -> None:
    with pytest.raises(TrustError, match="not in the graph"):
        personalised_pagerank(["a"], {("a", "z"): 1.0}, {})
    with pytest.raises(TrustError, match="weight -1"):
        personalised_pagerank(["a", "b"], {("a", "b"): -1.0}, {})
    with pytest.raises(TrustError, match="damping"):
        TrustConfig(damping=1.0)


# -- determinism ------------------------------------------------------------------------------


def test_bit_identical_under_permuted_inputs() -> None:
    inputs = _round(7, ring=set(PEERS[:5]))
    first = score_round(inputs)
    r = random.Random(1)
    subs, files = list(inputs.submitters), list(inputs.votes)
    r.shuffle(subs)
    r.shuffle(files)
    shuffled_files = [
        VoteFile(round=f.round, voter=f.voter, base=f.base, votes=tuple(r.sample(f.votes, len(f.votes))))
        for f in files
    ]
    standing = dict(reversed(list(inputs.standing.items())))
    again = score_round(RoundVotes(round=1, submitters=subs, votes=shuffled_files, standing=standing))
    assert again == first  # exact float equality, field by field
    assert list(again.scores) == sorted(PEERS, key=str.lower)


# -- behaviour --------------------------------------------------------------------------------


def test_honest_round_scores_everyone_about_their_votes() -> None:
    scores = score_round(_round(3))
    for s in scores.scores.values():
        assert 0.55 < s.score < 0.85
        assert s.votes == 6
        assert s.ppm == round(s.score * 1_000_000)


def test_bad_updates_scored_down_and_excluded() -> None:
    bad = set(PEERS[::5])
    scores = score_round(_round(4, bad=bad))
    gate = decide(scores.ppm(), {}, 500_000)
    assert set(gate.excluded) == bad
    assert set(gate.included) == set(PEERS) - bad


@pytest.mark.parametrize("seed", range(8))
def test_collusion_ring_of_30_percent_is_excluded(seed: int) -> None:
    ring = set(random.Random(seed).sample(PEERS, 6))  # 30 % of 20
    scores = score_round(_round(seed, ring=ring))
    ring_scores = [scores.scores[p].score for p in ring]
    honest_scores = sorted(scores.scores[p].score for p in PEERS if p not in ring)
    gate = decide(scores.ppm(), {}, 500_000)
    assert ring.isdisjoint(gate.included)
    assert max(ring_scores) < np.median(honest_scores)
    # At most one honest peer in 14 lost to the ring per round (recall >= 0.92).
    assert len(set(PEERS) - ring - set(gate.included)) <= 1
    # The ring's own voters end up with little trust left.
    ring_trust = sum(scores.trust[p] for p in ring)
    assert ring_trust < 0.3 * 6 / 20


def test_plain_pagerank_is_fooled_by_the_ring() -> None:
    """Without the agreement weighting the same ring keeps far more trust: the mechanism matters."""
    ring = set(PEERS[:6])
    inputs = _round(0, ring=ring)
    plain = score_round(inputs, TrustConfig(agreement_rounds=0))
    robust = score_round(inputs)
    share = {name: sum(s.trust[p] for p in ring) for name, s in (("plain", plain), ("robust", robust))}
    assert share["robust"] < share["plain"] / 2


def test_reputation_personalisation_defeats_a_45_percent_ring_with_a_bad_record() -> None:
    ring = set(PEERS[:9])
    inputs = _round(5, ring=ring)
    standing = {p: Standing(100_000 if p in ring else 800_000) for p in PEERS}
    scores = score_round(RoundVotes(1, inputs.submitters, inputs.votes, standing))
    gate = decide(scores.ppm(), {}, 500_000)
    assert ring.isdisjoint(gate.included)


def test_bad_vote_file_ignored_and_author_penalised() -> None:
    inputs = _round(2)
    author = PEERS[3]
    # The author's (otherwise valid) votes are replaced by extreme ones: they must not count.
    kept = [f for f in inputs.votes if f.voter != author]
    rejected = [RejectedVotes(voter=author, reason="unknown_peer", message=f"vote file of {author} ...")]
    clean = score_round(RoundVotes(1, inputs.submitters, kept, inputs.standing))
    penalised = score_round(RoundVotes(1, inputs.submitters, kept, inputs.standing, rejected=rejected))
    assert penalised.scores[author].score == pytest.approx(clean.scores[author].score * 0.5)
    assert "rejected vote file" in penalised.scores[author].reason
    assert author in penalised.penalised and "unknown_peer" in penalised.penalised[author]
    for p in PEERS:
        if p != author:
            assert penalised.scores[p].score == pytest.approx(clean.scores[p].score, abs=1e-12)
    # A vote file that is passed in as valid but whose author is also rejected is ignored.
    both = score_round(RoundVotes(1, inputs.submitters, inputs.votes, inputs.standing, rejected=rejected))
    assert both.scores == penalised.scores


def test_single_aggregator_votes_are_the_scores() -> None:
    agg = "0x" + "ee" * 20
    votes = tuple(Vote(p, "c", v, Metrics(1.0)) for p, v in zip(PEERS[:3], (0.9, 0.5, 0.1), strict=True))
    inputs = RoundVotes(
        round=1,
        submitters=PEERS[:3],
        votes=[VoteFile(1, agg, Metrics(1.0), votes)],
        standing={agg: Standing(1_000_000)},
    )
    got = score_round(inputs).ppm()
    assert got == {PEERS[0]: 900_000, PEERS[1]: 500_000, PEERS[2]: 100_000}


def test_no_votes_scores_zero_with_reason() -> None:
    scores = score_round(RoundVotes(1, PEERS[:2], [], {}))
    assert all(s.ppm == 0 and s.reason == "no valid votes" for s in scores.scores.values())


def test_rejects_inconsistent_inputs() -> None:
    f = VoteFile(2, PEERS[0], Metrics(1.0), ())
    with pytest.raises(TrustError, match="round 2, not 1"):
        score_round(RoundVotes(1, PEERS, [f], {}))
    g = VoteFile(1, PEERS[0], Metrics(1.0), ())
    with pytest.raises(TrustError, match="two vote files"):
        score_round(RoundVotes(1, PEERS, [g, g], {}))
