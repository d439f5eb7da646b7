"""Experiment 4: the same LoRA federated task in Flower and in bcfl (server and serverless modes).

Same base model, genesis adapter (seeded A, zero B), data split and Dirichlet partition, local
steps, batch size, learning rate, token budget and rounds on every side; every client and peer
trains with `bcfl.learning.train.train_update` and every final model is scored here, in this
process, with `bcfl.learning.evaluate.evaluate` on the held-out test split.

Sides:
- bcfl serverless and bcfl server: real federations (`LocalFederation`, one `bcfl node` OS
  process per peer, Anvil, synchronous closing), measured by `measure_federation`.
- Flower FedAvg, and with attackers Flower's Krum and FedTrimmedAvg (given the true attacker
  count, which favours them), run by `flwr.simulation.run_simulation` (Ray backend, loopback)
  in a separate Python process: Flower 1.41 pins typer < 0.21 and rich < 15, which conflict
  with bcfl's own pins, so it lives in its own virtual environment (FLOWER_PYTHON below).

Attack settings: none, and `round(0.3 * N)` peers sign-flipping their trained update (the same
`bcfl.trust.attacks.attack_update` on both sides).

Measured: round time (Flower: configure_fit -> aggregate_fit returned; bcfl: round opening ->
finalised on-chain); test accuracy of the final model; bytes moved per round (Flower: the
serialised parameter tensors sent to and returned by clients; bcfl: stored object sizes times
the fetches and stores its event log implies, see `_inclusion_and_bytes`); peak memory (the
summed RSS of the whole process tree, polled every 0.2 s).

    python -m bcfl.experiments.flower_compare OUT_DIR [--quick] [--seed N]
        [--model M] [--peers N] [--rounds R] [--test-examples E] [--settings none,attack]
        [--systems serverless,server,flower]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bcfl.errors import BcflError
from bcfl.experiments import harness
from bcfl.experiments.results import markdown_table, median_spread
from bcfl.experiments.server_vs_serverless import evaluate_aggregates, measure_federation, run_record
from bcfl.orchestrate import FederationSpec

NAME = "flower"
FLOWER_PIN = "flwr[simulation]==1.41.0"
# The interpreter that has Flower: $BCFL_FLOWER_PYTHON, else the project's side environment
# (`python3.11 -m venv .bcfl/flower-venv && .bcfl/flower-venv/bin/pip install 'flwr[simulation]==1.41.0'`
# plus a .pth line pointing at the main environment's site-packages for torch/transformers/peft).
DEFAULT_FLOWER_PYTHON = Path(".bcfl/flower-venv/bin/python")
ATTACK = "sign-flip"


class FlowerUnavailable(BcflError):
    """Flower is not installed where this experiment looks for it."""


@dataclass(frozen=True)
class Config:
    peers: int = 10
    model: str = "smollm2"
    rounds: int = 3
    attacker_fraction: float = 0.3
    local_steps: int = 4
    batch_size: int = 4
    learning_rate: float = 2e-3
    max_tokens: int = 96
    eval_examples: int = 6
    # Flower evaluates nothing during rounds (fraction_evaluate 0), so bcfl's voters score the
    # true label's loss only (what the vote rule reads), not the base's accuracy for the explorer.
    base_accuracy: bool = False
    test_examples: int = 200
    round_timeout_s: float = 3600.0
    flower_timeout_s: float = 7200.0
    bcfl_modes_attacked: tuple[str, ...] = ("serverless", "server")
    flower_attacked: tuple[str, ...] = ("fedavg", "krum", "trimmed-mean")
    settings: tuple[str, ...] = ("none", "attack")
    systems: tuple[str, ...] = ("serverless", "server", "flower")  # which sides to run

    def __post_init__(self) -> None:
        if not self.systems or set(self.systems) - {"serverless", "server", "flower"}:
            raise ValueError(
                f"systems must be a non-empty subset of serverless, server, flower; got {self.systems}"
            )
        if self.peers < 3:
            raise ValueError(f"need at least 3 peers, got {self.peers}")
        if not self.settings or set(self.settings) - {"none", "attack"}:
            raise ValueError(f"settings must be a non-empty subset of none, attack; got {self.settings}")
        if not 0 < self.attacker_fraction < 0.5:
            raise ValueError(f"attacker_fraction must be in (0, 0.5), got {self.attacker_fraction}")

    @property
    def attackers(self) -> int:
        return max(1, round(self.attacker_fraction * self.peers))


QUICK = Config(
    peers=4,
    model="tiny",
    rounds=2,
    local_steps=4,
    learning_rate=1e-2,
    max_tokens=64,
    eval_examples=8,
    test_examples=64,
    round_timeout_s=300.0,
    flower_timeout_s=500.0,
    # Quick keeps the attacked setting to bcfl's default mode and Flower's robust strategies.
    bcfl_modes_attacked=("serverless",),
    flower_attacked=("krum", "trimmed-mean"),
)


def attacker_indices(cfg: Config) -> list[int]:
    """The last round(fraction * N) peers attack (same indices, so same shards, on every side)."""
    return list(range(cfg.peers - cfg.attackers, cfg.peers))


def flower_python() -> Path | None:
    env = os.environ.get("BCFL_FLOWER_PYTHON")
    candidate = Path(env) if env else DEFAULT_FLOWER_PYTHON
    return candidate if candidate.exists() else None


def flower_version(python: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import flwr; print(flwr.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_flower_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _flower_env() -> dict[str, str]:
    client = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": client + (os.pathsep + path if path else ""),
    }


# -- the Flower side (runs inside the Flower environment) --------------------------------------

_ASSETS: dict[str, tuple[Any, Any, list[str], Any]] = {}


def _assets(job: dict[str, Any]) -> tuple[Any, Any, list[str], Any]:
    """(base model, genesis adapter, tensor order, shards), built once per process: Flower's
    workers get the small job description, not a pickled model."""
    key = json.dumps([job["model"], job["peers"], job["data_seed"]])
    if key not in _ASSETS:
        from bcfl.learning import adapter as adapters
        from bcfl.learning.adapter import LoraSpec
        from bcfl.learning.data import SplitConfig, load_splits
        from bcfl.learning.model import load_base
        from bcfl.learning.partition import PartitionConfig, partition
        from bcfl.node.learner import GENESIS_SEED

        base = load_base(job["model"])
        genesis = adapters.init_adapter(base, LoraSpec(rank=8), GENESIS_SEED)
        splits = load_splits(SplitConfig(seed=job["data_seed"]))
        shards = partition(
            splits.train,
            PartitionConfig(peers=int(job["peers"]), scheme="dirichlet", alpha=0.5, seed=job["data_seed"]),
        )
        _ASSETS[key] = (base, genesis, sorted(genesis.tensors), shards)
    return _ASSETS[key]


def flower_worker(job: dict[str, Any], out_dir: Path) -> None:
    """Run one Flower simulation; write flower.json and the final adapter into out_dir."""
    import logging

    import numpy as np
    import torch
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg, FedTrimmedAvg, Krum
    from flwr.simulation import run_simulation

    from bcfl.learning import adapter as adapters
    from bcfl.learning.adapter import LoraSpec
    from bcfl.learning.task import TaskConfig
    from bcfl.learning.train import TrainConfig, train_update
    from bcfl.trust.attacks import attack_update

    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    peers = int(job["peers"])
    bad = set(job["attackers"])
    lora = LoraSpec(rank=8)
    _, genesis, keys, _ = _assets(job)

    def to_state(arrays: Sequence[Any]) -> adapters.AdapterState:
        genesis_now: adapters.AdapterState = _assets(job)[1]
        return genesis_now.replace(
            {k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in zip(keys, arrays, strict=True)}
        )

    def to_arrays(state: adapters.AdapterState) -> list[Any]:
        return [state.tensors[k].detach().numpy().copy() for k in keys]

    class LoraClient(NumPyClient):  # type: ignore[misc]
        def __init__(self, index: int) -> None:
            self.index = index

        def fit(self, parameters: list[Any], config: dict[str, Any]) -> tuple[list[Any], int, dict[str, Any]]:
            rnd = int(config.get("round", 1))
            seed = (zlib.crc32(f"flower-peer{self.index}".encode()) * 1_000_003 + rnd) % 2**31
            start = to_state(parameters)
            cfg = TrainConfig(
                steps=job["local_steps"],
                batch_size=job["batch_size"],
                learning_rate=job["learning_rate"],
                lora=lora,
                scheme="ffa",
                task=TaskConfig(max_text_tokens=job["max_tokens"]),
                seed=seed,
                threads=1,
                progress=False,
            )
            base, _, _, shards = _assets(job)  # loaded once per Flower worker process
            torch.set_num_threads(1)
            state = train_update(base, start, shards[self.index].train, cfg)
            if self.index in bad:
                delta = {k: (state.tensors[k] - start.tensors[k]).numpy() for k in keys}
                poisoned = attack_update(ATTACK, delta, seed=seed)
                state = state.replace(
                    {k: start.tensors[k] + torch.as_tensor(poisoned[k], dtype=torch.float32) for k in keys}
                )
            return to_arrays(state), len(shards[self.index].train), {}

    def client_fn(context: Context) -> Any:
        return LoraClient(int(context.node_config["partition-id"])).to_client()

    timeline: dict[int, dict[str, float]] = {}
    final: dict[str, Any] = {}

    def recording(cls: Any) -> Any:
        class Recording(cls):  # type: ignore[misc]
            def configure_fit(self, server_round: int, parameters: Parameters, client_manager: Any) -> Any:
                timeline[server_round] = {"start": time.time()}
                instructions = super().configure_fit(server_round, parameters, client_manager)
                timeline[server_round]["bytes_down"] = sum(
                    len(t) for _, ins in instructions for t in ins.parameters.tensors
                )
                return instructions

            def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
                params, metrics = super().aggregate_fit(server_round, results, failures)
                timeline[server_round]["end"] = time.time()
                timeline[server_round]["bytes_up"] = sum(
                    len(t) for _, r in results for t in r.parameters.tensors
                )
                timeline[server_round]["results"] = len(results)
                timeline[server_round]["failures"] = len(failures)
                if params is not None:
                    final["arrays"] = parameters_to_ndarrays(params)
                return params, metrics

        return Recording

    common = dict(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=peers,
        min_available_clients=peers,
        initial_parameters=ndarrays_to_parameters(to_arrays(genesis)),
        on_fit_config_fn=lambda rnd: {"round": rnd},
    )
    name = job["strategy"]
    if name == "fedavg":
        strategy = recording(FedAvg)(**common)
    elif name == "krum":
        strategy = recording(Krum)(num_malicious_clients=len(bad), num_clients_to_keep=0, **common)
    elif name == "trimmed-mean":
        strategy = recording(FedTrimmedAvg)(beta=max(len(bad), 1) / peers, **common)
    else:
        raise BcflError(f"unknown Flower strategy {name!r}")

    def server_fn(context: Context) -> ServerAppComponents:
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=job["rounds"]))

    started = time.time()
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=peers,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"include_dashboard": False, "num_cpus": 2, "log_to_driver": False},
        },
    )
    wall = time.time() - started
    if "arrays" not in final:
        raise BcflError(f"Flower {name}: no round produced an aggregate (timeline {timeline})")
    files = adapters.to_files(to_state(final["arrays"]))
    folder = out_dir / "final"
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    import flwr

    (out_dir / "flower.json").write_text(
        json.dumps({"timeline": timeline, "wall_s": wall, "flwr": flwr.__version__}, sort_keys=True),
        encoding="utf-8",
    )


# -- the parent side ---------------------------------------------------------------------------


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += int(p.memory_info().rss)
        except psutil.Error:
            continue
    return total


def run_flower(python: Path, job: dict[str, Any], work: Path, *, timeout: float) -> dict[str, Any]:
    """Run one Flower simulation in the Flower environment; its measurements and final model."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
    log = (work / "flower.log").open("wb")
    started = time.time()
    proc = subprocess.Popen(
        [str(python), "-m", "bcfl.experiments.flower_compare", "--flower-worker", str(work)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_flower_env(),
        start_new_session=True,
    )
    log.close()
    peak = 0
    try:
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            if time.time() - started > timeout:
                raise BcflError(f"Flower simulation ran past {timeout:.0f} s; see {work / 'flower.log'}")
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    if proc.returncode != 0:
        tail = (work / "flower.log").read_text(encoding="utf-8", errors="replace")[-1500:]
        raise BcflError(f"Flower simulation exited with code {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads((work / "flower.json").read_text(encoding="utf-8"))
    result["peak_rss_bytes"] = peak
    result["process_wall_s"] = time.time() - started
    return result


def _score_files(job: dict[str, Any], folder: Path, test_examples: int) -> tuple[float, float]:
    import torch

    from bcfl.learning import adapter as adapters
    from bcfl.learning.adapter import LoraSpec
    from bcfl.learning.data import SplitConfig, load_splits
    from bcfl.learning.evaluate import evaluate
    from bcfl.learning.model import load_base
    from bcfl.learning.task import TaskConfig

    torch.set_num_threads(1)
    base = load_base(job["model"])
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    state = adapters.from_files(files, base, expect=LoraSpec(rank=8))
    test = load_splits(SplitConfig(seed=job["data_seed"])).test
    r = evaluate(
        base, state, test, max_examples=test_examples, task=TaskConfig(max_text_tokens=job["max_tokens"])
    )
    return r.accuracy, r.mean_loss


def bcfl_spec(workdir: Path, cfg: Config, *, mode: str, attackers: list[int], seed: int) -> FederationSpec:
    return harness.federation_spec(
        workdir,
        cfg,
        peers=cfg.peers,
        seed=seed,
        result_mode=mode,
        attackers={i: ATTACK for i in attackers},
        batch_size=cfg.batch_size,
    )


def run(
    out_dir: Path, *, quick: bool, seed: int = 0, config: Config | None = None, command: str | None = None
) -> None:
    cfg = config or (QUICK if quick else Config())
    log = harness.result_log(out_dir, NAME, quick=quick, command=command)
    python = flower_python()
    where = os.environ.get("BCFL_FLOWER_PYTHON") or DEFAULT_FLOWER_PYTHON
    version = flower_version(python) if python is not None else None
    for setting in cfg.settings:
        attackers = attacker_indices(cfg) if setting == "attack" else []
        base_record = {
            "experiment": NAME,
            "quick": quick,
            "seed": seed,
            "setting": setting,
            "attack": ATTACK if attackers else None,
            "attackers": attackers,
            "peers": cfg.peers,
            "config": asdict(cfg),
        }
        modes = cfg.bcfl_modes_attacked if attackers else ("serverless", "server")
        for mode in [m for m in modes if m in cfg.systems]:
            spec = bcfl_spec(
                out_dir / "work" / f"bcfl-{mode}-{setting}-s{seed}",
                cfg,
                mode=mode,
                attackers=attackers,
                seed=seed,
            )
            measured = measure_federation(spec, rounds=cfg.rounds, timeout=cfg.round_timeout_s)
            measured = evaluate_aggregates(measured, spec, test_examples=cfg.test_examples)
            rec = run_record(measured)
            ok = _steady(
                [x for x, s in zip(rec["latency_s"], rec["statuses"], strict=True) if s == "finalised"]
            )
            log.append(
                {
                    **base_record,
                    "system": f"bcfl {mode}",
                    "round_s": sum(ok) / len(ok) if ok else None,
                    "accuracy": rec["accuracy"][-1],
                    "test_loss": rec["test_loss"][-1],
                    "bytes_per_round": sum(rec["bytes_moved"]) / len(rec["bytes_moved"]),
                    "peak_rss_bytes": rec["peak_rss_bytes"],
                    "attackers_included": sum(rec["attackers_included"]),
                    "run": rec,
                }
            )
        strategies = (
            (list(cfg.flower_attacked) if attackers else ["fedavg"]) if "flower" in cfg.systems else []
        )
        for strategy in strategies:
            system = f"Flower {strategy}"
            if python is None or version is None:
                log.append(
                    {
                        **base_record,
                        "system": system,
                        "unavailable": f"Flower not installed (looked for {where}; "
                        f"install {FLOWER_PIN} there or set BCFL_FLOWER_PYTHON)",
                    }
                )
                continue
            job = {
                "peers": cfg.peers,
                "attackers": attackers,
                "model": cfg.model,
                "rounds": cfg.rounds,
                "local_steps": cfg.local_steps,
                "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate,
                "max_tokens": cfg.max_tokens,
                "data_seed": seed,
                "strategy": strategy,
            }
            work = out_dir / "work" / f"flower-{strategy}-{setting}-s{seed}"
            result = run_flower(python, job, work, timeout=cfg.flower_timeout_s)
            acc, loss = _score_files(job, work / "final", cfg.test_examples)
            rounds = [v for _, v in sorted(result["timeline"].items(), key=lambda kv: int(kv[0]))]
            times = _steady([v["end"] - v["start"] for v in rounds if "end" in v])
            log.append(
                {
                    **base_record,
                    "system": system,
                    "flwr": result["flwr"],
                    "round_s": sum(times) / len(times) if times else None,
                    "accuracy": acc,
                    "test_loss": loss,
                    "bytes_per_round": sum(v["bytes_down"] + v.get("bytes_up", 0) for v in rounds)
                    / len(rounds),
                    "peak_rss_bytes": result["peak_rss_bytes"],
                    "flower": result,
                }
            )
    write_outputs(out_dir)


def _steady(times: list[float]) -> list[float]:
    """Rounds after the first when there are several: round 1 carries start-up (Flower starts its
    Ray workers and loads the model inside round 1; bcfl peers load theirs before it opens)."""
    return times[1:] if len(times) > 1 else times


SYSTEMS = ("bcfl serverless", "bcfl server", "Flower fedavg", "Flower krum", "Flower trimmed-mean")


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    unavailable = []
    for setting in ("none", "attack"):
        for system in SYSTEMS:
            recs = [r for r in records if r["setting"] == setting and r["system"] == system]
            if not recs:
                continue
            if all("unavailable" in r for r in recs):
                unavailable.append(f"{system} ({setting}): {recs[0]['unavailable']}")
                continue
            recs = [r for r in recs if "unavailable" not in r]
            label = (
                "no attack"
                if setting == "none"
                else f"{len(recs[0]['attackers'])}/{recs[0]['peers']} {ATTACK}"
            )
            rows.append(
                (
                    label,
                    system,
                    len(recs),
                    ",".join(str(r["seed"]) for r in recs),
                    harness.spread([r["round_s"] for r in recs if r["round_s"] is not None], digits=2),
                    harness.spread([r["accuracy"] for r in recs if r["accuracy"] is not None]),
                    harness.spread([r["test_loss"] for r in recs if r["test_loss"] is not None]),
                    harness.spread([r["bytes_per_round"] for r in recs], scale=2**20, digits=2),
                    harness.spread([r["peak_rss_bytes"] for r in recs], scale=2**20, digits=0),
                )
            )
    header = (
        "attackers",
        "system",
        "runs",
        "seeds",
        "round time s",
        "accuracy (test)",
        "test loss",
        "MiB moved per round",
        "peak RSS MiB (all processes)",
    )
    note = (
        "Cells: median [min-max] over seeds. Round time: mean over rounds 2.. (round 1 alone when "
        "only one ran); bcfl's includes the trust votes and the chain (opening -> finalised), "
        "Flower's is configure_fit -> aggregate_fit. Accuracy and loss: the final model on the "
        "held-out test split. Bytes: see the module docstring for how each side is counted.\n\n"
    )
    text = note + markdown_table(header, rows)
    if unavailable:
        text += "\nNOT MEASURED: " + "; ".join(unavailable) + "\n"
    return text


def write_outputs(out_dir: Path) -> str:
    return harness.write_outputs(out_dir, NAME, summary_table, _plot, "flower_compare.png")


def _plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        (axes[0], "round_s", "round time (s)"),
        (axes[1], "accuracy", "test accuracy"),
        (axes[2], "test_loss", "test loss"),
    )
    for ax, key, title in panels:
        labels, values = [], []
        for setting in ("none", "attack"):
            for system in SYSTEMS:
                vals = [
                    float(r[key])
                    for r in records
                    if r["setting"] == setting and r["system"] == system and r.get(key) is not None
                ]
                if vals:
                    labels.append(f"{system}\n{'clean' if setting == 'none' else 'attacked'}")
                    values.append(median_spread(vals)[0])
        ax.bar(range(len(values)), values, color=[f"C{i % 5}" for i in range(len(values))])
        ax.set_xticks(range(len(values)), labels, rotation=60, fontsize=7, ha="right")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--flower-worker"]:  # the Flower side's own process, started by run_flower
        work = Path(args[1])
        flower_worker(json.loads((work / "job.json").read_text(encoding="utf-8")), work)
        return
    extra = (
        ("settings", "settings: comma-separated subset of none,attack"),
        ("systems", "sides: comma-separated subset of serverless,server,flower"),
    )
    harness.main("bcfl.experiments.flower_compare", run, args, quick=QUICK, full=Config(), extra=extra)


if __name__ == "__main__":
    main(sys.argv[1:])
