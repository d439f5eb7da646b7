"""Experiment 1: server vs serverless. Round latency and final accuracy at several federation sizes.

Both sides run the same real federation (`LocalFederation`: Anvil, the contract, one `bcfl node`
OS process per peer) with the same model, data, partition, seed, local steps and closing rule
(synchronous: every peer submits); only the result mode differs. Serverless: every submitter
evaluates k of the other updates and the round finalises when a quorum of peers attests the same
result. Server: one extra aggregator process evaluates every update and posts the result.

Measured per run (see `measure_federation`):
- round latency: from the round's opening until its aggregate is on-chain. The opening of round
  r > 1 is the moment round r - 1 was seen finalised; round 1 opens when the last peer process
  has loaded its model (logged by the peer), so start-up is not counted. Times come from this
  process polling the chain every 0.2 s (sub-second), cross-checked against block timestamps
  (whole seconds), both kept in the record.
- accuracy: the final aggregate, fetched by CID from storage and verified, evaluated here with
  `bcfl.learning.evaluate.evaluate` on the held-out test split (never seen by any peer).

    python -m bcfl.experiments.server_vs_serverless OUT_DIR [--quick] [--seed N]
        [--model M] [--peers N] [--rounds R] [--test-examples E]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bcfl.errors import BcflError
from bcfl.experiments import harness
from bcfl.experiments.results import markdown_table
from bcfl.orchestrate import FederationSpec, LocalFederation

NAME = "server-vs-serverless"


# -- measuring one federation ------------------------------------------------------------------


@dataclass(frozen=True)
class FederationRun:
    """What one federation run measured; every time is in seconds."""

    spec: dict[str, Any]
    rounds: int
    ready_at: float  # wall clock when the last peer had loaded its model
    opened: list[float]  # per round, wall clock of its opening (as observed)
    finalised: list[float]  # per round, wall clock when it was first seen finalised
    latency_s: list[float]  # finalised - opened, per round
    chain_latency_s: list[int]  # finalisation block timestamp - RoundOpened timestamp, per round
    statuses: list[str]
    aggregates: list[str]  # per round, the aggregate CID ('' if it expired)
    submissions: list[int]
    events: list[dict[str, Any]]  # every peer's event records, with "peer" added
    peak_rss_bytes: int  # peak over time of the summed RSS of all peer processes
    peak_rss_per_process_bytes: int
    wall_s: float
    included: list[int] = field(default_factory=list)  # per round, updates the gate let in
    attackers_included: list[int] = field(default_factory=list)  # per round
    bytes_moved: list[int] = field(default_factory=list)  # per round, see protocol_bytes
    update_bytes: int = 0  # one adapter's files
    accuracy: list[float | None] = field(default_factory=list)  # per round aggregate, test split
    test_loss: list[float | None] = field(default_factory=list)
    genesis_accuracy: float | None = None
    test_examples: int = 0


def _rss(fed: LocalFederation) -> tuple[int, int]:
    import psutil

    total = peak = 0
    for p in fed.processes:
        if p.proc is None or p.proc.poll() is not None:
            continue
        try:
            rss = int(psutil.Process(p.proc.pid).memory_info().rss)
        except psutil.Error:
            continue
        total += rss
        peak = max(peak, rss)
    return total, peak


def _ready_time(fed: LocalFederation) -> float | None:
    """When the last peer process had its model and shard loaded (None while one is loading)."""
    times = []
    for p in fed.processes:
        seen = [e["time"] for e in fed.events(p.index) if "shard" in str(e.get("message", ""))]
        if not seen and p.role == "aggregator":
            seen = [e["time"] for e in fed.events(p.index)][:1]
        if not seen:
            return None
        times.append(float(seen[0]))
    return max(times)


def measure_federation(spec: FederationSpec, *, rounds: int, timeout: float) -> FederationRun:
    """Run `rounds` rounds of a real federation and observe it; stops everything it started."""
    from bcfl.chain.federation import RoundStatus

    started = time.time()
    peak_total = peak_one = 0
    opened: list[float] = []
    finalised: list[float] = []
    statuses: list[str] = []
    with LocalFederation(spec) as fed:
        assert fed.federation is not None
        chain = fed.federation
        ready: float | None = None
        for r in range(1, rounds + 1):
            deadline = time.monotonic() + timeout
            while True:
                total, one = _rss(fed)
                peak_total, peak_one = max(peak_total, total), max(peak_one, one)
                if ready is None:
                    ready = _ready_time(fed)
                status = chain.round(r).status
                if status in (RoundStatus.FINALISED, RoundStatus.EXPIRED):
                    break
                if time.monotonic() > deadline:
                    raise BcflError(
                        f"round {r} did not finish within {timeout:.0f} s; logs in {spec.workdir}"
                    )
                fed._check_alive()
                time.sleep(0.2)
            now = time.time()
            if ready is None:
                ready = _ready_time(fed) or started
            opened.append(ready if r == 1 else finalised[-1])
            finalised.append(now)
            statuses.append(status.name.lower())
        chain_latency = []
        aggregates = []
        submissions = []
        for r in range(1, rounds + 1):
            info = chain.round(r)
            final = chain.finalisation(r)
            submissions.append(len(chain.submissions(r)))
            if final is None:
                aggregates.append("")
                chain_latency.append(-1)
                continue
            aggregates.append(final.aggregate.cid)
            block = chain.w3.eth.get_block(final.block_number)
            chain_latency.append(int(block["timestamp"]) - int(info.opened_at))
        events = []
        for p in fed.processes:
            for e in fed.events(p.index):
                if "event" in e:
                    events.append({**e, "peer": p.index, "role": p.role})
        included, bad_in, moved, update_size = _inclusion_and_bytes(fed, rounds, events)
    spec_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()}
    spec_dict["attackers"] = {str(k): v for k, v in spec.attackers.items()}
    spec_dict["slowdowns"] = {str(k): v for k, v in spec.slowdowns.items()}
    return FederationRun(
        spec=spec_dict,
        rounds=rounds,
        ready_at=opened[0],
        opened=opened,
        finalised=finalised,
        latency_s=[f - o for f, o in zip(finalised, opened, strict=True)],
        chain_latency_s=chain_latency,
        statuses=statuses,
        aggregates=aggregates,
        submissions=submissions,
        events=events,
        peak_rss_bytes=peak_total,
        peak_rss_per_process_bytes=peak_one,
        wall_s=time.time() - started,
        included=included,
        attackers_included=bad_in,
        bytes_moved=moved,
        update_bytes=update_size,
    )


def _inclusion_and_bytes(
    fed: LocalFederation, rounds: int, events: Sequence[dict[str, Any]]
) -> tuple[list[int], list[int], list[int], int]:
    """Per round: updates included, attackers' updates included, and bytes moved.

    Bytes moved are counted from what the protocol made each peer fetch or store, as logged:
    a `trained` event downloads the base and uploads an update; a `voted` event downloads the
    base and the k evaluated updates and uploads a vote file; an `attested`/`posted` event
    downloads the base, the included updates and every vote file and uploads the aggregate.
    Object sizes are the real stored sizes (adapters have fixed shapes, so one size serves).
    """
    from bcfl.node.work import open_storage_spec
    from bcfl.outcome import decide_round, fetch_votes, votes_per_peer
    from bcfl.storage.adapter_pack import fetch_adapter

    assert fed.federation is not None
    chain = fed.federation
    store = open_storage_spec(fed.storage_spec(fed.spec.peers), fed.spec.workdir / "observer")
    bad = {p.address.lower() for p in fed.processes if p.index in fed.spec.attackers}
    genesis = chain.genesis()
    update = sum(len(b) for b in fetch_adapter(store, genesis.cid, digest=genesis.digest).values())
    included, bad_in, moved = [], [], []
    for r in range(1, rounds + 1):
        subs = chain.submissions(r)
        commits = chain.vote_commits(r)
        fetched = fetch_votes(store, commits)
        vote_bytes = sum(len(f.data or b"") for f in fetched)
        n_in = 0
        if chain.finalisation(r) is not None:
            decision = decide_round(chain, r, subs, fetched)
            n_in = len(decision.included)
            bad_in.append(sum(s.peer.lower() in bad for s in decision.included))
        else:
            bad_in.append(0)
        included.append(n_in)
        k = len(subs) if fed.spec.result_mode == "server" else votes_per_peer(len(subs))
        total = 0
        for e in events:
            if e.get("round") != r:
                continue
            kind = e["event"]
            if kind == "trained":
                total += 2 * update
            elif kind == "voted":
                total += (1 + k) * update + vote_bytes // max(1, len(commits))
            elif kind in ("attested", "posted"):
                total += (2 + n_in) * update + vote_bytes
        moved.append(total)
    return included, bad_in, moved, update


def evaluate_aggregates(run: FederationRun, spec: FederationSpec, *, test_examples: int) -> FederationRun:
    """Fetch each round's aggregate by CID (verified) and score it on the held-out test split.

    Runs after the federation has stopped, so it has the machine's cores to itself."""
    import os

    import torch

    from bcfl.learning import adapter as adapters
    from bcfl.learning.adapter import LoraSpec
    from bcfl.learning.data import SplitConfig, load_splits
    from bcfl.learning.evaluate import evaluate
    from bcfl.learning.model import load_base
    from bcfl.learning.task import TaskConfig
    from bcfl.node.learner import genesis_files
    from bcfl.node.work import open_storage_spec
    from bcfl.storage.adapter_pack import fetch_adapter

    torch.set_num_threads(os.cpu_count() or 1)
    base = load_base(spec.model)
    test = load_splits(SplitConfig(seed=spec.data_seed)).test
    task = TaskConfig(max_text_tokens=spec.max_tokens)
    store = open_storage_spec(f"embedded:{spec.workdir / 'store'}", spec.workdir / "evaluator")
    lora = LoraSpec(rank=8)

    def score(files: dict[str, bytes]) -> tuple[float, float]:
        state = adapters.from_files(files, base, expect=lora)
        result = evaluate(base, state, test, max_examples=test_examples, task=task)
        return result.accuracy, result.mean_loss

    genesis_acc, _ = score(genesis_files(spec.model))
    accs: list[float | None] = []
    losses: list[float | None] = []
    for cid in run.aggregates:
        if not cid:
            accs.append(None)
            losses.append(None)
            continue
        acc, loss = score(fetch_adapter(store, cid))
        accs.append(acc)
        losses.append(loss)
    n = min(test_examples, len(test))
    return replace(run, accuracy=accs, test_loss=losses, genesis_accuracy=genesis_acc, test_examples=n)


def run_record(run: FederationRun) -> dict[str, Any]:
    """The JSON record of a run (events kept: the timeline the figures are computed from)."""
    return asdict(run)


# -- the experiment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    peers: tuple[int, ...] = (5, 10, 20)
    modes: tuple[str, ...] = ("server", "serverless")
    model: str = "smollm2"
    rounds: int = 3
    local_steps: int = 4
    learning_rate: float = 2e-3
    max_tokens: int = 96
    eval_examples: int = 6  # per vote, on the voter's own validation slice
    test_examples: int = 200  # held-out test examples scored per aggregate
    base_accuracy: bool = False  # see harness.Training.base_accuracy; quick runs keep it on
    round_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.peers or min(self.peers) < 2:
            raise ValueError(f"need at least 2 peers per federation, got {self.peers}")
        bad = set(self.modes) - {"server", "serverless"}
        if bad:
            raise ValueError(f"unknown result mode(s) {sorted(bad)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")


QUICK = Config(
    peers=(3, 5),
    model="tiny",
    rounds=1,
    local_steps=4,
    learning_rate=1e-2,
    max_tokens=64,
    eval_examples=8,
    test_examples=64,
    round_timeout_s=300.0,
    base_accuracy=True,
)


def federation_spec(workdir: Path, cfg: Config, *, peers: int, mode: str, seed: int) -> FederationSpec:
    return harness.federation_spec(workdir, cfg, peers=peers, seed=seed, result_mode=mode)


def run(
    out_dir: Path, *, quick: bool, seed: int = 0, config: Config | None = None, command: str | None = None
) -> None:
    """One repeat (this seed) of every (peers, mode) setting; appends records, rewrites outputs."""
    cfg = config or (QUICK if quick else Config())
    log = harness.result_log(out_dir, NAME, quick=quick, command=command)
    for peers in cfg.peers:
        for mode in cfg.modes:
            spec = federation_spec(
                out_dir / "work" / f"{mode}-{peers}-s{seed}", cfg, peers=peers, mode=mode, seed=seed
            )
            measured = measure_federation(spec, rounds=cfg.rounds, timeout=cfg.round_timeout_s)
            measured = evaluate_aggregates(measured, spec, test_examples=cfg.test_examples)
            log.append(
                {
                    "experiment": NAME,
                    "quick": quick,
                    "seed": seed,
                    "peers": peers,
                    "mode": mode,
                    "config": asdict(cfg),
                    "run": run_record(measured),
                }
            )
    write_outputs(out_dir)


def write_outputs(out_dir: Path) -> str:
    """table.md and the PNG plot from every record in results.jsonl; returns the table."""
    return harness.write_outputs(out_dir, NAME, summary_table, _plot, "server_vs_serverless.png")


def _steady(run: dict[str, Any]) -> list[float]:
    return [float(x) for x, s in zip(run["latency_s"], run["statuses"], strict=True) if s == "finalised"]


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((int(rec["peers"]), str(rec["mode"])), []).append(rec)
    rows = []
    for (peers, mode), recs in sorted(groups.items()):
        lat = [harness.mean(_steady(r["run"])) for r in recs if _steady(r["run"])]
        chain = [
            harness.mean([float(x) for x in r["run"]["chain_latency_s"] if x >= 0])
            for r in recs
            if any(x >= 0 for x in r["run"]["chain_latency_s"])
        ]
        acc = [float(r["run"]["accuracy"][-1]) for r in recs if r["run"]["accuracy"][-1] is not None]
        loss = [float(r["run"]["test_loss"][-1]) for r in recs if r["run"]["test_loss"][-1] is not None]
        moved = [
            sum(r["run"]["bytes_moved"]) / len(r["run"]["bytes_moved"]) / 2**20
            for r in recs
            if r["run"].get("bytes_moved")
        ]
        gen = [float(r["run"]["genesis_accuracy"]) for r in recs if r["run"]["genesis_accuracy"] is not None]
        mem = [r["run"]["peak_rss_bytes"] / 2**20 for r in recs]
        seeds = sorted({int(r["seed"]) for r in recs})
        rows.append(
            (
                peers,
                mode,
                len(recs),
                ",".join(map(str, seeds)),
                harness.spread(lat),
                harness.spread(chain),
                harness.spread(acc),
                harness.spread(gen),
                harness.spread(loss),
                harness.spread(moved, digits=2),
                harness.spread(mem, digits=0),
                f"{sum(r['run']['statuses'].count('finalised') for r in recs)}/"
                f"{sum(len(r['run']['statuses']) for r in recs)}",
                f"{sum(sum(r['run'].get('included', [])) for r in recs)}/"
                f"{sum(sum(r['run']['submissions']) for r in recs)}",
            )
        )
    header = (
        "peers",
        "mode",
        "runs",
        "seeds",
        "round latency s (observed)",
        "chain latency s (block timestamps, round 1 incl. start-up)",
        "final accuracy (test)",
        "genesis accuracy",
        "final test loss",
        "MiB moved per round",
        "peak RSS all peers MiB",
        "rounds finalised",
        "updates included / submitted",
    )
    note = (
        "Cells: median [min-max] over runs (one run per seed); latency is the mean over a run's "
        "finalised rounds. Accuracy: the last round's aggregate on the held-out test split.\n\n"
    )
    return note + markdown_table(header, rows)


def _plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode, marker in (("server", "s"), ("serverless", "o")):
        color = "C1" if mode == "server" else "C0"
        recs = [r for r in records if r["mode"] == mode]
        for r in recs:
            lat = _steady(r["run"])
            if lat:
                axes[0].scatter(r["peers"], harness.mean(lat), marker=marker, color=color)
            if r["run"]["accuracy"][-1] is not None:
                axes[1].scatter(r["peers"], r["run"]["accuracy"][-1], marker=marker, color=color)
        axes[0].scatter([], [], marker=marker, color=color, label=mode)
    axes[0].set(xlabel="peers", ylabel="round latency (s)", title="latency per round (each dot a seed)")
    axes[1].set(xlabel="peers", ylabel="test accuracy", title="final aggregate accuracy")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    harness.main("bcfl.experiments.server_vs_serverless", run, argv, quick=QUICK, full=Config())


if __name__ == "__main__":
    main()
