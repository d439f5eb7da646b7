"""Gate replay: the trust gate's included-set precision and recall over many rounds' worth of
evaluation assignments, replayed from one full matrix of real evaluations per seed.

Per seed, the anomaly sweep's federation (`bcfl.experiments.anomaly.LoraTask`: the real LoRA
task, Dirichlet shards) runs its honest warm-up, every peer trains its update of the first
attacked round, and the attackers' updates under every attack are made as the sweep makes
them (data attacks retrain on poisoned data, update attacks transform the honest update).
Then every peer evaluates every update on its own validation slice: the loss matrix, the
expensive part, saved as `matrix-seedN.json` and reused when present.

The protocol's round is then replayed from the matrix for `--draws` assignment seeds and each
`--k`: a voter sees only the losses of the updates it is assigned, votes with the protocol's
rule, and `bcfl.outcome.decide_from` decides from the canonical vote files, exactly as in the
sweep's rounds (fresh reputation: one round, no history). Why: the sweep's cells rest on 10
peers x 1-2 rounds x 2 seeds, so one unlucky assignment moves a cell by 0.1; hundreds of
assignments over the same real evaluations measure the gate's rates tightly and show what
more votes per peer buy.

    python -m bcfl.experiments.gate_replay OUT_DIR [--model tiny|smollm2] [--seeds 0,1]
        [--k 3,5] [--draws 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bcfl.experiments.anomaly import (
    ATTACKS,
    QUICK,
    SweepConfig,
    address,
    attackers,
    decide_votes,
    defence_params,
    round_k,
)
from bcfl.experiments.results import ResultLog, command_line, markdown_table, per_seed
from bcfl.trust.defences import DEFENCES, UpdateSet, make_defence

Vector = npt.NDArray[np.float32]
UPDATE_ATTACKS = ("sign-flip", "gaussian-noise", "scaling", "free-rider")
DATA_ATTACKS = ("label-flip", "backdoor")
BASELINES = tuple(d for d in DEFENCES if d != "pagerank")


def submitted(attack: str) -> str:
    """The kind of update an attacker submits under `attack` (the ring submits sign-flipped ones)."""
    return "sign-flip" if attack == "ring" else attack


@dataclass(frozen=True)
class LossMatrix:
    """Every peer's validation loss of the base and of every update of one attacked round."""

    seed: int
    bad: list[int]  # the attacking peers (30%: the sweep's attacker order)
    names: list[str]  # update names: "honest/i", "<attack>/i" for each attacker i
    base: list[float]  # base[v]: voter v's loss of the round's base
    loss: list[list[float]]  # loss[v][u]: voter v's loss of base + update u
    norms: list[float]  # norms[u]: the L2 norm of update u
    samples: list[int]  # training examples per peer

    def has(self, attack: str) -> bool:
        """Whether the matrix holds the updates replaying `attack` needs."""
        return attack == "none" or any(n.startswith(f"{submitted(attack)}/") for n in self.names)

    def roles(self, attack: str) -> tuple[list[str], set[str]]:
        """The round's peer addresses, and those that attack under `attack`."""
        peers = [address(i) for i in range(len(self.base))]
        return peers, ({peers[i] for i in self.bad} if attack != "none" else set())

    def column(self, attack: str, peer: int) -> int:
        """The update peer `peer` submits under `attack` (the ring submits sign-flipped ones)."""
        if peer not in self.bad or attack == "none":
            return self.names.index(f"honest/{peer}")
        return self.names.index(f"{submitted(attack)}/{peer}")


# What the trained updates depend on: a saved set of updates is reused only if these match.
# The update attacks (sign flip, scaling, ...) are recomputed from the honest updates on every
# load, so their factors decide the matrix but not the training.
TRAINING_FIELDS = (
    "model", "peers", "warmup_rounds", "local_steps", "batch_size", "learning_rate", "max_text_tokens",
    "alpha", "validation_fraction", "backdoor_fraction",
)  # fmt: skip
UPDATE_ATTACK_FIELDS = ("sign_flip_factor", "scaling_factor")


MATRIX_FIELDS = (*TRAINING_FIELDS, *UPDATE_ATTACK_FIELDS, "val_examples")
ROOT_FIELDS = (*TRAINING_FIELDS, "root_examples")  # and the base it starts from


def attack_kinds(attacks: Sequence[str]) -> tuple[list[str], list[str]]:
    """The (data, update) attacks whose updates replaying `attacks` needs, in the sweep's order."""
    wanted = {submitted(a) for a in attacks}
    return [k for k in DATA_ATTACKS if k in wanted], [k for k in UPDATE_ATTACKS if k in wanted]


def saved_training(raw: str) -> tuple[dict[str, Any], list[str]]:
    """A saved update set's training settings and the kinds of update it holds, read alike from
    files that predate the update attacks' recomputation (their factors are ignored)."""
    settings = json.loads(raw)
    for name in UPDATE_ATTACK_FIELDS:
        settings.pop(name, None)
    kinds = settings.pop("kinds", [*DATA_ATTACKS, *UPDATE_ATTACKS])
    return settings, kinds


def train_updates(
    cfg: SweepConfig, seed: int, fraction: float, task: Any | None, cache: Path | None = None
) -> tuple[Vector, dict[str, Vector]]:
    """The round's base (after the warm-up) and every update of the attacked round that
    `cfg.attacks` needs, by name. The honest and data-attacked updates are trained, or loaded
    from `cache` (an .npz) when it holds them for the same training settings; the update attacks
    are the sweep's corruptions of the attackers' honest updates, made here with `cfg`'s factors."""
    from bcfl.experiments.anomaly import _corrupt

    data_kinds, update_kinds = attack_kinds(cfg.attacks)
    trained: dict[str, Any] = {
        "seed": seed,
        "fraction": fraction,
        **{f: getattr(cfg, f) for f in TRAINING_FIELDS},
    }
    loaded = None
    if cache is not None and cache.exists():
        with np.load(cache) as saved:
            settings, kinds = saved_training(str(saved["settings"]))
            if settings == trained and set(data_kinds) <= set(kinds):
                names = [str(n) for n in saved["names"]]
                loaded = saved["base"], {n: saved[f"update{i}"] for i, n in enumerate(names)}
    bad = sorted(attackers(cfg.peers, fraction, seed))
    if loaded is not None:
        b, stored = loaded
        keep = [f"honest/{i}" for i in range(cfg.peers)] + [f"{k}/{i}" for i in bad for k in data_kinds]
        updates = {n: stored[n] for n in keep}
    else:
        if task is None:  # nothing saved for these settings: train them
            from bcfl.experiments.anomaly import LoraTask

            task = LoraTask(cfg, seed)
        b = task.warm_start()
        updates = {f"honest/{i}": task.delta(b, i, 1) for i in range(cfg.peers)}
        for i in bad:
            for kind in data_kinds:
                updates[f"{kind}/{i}"] = task.delta(b, i, 1, kind)
        if cache is not None:
            arrays: dict[str, Any] = {f"update{i}": v for i, v in enumerate(updates.values())}
            settings_json = json.dumps({**trained, "kinds": data_kinds})
            arrays |= {"settings": np.array(settings_json), "names": np.array(list(updates)), "base": b}
            np.savez(cache, **arrays)
    for i in bad:
        for kind in update_kinds:  # the sweep's own corruption of round 1's update
            updates[f"{kind}/{i}"] = _corrupt(kind, updates[f"honest/{i}"], cfg, seed * 100_000 + 100 + i)
    return b, _in_sweep_order(updates, cfg.peers, bad, data_kinds + update_kinds)


def _in_sweep_order(
    updates: dict[str, Vector], peers: int, bad: list[int], kinds: list[str]
) -> dict[str, Vector]:
    """Honest updates by peer, then each attacker's updates by kind: the matrix's column order."""
    names = [f"honest/{i}" for i in range(peers)] + [f"{k}/{i}" for i in bad for k in kinds]
    return {n: updates[n] for n in names}


def build_matrix(cfg: SweepConfig, seed: int, fraction: float, cache: Path | None = None) -> LossMatrix:
    """Train (or load from `cache`) the round's updates and evaluate every one on every
    peer's validation slice."""
    from bcfl.experiments.anomaly import LoraTask

    task = LoraTask(cfg, seed)
    b, updates = train_updates(cfg, seed, fraction, task, cache)
    names = list(updates)
    voters = range(cfg.peers)
    base = task.losses([(b, v) for v in voters])
    flat = task.losses([(b + updates[n], v) for v in voters for n in names])
    loss = [flat[v * len(names) : (v + 1) * len(names)] for v in voters]
    norms = [float(np.linalg.norm(updates[n].astype(np.float64))) for n in names]
    bad = sorted(attackers(cfg.peers, fraction, seed))
    return LossMatrix(seed, bad, names, base, loss, norms, [len(s.train) for s in task.shards])


def load_or_build(out_dir: Path, cfg: SweepConfig, seed: int, fraction: float) -> LossMatrix:
    """The seed's matrix from `out_dir` if it was built with the same settings, else built
    (reusing the seed's saved updates, `updates-seedN.npz`, when their training matches)."""
    path = out_dir / f"matrix-seed{seed}.json"
    settings = json.loads(json.dumps({"config": asdict(cfg), "fraction": fraction}))  # as saved
    if path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
        saved, wanted = doc.get("config", {}), settings["config"]
        # The vote rule's settings are replayed, not measured: only these decide the matrix.
        same = doc.get("fraction") == fraction and all(saved.get(f) == wanted[f] for f in MATRIX_FIELDS)
        matrix = LossMatrix(**doc["matrix"]) if same else None
        if matrix is not None and all(matrix.has(a) for a in cfg.attacks):
            return matrix
    out_dir.mkdir(parents=True, exist_ok=True)
    matrix = build_matrix(cfg, seed, fraction, out_dir / f"updates-seed{seed}.npz")
    path.write_text(json.dumps({**settings, "matrix": asdict(matrix)}), encoding="utf-8")
    return matrix


def replay(matrix: LossMatrix, cfg: SweepConfig, attack: str, draw: int, k: int) -> tuple[int, int, int]:
    """One round of the gate over the matrix: (true positives, false positives, false
    negatives) of the included set, for the assignment seeded by `draw`."""
    from bcfl.trust.assignment import assignment_table

    n = len(matrix.base)
    peers, bad = matrix.roles(attack)
    column = {peers[i]: matrix.column(attack, i) for i in range(n)}
    ring = bad if attack == "ring" else set()
    seed = f"bcfl/gate-replay/{matrix.seed}/{draw}".encode()
    assignment = assignment_table(seed, peers, peers, round_k(n, k))
    losses = {
        voter: [matrix.base[v]] + [matrix.loss[v][column[a]] for a in assignment[voter]]
        for v, voter in enumerate(peers)
        if voter not in ring
    }
    decision = decide_votes(
        1,
        seed,
        cfg,
        {a: f"bafy{column[a]:04d}" for a in peers},
        {a: matrix.samples[i] for i, a in enumerate(peers)},
        dict.fromkeys(peers, cfg.initial_reputation_ppm),
        assignment,
        losses,
        {a: matrix.norms[column[a]] for a in peers},
        ring,
    )
    return verdict({s.peer for s in decision.included}, peers, bad)


def verdict(included: set[str] | frozenset[str], peers: Sequence[str], bad: set[str]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of an included set: honest in, bad out."""
    honest = set(peers) - bad
    return len(included & honest), len(included & bad), len(honest - included)


def loss_changes(matrix: LossMatrix) -> dict[str, list[float]]:
    """What the voters saw: per kind of update ("honest", or the attack), each update's median
    over the other voters of its relative loss change (L - L0) / L0, in the matrix's order."""
    out: dict[str, list[float]] = {}
    for u, name in enumerate(matrix.names):
        kind, peer = name.split("/")
        changes = [
            (matrix.loss[v][u] - matrix.base[v]) / matrix.base[v]
            for v in range(len(matrix.base))
            if v != int(peer)
        ]
        out.setdefault(kind, []).append(float(np.median(changes)))
    return out


def update_shapes(matrix: LossMatrix, updates: dict[str, Vector]) -> dict[str, dict[str, list[float]]]:
    """What the update-based defences see: per kind of update, each update's L2 norm and its
    median cosine similarity to the other peers' honest updates, in the matrix's order."""
    flat = {n: updates[n].astype(np.float64).ravel() for n in matrix.names}
    norm = dict(zip(matrix.names, matrix.norms, strict=True))  # the same L2 norms, measured once
    honest = [n for n in matrix.names if n.startswith("honest/")]
    out: dict[str, dict[str, list[float]]] = {}
    for u, name in enumerate(matrix.names):
        kind, peer = name.split("/")
        cosines = [
            float(flat[name] @ flat[h] / (norm[name] * norm[h]))
            for h in honest
            if h != f"honest/{peer}" and norm[name] > 0
        ]
        shape = out.setdefault(kind, {"norm": [], "cosine": []})
        shape["norm"].append(matrix.norms[u])
        if cosines:
            shape["cosine"].append(float(np.median(cosines)))
    return out


def rates(counts: Sequence[tuple[int, int, int]]) -> dict[str, float]:
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "rounds_with_an_attacker_in": sum(c[1] > 0 for c in counts) / len(counts),
        "rounds_with_an_honest_peer_out": sum(c[2] > 0 for c in counts) / len(counts),
    }


def root_update(cfg: SweepConfig, seed: int, base: Vector, cache: Path) -> Vector:
    """FLTrust's reference for the replayed round: an update trained from the round's base on
    the clean root set (as the sweep trains it), saved to `cache` and reused for the same base."""
    from bcfl.experiments.anomaly import LoraTask

    digest = hashlib.sha256(base.tobytes()).hexdigest()
    settings = {"seed": seed, "base": digest, **{f: getattr(cfg, f) for f in ROOT_FIELDS}}
    if cache.exists():
        with np.load(cache) as saved:
            if saved_training(str(saved["settings"]))[0] == settings:
                return np.asarray(saved["root"])
    root = LoraTask(cfg, seed).delta(base, -1, 1)
    np.savez(cache, settings=np.array(json.dumps(settings)), root=root)
    return root


def baseline_counts(
    matrix: LossMatrix, updates: dict[str, Vector], attack: str, defence: str, reference: Vector | None
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one baseline defence's included set
    on the replayed round's real updates (the sweep's round 1: history is the round itself)."""
    n = len(matrix.base)
    peers, bad = matrix.roles(attack)
    vectors = {peers[i]: updates[matrix.names[matrix.column(attack, i)]] for i in range(n)}
    chosen = make_defence(defence, **defence_params(defence, len(bad), n)).decide(
        UpdateSet(
            vectors=vectors,
            samples={a: matrix.samples[i] for i, a in enumerate(peers)},
            reference=reference,
            history=vectors,
        )
    )
    return verdict(chosen.included, peers, bad)


Loaded = tuple[LossMatrix, dict[str, Vector], Vector | None]


def load_updates(
    out_dir: Path, cfg: SweepConfig, matrices: Sequence[LossMatrix], fraction: float, defences: Sequence[str]
) -> list[Loaded]:
    """Each seed's matrix with its saved updates and, for FLTrust, its root-set update."""
    loaded = []
    for m in matrices:
        base, updates = train_updates(cfg, m.seed, fraction, None, out_dir / f"updates-seed{m.seed}.npz")
        reference = (
            root_update(cfg, m.seed, base, out_dir / f"root-seed{m.seed}.npz")
            if "fltrust" in defences
            else None
        )
        loaded.append((m, updates, reference))
    return loaded


def baseline_rows(
    cfg: SweepConfig, loaded: Sequence[Loaded], fraction: float, defences: Sequence[str]
) -> list[dict[str, Any]]:
    """Every baseline on the same updates the gate was replayed on (one decision per seed: the
    baselines do not depend on who evaluates whom)."""
    matrices = [m for m, _, _ in loaded]
    rows = []
    for attack in ("none", *cfg.attacks):
        for defence in defences:
            counted = [baseline_counts(m, u, attack, defence, r) for m, u, r in loaded]
            rows.append(
                {
                    "experiment": "gate-replay-baseline", "model": cfg.model, "peers": cfg.peers,
                    "fraction": fraction, "defence": defence, "attack": attack,
                    "seeds": [m.seed for m in matrices], **rates(counted),
                    "per_seed": [rates([c]) for c in counted],
                }
            )  # fmt: skip
    return rows


def run(
    out_dir: Path,
    cfg: SweepConfig,
    *,
    seeds: Sequence[int],
    ks: Sequence[int],
    draws: int,
    fraction: float = 0.30,
    jobs: int = 1,
    command: str = "python -m bcfl.experiments.gate_replay OUT",
    baselines: Sequence[str] = (),
) -> list[dict[str, Any]]:
    log = ResultLog(out_dir, command=command)
    started = time.perf_counter()
    matrices = per_seed(partial(load_or_build, out_dir, cfg, fraction=fraction), seeds, jobs)
    built_s = time.perf_counter() - started
    seen = [
        {"seed": m.seed, "base_loss_median": float(np.median(m.base)), "changes": loss_changes(m)}
        for m in matrices
    ]
    for record in seen:
        log.append({"experiment": "gate-replay-losses", "model": cfg.model, **record})
    rows = []
    for k in ks:
        for attack in ("none", *cfg.attacks):
            counted = [[replay(m, cfg, attack, d, k) for d in range(draws)] for m in matrices]
            record = {
                "experiment": "gate-replay", "model": cfg.model, "peers": cfg.peers, "fraction": fraction,
                "k": round_k(cfg.peers, k), "attack": attack, "draws": draws, "seeds": list(seeds),
                **rates([c for counts in counted for c in counts]),
                "per_seed": [rates(counts) for counts in counted],
            }  # fmt: skip
            log.append(record)
            rows.append(record)
    others: list[dict[str, Any]] = []
    if baselines:
        loaded = load_updates(out_dir, cfg, matrices, fraction, baselines)
        others = baseline_rows(cfg, loaded, fraction, baselines)
        for record, (m, updates, _) in zip(seen, loaded, strict=True):
            record["shapes"] = update_shapes(m, updates)
            log.append({"experiment": "gate-replay-shapes", "model": cfg.model, "seed": m.seed,
                        "shapes": record["shapes"]})  # fmt: skip
    for record in others:
        log.append(record)
    elapsed = time.perf_counter() - started
    write_table(out_dir, rows, cfg, fraction, draws, seeds, command, built_s, elapsed, others, seen)
    return rows + others


def write_table(
    out_dir: Path,
    rows: Sequence[dict[str, Any]],
    cfg: SweepConfig,
    fraction: float,
    draws: int,
    seeds: Sequence[int],
    command: str,
    built_s: float,
    elapsed: float,
    baselines: Sequence[dict[str, Any]] = (),
    seen: Sequence[dict[str, Any]] = (),
) -> None:
    def by_seed(r: dict[str, Any], key: str) -> str:
        return " / ".join(f"{s[key]:.3f}" for s in r["per_seed"])

    header = ("k", "attack", "precision", "recall", "per seed P", "per seed R", "rounds: attacker in",
              "rounds: honest out")  # fmt: skip
    body = [
        [r["k"], r["attack"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", by_seed(r, "precision"),
         by_seed(r, "recall"), f"{r['rounds_with_an_attacker_in']:.3f}",
         f"{r['rounds_with_an_honest_peer_out']:.3f}"]
        for r in rows
    ]  # fmt: skip
    note = (
        f"Gate replay ({cfg.model} model, {cfg.peers} peers, {fraction:.0%} attackers, "
        f"{cfg.warmup_rounds} honest warm-up rounds, {cfg.val_examples} validation examples per voter): "
        f"{draws} assignment draws per seed over seeds {', '.join(map(str, seeds))}, one round each, "
        f"fresh reputation. Matrices {built_s:.0f} s, total {elapsed:.0f} s. Command: `{command}`.\n\n"
    )
    text = note + markdown_table(header, body)
    if seen:
        text += (
            "\nWhat the voters saw: each update's median over the other voters of its relative "
            "validation-loss change (L - L0) / L0, the range over the updates of each kind:\n\n"
        )
        kinds = list(seen[0]["changes"])
        text += markdown_table(
            ("seed", "median base loss L0", *kinds),
            [
                [s["seed"], f"{s['base_loss_median']:.3f}"]
                + [f"{min(s['changes'][k]):+.3f} to {max(s['changes'][k]):+.3f}" for k in kinds]
                for s in seen
            ],
        )
    if seen and "shapes" in seen[0]:
        text += (
            "\nWhat the update-based defences saw: each update's L2 norm and its median cosine "
            "similarity to the other peers' honest updates, the range over the updates of each kind:\n\n"
        )
        kinds = list(seen[0]["shapes"])

        def span(values: Sequence[float]) -> str:
            return f"{min(values):.3f} to {max(values):.3f}" if values else "-"

        text += markdown_table(
            ("seed", "measure", *kinds),
            [
                [s["seed"], measure] + [span(s["shapes"][k][measure]) for k in kinds]
                for s in seen
                for measure in ("norm", "cosine")
            ],
        )
    if baselines:
        text += (
            "\nBaselines on the same updates (one decision per seed; Krum, Multi-Krum and trimmed "
            "mean told the true attacker count, FLTrust given a clean root-set update):\n\n"
        )
        text += markdown_table(
            ("attack", "defence", "precision", "recall", "per seed P", "per seed R"),
            [
                [
                    r["attack"],
                    r["defence"],
                    f"{r['precision']:.3f}",
                    f"{r['recall']:.3f}",
                    by_seed(r, "precision"),
                    by_seed(r, "recall"),
                ]
                for r in baselines
            ],
        )
    (out_dir / "table.md").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bcfl.experiments.gate_replay", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2 or a model folder")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--k", default="3", help="comma-separated votes per peer to replay")
    parser.add_argument("--draws", type=int, default=200, help="assignment draws per seed")
    parser.add_argument("--fraction", type=float, default=0.30)
    parser.add_argument("--learning-rate", type=float, default=QUICK.learning_rate, help="peers' local lr")
    parser.add_argument(
        "--median-share",
        type=float,
        default=QUICK.vote_median_share,
        help="the vote rule's share of the typical improvement (1: the full median)",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=QUICK.vote_spread,
        help="the vote rule's robust standard deviations above the median (default 0: fixed tolerance only)",
    )
    parser.add_argument(
        "--spread-cap",
        type=float,
        default=QUICK.vote_spread_cap,
        help="with --spread: at most this share of the base loss above the median",
    )
    parser.add_argument(
        "--val-examples", type=int, default=QUICK.val_examples, help="validation examples per evaluation"
    )
    parser.add_argument(
        "--warmup-rounds", type=int, default=QUICK.warmup_rounds, help="honest rounds before the attacked one"
    )
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="only these attacks' updates are made")
    parser.add_argument(
        "--sign-flip-factor",
        type=float,
        default=QUICK.sign_flip_factor,
        help="a sign flip submits -factor x the attacker's honest update (1: the same size)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="seeds' matrices built in this many processes")
    parser.add_argument(
        "--baselines",
        nargs="?",
        const=",".join(BASELINES),
        default="",
        help="also decide the round with these baseline defences (default when given: all)",
    )
    args = parser.parse_args(argv)
    cfg = replace(
        QUICK,
        model=args.model,
        learning_rate=args.learning_rate,
        val_examples=args.val_examples,
        vote_median_share=args.median_share,
        vote_spread=args.spread,
        vote_spread_cap=args.spread_cap,
        warmup_rounds=args.warmup_rounds,
        attacks=tuple(args.attacks.split(",")),
        sign_flip_factor=args.sign_flip_factor,
    )
    given = list(sys.argv[1:] if argv is None else argv)
    command = command_line("bcfl.experiments.gate_replay", given, args.out_dir)
    run(
        args.out_dir,
        cfg,
        seeds=[int(s) for s in args.seeds.split(",")],
        ks=[int(k) for k in args.k.split(",")],
        draws=args.draws,
        fraction=args.fraction,
        jobs=args.jobs,
        command=command,
        baselines=[d for d in args.baselines.split(",") if d],
    )


if __name__ == "__main__":
    main()
