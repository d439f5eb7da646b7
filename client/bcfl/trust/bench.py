"""Scoring at scale: time `score_round` (and the node's whole outcome step, `decide_from`) on a
seeded synthetic round of many peers.

    python -m bcfl.trust.bench --out results/scoring [--peers 10000 --k 16 --repeats 5]

The round: `peers` submitters, each voting for the `k` peers that follow it on the round's
seeded ring (the assignment of `bcfl.trust.assignment`: the ring is built once and
`assign_evaluations` is checked against it for a sample of voters, since calling it per voter
rebuilds the ring each time). A seeded tenth of the updates are bad (votes around 0.15, honest
ones around 0.7); reputations are drawn uniformly. Wall and CPU seconds per repeat; JSON
records in `results.jsonl` and a markdown table in `scoring.md`.

`decide_from` (vote-file parsing and assignment checks, scores, gate, Merkle root) runs at the
protocol's own k (`bcfl.outcome.votes_per_peer`) on the sizes in `--outcome-peers`: its vote
file check calls `assign_evaluations` once per voter, so its cost grows with peers squared.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcfl.chain.federation import Submission, VoteCommit
from bcfl.errors import BcflError
from bcfl.outcome import FetchedVotes, decide_from, votes_per_peer
from bcfl.storage.adapter_pack import json_digest
from bcfl.trust.assignment import assign_evaluations, seeded_ring
from bcfl.trust.pagerank import RoundVotes, Standing, TrustConfig, score_round
from bcfl.trust.votes import Metrics, Vote, VoteFile, encode_votes

TARGET_SECONDS = 2.0  # the target for 10,000 peers with k = 16


class BenchError(BcflError):
    """Benchmark parameters that cannot be used."""


@dataclass(frozen=True)
class SyntheticRound:
    seed: bytes
    peers: list[str]
    assigned: dict[str, list[str]]
    files: list[VoteFile]
    standing: dict[str, Standing]
    bad: frozenset[str]

    def inputs(self) -> RoundVotes:
        return RoundVotes(round=1, submitters=self.peers, votes=self.files, standing=self.standing)


def synthetic_round(n_peers: int, k: int, seed: int = 0, *, check_sample: int = 16) -> SyntheticRound:
    """A seeded round of `n_peers` submitters that each vote on their `k` ring successors."""
    if n_peers < 2 or not 1 <= k < n_peers:
        raise BenchError(f"need at least 2 peers and 1 <= k < peers, got {n_peers} peers and k = {k}")
    rng = np.random.default_rng(seed)
    round_seed = hashlib.sha256(b"bcfl/bench/scoring" + seed.to_bytes(8, "big")).digest()
    peers = [
        "0x" + hashlib.sha256(round_seed + i.to_bytes(4, "big")).hexdigest()[:40] for i in range(n_peers)
    ]
    ring = seeded_ring(round_seed, peers)
    at = {p: i for i, p in enumerate(ring)}
    assigned = {p: [ring[(at[p] + j) % n_peers] for j in range(1, k + 1)] for p in peers}
    for i in rng.choice(n_peers, size=min(check_sample, n_peers), replace=False).tolist():
        if assign_evaluations(round_seed, peers[i], peers, k) != assigned[peers[i]]:
            raise BenchError(f"ring successors of {peers[i]} differ from assign_evaluations")
    bad = frozenset(p for p, is_bad in zip(peers, rng.random(n_peers) < 0.1, strict=True) if is_bad)
    metrics = Metrics(loss=1.0)
    noise = rng.normal(0.0, 0.1, size=(n_peers, k))
    files = []
    for i, voter in enumerate(peers):
        votes = tuple(
            Vote(c, f"cid-{c}", float(np.clip((0.15 if c in bad else 0.7) + noise[i, j], 0.0, 1.0)), metrics)
            for j, c in enumerate(assigned[voter])
        )
        files.append(VoteFile(round=1, voter=voter, base=metrics, votes=votes))
    reputations = rng.integers(0, 1_000_001, size=n_peers).tolist()
    standing = {p: Standing(int(r)) for p, r in zip(peers, reputations, strict=True)}
    return SyntheticRound(round_seed, peers, assigned, files, standing, bad)


@dataclass(frozen=True)
class Timing:
    what: str
    peers: int
    k: int
    repeats: int
    wall_s: list[float]
    cpu_s: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "peers": self.peers,
            "k": self.k,
            "repeats": self.repeats,
            "wall_median_s": statistics.median(self.wall_s),
            "wall_min_s": min(self.wall_s),
            "wall_max_s": max(self.wall_s),
            "cpu_median_s": statistics.median(self.cpu_s),
            "cpu_min_s": min(self.cpu_s),
            "cpu_max_s": max(self.cpu_s),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }


def _time(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return wall, cpu


def time_scoring(rnd: SyntheticRound, k: int, repeats: int, config: TrustConfig | None = None) -> Timing:
    """Wall and CPU seconds of `score_round` on the round, `repeats` times."""
    inputs = rnd.inputs()
    wall, cpu = _time(lambda: score_round(inputs, config), repeats)
    return Timing("score_round", len(rnd.peers), k, repeats, wall, cpu)


def outcome_inputs(rnd: SyntheticRound) -> tuple[list[Submission], list[FetchedVotes]]:
    """Submissions and fetched vote files for `bcfl.outcome.decide_from`, as a node sees them."""
    subs = [
        Submission(
            1,
            p,
            f"cid-{p}",
            hashlib.sha256(p.encode()).digest(),
            100,
            1,
            rnd.standing[p].reputation_ppm,
            1,
            "0x",
            i,
        )
        for i, p in enumerate(rnd.peers)
    ]
    fetched = []
    for vf in rnd.files:
        data = encode_votes(vf)
        commit = VoteCommit(
            1,
            vf.voter,
            f"votes-{vf.voter}",
            json_digest(data),
            rnd.standing[vf.voter].reputation_ppm,
            0,
            1,
            "0x",
        )
        fetched.append(FetchedVotes(commit, data))
    return subs, fetched


def time_outcome(n_peers: int, repeats: int, seed: int = 0) -> Timing:
    """Wall and CPU seconds of the node's outcome step (`decide_from`) at the protocol's k."""
    k = votes_per_peer(n_peers)
    rnd = synthetic_round(n_peers, k, seed)
    subs, fetched = outcome_inputs(rnd)
    decision = decide_from(1, rnd.seed, 500_000, subs, fetched)
    if decision.rejected_votes:
        raise BenchError(f"decide_from rejected {len(decision.rejected_votes)} synthetic vote files")
    wall, cpu = _time(lambda: decide_from(1, rnd.seed, 500_000, subs, fetched), repeats)
    return Timing("decide_from", n_peers, k, repeats, wall, cpu)


def markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    from bcfl.experiments.results import markdown_table

    table = markdown_table(
        ["step", "peers", "k", "repeats", "wall median s", "wall min-max s", "CPU median s", "CPU min-max s"],
        [
            (
                r["what"],
                r["peers"],
                r["k"],
                r["repeats"],
                f"{r['wall_median_s']:.3f}",
                f"{r['wall_min_s']:.3f}-{r['wall_max_s']:.3f}",
                f"{r['cpu_median_s']:.3f}",
                f"{r['cpu_min_s']:.3f}-{r['cpu_max_s']:.3f}",
            )
            for r in rows
        ],
    )
    return f"Command: `{command}`\n\n{table}"


def run(
    out_dir: Path,
    *,
    peers: Sequence[int] = (10_000,),
    k: int = 16,
    repeats: int = 5,
    outcome_peers: Sequence[int] = (100, 1000),
    seed: int = 0,
    command: str = "python -m bcfl.trust.bench",
) -> list[dict[str, Any]]:
    """Time scoring at each size, and the outcome step at each outcome size; write the results."""
    from bcfl.experiments.results import ResultLog

    if repeats < 1:
        raise BenchError(f"repeats must be >= 1, got {repeats}")
    log = ResultLog(out_dir, command=command)
    rows = []
    for n in peers:
        rnd = synthetic_round(n, k, seed)
        row = time_scoring(rnd, k, repeats).summary() | {"seed": seed, "target_s": TARGET_SECONDS}
        rows.append(row)
        log.append({"kind": "scoring", **row})
    for n in outcome_peers:
        row = time_outcome(n, repeats, seed).summary() | {"seed": seed}
        rows.append(row)
        log.append({"kind": "scoring", **row})
    (out_dir / "scoring.md").write_text(markdown(rows, command), encoding="utf-8")
    return rows


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bcfl.trust.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--peers", default="10000", help="comma-separated round sizes for score_round")
    parser.add_argument("--k", type=int, default=16, help="votes per peer for score_round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--outcome-peers", default="100,1000", help="sizes for decide_from ('' for none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = "python -m bcfl.trust.bench " + " ".join(
        f"--{name.replace('_', '-')} {value}" for name, value in vars(args).items()
    )
    rows = run(
        args.out,
        peers=_sizes(args.peers),
        k=args.k,
        repeats=args.repeats,
        outcome_peers=_sizes(args.outcome_peers),
        seed=args.seed,
        command=command,
    )
    print(markdown(rows, command))


if __name__ == "__main__":
    main()
