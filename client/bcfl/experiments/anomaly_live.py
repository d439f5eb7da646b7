"""Experiment 3 (live): the trust gate under attack, run through real peer processes.

The offline sweep (`bcfl.experiments.anomaly`) compares every defence on many settings; this
experiment confirms one setting of it end to end: a real federation (`LocalFederation`: Anvil,
the contract, one `bcfl node` process per peer) in which a fixed share of the peers attack,
every peer evaluates its assigned updates and posts votes, and the round's included set is
what the chain finalised. Per attack it reports the precision and recall of the included sets
(honest updates in, malicious out) and the final aggregate's test accuracy and loss beside
the attack-free run of the same seed.

    python -m bcfl.experiments.anomaly_live OUT_DIR [--quick] [--seed N]
        [--model M] [--peers N] [--rounds R] [--test-examples E]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bcfl.experiments import harness
from bcfl.experiments.results import markdown_table
from bcfl.experiments.server_vs_serverless import (
    FederationRun,
    evaluate_aggregates,
    measure_federation,
    run_record,
)
from bcfl.orchestrate import FederationSpec

NAME = "anomaly-live"
NO_ATTACK = "none"


@dataclass(frozen=True)
class Config:
    peers: int = 10
    attacker_fraction: float = 0.3
    attacks: tuple[str, ...] = (
        "sign-flip",
        "gaussian-noise",
        "scaling",
        "free-rider",
        "label-flip",
        "backdoor",
    )
    model: str = "smollm2"
    rounds: int = 2
    local_steps: int = 4
    learning_rate: float = 2e-3
    max_tokens: int = 96
    eval_examples: int = 8
    test_examples: int = 200
    base_accuracy: bool = False  # see harness.Training.base_accuracy; quick runs keep it on
    round_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.attackers < 1 or self.attackers >= self.peers / 2:
            raise ValueError(
                f"{self.attacker_fraction} of {self.peers} peers gives {self.attackers} attackers; "
                "need at least one and fewer than half"
            )
        if NO_ATTACK in self.attacks:
            raise ValueError(f"{NO_ATTACK!r} is the reference run, not an attack")

    @property
    def attackers(self) -> int:
        return round(self.attacker_fraction * self.peers)


QUICK = Config(
    peers=7,
    attacks=("sign-flip", "scaling", "free-rider", "label-flip"),
    model="tiny",
    rounds=1,  # peer start-up dominates a tiny-model federation: five of them fit in 10 minutes
    local_steps=4,
    learning_rate=1e-2,
    max_tokens=64,
    eval_examples=8,
    test_examples=64,
    round_timeout_s=300.0,
    base_accuracy=True,
)


def attacker_indices(cfg: Config) -> list[int]:
    """The last peers attack: peer indices carry no meaning to the protocol."""
    return list(range(cfg.peers - cfg.attackers, cfg.peers))


def federation_spec(workdir: Path, cfg: Config, *, attack: str, seed: int) -> FederationSpec:
    attackers = {} if attack == NO_ATTACK else dict.fromkeys(attacker_indices(cfg), attack)
    # Synchronous: every update is submitted and evaluated in its round.
    return harness.federation_spec(workdir, cfg, peers=cfg.peers, seed=seed, attackers=attackers)


@dataclass(frozen=True)
class GateOutcome:
    """Included-set quality over every finalised round of a run."""

    honest_submitted: int
    malicious_submitted: int
    honest_included: int
    malicious_included: int

    @property
    def precision(self) -> float | None:
        included = self.honest_included + self.malicious_included
        return self.honest_included / included if included else None

    @property
    def recall(self) -> float | None:
        return self.honest_included / self.honest_submitted if self.honest_submitted else None


def gate_outcome(run: FederationRun, attackers: Sequence[int]) -> GateOutcome:
    """Count submissions and inclusions per side from the run's events and decisions."""
    bad = set(attackers)
    honest_sub = malicious_sub = honest_in = malicious_in = 0
    for r, status in enumerate(run.statuses, start=1):
        if status != "finalised":
            continue
        submitters = {e["peer"] for e in run.events if e.get("event") == "submitted" and e.get("round") == r}
        malicious_sub += len(submitters & bad)
        honest_sub += len(submitters - bad)
        malicious_in += run.attackers_included[r - 1]
        honest_in += run.included[r - 1] - run.attackers_included[r - 1]
    return GateOutcome(honest_sub, malicious_sub, honest_in, malicious_in)


def run(
    out_dir: Path, *, quick: bool, seed: int = 0, config: Config | None = None, command: str | None = None
) -> None:
    """One seed: the attack-free reference, then each attack; appends records, rewrites outputs."""
    cfg = config or (QUICK if quick else Config())
    log = harness.result_log(out_dir, NAME, quick=quick, command=command)
    for attack in (NO_ATTACK, *cfg.attacks):
        spec = federation_spec(out_dir / "work" / f"{attack}-s{seed}", cfg, attack=attack, seed=seed)
        measured = measure_federation(spec, rounds=cfg.rounds, timeout=cfg.round_timeout_s)
        measured = evaluate_aggregates(measured, spec, test_examples=cfg.test_examples)
        attackers = [] if attack == NO_ATTACK else attacker_indices(cfg)
        outcome = gate_outcome(measured, attackers)
        log.append(
            {
                "experiment": NAME,
                "quick": quick,
                "seed": seed,
                "attack": attack,
                "attackers": attackers,
                "config": asdict(cfg),
                "gate": asdict(outcome),
                "precision": outcome.precision,
                "recall": outcome.recall,
                "run": run_record(measured),
            }
        )
    write_outputs(out_dir)


def write_outputs(out_dir: Path) -> str:
    return harness.write_outputs(out_dir, NAME, summary_table, _plot, "anomaly_live.png")


def _final(rec: dict[str, Any], key: str) -> float | None:
    values = rec["run"][key]
    return float(values[-1]) if values and values[-1] is not None else None


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    reference = {int(r["seed"]): r for r in records if r["attack"] == NO_ATTACK}
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(str(rec["attack"]), []).append(rec)
    rows = []
    for attack, recs in sorted(groups.items(), key=lambda kv: (kv[0] != NO_ATTACK, kv[0])):
        deltas = []
        for r in recs:
            ref = reference.get(int(r["seed"]))
            acc, ref_acc = _final(r, "accuracy"), _final(ref, "accuracy") if ref else None
            if acc is not None and ref_acc is not None:
                deltas.append(acc - ref_acc)
        rows.append(
            (
                attack,
                len(recs),
                ",".join(str(s) for s in sorted({int(r["seed"]) for r in recs})),
                f"{recs[0]['config']['peers']} / {len(recs[0]['attackers'])}",
                harness.spread([r["precision"] for r in recs]),
                harness.spread([r["recall"] for r in recs]),
                sum(r["gate"]["malicious_included"] for r in recs),
                sum(r["gate"]["honest_submitted"] - r["gate"]["honest_included"] for r in recs),
                harness.spread([_final(r, "accuracy") for r in recs]),
                harness.spread(deltas) if attack != NO_ATTACK else "-",
                harness.spread([_final(r, "test_loss") for r in recs]),
            )
        )
    header = (
        "attack",
        "runs",
        "seeds",
        "peers / attackers",
        "precision of included sets",
        "recall of honest updates",
        "malicious updates included",
        "honest updates excluded",
        "final accuracy (test)",
        "accuracy vs attack-free",
        "final test loss",
    )
    note = (
        "Cells: median [min-max] over seeds. Precision and recall pool every finalised round of a "
        "run: precision = honest included / included, recall = honest included / honest submitted. "
        "Accuracy vs attack-free: the final aggregate's test accuracy minus that of the attack-free "
        "run of the same seed.\n\n"
    )
    return note + markdown_table(header, rows)


def _plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = sorted({str(r["attack"]) for r in records if r["attack"] != NO_ATTACK})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for offset, (key, label) in enumerate((("precision", "precision"), ("recall", "recall"))):
        values = []
        for attack in attacks:
            vals = [float(r[key]) for r in records if r["attack"] == attack and r[key] is not None]
            values.append(sorted(vals)[len(vals) // 2] if vals else 0.0)
        ax.bar([i + 0.4 * offset for i in range(len(attacks))], values, width=0.4, label=label)
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks([i + 0.2 for i in range(len(attacks))], attacks, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_title("trust gate through real peer processes (median over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    harness.main("bcfl.experiments.anomaly_live", run, argv, quick=QUICK, full=Config())


if __name__ == "__main__":
    main()
