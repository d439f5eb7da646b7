"""The gas benchmark runs several rounds on a real Anvil and reports gas per peer per round."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.chain.gas_bench import benchmark_rounds, main, markdown

pytestmark = pytest.mark.integration


def test_three_rounds_per_size_with_settles_from_round_two(tmp_path: Path) -> None:
    rows, per_round = benchmark_rounds([3, 5], tmp_path / "anvil", rounds=3)
    assert [(r.peers, r.round) for r in per_round] == [(n, r) for n in (3, 5) for r in (1, 2, 3)]
    by = {(r.peers, r.action): r for r in rows}
    assert by[(5, "submit")].count == 15 and by[(5, "settle")].count == 10  # no settle in round 1
    for rg in per_round:
        settles = rg.peers if rg.round > 1 else 0
        # submit + vote per peer, settle from round 2, attest up to the quorum (at least one)
        assert 2 * rg.peers + settles + 1 <= rg.transactions <= 3 * rg.peers + settles
        assert rg.total_gas > 0 and rg.per_peer == rg.total_gas / rg.peers
    text = markdown(rows, per_round, "cmd")
    assert "round 3 gas/peer" in text and "| 5 | 3 |" in text


def test_command_writes_results(tmp_path: Path) -> None:
    main(["--peers", "2", "--rounds", "3", "--out", str(tmp_path)])
    assert (tmp_path / "gas.md").read_text().startswith("Command: `python -m bcfl.chain.gas_bench")
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) > 3
