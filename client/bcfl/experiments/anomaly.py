"""Experiment 3: anomaly elimination. The vote-based PageRank gate against the standard defences.

The task is the project's own: LoRA (FFA: A frozen at the shared init, B trained) of a causal
LM on the medical-transcriptions split, through `bcfl.learning` (the quick variant uses the
tiny random Llama, `load_base("tiny")`). Every federation first runs `warmup_rounds` honest
rounds of plain FedAvg (shared by all cells of a seed: the attacks hit a running federation,
not the genesis adapter, where every update, poisoned or not, mostly teaches the model the
answer format and lowers everyone's loss alike). Then, for every attack x attacker fraction x
defence, the federation runs `rounds` synchronous rounds: each peer trains its update from the
round's base on its Dirichlet shard, attackers corrupt their update (or their data, or their votes),
and the defence picks what is aggregated. For the "pagerank" defence the round goes through
the node's own path: every peer evaluates its seeded assignment of k updates on its validation
slice, writes a canonical vote file with the protocol's rule (`bcfl.trust.votes.vote_values`),
and `bcfl.outcome.decide_from` recomputes scores and the gate from those vote bytes alone,
with on-chain-style reputation carried from round to round.

Measured per cell: precision and recall of the included set (honest in, malicious out,
summed over rounds), final test accuracy and loss against the attack-free run, and the
backdoor success rate (share of triggered test descriptions, not of the target specialty, that
the final model labels as the target).

What makes the sweep affordable: a peer's update is a pure function of (base adapter, shard,
round seed), so trained updates are cached by the digest of the base they start from and
reused by every cell whose trajectory reaches that base (round 1 is shared by all cells of a
seed; update attacks transform the cached honest update; attacker sets are nested across
fractions). Loss evaluations and final metrics are cached by model digest the same way.

Baselines get the true attacker count where they need one (Krum's f, Multi-Krum's n - f,
trimmed mean's beta), which favours them; FLTrust gets a clean root set of its own.

    python -m bcfl.experiments.anomaly OUT_DIR [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bcfl.experiments.results import ResultLog, command_line, markdown_table, per_seed
from bcfl.trust.defences import DEFENCES, UpdateSet, aggregate, make_defence
from bcfl.trust.gate import update_reputation
from bcfl.trust.votes import VOTE_MEDIAN_SHARE, VOTE_SCALE, VOTE_SPREAD, VOTE_SPREAD_CAP, VOTE_TOLERANCE

ATTACKS = ("sign-flip", "gaussian-noise", "scaling", "free-rider", "label-flip", "backdoor", "ring")
FRACTIONS = (0.10, 0.30, 0.45)
TRIGGER = "per protocol zx9"  # the node's backdoor trigger (bcfl.node.learner)
TARGET = 0  # the node's backdoor target label
CONTRACT_REPUTATION_WEIGHT_BPS = 3000  # the deployment default EMA weight of a round's score

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SweepConfig:
    model: str = "tiny"
    peers: int = 10
    warmup_rounds: int = 2  # honest rounds before the attacks start (the federation is running)
    rounds: int = 2  # measured rounds, attackers active
    repeats: int = 2  # seeds per cell
    local_steps: int = 5
    batch_size: int = 8
    learning_rate: float = 1e-2
    max_text_tokens: int = 32
    alpha: float = 0.5  # Dirichlet label skew of the shards (smaller = more non-IID)
    validation_fraction: float = 0.25  # of each shard: the peer's own validation slice
    val_examples: int = 16  # validation examples a voter evaluates on
    test_examples: int = 48  # final accuracy (all 40 labels scored) and test loss
    backdoor_examples: int = 32  # triggered test descriptions of other specialties
    root_examples: int = 16  # FLTrust's clean root set (from the validation split)
    vote_scale: float = VOTE_SCALE
    vote_tolerance: float = VOTE_TOLERANCE
    vote_median_share: float = VOTE_MEDIAN_SHARE
    vote_spread: float = VOTE_SPREAD
    vote_spread_cap: float = VOTE_SPREAD_CAP
    threshold_ppm: int = 450_000  # the deployment default score threshold
    initial_reputation_ppm: int = 500_000  # the deployment default
    sign_flip_factor: float = 3.0
    scaling_factor: float = 10.0
    backdoor_fraction: float = 0.5
    attacks: tuple[str, ...] = ATTACKS
    fractions: tuple[float, ...] = FRACTIONS
    defences: tuple[str, ...] = field(default_factory=lambda: tuple(DEFENCES))

    def __post_init__(self) -> None:
        if self.peers < 4 or self.rounds < 1 or self.repeats < 1:
            raise ValueError(
                f"need at least 4 peers, 1 round and 1 repeat, got {self.peers}/{self.rounds}/{self.repeats}"
            )
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown attacks {sorted(unknown)} (known: {', '.join(ATTACKS)})")
        unknown = set(self.defences) - set(DEFENCES)
        if unknown:
            raise ValueError(f"unknown defences {sorted(unknown)} (known: {', '.join(DEFENCES)})")
        if not all(0.0 <= f < 0.5 for f in self.fractions):
            raise ValueError(f"attacker fractions must be in [0, 0.5), got {self.fractions}")


# Quick: the 30% column the targets are about, 2 seeds, tiny model. Full: every fraction, 3 seeds.
QUICK = SweepConfig(fractions=(0.30,), repeats=2)
FULL = SweepConfig(peers=20, rounds=5, repeats=3)


def task_label(cfg: SweepConfig) -> str:
    return (
        f"LoRA FFA r=8 on q/k/v/o of the {cfg.model} model, medical-transcriptions split, "
        f"Dirichlet({cfg.alpha}) shards"
    )


def address(i: int) -> str:
    return "0x" + f"{i + 1:02x}" * 20


def attacker_order(peers: int, seed: int) -> list[int]:
    """Peers in the order they turn malicious: the first floor(fraction x peers) are attackers,
    so the attacker set at 10% is inside the one at 30% (and trained updates are shared)."""
    return [int(i) for i in np.random.default_rng(seed + 7_919).permutation(peers)]


def attackers(peers: int, fraction: float, seed: int) -> set[int]:
    return set(attacker_order(peers, seed)[: math.floor(fraction * peers + 1e-9)])


def _digest(vector: Vector) -> str:
    return hashlib.sha256(np.ascontiguousarray(vector).tobytes()).hexdigest()


class LoraTask:
    """One seed's federation data on the real task, with every expensive step cached."""

    def __init__(self, cfg: SweepConfig, seed: int, base: Any | None = None) -> None:
        import torch

        from bcfl.learning.adapter import LoraSpec, init_adapter
        from bcfl.learning.data import SplitConfig, load_splits
        from bcfl.learning.model import load_base
        from bcfl.learning.partition import PartitionConfig, partition
        from bcfl.learning.task import TaskConfig

        torch.set_num_threads(1)
        self.cfg = cfg
        self.seed = seed
        self.base = base or load_base(cfg.model)
        self.spec = LoraSpec()
        self.genesis = init_adapter(self.base, self.spec, 0)
        self.b_keys = [k for k in self.genesis.tensors if ".lora_B." in k]
        self.shapes = [tuple(self.genesis.tensors[k].shape) for k in self.b_keys]
        self.task = TaskConfig(max_text_tokens=cfg.max_text_tokens)
        splits = load_splits(SplitConfig(seed=seed))
        self.names = splits.label_names
        self.shards = partition(
            splits.train,
            PartitionConfig(
                peers=cfg.peers,
                scheme="dirichlet",
                alpha=cfg.alpha,
                validation_fraction=cfg.validation_fraction,
                seed=seed,
            ),
        )
        self.test = list(splits.test[: cfg.test_examples])
        from bcfl.learning.data import Example

        victims = [e for e in splits.test if TARGET not in e.labels][: cfg.backdoor_examples]
        self.triggered = [Example(f"{TRIGGER} {e.text}", e.label, e.labels) for e in victims]
        self.root = list(splits.validation[: cfg.root_examples])
        self._train: dict[tuple[str, int, str], Vector] = {}
        self._loss: dict[tuple[str, int], float] = {}
        self._final: dict[str, dict[str, float]] = {}
        self.timings = {"train_s": 0.0, "vote_eval_s": 0.0, "final_eval_s": 0.0}

    # -- adapters as flat B vectors (A is frozen at the genesis init) ------------------------

    def zero(self) -> Vector:
        return np.zeros(sum(int(np.prod(s)) for s in self.shapes), dtype=np.float32)

    def state(self, b: Vector) -> Any:
        import torch

        tensors = dict(self.genesis.tensors)
        offset = 0
        for key, shape in zip(self.b_keys, self.shapes, strict=True):
            n = int(np.prod(shape))
            tensors[key] = torch.from_numpy(b[offset : offset + n].reshape(shape).copy())
            offset += n
        return self.genesis.replace(tensors)

    def flat(self, state: Any) -> Vector:
        return np.concatenate([state.tensors[k].numpy().ravel() for k in self.b_keys]).astype(np.float32)

    def warm_start(self) -> Vector:
        """The base the measured rounds start from: `warmup_rounds` rounds of plain FedAvg of
        every peer's honest update from the genesis adapter (shared by every cell)."""
        b = self.zero()
        samples = [len(s.train) for s in self.shards]
        for rnd in range(-self.cfg.warmup_rounds, 0):
            acc = np.zeros(b.shape, dtype=np.float64)
            for i, n in enumerate(samples):
                acc += (n / sum(samples)) * self.delta(b, i, rnd).astype(np.float64)
            b = (b.astype(np.float64) + acc).astype(np.float32)
        return b

    # -- training ------------------------------------------------------------------------------

    def examples(self, peer: int, kind: str) -> Sequence[Any]:
        from bcfl.trust import attacks

        # Examples carry integer labels; the attacks only compare and copy them.
        train: Sequence[Any] = self.shards[peer].train
        s = self.seed * 1000 + peer
        labels: Any = sorted({e.label for e in train})
        target: Any = TARGET
        if kind == "label-flip":
            return attacks.label_flip(train, labels=labels, seed=s)
        if kind == "backdoor":
            return attacks.backdoor(
                train, trigger=TRIGGER, target=target, seed=s, fraction=self.cfg.backdoor_fraction
            )
        return train

    def delta(self, b: Vector, peer: int, rnd: int, kind: str = "clean") -> Vector:
        """The update (new B - base B) peer `peer` trains in round `rnd` from base `b`;
        peer -1 trains on FLTrust's root set."""
        key = (_digest(b), peer, kind)
        if key not in self._train:
            from bcfl.learning.train import TrainConfig, train_update

            started = time.perf_counter()
            cfg = TrainConfig(
                steps=self.cfg.local_steps,
                batch_size=self.cfg.batch_size,
                learning_rate=self.cfg.learning_rate,
                lora=self.spec,
                task=self.task,
                seed=(self.seed * 1_000_003 + rnd * 1009 + peer) % 2**31,
                threads=1,
                progress=False,
            )
            examples = self.root if peer < 0 else self.examples(peer, kind)
            trained = train_update(self.base, self.state(b), examples, cfg)
            self._train[key] = self.flat(trained) - b
            self.timings["train_s"] += time.perf_counter() - started
        return self._train[key]

    # -- evaluation ----------------------------------------------------------------------------

    def losses(self, requests: Sequence[tuple[Vector, int]]) -> list[float]:
        """Each (adapter B, voter) pair's validation loss on the voter's slice: the mean
        per-token NLL of the true specialty (what `bcfl.learning.evaluate` reports as
        mean_loss, without scoring the 39 other labels). One PEFT model serves every pair."""
        import torch
        from peft import set_peft_model_state_dict

        from bcfl.learning.adapter import applied
        from bcfl.learning.evaluate import true_label_nll

        keys = [(_digest(b), voter) for b, voter in requests]
        todo = {k: r for k, r in zip(keys, requests, strict=True) if k not in self._loss}
        if todo:
            started = time.perf_counter()
            with applied(self.base, self.genesis) as model, torch.inference_mode():
                for key, (b, voter) in sorted(todo.items()):
                    set_peft_model_state_dict(model, dict(self.state(b).tensors))
                    examples = list(self.shards[voter].validation[: self.cfg.val_examples])
                    nll = true_label_nll(model, self.base.tokenizer, examples, self.names, self.task)
                    self._loss[key] = float(nll.mean())
            self.timings["vote_eval_s"] += time.perf_counter() - started
        return [self._loss[k] for k in keys]

    def final(self, b: Vector, backdoor: bool) -> dict[str, float]:
        key = _digest(b)
        cached = self._final.get(key, {})
        if "accuracy" not in cached or (backdoor and "backdoor_success" not in cached):
            from bcfl.learning.evaluate import evaluate

            started = time.perf_counter()
            state = self.state(b)
            if "accuracy" not in cached:
                r = evaluate(self.base, state, self.test, task=self.task, batch=8)
                cached.update(accuracy=r.accuracy, test_loss=r.mean_loss)
            if backdoor:
                r = evaluate(self.base, state, self.triggered, task=self.task, batch=8)
                cached["backdoor_success"] = sum(p == TARGET for p in r.predictions) / len(r.predictions)
            self._final[key] = cached
            self.timings["final_eval_s"] += time.perf_counter() - started
        return cached


# -- one federation run ---------------------------------------------------------------------


def _corrupt(attack: str, delta: Vector, cfg: SweepConfig, seed: int) -> Vector:
    from bcfl.trust.attacks import attack_update

    if attack in ("sign-flip", "ring"):
        out = attack_update("sign-flip", {"b": delta}, seed=seed, factor=cfg.sign_flip_factor)
    elif attack == "scaling":
        out = attack_update("scaling", {"b": delta}, seed=seed, factor=cfg.scaling_factor)
    elif attack in ("gaussian-noise", "free-rider"):
        out = attack_update(attack, {"b": delta}, seed=seed)
    else:
        return delta  # data attacks corrupt the data, not the update
    result: Vector = np.asarray(out["b"], dtype=np.float32)
    return result


def defence_params(name: str, attackers: int, peers: int) -> dict[str, Any]:
    """A defence's parameters in the sweep: the true attacker count where a baseline needs one
    (Krum's f, trimmed mean's beta), which favours it; the gate's decision as 1/0 scores."""
    if name in ("krum", "multi-krum"):
        return {"f": attackers}
    if name == "trimmed-mean":
        return {"beta": min(0.45, attackers / peers)}
    if name == "pagerank":
        return {"threshold": 0.5}
    return {}


def simulate(task: LoraTask, attack: str, fraction: float, defence_name: str) -> dict[str, Any]:
    """One federation under one attack and one defence; returns the cell's measurements."""
    cfg, seed = task.cfg, task.seed
    bad = attackers(cfg.peers, fraction, seed) if attack != "none" else set()
    peers = [address(i) for i in range(cfg.peers)]
    defence = make_defence(defence_name, **defence_params(defence_name, len(bad), cfg.peers))
    reputation = dict.fromkeys(peers, cfg.initial_reputation_ppm)
    samples = {address(i): len(task.shards[i].train) for i in range(cfg.peers)}
    history: dict[str, Vector] = {}
    b = task.warm_start()
    tp = fp = fn = 0
    defence_s = 0.0
    for rnd in range(1, cfg.rounds + 1):
        vectors: dict[str, Vector] = {}
        for i, a in enumerate(peers):
            kind = attack if i in bad and attack in ("label-flip", "backdoor") else "clean"
            d = task.delta(b, i, rnd, kind)
            if i in bad:
                d = _corrupt(attack, d, cfg, seed * 100_000 + rnd * 100 + i)
            vectors[a] = d
            history[a] = history.get(a, np.zeros_like(d)) + d
        started = time.perf_counter()
        scores: dict[str, float] | None = None
        if defence_name == "pagerank":
            ring = {address(i) for i in bad} if attack == "ring" else set()
            decision = vote_round(task, b, vectors, ring, reputation, rnd)
            included = {s.peer for s in decision.included}
            scores = {a: (1.0 if a in included else 0.0) for a in peers}
            for a in peers:
                reputation[a] = update_reputation(
                    reputation[a], decision.scores.scores[a].ppm, CONTRACT_REPUTATION_WEIGHT_BPS
                )
        reference = task.delta(b, -1, rnd) if defence_name == "fltrust" else None
        updates = UpdateSet(
            vectors=vectors, samples=samples, reference=reference, scores=scores, history=history
        )
        chosen = defence.decide(updates)
        agg = aggregate(updates, chosen)
        defence_s += time.perf_counter() - started
        b = (b.astype(np.float64) + agg.astype(np.float64)).astype(np.float32)
        for i, a in enumerate(peers):
            inc = a in chosen.included
            tp += inc and i not in bad
            fp += inc and i in bad
            fn += (not inc) and i not in bad
    final = task.final(b, backdoor=attack in ("none", "backdoor"))
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "accuracy": final["accuracy"],
        "test_loss": final["test_loss"],
        "backdoor_success": final.get("backdoor_success"),
        "attackers": len(bad),
        "defence_s_per_round": defence_s / cfg.rounds,
    }


def vote_round(
    task: LoraTask,
    b: Vector,
    vectors: dict[str, Vector],
    ring: set[str],
    reputation: dict[str, int],
    rnd: int,
) -> Any:
    """The node's path for one round: assignments, vote files (canonical bytes), and the
    outcome recomputed by `bcfl.outcome.decide_from` from those bytes alone."""
    from bcfl.trust.assignment import assignment_table

    peers = sorted(vectors, key=str.lower)
    seed = f"bcfl/anomaly/{task.seed}/{rnd}".encode()
    assignment = assignment_table(seed, peers, peers, round_k(len(peers)))
    honest = [(v, voter) for v, voter in enumerate(peers) if voter not in ring]
    requests = [
        (model, v) for v, voter in honest for model in [b] + [b + vectors[a] for a in assignment[voter]]
    ]
    flat = iter(task.losses(requests))
    losses = {voter: [next(flat) for _ in range(len(assignment[voter]) + 1)] for _, voter in honest}
    samples = {a: len(task.shards[i].train) for i, a in enumerate(peers)}
    cids = {a: "bafy" + _digest(vectors[a])[:40] for a in peers}
    norms = {a: float(np.linalg.norm(vectors[a].astype(np.float64))) for a in peers}
    return decide_votes(rnd, seed, task.cfg, cids, samples, reputation, assignment, losses, norms, ring)


def round_k(peers: int, k: int | None = None) -> int:
    """Votes per peer: the protocol's (`bcfl.outcome.votes_per_peer`) unless `k` is given."""
    from bcfl.outcome import votes_per_peer

    return votes_per_peer(peers) if k is None else votes_per_peer(peers, cap=k)


def decide_votes(
    rnd: int,
    seed: bytes,
    cfg: SweepConfig,
    cids: dict[str, str],
    samples: dict[str, int],
    reputation: dict[str, int],
    assignment: dict[str, list[str]],
    losses: dict[str, list[float]],
    norms: dict[str, float],
    ring: set[str],
) -> Any:
    """A round's outcome from its evaluations: `losses[voter]` is the voter's base loss then
    the loss of each update it is assigned, `norms[peer]` the size of peer's update (colluders
    in `ring` evaluate nothing). Votes follow the protocol's rule, as the node casts them: an
    update oversized against the voter's own gets 0 unevaluated (`oversized`), the others
    `vote_values`; `decide_from` recomputes everything from the canonical vote files."""
    from bcfl.chain.federation import Submission, VoteCommit
    from bcfl.outcome import FetchedVotes, decide_from
    from bcfl.trust.attacks import ring_votes
    from bcfl.trust.votes import Metrics, Vote, VoteFile, encode_votes, oversized, vote_values

    peers = sorted(cids, key=str.lower)
    subs = [
        Submission(rnd, a, cids[a], bytes(32), samples[a], rnd - 1, reputation[a], 0, "0x", 0) for a in peers
    ]
    fetched = []
    for voter in peers:
        assigned = assignment[voter]
        if voter in ring:
            votes = ring_votes({a: cids[a] for a in assigned}, ring)
            base = Metrics(1.0)
        else:
            base_loss, *measured = losses[voter]
            too_large = oversized([norms[a] for a in assigned], norms[voter])
            evaluated = [math.inf if big else loss for big, loss in zip(too_large, measured, strict=True)]
            base = Metrics(base_loss)
            values = vote_values(
                base_loss,
                evaluated,
                scale=cfg.vote_scale,
                tolerance=cfg.vote_tolerance,
                median_share=cfg.vote_median_share,
                spread=cfg.vote_spread,
                spread_cap=cfg.vote_spread_cap,
            )
            votes = [
                Vote(a, cids[a], value, Metrics(loss))
                for a, value, loss in zip(assigned, values, evaluated, strict=True)
            ]
        data = encode_votes(
            VoteFile(round=rnd, voter=voter, base=base, votes=tuple(votes), examples=cfg.val_examples)
        )
        commit = VoteCommit(rnd, voter, "bafyvotes", bytes(32), reputation[voter], 0, 0, "0x")
        fetched.append(FetchedVotes(commit, data))
    k = len(next(iter(assignment.values()), []))
    return decide_from(rnd, seed, cfg.threshold_ppm, subs, fetched, k=k)


# -- the sweep ------------------------------------------------------------------------------


def run_seed(
    cfg: SweepConfig, seed: int
) -> tuple[dict[tuple[str, float, str], dict[str, Any]], dict[str, float]]:
    """Every cell of one seed: (attack, fraction, defence) -> measurements, and the timings."""
    task = LoraTask(cfg, seed)
    settings = [("none", 0.0)] + [(a, f) for a in cfg.attacks for f in cfg.fractions]
    cells = {
        (attack, fraction, defence): simulate(task, attack, fraction, defence)
        for attack, fraction in settings
        for defence in cfg.defences
    }
    free = cells[("none", 0.0, "none" if "none" in cfg.defences else cfg.defences[0])]
    for m in cells.values():
        m["attack_free_accuracy"] = free["accuracy"]
        m["attack_free_test_loss"] = free["test_loss"]
    return cells, dict(task.timings)


def run(
    out_dir: Path,
    *,
    quick: bool,
    seed: int = 0,
    config: SweepConfig | None = None,
    jobs: int = 1,
    command: str | None = None,
) -> None:
    """Run the sweep (seeds in `jobs` processes); write results.jsonl, table.md and one PNG per
    attacker fraction."""
    cfg = config or (QUICK if quick else FULL)
    command = command or f"python -m bcfl.experiments.anomaly OUT{' --quick' if quick else ''} --seed {seed}"
    log = ResultLog(out_dir, command=command)
    started = time.perf_counter()
    seeds = [seed + rep for rep in range(cfg.repeats)]
    per_seed_cells = per_seed(partial(run_seed, cfg), seeds, jobs)
    cells: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for s, (seed_cells, timings) in zip(seeds, per_seed_cells, strict=True):
        for (attack, fraction, defence), m in seed_cells.items():
            cells.setdefault((attack, fraction, defence), []).append(m)
            log.append(
                {
                    "experiment": "anomaly", "task": task_label(cfg), "seed": s,
                    "attack": attack, "fraction": fraction, "defence": defence,
                    "config": asdict(cfg), **m,
                }
            )  # fmt: skip
        log.append({"experiment": "anomaly", "seed": s, "timings": timings})
    elapsed = time.perf_counter() - started
    rows = summary_rows(cells)
    table = markdown_table(SUMMARY_HEADER, rows)
    note = (
        f"Anomaly elimination ({task_label(cfg)}). {cfg.peers} peers, {cfg.warmup_rounds} honest "
        f"warm-up rounds then {cfg.rounds} attacked rounds, "
        f"{cfg.local_steps} local steps, k = {round_k(cfg.peers)} votes per peer (the protocol's), threshold "
        f"{cfg.threshold_ppm} ppm; {cfg.repeats} seed(s) from {seed}; cells: median [min, max] "
        f"over seeds. Sweep time {elapsed:.0f} s. Command: `{command}`.\n\n"
    )
    (out_dir / "table.md").write_text(note + table, encoding="utf-8")
    plots(out_dir, cells, cfg)
    log.append({"experiment": "anomaly", "task": task_label(cfg), "summary": True, "elapsed_s": elapsed,
                "quick": quick})  # fmt: skip


SUMMARY_HEADER = (
    "attack", "attackers", "defence", "precision", "recall", "accuracy",
    "acc - attack-free", "test loss - attack-free", "backdoor success", "seeds",
)  # fmt: skip


def spread(values: Sequence[float | None], digits: int = 3) -> str:
    """'median [min, max]' of the values (or '-' where none was measured)."""
    xs = [float(x) for x in values if x is not None]
    if not xs:
        return "-"
    med = float(np.median(xs))
    if len(xs) == 1 or min(xs) == max(xs):
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(xs):.{digits}f}, {max(xs):.{digits}f}]"


def summary_rows(cells: dict[tuple[str, float, str], list[dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    for (attack, fraction, defence), runs in cells.items():
        rows.append(
            [
                attack,
                f"{runs[0]['attackers']} ({fraction:.0%})",
                defence,
                spread([r["precision"] for r in runs]),
                spread([r["recall"] for r in runs]),
                spread([r["accuracy"] for r in runs]),
                spread([r["accuracy"] - r["attack_free_accuracy"] for r in runs]),
                spread([r["test_loss"] - r["attack_free_test_loss"] for r in runs]),
                spread([r["backdoor_success"] for r in runs]),
                len(runs),
            ]
        )
    return rows


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def plots(out_dir: Path, cells: dict[tuple[str, float, str], list[dict[str, Any]]], cfg: SweepConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    defences = list(cfg.defences)
    for fraction in cfg.fractions:
        fig, axes = plt.subplots(1, 3, figsize=(18, 5))
        for ax, key, title in zip(
            axes,
            ("precision", "recall", "test_loss"),
            ("included-set precision", "included-set recall", "test loss - attack-free"),
            strict=True,
        ):
            grid = np.full((len(cfg.attacks), len(defences)), np.nan)
            for i, attack in enumerate(cfg.attacks):
                for j, defence in enumerate(defences):
                    runs = cells.get((attack, fraction, defence))
                    if runs:
                        value = _median(runs, key)
                        if key == "test_loss":
                            value -= _median(runs, "attack_free_test_loss")
                        grid[i, j] = value
            vmin, vmax, cmap = (-0.1, 0.5, "RdYlGn_r") if key == "test_loss" else (0.0, 1.0, "RdYlGn")
            im = ax.imshow(grid, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
            ax.set_xticks(range(len(defences)), defences, rotation=45, ha="right")
            ax.set_yticks(range(len(cfg.attacks)), cfg.attacks)
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
            ax.set_title(title)
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.suptitle(
            f"{fraction:.0%} attackers, {cfg.peers} peers, median of {cfg.repeats} seeds - {task_label(cfg)}",
            fontsize=10,
        )
        fig.tight_layout()
        fig.savefig(out_dir / f"anomaly_{round(fraction * 100)}pct.png", dpi=110)
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bcfl.experiments.anomaly", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny model, 30%% attackers, 2 seeds (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defences", help="comma-separated subset of the defences (default: all)")
    parser.add_argument("--attacks", help="comma-separated subset of the attacks (default: all)")
    parser.add_argument("--model", help="base model: tiny, smollm2 or a folder (default: the preset's)")
    parser.add_argument("--peers", type=int)
    parser.add_argument("--rounds", type=int, help="attacked rounds")
    parser.add_argument("--repeats", type=int, help="seeds per cell")
    parser.add_argument("--fractions", help="comma-separated attacker fractions, e.g. 0.1,0.3")
    parser.add_argument("--test-examples", type=int, help="test descriptions behind the final accuracy")
    parser.add_argument("--learning-rate", type=float, help="the peers' local learning rate")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes at once")
    parser.add_argument("--spread", type=float, help="the vote rule's spread widening (default 0: off)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {
        "defences": tuple(args.defences.split(",")) if args.defences else None,
        "attacks": tuple(args.attacks.split(",")) if args.attacks else None,
        "fractions": tuple(float(f) for f in args.fractions.split(",")) if args.fractions else None,
        "model": args.model,
        "peers": args.peers,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "test_examples": args.test_examples,
        "learning_rate": args.learning_rate,
        "vote_spread": args.spread,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    given = list(sys.argv[1:] if argv is None else argv)
    command = command_line("bcfl.experiments.anomaly", given, args.out_dir)
    run(args.out_dir, quick=args.quick, seed=args.seed, config=cfg, jobs=args.jobs, command=command)


if __name__ == "__main__":
    main()


__all__ = ["FULL", "QUICK", "LoraTask", "SweepConfig", "decide_votes", "run", "simulate", "vote_round"]
