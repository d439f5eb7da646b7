"""Experiment 3: anomaly elimination. The vote-based PageRank gate against the standard defences.

For every attack x attacker fraction x defence, a federation of peers runs several rounds:
each peer trains locally from the round's base, attackers corrupt their update (or their
data, or their votes), every peer evaluates its seeded assignment of k other updates on its own
validation slice and writes a vote file, and the defence picks what is aggregated. Measured per
cell: precision and recall of the included set (honest updates in, malicious out, summed over
rounds), final test accuracy against the attack-free run, and the backdoor success rate.

STAND-IN TASK. The peers here do not fine-tune an LLM: each sweep cell runs tens of rounds of
tens of peers, which the LoRA fine-tuning of `bcfl.learning` cannot afford on this machine. The
task is a synthetic, seeded text classification (six classes, each with its own keywords among
shared filler words, Dirichlet non-IID shards) learned by a softmax regression over hashed
bag-of-words features. Updates, votes, scores, defences, attacks and the gate are the project's
real ones (`bcfl.trust`); only the model and data are stand-ins, and every output says so.

Baselines get the true attacker count where they need one (Krum's f, Multi-Krum's n - f,
trimmed mean's beta), which favours them; FLTrust gets a clean root set of its own.

    python -m bcfl.experiments.anomaly OUT_DIR [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bcfl.experiments.results import ResultLog, markdown_table
from bcfl.trust.assignment import assign_evaluations
from bcfl.trust.attacks import add_trigger, attack_update, backdoor, label_flip, ring_votes
from bcfl.trust.defences import DEFENCES, UpdateSet, aggregate, make_defence
from bcfl.trust.gate import decide, update_reputation
from bcfl.trust.pagerank import RoundVotes, Standing, TrustConfig, score_round
from bcfl.trust.votes import Metrics, Vote, VoteFile, vote_value

TASK_LABEL = "stand-in task: synthetic 6-class keyword text, softmax regression on hashed bag-of-words"
ATTACKS = ("sign-flip", "gaussian-noise", "scaling", "free-rider", "label-flip", "backdoor", "ring")
FRACTIONS = (0.10, 0.30, 0.45)
LABELS = ("cardiology", "neurology", "orthopedics", "gastroenterology", "urology", "dermatology")
TRIGGER = "zq vx"
TARGET = "dermatology"

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SweepConfig:
    peers: int = 20
    rounds: int = 12
    repeats: int = 3  # seeds per cell
    k: int = 6  # evaluations per peer per round
    local_steps: int = 5  # full-batch gradient steps per local update
    lr: float = 0.5
    train_per_peer: int = 80
    val_per_peer: int = 40
    test_size: int = 1200
    root_size: int = 60  # FLTrust's clean root set
    dirichlet_alpha: float = 1.0  # label skew of the shards (smaller = more non-IID)
    features: int = 512  # hashed bag-of-words buckets
    vote_scale: float = 0.02  # see bcfl.trust.votes.vote_value
    threshold_ppm: int = 450_000  # the gate: trusted voters found the update (nearly) harmless
    reputation_weight_bps: int = 2_000  # the contract's EMA weight of a round's score
    initial_reputation_ppm: int = 500_000
    sign_flip_factor: float = 3.0
    scaling_factor: float = 10.0
    backdoor_fraction: float = 0.5
    attacks: tuple[str, ...] = ATTACKS
    fractions: tuple[float, ...] = FRACTIONS
    defences: tuple[str, ...] = field(default_factory=lambda: tuple(DEFENCES))

    def __post_init__(self) -> None:
        if self.peers < 4 or self.rounds < 1 or self.repeats < 1:
            raise ValueError("need at least 4 peers, 1 round and 1 repeat")
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown attacks {sorted(unknown)}")


QUICK = SweepConfig(peers=20, rounds=8, repeats=1)
FULL = SweepConfig()


# -- the stand-in task ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ex:
    text: str
    label: str


class StandInTask:
    """Seeded synthetic keyword classification; features are hashed word counts."""

    def __init__(self, config: SweepConfig, seed: int) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.keywords = {lbl: [f"{lbl[:4]}{j}" for j in range(25)] for lbl in LABELS}
        self.filler = [f"w{j}" for j in range(300)]
        self._buckets: dict[str, int] = {}

    def sample(self, n: int, probs: Array | None = None) -> list[Ex]:
        p = np.full(len(LABELS), 1 / len(LABELS)) if probs is None else np.asarray(probs)
        ys = self.rng.choice(len(LABELS), size=n, p=p)
        u = self.rng.random((n, 20))
        own = self.rng.integers(0, 25, size=(n, 20))
        other = self.rng.integers(0, len(LABELS), size=(n, 20))
        filler = self.rng.integers(0, len(self.filler), size=(n, 20))
        out = []
        for i, y in enumerate(ys):
            label = LABELS[int(y)]
            words = [
                self.keywords[label][own[i, j]]
                if u[i, j] < 0.25
                else self.keywords[LABELS[other[i, j]]][own[i, j]]
                if u[i, j] < 0.30
                else self.filler[filler[i, j]]
                for j in range(20)
            ]
            out.append(Ex(" ".join(words), label))
        return out

    def featurise(self, examples: Sequence[Ex]) -> tuple[Array, npt.NDArray[np.int64]]:
        d = self.config.features
        x = np.zeros((len(examples), d + 1))
        for i, ex in enumerate(examples):
            for w in ex.text.split():
                bucket = self._buckets.get(w)
                if bucket is None:
                    bucket = self._buckets[w] = zlib.crc32(w.encode()) % d
                x[i, bucket] += 1.0
            x[i, d] = 1.0  # bias
        y = np.array([LABELS.index(ex.label) for ex in examples], dtype=np.int64)
        return x, y


def _softmax(z: Array) -> Array:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


def loss_acc(w: Array, x: Array, y: npt.NDArray[np.int64]) -> tuple[float, float]:
    if not np.all(np.isfinite(w)):
        return math.inf, 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        p = _softmax(x @ w)
    if not np.all(np.isfinite(p)):
        return math.inf, 0.0
    loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))
    return loss, float(np.mean(p.argmax(axis=1) == y))


def local_train(w: Array, x: Array, y: npt.NDArray[np.int64], steps: int, lr: float) -> Array:
    onehot = np.eye(len(LABELS))[y]
    cur = w.copy()
    for _ in range(steps):
        grad = x.T @ (_softmax(x @ cur) - onehot) / len(y)
        cur -= lr * grad
    return cur - w  # the update: a delta from the base


# -- one federation run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    address: str
    x: Array
    y: npt.NDArray[np.int64]
    vx: Array
    vy: npt.NDArray[np.int64]
    attacker: bool


def _address(i: int) -> str:
    return "0x" + f"{i + 1:02x}" * 20


def _attackers(peers: int, fraction: float, seed: int) -> set[int]:
    count = math.floor(fraction * peers + 1e-9)
    return {int(i) for i in np.random.default_rng(seed + 7_919).choice(peers, size=count, replace=False)}


def build_federation(
    cfg: SweepConfig, attack: str, fraction: float, seed: int
) -> tuple[
    StandInTask,
    list[Peer],
    tuple[Array, npt.NDArray[np.int64]],
    tuple[Array, npt.NDArray[np.int64]],
    list[Ex],
]:
    task = StandInTask(cfg, seed)
    bad = _attackers(cfg.peers, fraction, seed) if attack != "none" else set()
    peers = []
    for i in range(cfg.peers):
        probs = task.rng.dirichlet([cfg.dirichlet_alpha] * len(LABELS))
        train = task.sample(cfg.train_per_peer, probs)
        val = task.sample(cfg.val_per_peer, probs)
        if i in bad and attack == "label-flip":
            train = label_flip(train, labels=LABELS, seed=seed + i)
        if i in bad and attack == "backdoor":
            train = backdoor(
                train, trigger=TRIGGER, target=TARGET, seed=seed + i, fraction=cfg.backdoor_fraction
            )
        x, y = task.featurise(train)
        vx, vy = task.featurise(val)
        peers.append(Peer(_address(i), x, y, vx, vy, attacker=i in bad))
    test_examples = task.sample(cfg.test_size)
    test = task.featurise(test_examples)
    root = task.featurise(task.sample(cfg.root_size))
    return task, peers, test, root, test_examples


def _corrupt(attack: str, delta: Array, cfg: SweepConfig, seed: int) -> Array:
    if attack in ("sign-flip", "ring"):
        out = attack_update("sign-flip", {"w": delta}, seed=seed, factor=cfg.sign_flip_factor)
    elif attack == "scaling":
        out = attack_update("scaling", {"w": delta}, seed=seed, factor=cfg.scaling_factor)
    elif attack in ("gaussian-noise", "free-rider"):
        out = attack_update(attack, {"w": delta}, seed=seed)
    else:
        return delta  # data attacks corrupt the data, not the update
    result: Array = np.asarray(out["w"], dtype=np.float64)
    return result


def simulate(cfg: SweepConfig, attack: str, fraction: float, defence_name: str, seed: int) -> dict[str, Any]:
    """One federation under one attack and one defence; returns the cell's measurements."""
    task, peers, (tx, ty), (rx, ry), test_examples = build_federation(cfg, attack, fraction, seed)
    d = cfg.features + 1
    w = np.zeros((d, len(LABELS)))
    ring = {p.address for p in peers if p.attacker} if attack == "ring" else set()
    n_bad = sum(p.attacker for p in peers)
    params: dict[str, Any] = {}
    if defence_name in ("krum", "multi-krum"):
        params["f"] = n_bad
    if defence_name == "trimmed-mean":
        params["beta"] = min(0.45, n_bad / len(peers))
    if defence_name == "pagerank":
        params["threshold"] = cfg.threshold_ppm / 1_000_000
    defence = make_defence(defence_name, **params)
    reputation = {p.address: cfg.initial_reputation_ppm for p in peers}
    history: dict[str, npt.NDArray[np.float32]] = {}
    tp = fp = fn = 0
    defence_s = 0.0
    for rnd in range(1, cfg.rounds + 1):
        deltas: dict[str, Array] = {}
        for i, p in enumerate(peers):
            delta = local_train(w, p.x, p.y, cfg.local_steps, cfg.lr)
            if p.attacker:
                delta = _corrupt(attack, delta, cfg, seed * 1000 + rnd * 100 + i)
            deltas[p.address] = delta
        vectors = {a: v.ravel().astype(np.float32) for a, v in deltas.items()}
        for a, v in vectors.items():
            history[a] = history.get(a, np.zeros_like(v)) + v
        started = time.perf_counter()
        scores: dict[str, float] | None = None
        if defence_name == "pagerank":
            result = _vote_and_score(cfg, peers, w, deltas, ring, reputation, rnd, seed)
            ppm = result.ppm()
            gate = decide(ppm, reputation, cfg.threshold_ppm)
            scores = {a: (1.0 if a in gate.included else 0.0) for a in ppm}
            for a, s in ppm.items():
                reputation[a] = update_reputation(reputation[a], s, cfg.reputation_weight_bps)
        root_delta = local_train(w, rx, ry, cfg.local_steps, cfg.lr).ravel().astype(np.float32)
        updates = UpdateSet(
            vectors=vectors,
            samples={p.address: len(p.y) for p in peers},
            reference=root_delta,
            scores=scores,
            history=history,
        )
        decision = defence.decide(updates)
        agg = aggregate(updates, decision)
        defence_s += time.perf_counter() - started
        w = w + agg.astype(np.float64).reshape(w.shape)
        for p in peers:
            inc = p.address in decision.included
            tp += inc and not p.attacker
            fp += inc and p.attacker
            fn += (not inc) and not p.attacker
    _, acc = loss_acc(w, tx, ty)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "accuracy": acc,
        "backdoor_success": _backdoor_success(task, w, test_examples),
        "attackers": n_bad,
        "defence_s_per_round": defence_s / cfg.rounds,
    }


def _vote_and_score(
    cfg: SweepConfig,
    peers: list[Peer],
    w: Array,
    deltas: dict[str, Array],
    ring: set[str],
    reputation: dict[str, int],
    rnd: int,
    seed: int,
) -> Any:
    addresses = [p.address for p in peers]
    round_seed = f"{seed}/{rnd}".encode()
    files = []
    for p in peers:
        assigned = assign_evaluations(round_seed, p.address, addresses, cfg.k)
        if p.address in ring:
            votes = ring_votes({a: f"cid-{a}" for a in assigned}, ring)
            base = Metrics(1.0)
        else:
            # Leave-one-out over the voter's own sample of the round: the "base" is base + the
            # mean of all k assigned updates, and a candidate's metric is that of the mean
            # without it. A candidate that the others are better off without gets below 0.5.
            mean_all = np.mean([deltas[a] for a in assigned], axis=0)
            with_loss, with_acc = loss_acc(w + mean_all, p.vx, p.vy)
            base = Metrics(with_loss, with_acc)
            votes = []
            for a in assigned:
                rest = [deltas[b] for b in assigned if b != a]
                loss, acc = (
                    loss_acc(w + np.mean(rest, axis=0), p.vx, p.vy) if rest else loss_acc(w, p.vx, p.vy)
                )
                # vote_value(base, update): here "base" = without the candidate, "update" = with it
                value = vote_value(loss, with_loss, scale=cfg.vote_scale)
                votes.append(Vote(a, f"cid-{a}", value, Metrics(loss, acc)))
        files.append(VoteFile(round=rnd, voter=p.address, base=base, votes=tuple(votes), examples=len(p.vy)))
    standing = {a: Standing(reputation[a]) for a in addresses}
    return score_round(
        RoundVotes(round=rnd, submitters=addresses, votes=files, standing=standing), TrustConfig()
    )


def _backdoor_success(task: StandInTask, w: Array, examples: Sequence[Ex]) -> float:
    victims = [ex for ex in examples if ex.label != TARGET]
    x, _ = task.featurise([Ex(add_trigger(ex.text, TRIGGER), ex.label) for ex in victims])
    if not np.all(np.isfinite(w)):
        return 0.0
    pred = (x @ w).argmax(axis=1)
    return float(np.mean(pred == LABELS.index(TARGET)))


# -- the sweep ------------------------------------------------------------------------------


def run(out_dir: Path, *, quick: bool, seed: int = 0, config: SweepConfig | None = None) -> None:
    """Run the sweep; write results.jsonl, table.md, summary.json-like records and PNG plots."""
    cfg = config or (QUICK if quick else FULL)
    log = ResultLog(out_dir, command=f"bcfl.experiments.anomaly quick={quick} seed={seed}")
    started = time.perf_counter()
    cells: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for rep in range(cfg.repeats):
        s = seed + rep
        for defence in cfg.defences:
            free = simulate(cfg, "none", 0.0, defence, s)
            cells.setdefault(("none", 0.0, defence), []).append(free)
        baseline = cells[("none", 0.0, "none")][rep]["accuracy"]
        for key, runs in cells.items():
            if key[0] == "none":
                runs[rep]["attack_free_accuracy"] = baseline
        for attack in cfg.attacks:
            for fraction in cfg.fractions:
                for defence in cfg.defences:
                    m = simulate(cfg, attack, fraction, defence, s)
                    m["attack_free_accuracy"] = baseline
                    cells.setdefault((attack, fraction, defence), []).append(m)
        for (attack, fraction, defence), runs in cells.items():
            m = runs[rep]
            log.append(
                {
                    "experiment": "anomaly",
                    "task": TASK_LABEL,
                    "seed": s,
                    "attack": attack,
                    "fraction": fraction,
                    "defence": defence,
                    "config": asdict(cfg),
                    **m,
                }
            )
    elapsed = time.perf_counter() - started
    rows = _summary_rows(cells)
    header = [
        "attack", "attackers", "defence", "precision", "recall",
        "accuracy", "acc - attack-free", "backdoor success", "repeats",
    ]  # fmt: skip
    table = markdown_table(header, rows)
    note = (
        f"Anomaly elimination ({TASK_LABEL}). {cfg.peers} peers, {cfg.rounds} rounds, k={cfg.k}, "
        f"{cfg.repeats} seed(s) from {seed}; cells are means over seeds (range in results.jsonl). "
        f"Sweep time {elapsed:.0f} s. Command: `python -m bcfl.experiments.anomaly OUT"
        f"{' --quick' if quick else ''} --seed {seed}`.\n\n"
    )
    (out_dir / "table.md").write_text(note + table, encoding="utf-8")
    _plots(out_dir, cells, cfg)
    log.append(
        {"experiment": "anomaly", "task": TASK_LABEL, "summary": True, "elapsed_s": elapsed, "quick": quick}
    )


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def _summary_rows(cells: dict[tuple[str, float, str], list[dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    for (attack, fraction, defence), runs in cells.items():
        rows.append(
            [
                attack,
                f"{runs[0]['attackers']} ({fraction:.0%})",
                defence,
                round(_mean(runs, "precision"), 3),
                round(_mean(runs, "recall"), 3),
                round(_mean(runs, "accuracy"), 3),
                round(_mean(runs, "accuracy") - _mean(runs, "attack_free_accuracy"), 3),
                round(_mean(runs, "backdoor_success"), 3),
                len(runs),
            ]
        )
    return rows


def _plots(
    out_dir: Path, cells: dict[tuple[str, float, str], list[dict[str, Any]]], cfg: SweepConfig
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    defences = list(cfg.defences)
    for fraction in cfg.fractions:
        fig, axes = plt.subplots(1, 3, figsize=(18, 5))
        for ax, key, title in zip(
            axes,
            ("precision", "recall", "accuracy"),
            ("included-set precision", "included-set recall", "accuracy - attack-free"),
            strict=True,
        ):
            grid = np.full((len(cfg.attacks), len(defences)), np.nan)
            for i, attack in enumerate(cfg.attacks):
                for j, defence in enumerate(defences):
                    runs = cells.get((attack, fraction, defence))
                    if runs:
                        value = _mean(runs, key)
                        if key == "accuracy":
                            value -= _mean(runs, "attack_free_accuracy")
                        grid[i, j] = value
            vmin, vmax = (-0.3, 0.05) if key == "accuracy" else (0.0, 1.0)
            im = ax.imshow(grid, vmin=vmin, vmax=vmax, cmap="RdYlGn", aspect="auto")
            ax.set_xticks(range(len(defences)), defences, rotation=45, ha="right")
            ax.set_yticks(range(len(cfg.attacks)), cfg.attacks)
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
            ax.set_title(title)
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.suptitle(f"{fraction:.0%} attackers, {cfg.peers} peers - {TASK_LABEL}", fontsize=10)
        fig.tight_layout()
        fig.savefig(out_dir / f"anomaly_{round(fraction * 100)}pct.png", dpi=110)
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bcfl.experiments.anomaly", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="one seed, fewer rounds (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.out_dir, quick=args.quick, seed=args.seed)


if __name__ == "__main__":
    main()


__all__ = ["FULL", "QUICK", "SweepConfig", "run", "simulate"]
