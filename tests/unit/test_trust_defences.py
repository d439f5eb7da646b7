"""Baseline defences on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from bcfl.trust.defences import (
    DEFENCES,
    DefenceDecision,
    DefenceError,
    UpdateSet,
    aggregate,
    krum_scores,
    make_defence,
)


def _peers(n: int) -> list[str]:
    return [f"0x{i:040x}" for i in range(n)]


def _cluster(
    n_honest: int, outliers: dict[int, np.ndarray] | None = None, d: int = 50, seed: int = 0
) -> UpdateSet:
    """Honest updates around a common direction; outliers at given indices."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    outliers = outliers or {}
    n = n_honest + len(outliers)
    vectors = {}
    for i, p in enumerate(_peers(n)):
        v = outliers.get(i, direction + 0.1 * rng.normal(size=d))
        vectors[p] = v.astype(np.float32)
    return UpdateSet(
        vectors=vectors, samples=dict.fromkeys(vectors, 10), reference=direction.astype(np.float32)
    )


def test_krum_scores_known_values() -> None:
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    # n=4, f=0 -> 2 nearest others: 0:{1,9}=10, 1:{1,4}=5, 2:{4,9}=13, 3:{49,81}=130
    assert krum_scores(x, 0).tolist() == [10.0, 5.0, 13.0, 130.0]


def test_krum_picks_the_obvious_inlier() -> None:
    vectors = {
        p: np.array(v, dtype=np.float32)
        for p, v in zip(_peers(5), ([0, 0], [1, 0], [0, 1], [1, 1], [50, 50]), strict=True)
    }
    vectors[_peers(6)[5]] = np.array([0.5, 0.5], dtype=np.float32)
    u = UpdateSet(vectors=vectors, samples=dict.fromkeys(vectors, 1))
    assert make_defence("krum", f=1).decide(u).included == {_peers(6)[5]}


def test_multi_krum_drops_outliers() -> None:
    u = _cluster(7, {7: np.full(50, 30.0), 8: np.full(50, -30.0)})
    got = make_defence("multi-krum", f=2).decide(u).included
    assert got == set(_peers(7))


def test_median_and_trimmed_mean_known_vectors() -> None:
    vs = [[1, 10], [2, 20], [3, 30], [4, 40], [1000, -1000]]
    vectors = {p: np.array(v, dtype=np.float32) for p, v in zip(_peers(5), vs, strict=True)}
    u = UpdateSet(vectors=vectors, samples=dict.fromkeys(vectors, 1))
    med = make_defence("median").decide(u)
    assert med.aggregate is not None and med.aggregate.tolist() == [3.0, 20.0]
    tm = make_defence("trimmed-mean", beta=0.2).decide(u)
    # per coordinate drop 1 lowest and 1 highest: [2,3,4] -> 3 ; [10,20,30] -> 20
    assert tm.aggregate is not None and tm.aggregate.tolist() == [3.0, 20.0]
    assert aggregate(u, tm).tolist() == [3.0, 20.0]
    with pytest.raises(DefenceError, match="beta"):
        make_defence("trimmed-mean", beta=0.5)


def test_fltrust_zero_weight_for_opposed_and_norm_clipping() -> None:
    honest = _cluster(4)
    ref = honest.reference
    assert ref is not None
    vectors = {**honest.vectors, _peers(5)[4]: (-ref * 100.0).astype(np.float32)}  # flipped and boosted
    u = UpdateSet(vectors=vectors, samples=dict.fromkeys(vectors, 10), reference=ref)
    dec = make_defence("fltrust").decide(u)
    assert dec.included == set(_peers(4))
    assert dec.aggregate is not None
    assert float(np.linalg.norm(dec.aggregate)) <= float(np.linalg.norm(ref)) * 1.0001
    with pytest.raises(DefenceError, match="reference"):
        make_defence("fltrust").decide(UpdateSet(vectors=vectors, samples=u.samples))


def test_foolsgold_flags_identical_sybils() -> None:
    rng = np.random.default_rng(1)
    honest = {p: rng.normal(size=40).astype(np.float32) for p in _peers(5)}
    sybil = rng.normal(size=40).astype(np.float32)
    sybils = {p: sybil.copy() for p in _peers(8)[5:]}
    u = UpdateSet(vectors={**honest, **sybils}, samples=dict.fromkeys([*honest, *sybils], 1))
    dec = make_defence("foolsgold").decide(u)
    assert dec.weights is not None
    assert set(sybils).isdisjoint(dec.included)
    assert set(honest) <= dec.included
    assert aggregate(u, dec).tolist() == pytest.approx(
        (
            sum(dec.weights[p] * honest[p].astype(np.float64) for p in honest) / sum(dec.weights.values())
        ).tolist(),
        abs=1e-5,
    )


def test_zscore_flags_the_outlier() -> None:
    u = _cluster(9, {9: np.full(50, 20.0)})
    assert make_defence("zscore", cutoff=2.0).decide(u).included == set(_peers(9))
    # with an explicit metric (e.g. validation loss), the highest one goes
    m = dict.fromkeys(u.vectors, 1.0)
    m[_peers(10)[3]] = 9.0
    u2 = UpdateSet(vectors=u.vectors, samples=u.samples, metrics=m)
    assert make_defence("zscore").decide(u2).included == set(_peers(10)) - {_peers(10)[3]}
    same = UpdateSet(vectors=u.vectors, samples=u.samples, metrics=dict.fromkeys(u.vectors, 1.0))
    assert make_defence("zscore").decide(same).included == set(_peers(10))


def test_dbscan_keeps_the_largest_cluster() -> None:
    u = _cluster(7, {7: np.full(50, 20.0), 8: np.full(50, -20.0), 9: np.full(50, 25.0)})
    assert make_defence("dbscan").decide(u).included == set(_peers(7))


def test_pagerank_gate_reads_scores() -> None:
    u = _cluster(3)
    scores = dict(zip(_peers(3), (0.9, 0.49, 0.5), strict=True))
    dec = make_defence("pagerank", threshold=0.5).decide(UpdateSet(u.vectors, u.samples, scores=scores))
    assert dec.included == {_peers(3)[0], _peers(3)[2]}
    with pytest.raises(DefenceError, match="scores"):
        make_defence("pagerank").decide(u)


def test_no_defence_is_fedavg_by_samples() -> None:
    vectors = {p: np.array([v], dtype=np.float32) for p, v in zip(_peers(2), (1.0, 4.0), strict=True)}
    u = UpdateSet(vectors=vectors, samples=dict(zip(_peers(2), (3, 1), strict=True)))
    dec = make_defence("none").decide(u)
    assert dec.included == set(_peers(2))
    assert aggregate(u, dec).tolist() == [1.75]
    assert aggregate(u, DefenceDecision(included=frozenset())).tolist() == [0.0]


def test_registry_and_input_checks() -> None:
    names = "none krum multi-krum median trimmed-mean fltrust foolsgold zscore dbscan pagerank"
    assert set(DEFENCES) == set(names.split())
    with pytest.raises(DefenceError, match="unknown defence 'bulyan'"):
        make_defence("bulyan")
    with pytest.raises(DefenceError, match="bad parameters"):
        make_defence("krum", nope=1)
    with pytest.raises(DefenceError, match="NaN or Inf"):
        UpdateSet(vectors={"a": np.array([np.nan], dtype=np.float32)}, samples={"a": 1})
    with pytest.raises(DefenceError, match="shapes"):
        UpdateSet(
            vectors={"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}, samples={"a": 1, "b": 1}
        )


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_every_defence_is_deterministic_and_order_free(name: str) -> None:
    u = _cluster(6, {6: np.full(50, 9.0)}, seed=3)
    u = UpdateSet(u.vectors, u.samples, reference=u.reference, scores=dict.fromkeys(u.vectors, 0.7))
    rev = UpdateSet(
        dict(reversed(list(u.vectors.items()))), u.samples, reference=u.reference, scores=u.scores
    )
    a, b = make_defence(name).decide(u), make_defence(name).decide(rev)
    assert a.included == b.included
    assert np.array_equal(aggregate(u, a), aggregate(rev, b))
