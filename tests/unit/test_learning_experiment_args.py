"""The learning experiment refuses unknown methods and a round count that does not split the
shared step budget, before loading any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.experiments import learning


def test_unknown_methods_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\]"):
        learning.run(tmp_path, quick=True, methods=["ffa", "nope"])


def test_rounds_must_split_the_same_total_steps(tmp_path: Path) -> None:
    total = learning.QUICK.total_steps  # 10 peers x 8 rounds x 5 steps
    assert total % (learning.QUICK.peers * 3)
    with pytest.raises(ValueError, match=f"{total} steps over 10 peers do not split into 3 rounds"):
        learning.run(tmp_path, quick=True, methods=["ffa"], rounds=3)
