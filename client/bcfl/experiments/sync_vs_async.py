"""Experiment 2: synchronous vs asynchronous rounds with straggling peers.

Both sides run the same real federation (serverless result mode, same model, data, partition,
seed, steps); only the closing rule differs. Synchronous: a round closes when every active peer
has submitted. Asynchronous: it closes on K = N - (number of stragglers) submissions, and a late
update joins a later round with a staleness discount.

Stragglers: `round(straggler_fraction * N)` peers (at least one), chosen with
`numpy.random.default_rng(seed)`, each sleep an extra d_i seconds after training in every round,
d_i ~ Uniform(delay_low, delay_high) drawn once per run from the same generator. The chosen peers
and delays are in every record.

Definitions (all measured from the event timeline, none computed from a formula):
- information-passing time (IPT) of a round: from the round's opening until its aggregate is
  on-chain and so available to every peer (round r opens when round r - 1 was seen finalised;
  round 1 when the last peer had loaded its model). Reported as the mean over a run's rounds.
- update wait: for every submitted update, from the peer's `trained` event (the update exists)
  until the round it was submitted to was seen finalised: how long the information waited.
- time to target: wall time from round 1's opening until the first aggregate whose test-split
  accuracy reaches the target (and, separately, whose test loss falls to the target). Targets
  are per seed: the best accuracy (lowest loss) that *both* modes reached in that seed, so
  both sides are timed to the same quality; when neither improved on the genesis model the
  table says so.

    python -m bcfl.experiments.sync_vs_async OUT_DIR [--quick] [--seed N]
        [--model M] [--peers N] [--rounds R] [--test-examples E]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcfl.experiments import harness
from bcfl.experiments.results import markdown_table, median_spread
from bcfl.experiments.server_vs_serverless import evaluate_aggregates, measure_federation, run_record
from bcfl.orchestrate import FederationSpec

NAME = "sync-vs-async"


@dataclass(frozen=True)
class Config:
    peers: int = 10
    model: str = "smollm2"
    rounds: int = 5
    straggler_fraction: float = 0.2
    delay_low: float = 60.0  # seconds a straggler sleeps per round, Uniform(low, high)
    delay_high: float = 120.0
    local_steps: int = 4
    learning_rate: float = 2e-3
    max_tokens: int = 96
    eval_examples: int = 6
    test_examples: int = 200
    base_accuracy: bool = False  # see harness.Training.base_accuracy; quick runs keep it on
    max_staleness: int = 2
    round_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.peers < 3:
            raise ValueError(f"need at least 3 peers, got {self.peers}")
        if not 0 < self.straggler_fraction < 1:
            raise ValueError(f"straggler_fraction must be in (0, 1), got {self.straggler_fraction}")
        if not 0 <= self.delay_low <= self.delay_high:
            raise ValueError(f"delay range [{self.delay_low}, {self.delay_high}] is invalid")


QUICK = Config(
    peers=4,
    model="tiny",
    rounds=2,
    straggler_fraction=0.25,
    delay_low=10.0,
    delay_high=20.0,
    local_steps=4,
    learning_rate=1e-2,
    max_tokens=64,
    eval_examples=8,
    test_examples=64,
    round_timeout_s=300.0,
    base_accuracy=True,
)


def stragglers(cfg: Config, seed: int) -> dict[int, float]:
    """Peer index -> extra seconds per round, from the stated seeded distribution."""
    rng = np.random.default_rng(seed)
    count = max(1, round(cfg.straggler_fraction * cfg.peers))
    chosen = sorted(int(i) for i in rng.choice(cfg.peers, size=count, replace=False))
    return {i: round(float(rng.uniform(cfg.delay_low, cfg.delay_high)), 2) for i in chosen}


def federation_spec(workdir: Path, cfg: Config, *, rule: str, seed: int) -> FederationSpec:
    slow = stragglers(cfg, seed)
    return harness.federation_spec(
        workdir,
        cfg,
        peers=cfg.peers,
        seed=seed,
        closing_rule=rule,
        async_quorum=cfg.peers - len(slow),
        slowdowns=slow,
        max_staleness=cfg.max_staleness,
    )


def update_waits(run: dict[str, Any]) -> list[float]:
    """Seconds from each submitted update's `trained` event to its round's finalisation."""
    trained: dict[tuple[int, str], float] = {}
    waits = []
    events = sorted(run["events"], key=lambda e: e["time"])
    for e in events:
        if e["event"] == "trained":
            trained[(e["peer"], str(e.get("cid")))] = float(e["time"])
        elif e["event"] == "submitted":
            r = int(e["round"])
            t0 = trained.get((e["peer"], str(e.get("cid"))))
            if t0 is None or r > len(run["finalised"]) or run["statuses"][r - 1] != "finalised":
                continue
            waits.append(float(run["finalised"][r - 1]) - t0)
    return waits


def run(
    out_dir: Path, *, quick: bool, seed: int = 0, config: Config | None = None, command: str | None = None
) -> None:
    cfg = config or (QUICK if quick else Config())
    log = harness.result_log(out_dir, NAME, quick=quick, command=command)
    for rule in ("synchronous", "asynchronous"):
        spec = federation_spec(out_dir / "work" / f"{rule}-s{seed}", cfg, rule=rule, seed=seed)
        measured = measure_federation(spec, rounds=cfg.rounds, timeout=cfg.round_timeout_s)
        measured = evaluate_aggregates(measured, spec, test_examples=cfg.test_examples)
        record = run_record(measured)
        log.append(
            {
                "experiment": NAME,
                "quick": quick,
                "seed": seed,
                "closing_rule": rule,
                "stragglers": {str(k): v for k, v in spec.slowdowns.items()},
                "straggler_distribution": f"Uniform({cfg.delay_low}, {cfg.delay_high}) s per round, "
                f"{len(spec.slowdowns)} of {cfg.peers} peers, numpy default_rng({seed})",
                "config": asdict(cfg),
                "run": record,
                "update_wait_s": update_waits(record),
            }
        )
    write_outputs(out_dir)


def _time_to(
    run: dict[str, Any], values: Sequence[float | None], target: float, *, higher: bool
) -> float | None:
    for r, v in enumerate(values):
        if v is not None and (v >= target if higher else v <= target):
            return float(run["finalised"][r]) - float(run["opened"][0])
    return None


def per_seed(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (seed, rule) with IPT, waits and the times to the seed's shared targets."""
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for rec in records:
        by_seed.setdefault(int(rec["seed"]), {})[rec["closing_rule"]] = rec
    rows = []
    for seed, pair in sorted(by_seed.items()):
        accs = {k: [a for a in v["run"]["accuracy"] if a is not None] for k, v in pair.items()}
        losses = {k: [x for x in v["run"]["test_loss"] if x is not None] for k, v in pair.items()}
        genesis = next(iter(pair.values()))["run"]["genesis_accuracy"]
        acc_target = min((max(a) for a in accs.values() if a), default=None) if len(pair) == 2 else None
        loss_target = max((min(x) for x in losses.values() if x), default=None) if len(pair) == 2 else None
        if acc_target is not None and genesis is not None and acc_target <= genesis:
            acc_target = None  # neither side improved accuracy on the genesis model
        for rule, rec in sorted(pair.items()):
            run_ = rec["run"]
            ipt = [
                float(x) for x, s in zip(run_["latency_s"], run_["statuses"], strict=True) if s == "finalised"
            ]
            rows.append(
                {
                    "seed": seed,
                    "rule": rule,
                    "ipt": sum(ipt) / len(ipt) if ipt else None,
                    "wait": (sum(rec["update_wait_s"]) / len(rec["update_wait_s"]))
                    if rec["update_wait_s"]
                    else None,
                    "acc_target": acc_target,
                    "t_acc": None
                    if acc_target is None
                    else _time_to(run_, run_["accuracy"], acc_target, higher=True),
                    "loss_target": loss_target,
                    "t_loss": None
                    if loss_target is None
                    else _time_to(run_, run_["test_loss"], loss_target, higher=False),
                    "final_acc": run_["accuracy"][-1],
                    "stragglers": rec["stragglers"],
                }
            )
    return rows


def _fmt(values: Sequence[float | None]) -> str:
    return harness.spread(values, digits=2)


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    rows = per_seed(records)
    out = []
    for rule in ("synchronous", "asynchronous"):
        mine = [r for r in rows if r["rule"] == rule]
        if not mine:
            continue
        out.append(
            (
                rule,
                len(mine),
                ",".join(str(r["seed"]) for r in mine),
                _fmt([r["ipt"] for r in mine]),
                _fmt([r["wait"] for r in mine]),
                _fmt([r["t_acc"] for r in mine])
                if any(r["acc_target"] is not None for r in mine)
                else "no gain",
                _fmt([r["t_loss"] for r in mine]),
                _fmt([r["final_acc"] for r in mine]),
            )
        )
    ratios = []
    for seed in sorted({r["seed"] for r in rows}):
        pair = {r["rule"]: r for r in rows if r["seed"] == seed}
        if len(pair) == 2 and pair["synchronous"]["ipt"] and pair["asynchronous"]["ipt"] is not None:
            ratios.append(1 - pair["asynchronous"]["ipt"] / pair["synchronous"]["ipt"])
    header = (
        "closing rule",
        "runs",
        "seeds",
        "information-passing time s (per round)",
        "update wait s",
        "time to shared accuracy target s",
        "time to shared loss target s",
        "final accuracy (test)",
    )
    note = (
        "Cells: median [min-max] over seeds. Information-passing time: round opening -> aggregate "
        "on-chain, mean over a run's rounds. Targets per seed: the best test accuracy / lowest test "
        "loss that both rules reached.\n\n"
    )
    tail = ""
    if ratios:
        tail = (
            f"\nIPT reduction of asynchronous vs synchronous (1 - async/sync), per seed: "
            f"{', '.join(f'{x:.1%}' for x in ratios)}; median {median_spread(ratios)[0]:.1%} "
            f"(the paper claims 76%).\n"
        )
    return note + markdown_table(header, out) + tail


def write_outputs(out_dir: Path) -> str:
    return harness.write_outputs(out_dir, NAME, summary_table, _plot, "sync_vs_async.png")


def _plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for rec in records:
        run_ = rec["run"]
        color = "C0" if rec["closing_rule"] == "synchronous" else "C1"
        t = [float(f) - float(run_["opened"][0]) for f in run_["finalised"]]
        axes[0].plot(range(1, len(run_["latency_s"]) + 1), run_["latency_s"], "o-", color=color, alpha=0.7)
        axes[1].plot(
            t, [a if a is not None else float("nan") for a in run_["test_loss"]], "o-", color=color, alpha=0.7
        )
    for rule, color in (("synchronous", "C0"), ("asynchronous", "C1")):
        axes[0].plot([], [], "o-", color=color, label=rule)
    axes[0].set(xlabel="round", ylabel="information-passing time (s)", title="per round, each line a seed")
    axes[1].set(
        xlabel="seconds since round 1 opened", ylabel="test loss of aggregate", title="loss over time"
    )
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    harness.main("bcfl.experiments.sync_vs_async", run, argv, quick=QUICK, full=Config())


if __name__ == "__main__":
    main()
