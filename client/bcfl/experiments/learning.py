"""Learning experiment: zero-shot, centralised LoRA, federated FedIT vs exact, compression, cost.

    python -m bcfl.experiments.learning --out results/learning [--quick] [--seed 0]
    python -m bcfl.experiments.learning probe --model smollm2 --mode bcfl --steps 4

Every accuracy is measured on the project's own leak-free test split (pooled, de-duplicated,
stratified; see bcfl.learning.data), never on the original test file. Federated and
centralised training use the same total number of optimiser steps (peers x rounds x local
steps == centralised steps) on the same training split, model, LoRA settings and learning rate.
Peak RSS and throughput are measured in fresh subprocesses, ours against a bare torch + peft
loop (full logits, HF's own loss) on the same batches.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from bcfl.experiments.results import ResultLog, markdown_table
from bcfl.learning.adapter import A_INITS, AdapterState, LoraSpec, applied, init_adapter, shifted
from bcfl.learning.aggregate import WeightedUpdate, aggregate, deltas, fedit_residual, fold, server_step
from bcfl.learning.compress import CompressionConfig, report
from bcfl.learning.data import Example, SplitConfig, load_splits
from bcfl.learning.evaluate import EvalResult, evaluate
from bcfl.learning.model import BaseModel, load_base
from bcfl.learning.partition import PartitionConfig, partition, summary_table
from bcfl.learning.task import TaskConfig, training_batch
from bcfl.learning.train import LoraScheme, TrainConfig, alternating_scheme, batch_schedule, train


@dataclass(frozen=True)
class Setup:
    """One experiment's budget. Centralised steps == peers x rounds x local_steps."""

    model: str
    peers: int
    rounds: int
    local_steps: int
    batch_size: int
    learning_rate: float
    max_text_tokens: int
    eval_examples: int
    round_eval_examples: int  # per-round curve (0: final evaluation only)
    probe_steps: int
    server_lr: float = 1.0  # the aggregate taken as base + server_lr x (mean - base)
    lora_rank: int = 8  # every method's adapter; alpha = 2 x rank keeps the scaling at 2
    keep_optimizer: bool = False  # each peer continues its own AdamW across rounds

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(rank=self.lora_rank, alpha=2.0 * self.lora_rank)

    @property
    def total_steps(self) -> int:
        return self.peers * self.rounds * self.local_steps


QUICK = Setup(
    "tiny",
    peers=10,
    rounds=8,
    local_steps=5,
    batch_size=8,
    learning_rate=1e-2,
    max_text_tokens=64,
    eval_examples=300,
    round_eval_examples=100,
    probe_steps=20,
)
FULL = Setup(
    "smollm2",
    peers=10,
    rounds=3,
    local_steps=4,
    batch_size=8,
    learning_rate=1e-3,
    max_text_tokens=64,
    eval_examples=200,
    round_eval_examples=0,
    probe_steps=6,
)


def _train_cfg(setup: Setup, scheme: LoraScheme, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=setup.batch_size,
        learning_rate=setup.learning_rate,
        lora=setup.lora,
        scheme=scheme,
        task=TaskConfig(setup.max_text_tokens),
        seed=seed,
        init_seed=0,
        threads=1,
        progress=False,
    )


def _eval(
    base: BaseModel, state: AdapterState | None, test: Sequence[Example], n: int, setup: Setup
) -> EvalResult:
    return evaluate(base, state, test, max_examples=n, batch=4, task=TaskConfig(setup.max_text_tokens))


@dataclass(frozen=True)
class FederatedRun:
    state: AdapterState
    curve: list[tuple[int, float]]  # (round, accuracy on the round-eval subset)
    wire_bytes_per_update: float
    raw_bytes_per_update: float
    train_seconds: float
    residual: dict[str, torch.Tensor]  # "fedex", "redraw": the dense change folded into the base


def federated(
    base: BaseModel,
    shards: Sequence[Any],
    test: Sequence[Example],
    setup: Setup,
    scheme: LoraScheme | Literal["alternating", "fedex", "redraw"],
    seed: int,
    compression: CompressionConfig | None = None,
    a_init: str = "random",
) -> FederatedRun:
    """Synchronous rounds: every peer trains `local_steps` from the global adapter, the updates
    (compressed on the wire if asked) are aggregated weighted by shard size. "alternating"
    trains B in odd rounds and A in even ones, each round's average exact; "fedex" trains A and
    B and folds what the averaged factors miss into the base weights (`fedit_residual`);
    "redraw" trains B against a new seeded A every round and folds each round's exact
    aggregate into the base weights, so over the rounds the change spans rounds x rank
    directions instead of the rank a frozen A allows."""
    global_state = init_adapter(base, setup.lora, seed=0, a_init=a_init)
    curve: list[tuple[int, float]] = []
    wire: list[int] = []
    raw: list[int] = []
    seconds = 0.0
    kept: dict[int, dict[str, Any] | None] = {}
    residual: dict[str, torch.Tensor] = {}  # float64 sums, applied rounded to the weights' dtype
    for rnd in range(setup.rounds):
        if scheme == "alternating":
            this_round = alternating_scheme(rnd + 1)
        else:
            this_round = "fedit" if scheme == "fedex" else "ffa" if scheme == "redraw" else scheme
        updates = []
        for shard in shards:
            run_seed = seed * 100_000 + rnd * 1000 + shard.peer
            cfg = _train_cfg(setup, this_round, setup.local_steps, seed=run_seed)
            with shifted(base, residual):
                result = train(base, global_state, shard.train, cfg, kept.get(shard.peer))
            if setup.keep_optimizer:
                kept[shard.peer] = result.optimizer_state
            seconds += result.seconds
            state = result.state
            if compression is not None:
                rep, state = report(result.state, global_state, compression)
                wire.append(rep.wire_bytes)
                raw.append(rep.raw_bytes)
            updates.append(WeightedUpdate(f"peer-{shard.peer:03d}", state, float(len(shard.train))))
        mean = aggregate(updates, this_round)
        stepped = server_step(global_state, mean, setup.server_lr)
        if scheme == "fedex":
            residual = fold(residual, fedit_residual(global_state, updates, stepped, setup.server_lr))
        global_state = stepped
        if scheme == "redraw":
            residual = fold(residual, deltas(stepped))
            # B zero: the next round's start changes nothing until trained
            global_state = init_adapter(base, setup.lora, seed=rnd + 1, a_init=a_init)
        if setup.round_eval_examples:
            with shifted(base, residual):
                acc = _eval(base, global_state, test, setup.round_eval_examples, setup).accuracy
            curve.append((rnd + 1, acc))
    return FederatedRun(global_state, curve, _mean(wire), _mean(raw), seconds, residual)


def _mean(xs: Sequence[int]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


METHODS = (
    "zero-shot",
    "centralised",
    "centralised-b",
    "fedit",
    "ffa",
    "ffa-alt",
    "fedex",
    "ffa-redraw",
    "ffa-int8",
    "ffa-topk",
    "cost",
)


def run(
    out_dir: Path,
    *,
    quick: bool,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    rounds: int | None = None,
    server_lr: float = 1.0,
    a_init: str = "random",
    rank: int = 8,
    keep_optimizer: bool = False,
) -> None:
    """Run the experiment's `methods` and write results.jsonl, table.md and PNG plots to
    `out_dir`. `rounds` splits the same total steps into more or fewer federated rounds;
    `server_lr` scales each round's averaged change (1: plain weighted mean)."""
    torch.set_num_threads(1)
    setup = QUICK if quick else FULL
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if rounds is not None:
        if rounds < 1 or setup.total_steps % (setup.peers * rounds):
            raise ValueError(
                f"{setup.total_steps} steps over {setup.peers} peers do not split into {rounds} rounds"
            )
        setup = replace(setup, rounds=rounds, local_steps=setup.total_steps // (setup.peers * rounds))
    if keep_optimizer and "ffa-alt" in methods:
        raise ValueError("--keep-optimizer needs one scheme in every round (not ffa-alt)")
    setup = replace(setup, server_lr=server_lr, lora_rank=rank, keep_optimizer=keep_optimizer)
    command = (
        f"python -m bcfl.experiments.learning --out {out_dir} --seed {seed}"
        + (" --quick" if quick else "")
        + (f" --methods {','.join(methods)}" if tuple(methods) != METHODS else "")
        + (f" --rounds {rounds}" if rounds is not None else "")
        + (f" --server-lr {server_lr:g}" if server_lr != 1.0 else "")
        + (f" --a-init {a_init}" if a_init != "random" else "")
        + (f" --rank {rank}" if rank != 8 else "")
        + (" --keep-optimizer" if keep_optimizer else "")
    )
    log = ResultLog(out_dir, command=command)
    started = time.monotonic()
    base = load_base(setup.model)
    splits = load_splits(SplitConfig(seed=seed))
    test = splits.test
    n_eval = min(setup.eval_examples, len(test))
    shards = partition(
        splits.train, PartitionConfig(peers=setup.peers, scheme="dirichlet", alpha=0.5, seed=seed)
    )
    common = {
        "model": base.name,
        "model_id": base.model_id,
        "seed": seed,
        "setup": asdict(setup),
        "eval_examples": n_eval,
        "split": "pooled de-duplicated stratified 70/10/20 (leak-free), test",
        "a_init": a_init,
    }
    rows: list[list[Any]] = []

    def record(name: str, result: EvalResult, **extra: Any) -> None:
        log.append(
            {
                "kind": "learning",
                "method": name,
                **common,
                "accuracy": result.accuracy,
                "any_label_accuracy": result.any_label_accuracy,
                "mean_loss": result.mean_loss,
                **extra,
            }
        )
        rows.append(
            [
                name,
                f"{result.accuracy:.3f}",
                f"{result.any_label_accuracy:.3f}",
                f"{result.mean_loss:.3f}",
                extra.get("steps", 0),
                extra.get("wire_bytes", ""),
            ]
        )
        print(f"[{time.monotonic() - started:7.1f}s] {name}: accuracy {result.accuracy:.3f}", file=sys.stderr)

    majority = max(range(len(splits.label_names)), key=lambda c: sum(e.label == c for e in splits.train))
    always = sum(e.label == majority for e in test[:n_eval]) / n_eval
    log.append({"kind": "learning", "method": "always-majority", **common, "accuracy": always})
    rows.append(["always " + splits.label_names[majority], f"{always:.3f}", "", "", 0, ""])

    if "zero-shot" in methods:
        record("zero-shot", _eval(base, None, test, n_eval, setup))
    centrals: tuple[tuple[str, str, LoraScheme], ...] = (
        ("centralised", "centralised LoRA (A+B)", "fedit"),
        ("centralised-b", "centralised LoRA (B only)", "ffa"),
    )
    for method, name, scheme in centrals:
        if method in methods:
            cfg = _train_cfg(setup, scheme, setup.total_steps, seed)
            # train() itself starts from the random A of cfg.init_seed; another start is passed in
            start = None if a_init == "random" else init_adapter(base, cfg.lora, cfg.init_seed, a_init=a_init)
            central = train(base, start, splits.train, cfg)
            record(
                name,
                _eval(base, central.state, test, n_eval, setup),
                steps=setup.total_steps,
                train_seconds=central.seconds,
            )

    curves: dict[str, list[tuple[int, float]]] = {}
    compression_rows: list[tuple[str, float, float]] = []
    runs: list[
        tuple[str, str, LoraScheme | Literal["alternating", "fedex", "redraw"], CompressionConfig | None]
    ] = [
        ("fedit", "federated FedIT", "fedit", None),
        ("ffa", "federated exact (FFA)", "ffa", CompressionConfig("none")),
        ("ffa-alt", "federated exact, alternating B / A", "alternating", CompressionConfig("none")),
        ("fedex", "federated FedIT + exact residual", "fedex", None),
        ("ffa-redraw", "federated exact, A re-drawn each round", "redraw", CompressionConfig("none")),
        ("ffa-int8", "federated exact + int8", "ffa", CompressionConfig("int8")),
        ("ffa-topk", "federated exact + top-10%", "ffa", CompressionConfig("topk", topk_fraction=0.1)),
    ]
    for method, name, fed_scheme, comp in runs:
        if method not in methods:
            continue
        fed = federated(base, shards, test, setup, fed_scheme, seed, comp, a_init=a_init)
        with shifted(base, fed.residual):
            result = _eval(base, fed.state, test, n_eval, setup)
        extra: dict[str, Any] = {
            "steps": setup.total_steps,
            "train_seconds": fed.train_seconds,
            "curve": fed.curve,
        }
        if comp is not None:
            extra |= {
                "wire_bytes": round(fed.wire_bytes_per_update),
                "fp32_adapter_bytes": fed.raw_bytes_per_update,
                "compression": comp.method,
            }
            compression_rows.append((comp.method, fed.wire_bytes_per_update, result.accuracy))
        record(name, result, **extra)
        curves[name] = fed.curve

    probes = [
        probe_subprocess(setup.model, mode, setup, seed, checkpointing)
        for mode, checkpointing in (("bcfl", False), ("bcfl", True), ("bare", False))
        if "cost" in methods
    ]
    for p in probes:
        log.append({"kind": "learning-cost", **common, **p})

    table = markdown_table(
        ["method", "accuracy", "any-label acc.", "true-label loss", "total steps", "bytes per update"], rows
    )
    cost = (
        ""
        if not probes
        else markdown_table(
            ["training loop", "tokens/s", "peak RSS while training (MiB)", "steps", "batch"],
            [
                [
                    p["mode"] + (" + activation checkpointing" if p["checkpointing"] else ""),
                    f"{p['tokens_per_second']:.0f}",
                    f"{p['peak_rss_mib']:.0f}",
                    p["steps"],
                    p["batch_size"],
                ]
                for p in probes
            ],
        )
    )
    header = (
        f"Command: `{command}`\n\nModel {base.name} (`{base.model_id}`), seed {seed}, one run (no repeats). "
        f"Test: first {n_eval} examples of the leak-free test split. "
        f"{setup.peers} peers, Dirichlet alpha 0.5, "
        f"{setup.rounds} rounds x {setup.local_steps} local steps; centralised {setup.total_steps} steps "
        f"(same total). Batch {setup.batch_size}, lr {setup.learning_rate}, server lr {setup.server_lr:g}, "
        f"LoRA r={setup.lora.rank} alpha={setup.lora.alpha:g} on q/k/v/o"
        + (", each peer keeps its AdamW across rounds" if setup.keep_optimizer else "")
        + ".\n\n"
    )
    partition_md = summary_table(shards, splits.label_names)
    (out_dir / "table.md").write_text(
        header + table + "\n" + cost + "\nPartition:\n\n" + partition_md, encoding="utf-8"
    )
    _plots(out_dir, rows, curves, compression_rows)
    print(header + table + "\n" + cost, file=sys.stderr)


def _plots(
    out_dir: Path,
    rows: list[list[Any]],
    curves: dict[str, list[tuple[int, float]]],
    compression_rows: list[tuple[str, float, float]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh([str(r[0]) for r in rows], [float(r[1]) for r in rows])
    ax.set_xlabel("test accuracy (leak-free split)")
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)
    plt.close(fig)
    if any(curves.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, curve in curves.items():
            if curve:
                ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label=name)
        ax.set_xlabel("round")
        ax.set_ylabel("accuracy (round-eval subset)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "rounds.png", dpi=120)
        plt.close(fig)
    if compression_rows:
        fig, ax = plt.subplots(figsize=(5, 4))
        for method, wire, acc in compression_rows:
            ax.scatter([wire / 1024], [acc])
            ax.annotate(method, (wire / 1024, acc))
        ax.set_xlabel("KiB per update on the wire")
        ax.set_ylabel("test accuracy")
        fig.tight_layout()
        fig.savefig(out_dir / "compression.png", dpi=120)
        plt.close(fig)


# ------------------------------------------------------------------ cost probes (own process)


def probe_subprocess(
    model: str, mode: str, setup: Setup, seed: int, checkpointing: bool = False
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bcfl.experiments.learning",
        "probe",
        "--model",
        model,
        "--mode",
        mode,
        "--steps",
        str(setup.probe_steps),
        "--batch-size",
        str(setup.batch_size),
        "--max-text-tokens",
        str(setup.max_text_tokens),
        "--seed",
        str(seed),
        *(["--checkpointing"] if checkpointing else []),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def probe(
    model: str,
    mode: str,
    steps: int,
    batch_size: int,
    max_text_tokens: int,
    seed: int,
    checkpointing: bool = False,
) -> dict[str, Any]:
    """Train `steps` steps in this process and report throughput (excluding the first, warm-up
    step) and peak RSS. mode "bcfl": our train(); "bare": get_peft_model + HF's full-logits loss."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    base = load_base(model)
    load_s = time.perf_counter() - t0
    splits = load_splits(SplitConfig(seed=seed))
    setup = replace(
        QUICK,
        model=model,
        batch_size=batch_size,
        max_text_tokens=max_text_tokens,
        learning_rate=2e-4 if model != "tiny" else 1e-2,
    )
    cfg = replace(_train_cfg(setup, "fedit", steps, seed), checkpointing=checkpointing)
    _reset_peak_rss()  # from here on the peak is training's (loading maps the weights lazily)
    step_s: list[float] = []
    tokens: list[int] = []
    if mode == "bcfl":
        warm = train(base, None, splits.train, replace(cfg, steps=1))  # warm-up, left out below
        timed = train(base, None, splits.train, replace(cfg, steps=steps - 1, seed=seed + 1))
        step_s = [warm.seconds, timed.seconds]
        tokens = [warm.tokens, timed.tokens]
    elif mode == "bare":
        schedule = batch_schedule(len(splits.train), steps, batch_size, seed)
        from bcfl.learning.data import label_names

        with applied(base, init_adapter(base, cfg.lora, 0)) as model_:
            params = [p for n, p in model_.named_parameters() if "lora_" in n]
            for p in params:
                p.requires_grad_(True)
            model_.train()
            opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
            for indices in schedule:
                started = time.perf_counter()  # batch building included, as in train()
                batch = training_batch(
                    base.tokenizer, [splits.train[i] for i in indices], label_names(), cfg.task
                )
                labels = torch.full_like(batch.input_ids, -100)
                labels[batch.rows, batch.positions + 1] = batch.targets
                loss = model_(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels
                ).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step_s.append(time.perf_counter() - started)
                tokens.append(batch.tokens)
    else:
        raise ValueError(f"unknown probe mode {mode!r}")
    timed_s, timed_tokens = sum(step_s[1:]) or sum(step_s), sum(tokens[1:]) or sum(tokens)
    return {
        "mode": mode,
        "model": model,
        "steps": steps,
        "batch_size": batch_size,
        "max_text_tokens": max_text_tokens,
        "seconds_per_step": timed_s / max(1, steps - 1),
        "tokens_per_second": timed_tokens / timed_s,
        "peak_rss_mib": _peak_rss_mib(),
        "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_seconds": load_s,
        "threads": torch.get_num_threads(),
        "checkpointing": checkpointing,
    }


def _reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter (VmHWM) of this process (Linux)."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["probe"]:
        parser = argparse.ArgumentParser(prog="python -m bcfl.experiments.learning probe")
        parser.add_argument("--model", default="tiny")
        parser.add_argument("--mode", choices=("bcfl", "bare"), default="bcfl")
        parser.add_argument("--steps", type=int, default=5)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--max-text-tokens", type=int, default=96)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--checkpointing", action="store_true")
        p = parser.parse_args(args[1:])
        measured = probe(p.model, p.mode, p.steps, p.batch_size, p.max_text_tokens, p.seed, p.checkpointing)
        print(json.dumps(measured, sort_keys=True))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bcfl.experiments.learning")
    parser.add_argument("--out", type=Path, default=Path("results/learning"))
    parser.add_argument("--quick", action="store_true", help="tiny random model; a few minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset to run")
    parser.add_argument("--rounds", type=int, help="federated rounds (same total steps; default per setup)")
    parser.add_argument("--server-lr", type=float, default=1.0, help="scale of each round's averaged change")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of every method (alpha = 2 x rank)")
    parser.add_argument(
        "--a-init",
        choices=A_INITS,
        default="random",
        help="the shared starting A (random, or the base's top singular directions)",
    )
    parser.add_argument(
        "--keep-optimizer",
        action="store_true",
        help="each peer continues its own AdamW across rounds (default: a fresh one every round)",
    )
    a = parser.parse_args(args)
    methods = a.methods.split(",")
    run(
        a.out,
        quick=a.quick,
        seed=a.seed,
        methods=methods,
        rounds=a.rounds,
        server_lr=a.server_lr,
        a_init=a.a_init,
        rank=a.rank,
        keep_optimizer=a.keep_optimizer,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
