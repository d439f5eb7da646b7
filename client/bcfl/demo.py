"""The demo's settings and its per-round report, read back from the chain and the peers' logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcfl.chain.federation import RoundStatus
from bcfl.orchestrate import FederationSpec, LocalFederation
from bcfl.outcome import decide_round, fetch_votes


def demo_spec(
    workdir: Path, *, quick: bool, peers: int, rounds: int, attack: str, ipfs: bool, storage: str = "embedded"
) -> FederationSpec:
    """Five peers, K = N - 1 so a straggler never holds a round back, the last peer attacking.
    `storage`: embedded (one shared store), ipfs (a daemon per peer; also `ipfs=True`) or p2p."""
    return FederationSpec(
        workdir=workdir,
        peers=peers,
        attackers={peers - 1: attack},
        model="tiny" if quick else "smollm2",
        closing_rule="asynchronous",
        result_mode="serverless",
        async_quorum=max(2, peers - 1),
        max_staleness=2,
        round_duration=120 if quick else 600,
        vote_duration=60 if quick else 300,
        result_duration=120 if quick else 600,
        rounds=rounds,
        storage="ipfs" if ipfs else storage,
        local_steps=4,
        learning_rate=1e-2 if quick else 2e-3,
        score_threshold=450_000,
        batch_size=4,
        max_tokens=64 if quick else 96,
        eval_examples=8 if quick else 6,
    )


@dataclass
class RoundReport:
    rows: list[tuple[str, ...]]
    seconds: float
    note: str = ""


def _short(reason: str) -> str:
    if "threshold" in reason:
        return "below threshold"
    return reason[:40]


def _voter_accuracy(store: Any, commits: list[Any]) -> dict[str, float]:
    """Mean validation accuracy of each update, as measured by the peers that evaluated it."""
    from bcfl.storage.adapter_pack import fetch_json

    seen: dict[str, list[float]] = {}
    for commit in commits:
        try:
            doc = fetch_json(store, commit.cid, digest=commit.digest)
        except Exception:  # a bad vote file shows up in the audit, not here
            continue
        for vote in doc.get("votes", []):
            if isinstance(vote.get("accuracy"), (int, float)):
                seen.setdefault(vote["peer"], []).append(float(vote["accuracy"]))
    return {peer: sum(v) / len(v) for peer, v in seen.items()}


def _time_split(fed: LocalFederation, round_id: int) -> str:
    """Median per peer of where its round went, from the peers' timings files (the numbers
    `bcfl bench round` reports); only peers that have moved past the round count."""
    from bcfl.node.timing import split_of, summarise

    fed.wait_for_timings(round_id, timeout=10)
    splits = []
    for p in fed.processes:
        recorded = fed.peer_timings(p.index)
        if round_id in recorded and max(recorded) > round_id:
            splits.append(split_of(recorded[round_id]))
    if not splits:
        return ""
    s = summarise(splits)
    parts = ", ".join(
        f"{name} {s[name].median:.1f}"
        for name in ("training", "evaluation", "scoring", "storage", "chain", "waiting")
    )
    return (
        f"median per peer ({len(splits)} of {len(fed.processes)}), seconds: {parts}; "
        f"protocol overhead {s['overhead_share'].median:.1%} of {s['total'].median:.1f} s"
        f" ({s['transactions'].median:.0f} transactions, {s['gas'].median:,.0f} gas)"
    )


def round_report(fed: LocalFederation, round_id: int) -> RoundReport:
    """Submissions, scores and the gate's decision for a finished round, from public data."""
    assert fed.federation is not None
    chain = fed.federation
    info = chain.round(round_id)
    names = {p.address.lower(): f"peer{p.index}" for p in fed.processes}
    roles = {p.address.lower(): (fed.spec.attackers.get(p.index) or "honest") for p in fed.processes}
    submissions = chain.submissions(round_id)
    gas = {}
    for s in submissions:
        receipt = chain.w3.eth.get_transaction_receipt(s.tx_hash)  # type: ignore[arg-type]
        gas[s.peer] = int(receipt["gasUsed"])
    rows: list[tuple[str, ...]] = []
    note = ""
    block = chain.w3.eth.get_block("latest")
    seconds = float(block["timestamp"]) - info.opened_at
    if info.status is RoundStatus.FINALISED:
        store = fed.reader(fed.spec.workdir / "reporter")
        decision = decide_round(
            chain, round_id, submissions, fetch_votes(store, chain.vote_commits(round_id))
        )
        ppm = decision.scores.ppm()
        included = {s.peer for s in decision.included}
        accuracy = _voter_accuracy(store, chain.vote_commits(round_id))
        for s in submissions:
            rows.append(
                (
                    names.get(s.peer.lower(), s.peer),
                    roles.get(s.peer.lower(), "?"),
                    str(s.samples),
                    str(round_id - s.trained_from),
                    f"{ppm.get(s.peer, 0) / 1e6:.3f}",
                    "yes" if s.peer in included else "NO",
                    _short(decision.excluded.get(s.peer, "")),
                    f"{accuracy[s.peer]:.2f}" if s.peer in accuracy else "-",
                    str(gas[s.peer]),
                )
            )
        final = chain.finalisation(round_id)
        if final is not None:
            note = f"aggregate {final.aggregate.cid}; {_time_split(fed, round_id)}"
    else:
        note = f"round {round_id} expired: no result reached quorum in time"
    return RoundReport(rows=rows, seconds=seconds, note=note)
