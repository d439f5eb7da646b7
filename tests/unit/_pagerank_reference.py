"""The pure-Python scoring that bcfl.trust.pagerank had before it was vectorised, kept verbatim
as the specification: the fast path must give the same bits (test_trust_pagerank_exact.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bcfl.trust.pagerank import (
    PPM,
    PeerScore,
    RoundScores,
    RoundVotes,
    TrustConfig,
    TrustError,
    _prior,
    canonical,
)
from bcfl.trust.votes import VoteFile


def personalised_pagerank(
    nodes: Sequence[str],
    edges: Mapping[tuple[str, str], float],
    personalisation: Mapping[str, float],
    *,
    damping: float = 0.85,
    capacity: Mapping[str, float] | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-12,
) -> dict[str, float]:
    """Personalised PageRank by power iteration, in pure Python floats, in canonical node order.

    Row v of the transition matrix is w(v, u) / max(sum_u w(v, u), capacity[v]); whatever mass a
    row leaves (all of it for a node without out-edges) jumps to the personalisation vector.
    Without `capacity` that is exactly networkx's `pagerank(G, alpha=damping, personalization=p,
    dangling=p)`. Node names must match in case across arguments; weights must be >= 0.
    """
    order = canonical(nodes)
    if len(order) != len(nodes):
        raise TrustError("pagerank nodes must be distinct")
    index = {n: i for i, n in enumerate(order)}
    n = len(order)
    if n == 0:
        return {}
    raw_p = [float(personalisation.get(node, 0.0)) for node in order]
    if any(x < 0 or not math.isfinite(x) for x in raw_p):
        raise TrustError("personalisation weights must be finite and >= 0")
    total_p = math.fsum(raw_p)
    p = [x / total_p for x in raw_p] if total_p > 0 else [1.0 / n] * n

    out: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for (src, dst), w in sorted(edges.items(), key=lambda e: (e[0][0].lower(), e[0][1].lower())):
        if w < 0 or not math.isfinite(w):
            raise TrustError(f"edge {src} -> {dst} has weight {w}; weights must be finite and >= 0")
        if src not in index or dst not in index:
            raise TrustError(f"edge {src} -> {dst} names a node not in the graph")
        if w > 0:
            out[index[src]].append((index[dst], w))
    rows: list[list[tuple[int, float]]] = []
    for i, targets in enumerate(out):
        denom = math.fsum(w for _, w in targets)
        if capacity is not None:
            denom = max(denom, float(capacity.get(order[i], 0.0)))
        rows.append([(j, w / denom) for j, w in targets] if denom > 0 else [])
    # Incoming lists per node in canonical source order, so every sum has a fixed order.
    incoming: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for i, row in enumerate(rows):
        for j, w in row:
            incoming[j].append((i, w))

    t = list(p)
    for _ in range(max_iterations):
        flow = [math.fsum(t[i] * w for i, w in incoming[j]) for j in range(n)]
        leftover = 1.0 - math.fsum(flow)  # mass not passed along an edge returns to p
        new = [(1.0 - damping) * p[j] + damping * (flow[j] + leftover * p[j]) for j in range(n)]
        s = math.fsum(new)
        new = [x / s for x in new]
        change = math.fsum(abs(a - b) for a, b in zip(new, t, strict=True))
        t = new
        if change < tolerance:
            break
    return {order[i]: t[i] for i in range(n)}


def score_round(inputs: RoundVotes, config: TrustConfig | None = None) -> RoundScores:
    """Every submitter's score for the round, from the valid vote files and voters' standing.

    Score = trust-weighted mean of the vote values a submitter received (trust from the
    agreement-weighted personalised PageRank described in the module docstring); a submitter
    with no valid vote scores 0. `ppm` = round(score * 1e6), in [0, 1e6]: an absolute scale
    (0.5 = updates that left evaluators' loss unchanged, see `vote_value`), so the gate's
    threshold means the same thing from round to round. Authors of rejected vote files have
    their votes ignored, get no personalisation, and lose `vote_penalty` of their score.
    """
    config = config or TrustConfig()
    penalised = {r.voter.lower(): f"vote file rejected ({r.reason}): {r.message}" for r in inputs.rejected}
    by_voter: dict[str, VoteFile] = {}
    for vf in inputs.votes:
        key = vf.voter.lower()
        if key in by_voter:
            raise TrustError(f"two vote files from {vf.voter} in round {inputs.round}")
        if vf.round != inputs.round:
            raise TrustError(f"vote file of {vf.voter} is for round {vf.round}, not {inputs.round}")
        if key not in penalised:
            by_voter[key] = vf

    submitters = canonical(list(inputs.submitters))
    sub_keys = {s.lower(): s for s in submitters}
    nodes = canonical(
        submitters + [vf.voter for vf in by_voter.values()] + [r.voter for r in inputs.rejected]
    )
    name = {n.lower(): n for n in nodes}
    standing = {a.lower(): s for a, s in inputs.standing.items()}
    pretrusted = {a.lower() for a in inputs.pretrusted}

    # votes[voter_key] = [(candidate_key, value)] in canonical candidate order; unknown peers dropped
    votes: dict[str, list[tuple[str, float]]] = {}
    for key in sorted(by_voter):
        vs = sorted(((v.peer.lower(), float(v.value)) for v in by_voter[key].votes), key=lambda x: x[0])
        votes[key] = [(c, x) for c, x in vs if c in sub_keys and c != key]
    prior = {k: (0.0 if k in penalised else _prior(k, standing.get(k), pretrusted, config)) for k in votes}
    if votes and math.fsum(prior.values()) == 0.0:
        prior = dict.fromkeys(votes, 1.0)  # nobody has standing yet: every valid voter alike

    received: dict[str, list[tuple[str, float]]] = {s: [] for s in sub_keys}
    for voter_key, vs in votes.items():
        for c, x in vs:
            received[c].append((voter_key, x))

    agreement = dict.fromkeys(votes, 1.0)
    trust: dict[str, float] = {}
    consensus: dict[str, float | None] = {}
    for step in range(config.agreement_rounds + 1):
        edges = {
            (name[v], name[c]): agreement[v] * x
            for v, vs in votes.items()
            for c, x in vs
            if agreement[v] * x > 0
        }
        trust = personalised_pagerank(
            nodes,
            edges,
            {name[v]: prior[v] * agreement[v] for v in votes},
            damping=config.damping,
            capacity={name[v]: float(len(vs)) for v, vs in votes.items()},
            max_iterations=config.max_iterations,
            tolerance=config.tolerance,
        )
        consensus = {c: _weighted_mean(received[c], trust, name) for c in sorted(sub_keys)}
        if step == config.agreement_rounds:
            break
        for v, vs in votes.items():
            errors = [abs(x - cs) for c, x in vs if (cs := consensus[c]) is not None]
            base = 1.0 - math.fsum(errors) / len(errors) if errors else 1.0
            agreement[v] = _ipow(max(base, 0.0), config.agreement_power)

    scores: dict[str, PeerScore] = {}
    for key in sorted(sub_keys):
        peer = sub_keys[key]
        mean = consensus.get(key)
        n_votes = len(received[key])
        if mean is None:
            score = 0.0
            reason = "no valid votes from trusted voters" if n_votes else "no valid votes"
        else:
            score = mean
            reason = f"trust-weighted mean of {n_votes} votes"
        if key in penalised:
            score *= 1.0 - config.vote_penalty
            reason += f"; score cut by {config.vote_penalty:g} for a rejected vote file"
        ppm = min(PPM, max(0, round(score * PPM)))
        scores[peer] = PeerScore(
            peer=peer, score=score, ppm=ppm, votes=n_votes, trust=trust[name[key]], reason=reason
        )
    return RoundScores(
        round=inputs.round,
        scores=scores,
        trust=trust,
        agreement={name[v]: a for v, a in agreement.items()},
        penalised={name[k]: why for k, why in sorted(penalised.items())},
    )


def _weighted_mean(
    received: list[tuple[str, float]], trust: Mapping[str, float], name: Mapping[str, str]
) -> float | None:
    weights = [trust[name[v]] for v, _ in received]
    total = math.fsum(weights)
    if total <= 0.0:
        return None
    return math.fsum(w * x for w, (_, x) in zip(weights, received, strict=True)) / total


def _ipow(x: float, k: int) -> float:
    out = 1.0
    for _ in range(k):
        out *= x
    return out
