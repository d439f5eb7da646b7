"""Robust-aggregation defences behind one interface, so they can be compared in one harness.

Each defence looks at one round's updates (flattened float32 deltas from the base, keyed by
peer, with sample counts) and decides which to include, with what weights, or (median, trimmed
mean) produces the aggregate itself. The project's own vote-based gate is here too, as the
"pagerank" defence, reading the scores computed by `bcfl.trust.pagerank`.

| name          | rule                                                                        |
|---------------|-----------------------------------------------------------------------------|
| none          | include everything, weight by samples (plain FedAvg)                        |
| krum          | the one update with the smallest sum of squared distances to its n-f-2 NNs |
| multi-krum    | the n-f updates with the smallest Krum scores                               |
| median        | coordinate-wise median (includes everything)                                |
| trimmed-mean  | coordinate-wise mean after dropping the beta largest and smallest           |
| fltrust       | ReLU(cosine to a reference update) as weight, updates rescaled to its norm  |
| foolsgold     | down-weights updates whose (history of) directions are too similar (sybils)|
| zscore        | drops updates whose anomaly metric has a z-score above a cutoff             |
| dbscan        | keeps the largest DBSCAN cluster of update vectors (k-distance eps)         |
| pagerank      | keeps updates whose vote-based trust score reaches a threshold              |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from bcfl.errors import BcflError

Vector = npt.NDArray[np.float32]


class DefenceError(BcflError):
    """A defence that cannot run on the given updates or parameters."""


@dataclass(frozen=True)
class UpdateSet:
    """One round's updates as a defence sees them."""

    vectors: Mapping[str, Vector]  # peer -> flattened delta from the base (float32, 1-D)
    samples: Mapping[str, int]  # peer -> training samples behind the update
    reference: Vector | None = None  # FLTrust: an update trained on trusted root data
    scores: Mapping[str, float] | None = None  # pagerank: vote-based scores in [0, 1]
    metrics: Mapping[str, float] | None = None  # zscore: an anomaly metric (higher = worse)
    history: Mapping[str, Vector] | None = None  # foolsgold: each peer's summed past updates

    def __post_init__(self) -> None:
        if not self.vectors:
            raise DefenceError("a defence needs at least one update")
        shapes = {v.shape for v in self.vectors.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise DefenceError(f"updates must be 1-D vectors of one length, got shapes {sorted(shapes)}")
        for peer, v in self.vectors.items():
            if not np.all(np.isfinite(v)):
                raise DefenceError(f"update of {peer} holds NaN or Inf; drop it before the defence")
            if peer not in self.samples or self.samples[peer] < 0:
                raise DefenceError(f"update of {peer} has no valid sample count")

    @property
    def peers(self) -> list[str]:
        """Canonical order: lower-case hex."""
        return sorted(self.vectors, key=str.lower)

    def matrix(self) -> npt.NDArray[np.float64]:
        return np.stack([self.vectors[p].astype(np.float64) for p in self.peers])  # (n, d)


@dataclass(frozen=True)
class DefenceDecision:
    included: frozenset[str]
    weights: dict[str, float] | None = None  # aggregation weights of the included; None = samples
    aggregate: Vector | None = None  # set by defences that compute the aggregate themselves


class Defence(Protocol):
    name: ClassVar[str]

    def decide(self, updates: UpdateSet) -> DefenceDecision: ...


def aggregate(updates: UpdateSet, decision: DefenceDecision) -> Vector:
    """The aggregate a decision implies: its own, or the weighted mean of the included updates
    (weights default to sample counts) summed in canonical peer order."""
    if decision.aggregate is not None:
        return decision.aggregate
    peers = [p for p in updates.peers if p in decision.included]
    if not peers:
        return np.zeros_like(next(iter(updates.vectors.values())))
    weights = decision.weights or {p: float(updates.samples[p]) for p in peers}
    total = math.fsum(weights.get(p, 0.0) for p in peers)
    if total <= 0:
        weights, total = dict.fromkeys(peers, 1.0), float(len(peers))
    out = np.zeros(updates.vectors[peers[0]].shape, dtype=np.float64)
    for p in peers:
        out += (weights.get(p, 0.0) / total) * updates.vectors[p].astype(np.float64)
    return out.astype(np.float32)


# -- plain ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoDefence:
    name: ClassVar[str] = "none"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        return DefenceDecision(included=frozenset(updates.peers))


# -- distance-based selection --------------------------------------------------------------


def _pairwise_sq(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    sq = np.sum(x * x, axis=1)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    out: npt.NDArray[np.float64] = np.maximum(d, 0.0)  # (n, n)
    return out


def krum_scores(x: npt.NDArray[np.float64], f: int) -> npt.NDArray[np.float64]:
    """Krum score of each row: sum of squared distances to its n - f - 2 nearest other rows."""
    n = x.shape[0]
    m = max(1, n - f - 2)
    d = _pairwise_sq(x)
    scores = np.empty(n)
    for i in range(n):
        others = np.sort(np.delete(d[i], i))
        scores[i] = others[: min(m, n - 1)].sum()
    return scores


def _default_f(n: int) -> int:
    return max(0, (n - 3) // 2)  # the most Byzantine updates Krum tolerates (n > 2f + 2)


@dataclass(frozen=True)
class Krum:
    f: int | None = None  # assumed number of attackers; None = the most tolerated
    name: ClassVar[str] = "krum"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        peers = updates.peers
        f = _default_f(len(peers)) if self.f is None else self.f
        scores = krum_scores(updates.matrix(), f)
        return DefenceDecision(included=frozenset([peers[int(np.argmin(scores))]]))


@dataclass(frozen=True)
class MultiKrum:
    f: int | None = None
    m: int | None = None  # how many to keep; None = n - f
    name: ClassVar[str] = "multi-krum"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        peers = updates.peers
        n = len(peers)
        f = _default_f(n) if self.f is None else self.f
        m = max(1, n - f) if self.m is None else self.m
        scores = krum_scores(updates.matrix(), f)
        order = np.argsort(scores, kind="stable")  # ties: canonical order
        return DefenceDecision(included=frozenset(peers[int(i)] for i in order[:m]))


# -- coordinate-wise statistics -------------------------------------------------------------


@dataclass(frozen=True)
class Median:
    name: ClassVar[str] = "median"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        agg = np.median(updates.matrix(), axis=0).astype(np.float32)
        return DefenceDecision(included=frozenset(updates.peers), aggregate=agg)


@dataclass(frozen=True)
class TrimmedMean:
    beta: float = 0.2  # fraction trimmed from each end, per coordinate

    name: ClassVar[str] = "trimmed-mean"

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise DefenceError(f"trimmed-mean beta must be in [0, 0.5), got {self.beta}")

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        x = np.sort(updates.matrix(), axis=0)
        n = x.shape[0]
        b = min(math.floor(self.beta * n), (n - 1) // 2)
        agg = x[b : n - b].mean(axis=0).astype(np.float32)
        return DefenceDecision(included=frozenset(updates.peers), aggregate=agg)


# -- similarity-based weighting -------------------------------------------------------------


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit


@dataclass(frozen=True)
class FLTrust:
    name: ClassVar[str] = "fltrust"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        if updates.reference is None:
            raise DefenceError("fltrust needs a reference update trained on trusted root data")
        ref = updates.reference.astype(np.float64)
        ref_norm = float(np.linalg.norm(ref))
        x = updates.matrix()
        trust = np.maximum(_unit(x) @ _unit(ref[None, :])[0], 0.0)  # ReLU(cosine)
        peers = updates.peers
        included = frozenset(p for p, t in zip(peers, trust, strict=True) if t > 0)
        if not included:
            return DefenceDecision(included=frozenset(), aggregate=np.zeros(x.shape[1], dtype=np.float32))
        # Each update rescaled to the reference's norm, so scaling attacks gain nothing.
        rescaled = _unit(x) * ref_norm
        agg = (trust[:, None] * rescaled).sum(axis=0) / trust.sum()
        weights = {p: float(t) for p, t in zip(peers, trust, strict=True) if t > 0}
        return DefenceDecision(included=included, weights=weights, aggregate=agg.astype(np.float32))


@dataclass(frozen=True)
class FoolsGold:
    kappa: float = 1.0  # confidence of the logit that maps similarity to weight
    name: ClassVar[str] = "foolsgold"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        peers = updates.peers
        n = len(peers)
        source = updates.history if updates.history is not None else updates.vectors
        x = np.stack([source[p].astype(np.float64) for p in peers])
        if n < 2:
            return DefenceDecision(included=frozenset(peers))
        u = _unit(x)
        cs = u @ u.T - np.eye(n)  # cosine similarity, self excluded
        v = cs.max(axis=1)
        # Pardoning: an honest peer that happens to resemble a sybil is not punished for it.
        for i in range(n):
            for j in range(n):
                if i != j and v[j] > v[i] and v[j] > 0:
                    cs[i, j] *= v[i] / v[j]
        alpha = np.clip(1.0 - cs.max(axis=1), 0.0, 1.0)
        if alpha.max() > 0:
            alpha = alpha / alpha.max()
        alpha = np.where(alpha >= 1.0, 0.99, alpha)
        with np.errstate(divide="ignore"):
            logit = self.kappa * (np.log(alpha / (1.0 - alpha)) + 0.5)
        alpha = np.clip(np.nan_to_num(logit, nan=0.0, neginf=0.0, posinf=1.0), 0.0, 1.0)
        weights = {p: float(a) for p, a in zip(peers, alpha, strict=True) if a > 0}
        return DefenceDecision(included=frozenset(weights), weights=weights)


# -- outlier rules of the paper -------------------------------------------------------------


def _distance_to_median(updates: UpdateSet) -> dict[str, float]:
    x = updates.matrix()
    med = np.median(x, axis=0)
    return {p: float(np.linalg.norm(row - med)) for p, row in zip(updates.peers, x, strict=True)}


@dataclass(frozen=True)
class ZScore:
    cutoff: float = 2.0  # drop updates whose metric lies more than this many std above the mean
    name: ClassVar[str] = "zscore"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        metric = dict(updates.metrics) if updates.metrics is not None else _distance_to_median(updates)
        peers = updates.peers
        values = np.array([metric[p] for p in peers], dtype=np.float64)
        std = float(values.std())
        if std == 0.0 or not math.isfinite(std):
            return DefenceDecision(included=frozenset(peers))
        z = (values - values.mean()) / std
        return DefenceDecision(
            included=frozenset(p for p, zi in zip(peers, z, strict=True) if zi <= self.cutoff)
        )


@dataclass(frozen=True)
class DBSCANRule:
    eps_factor: float = 1.5  # eps = factor x median distance to the (min_samples-1)-th neighbour
    min_fraction: float = 0.3  # min_samples = max(2, ceil(fraction x n))
    name: ClassVar[str] = "dbscan"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        from sklearn.cluster import DBSCAN

        peers = updates.peers
        n = len(peers)
        if n < 3:
            return DefenceDecision(included=frozenset(peers))
        d = np.sqrt(_pairwise_sq(updates.matrix()))
        min_samples = max(2, math.ceil(self.min_fraction * n))
        # k-distance heuristic: eps from the typical distance of a point to its
        # (min_samples - 1)-th nearest neighbour, which a majority cluster keeps small.
        kth = np.sort(d, axis=1)[:, min(min_samples - 1, n - 1)]
        eps = self.eps_factor * float(np.median(kth))
        if eps <= 0:
            return DefenceDecision(included=frozenset(peers))
        labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(d)
        clusters = [int(lbl) for lbl in labels if lbl >= 0]
        if not clusters:
            return DefenceDecision(included=frozenset(peers))
        # Largest cluster; ties go to the lowest label (DBSCAN labels in canonical scan order).
        best = max(sorted(set(clusters)), key=clusters.count)
        return DefenceDecision(
            included=frozenset(p for p, lbl in zip(peers, labels, strict=True) if lbl == best)
        )


# -- the project's own gate -----------------------------------------------------------------


@dataclass(frozen=True)
class PageRankGate:
    threshold: float = 0.5  # include updates whose vote-based score reaches this
    name: ClassVar[str] = "pagerank"

    def decide(self, updates: UpdateSet) -> DefenceDecision:
        if updates.scores is None:
            raise DefenceError(
                "the pagerank defence needs vote-based scores (bcfl.trust.pagerank.score_round)"
            )
        scores = updates.scores
        return DefenceDecision(
            included=frozenset(p for p in updates.peers if scores.get(p, 0.0) >= self.threshold)
        )


DEFENCES: dict[str, Callable[..., Defence]] = {
    cls.name: cls
    for cls in (
        NoDefence,
        Krum,
        MultiKrum,
        Median,
        TrimmedMean,
        FLTrust,
        FoolsGold,
        ZScore,
        DBSCANRule,
        PageRankGate,
    )
}


def make_defence(name: str, **params: Any) -> Defence:
    """A defence by registry name, e.g. make_defence("trimmed-mean", beta=0.1)."""
    try:
        factory = DEFENCES[name]
    except KeyError:
        raise DefenceError(f"unknown defence {name!r}; known: {', '.join(sorted(DEFENCES))}") from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise DefenceError(f"bad parameters for defence {name!r}: {exc}") from None
