"""The gate and the reputation rule, on integers exactly as on-chain."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bcfl.trust.gate import GateError, decide, update_reputation

A, B, C = "0xA000000000000000000000000000000000000001", "0xb000000000000000000000000000000000000002", "0xC3"


def test_threshold_on_score_alone() -> None:
    d = decide({C: 700_000, A: 400_000, B: 500_000}, {}, 500_000)
    assert d.included == (B, C)  # canonical lower-case order
    assert list(d.excluded) == [A]
    assert "400000 ppm, below the threshold 500000 ppm" in d.excluded[A]


def test_reputation_weight_and_minimum() -> None:
    d = decide({A: 400_000, B: 900_000}, {A: 1_000_000, B: 100_000}, 500_000, reputation_weight_bps=5_000)
    assert d.combined == {A: 700_000, B: 500_000}
    assert d.included == (A, B)
    d = decide({A: 400_000, B: 900_000}, {A: 1_000_000, B: 100_000}, 500_000, min_reputation_ppm=200_000)
    assert d.included == ()
    assert "reputation 100000 ppm is below the minimum 200000 ppm" in d.excluded[B]
    assert "below the threshold" in d.excluded[A]


def test_rejects_out_of_range() -> None:
    with pytest.raises(GateError, match="score of 0xC3"):
        decide({C: 1_000_001}, {}, 0)
    with pytest.raises(GateError, match="reputation weight"):
        decide({C: 1}, {}, 0, reputation_weight_bps=10_001)


def test_reputation_rule_concrete() -> None:
    assert update_reputation(500_000, 1_000_000, 2_000) == 600_000
    assert update_reputation(333_333, 0, 3_333) == 222_233  # floor division, as in Solidity
    assert update_reputation(700_000, 123_456, 0) == 700_000
    assert update_reputation(700_000, 123_456, 10_000) == 123_456


@given(st.integers(0, 1_000_000), st.integers(0, 1_000_000), st.integers(0, 10_000))
def test_reputation_rule_matches_solidity_formula(old: int, score: int, w: int) -> None:
    new = update_reputation(old, score, w)
    assert new == (old * (10_000 - w) + score * w) // 10_000
    assert min(old, score) <= new <= max(old, score)
