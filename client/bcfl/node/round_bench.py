"""`bcfl bench round`: where a round's wall time goes, measured on a real local federation.

Runs the demo's federation (N peer processes, the last one attacking, asynchronous rounds on
Anvil) through `LocalFederation`, then reads each peer's `timings.json` (see bcfl.node.timing):
per peer and round the seconds spent training, evaluating updates, scoring + aggregating, in
storage, on the chain, in other bookkeeping and waiting, the transactions it sent and their gas.
Protocol overhead is storage + chain + scoring + other, as a share of the peer's round time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bcfl.errors import BcflError
from bcfl.node.timing import OVERHEAD_PHASES, PHASES, Split, Spread, read_startup, split_of, spread, summarise

MODELS = ("tiny", "smollm2")


@dataclass(frozen=True)
class PeerRound:
    round: int
    peer: int
    role: str  # "honest" or the attack
    split: Split


@dataclass(frozen=True)
class RoundBenchResult:
    command: str
    model: str
    peers: int
    rounds: int
    quorum: int
    storage: str
    chain_seconds: dict[int, float]  # round opened -> next round opened, from block timestamps
    samples: list[PeerRound]
    missing: dict[int, list[int]]  # round -> peers whose record of it is incomplete
    startup_s: list[float]  # per peer: process start to first step
    base_accuracy: bool = True  # voters also scored the base's accuracy (all 40 labels)

    def summary(self) -> dict[str, Spread]:
        return summarise([s.split for s in self.samples])


def run_round_bench(
    *,
    model: str,
    peers: int,
    rounds: int,
    out: Path,
    attack: str = "sign-flip",
    ipfs: bool = False,
    base_accuracy: bool = True,
    command: str = "",
) -> RoundBenchResult:
    """Run the federation for `rounds` rounds and collect every peer's per-round split."""
    from bcfl.demo import demo_spec
    from bcfl.orchestrate import LocalFederation

    if model not in MODELS:
        raise BcflError(f"unknown benchmark model {model!r}; choose one of {', '.join(MODELS)}")
    if peers < 2 or rounds < 1:
        raise BcflError(f"need at least 2 peers and 1 round, got {peers} peers and {rounds} rounds")
    spec = replace(
        demo_spec(
            out / "federation", quick=model == "tiny", peers=peers, rounds=rounds, attack=attack, ipfs=ipfs
        ),
        base_accuracy=base_accuracy,
    )
    chain_seconds: dict[int, float] = {}
    missing: dict[int, list[int]] = {}
    samples: list[PeerRound] = []
    startup: list[float] = []
    with LocalFederation(spec) as fed:
        assert fed.federation is not None
        chain = fed.federation
        for r in range(1, rounds + 1):
            fed.wait_for_round(r, timeout=spec.round_duration * 3)
        # A peer's record of the last round is complete once it has moved on to the next one.
        done = set(fed.wait_for_timings(rounds, timeout=spec.round_duration))
        for r in range(1, rounds + 1):
            chain_seconds[r] = float(chain.round(r + 1).opened_at - chain.round(r).opened_at)
        roles = {p.index: spec.attackers.get(p.index, "honest") for p in fed.processes}
        for p in fed.processes:
            recorded = fed.peer_timings(p.index)
            began = read_startup(fed.peer_dir(p.index))
            if began is not None:
                startup.append(began)
            for r in range(1, rounds + 1):
                if r not in recorded or (r == rounds and p.index not in done):
                    missing.setdefault(r, []).append(p.index)
                    continue
                samples.append(PeerRound(r, p.index, roles[p.index], split_of(recorded[r])))
    return RoundBenchResult(
        command=command,
        model=model,
        peers=peers,
        rounds=rounds,
        quorum=spec.async_quorum,
        storage=spec.storage,
        chain_seconds=chain_seconds,
        samples=samples,
        missing=missing,
        startup_s=startup,
        base_accuracy=base_accuracy,
    )


# -- reporting (pure) -------------------------------------------------------------------------


def as_records(result: RoundBenchResult) -> list[dict[str, Any]]:
    """One JSON record per peer and round, then one summary record."""
    records: list[dict[str, Any]] = []
    for s in result.samples:
        records.append(
            {
                "kind": "peer_round",
                "model": result.model,
                "peers": result.peers,
                "round": s.round,
                "peer": s.peer,
                "role": s.role,
                "seconds": {k: round(v, 4) for k, v in s.split.seconds.items()},
                "total_s": round(s.split.total, 4),
                "overhead_s": round(s.split.overhead, 4),
                "overhead_share": round(s.split.overhead_share, 5),
                "transactions": s.split.transactions,
                "gas": s.split.gas,
                "chain_round_s": result.chain_seconds.get(s.round),
            }
        )
    records.append(
        {
            "kind": "summary",
            "model": result.model,
            "peers": result.peers,
            "rounds": result.rounds,
            "quorum": result.quorum,
            "storage": result.storage,
            "base_accuracy": result.base_accuracy,
            "chain_round_s": result.chain_seconds,
            "missing": result.missing,
            "startup_s": result.startup_s,
            "summary": {k: asdict(v) for k, v in result.summary().items()},
        }
    )
    return records


def markdown(result: RoundBenchResult) -> str:
    from bcfl.experiments.results import markdown_table

    summary = result.summary()
    if not summary:
        return f"Command: `{result.command}`\n\nNo complete peer-round was recorded.\n"
    total = summary["total"].median
    lines = [
        f"Command: `{result.command}`",
        "",
        f"Model {result.model}, {result.peers} peer processes (the last one an attacker), "
        f"{result.rounds} asynchronous rounds closing on K = {result.quorum}, storage {result.storage}; "
        f"{len(result.samples)} peer-rounds. Median over peer-rounds, (min-max) beside it.",
        "",
    ]
    rows: list[tuple[Any, ...]] = []
    for name in PHASES:
        s = summary[name]
        rows.append((name, f"{s.median:.2f}", f"{s.low:.2f}-{s.high:.2f}", f"{s.median / total:.1%}"))
    rows.append(
        ("round (sum)", f"{total:.2f}", f"{summary['total'].low:.2f}-{summary['total'].high:.2f}", "")
    )
    overhead = summary["overhead"]
    share = summary["overhead_share"]
    rows.append(
        (
            f"protocol overhead ({' + '.join(OVERHEAD_PHASES)})",
            f"{overhead.median:.2f}",
            f"{overhead.low:.2f}-{overhead.high:.2f}",
            f"{share.median:.1%} ({share.low:.1%}-{share.high:.1%})",
        )
    )
    lines.append(markdown_table(["phase", "median s", "min-max s", "share of round"], rows))
    tx, gas = summary["transactions"], summary["gas"]
    lines.append(
        f"Transactions per peer per round: median {tx.median:.0f} ({tx.low:.0f}-{tx.high:.0f}); "
        f"gas per peer per round: median {gas.median:,.0f} ({gas.low:,.0f}-{gas.high:,.0f}).\n"
    )
    if result.startup_s:
        up = spread(result.startup_s)
        lines.append(
            f"Peer start-up before its first step (imports, keystore, model load, join), not in any round: "
            f"median {up.median:.1f} s ({up.low:.1f}-{up.high:.1f}); "
            "it is why round 1 lasts longer on the chain.\n"
        )
    per_round = []
    for r in range(1, result.rounds + 1):
        splits = [s.split for s in result.samples if s.round == r]
        if not splits:
            continue
        part = summarise(splits)
        per_round.append(
            (
                r,
                f"{result.chain_seconds.get(r, float('nan')):.0f}",
                len(splits),
                f"{part['total'].median:.1f}",
                *(f"{part[name].median:.2f}" for name in PHASES),
                f"{part['overhead_share'].median:.1%}",
            )
        )
    lines.append(
        markdown_table(
            ["round", "chain s", "peers", "median round s", *PHASES, "overhead share"],
            per_round,
        )
    )
    if result.missing:
        lines.append(f"Incomplete records left out (round: peers): {json.dumps(result.missing)}\n")
    return "\n".join(lines)


def peer_table(result: RoundBenchResult) -> str:
    from bcfl.experiments.results import markdown_table

    rows = [
        (
            s.round,
            f"peer{s.peer}",
            s.role,
            f"{s.split.total:.1f}",
            *(f"{s.split.seconds[name]:.2f}" for name in PHASES),
            f"{s.split.overhead_share:.1%}",
            s.split.transactions,
            s.split.gas,
        )
        for s in sorted(result.samples, key=lambda x: (x.round, x.peer))
    ]
    return markdown_table(["round", "peer", "role", "round s", *PHASES, "overhead", "txs", "gas"], rows)
