"""The scoring benchmark builds a valid round and writes its results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bcfl.outcome import decide_from
from bcfl.trust.assignment import assign_evaluations
from bcfl.trust.bench import BenchError, outcome_inputs, run, synthetic_round


def test_synthetic_round_follows_the_assignment() -> None:
    rnd = synthetic_round(40, 5, seed=3)
    for vf in rnd.files:
        assert [v.peer for v in vf.votes] == assign_evaluations(rnd.seed, vf.voter, rnd.peers, 5)
    assert 0 < len(rnd.bad) < 40


def test_outcome_inputs_pass_the_nodes_checks() -> None:
    rnd = synthetic_round(30, 3, seed=1)
    subs, fetched = outcome_inputs(rnd)
    decision = decide_from(1, rnd.seed, 500_000, subs, fetched)
    assert decision.rejected_votes == []
    assert {p.lower() for p in decision.excluded} >= {p.lower() for p in rnd.bad}


def test_run_writes_json_and_markdown(tmp_path: Path) -> None:
    rows = run(tmp_path, peers=(50,), k=4, repeats=2, outcome_peers=(20,), command="test")
    assert [r["what"] for r in rows] == ["score_round", "decide_from"]
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["wall_s"]) == 2 for r in records)
    assert rows[0]["wall_min_s"] <= rows[0]["wall_median_s"] <= rows[0]["wall_max_s"]
    assert "| score_round | 50 | 4 | 2 |" in (tmp_path / "scoring.md").read_text()


@pytest.mark.parametrize(("peers", "k"), [(1, 1), (10, 0), (10, 10)])
def test_bad_sizes_are_refused(peers: int, k: int) -> None:
    with pytest.raises(BenchError, match="peers"):
        synthetic_round(peers, k)


def test_in_server_mode_the_lone_voter_judges_every_update() -> None:
    from bcfl.chain.federation import VoteCommit
    from bcfl.outcome import FetchedVotes, votes_per_peer
    from bcfl.storage.adapter_pack import json_digest
    from bcfl.trust.votes import Metrics, Vote, VoteFile, encode_votes

    assert (votes_per_peer(12), votes_per_peer(3), votes_per_peer(12, server=True)) == (5, 2, 12)
    rnd = synthetic_round(6, 3, seed=2)
    subs, _ = outcome_inputs(rnd)
    aggregator = "0x" + "ab" * 20
    votes = tuple(Vote(s.peer, s.cid, 0.9, Metrics(1.8, None)) for s in subs)
    data = encode_votes(VoteFile(round=1, voter=aggregator, base=Metrics(2.0, None), votes=votes, examples=6))
    fetched = [FetchedVotes(VoteCommit(1, aggregator, "votes", json_digest(data), 500_000, 0, 1, "0x"), data)]
    server = decide_from(1, rnd.seed, 450_000, subs, fetched, server=True)
    assert server.rejected_votes == []
    assert len(server.included) == 6
    # Held to the serverless k = 5, the same file votes outside its assignment and is rejected.
    serverless = decide_from(1, rnd.seed, 450_000, subs, fetched)
    assert [r.reason for r in serverless.rejected_votes] == ["not_assigned"]
