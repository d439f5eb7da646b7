"""Experiment 4: weight-transfer paths. Time until every peer holds the data, per strategy, against
the lower bound; the optimised/star speedup at 64 peers; and the real namespace testbed against
the simulator's prediction.

Scenarios:
- broadcast: a round's aggregate (4 MiB, about a SmolLM2 LoRA adapter) from one peer, drawn with
  the seed, to every other peer;
- allgather: every peer's update (1 MiB) to every other peer (small sizes only: n^2 objects).
Strategies: star through a server (1 Gbit/s each way, central position), naive all-to-all,
optimised swarming (`bcfl.network.paths`). Peers' links follow `BandwidthModel()` (log-normal
upload, median 50 Mbit/s, sigma 0.75; download 4x). The star's ratio is taken to the bound of
the network including its server; the others' to the bound of the peers alone.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bcfl.experiments.results import ResultLog, markdown_table
from bcfl.network.bound import lower_bound
from bcfl.network.paths import naive_plan, optimised_plan, star_plan
from bcfl.network.plan import Plan, Problem, allgather, broadcast
from bcfl.network.simulator import simulate
from bcfl.network.topology import MBIT, MESH_MAX_PEERS, BandwidthModel, Topology, generate

COMMAND = "bcfl experiment paths"
TOPOLOGIES = ("mesh", "waxman", "barabasi-albert")
AGGREGATE = 4 * 1024 * 1024
UPDATE = 1024 * 1024
SERVER_RATE = 1000 * MBIT
NAIVE_MAX = 4096  # naive all-to-all beyond this only confirms what smaller sizes show, slowly
# testbed: rates scaled down so 8 Python agents on a shared 2-core machine are not CPU-bound
TESTBED_MODEL = BandwidthModel(
    upload_median=8 * MBIT, upload_sigma=0.5, max_rate=40 * MBIT, latency_per_unit=0.04
)
TESTBED_SIZE = 1_000_000


def _chunks(n: int) -> int:
    return 32 if n <= 1024 else 16


def _strategies(topo: Topology, problem: Problem, n: int) -> list[tuple[str, Topology, Plan, float]]:
    """(strategy, network, plan, seconds to plan)."""
    out = []
    server_net = topo.with_server(up=SERVER_RATE, down=SERVER_RATE)
    t = time.perf_counter()
    plan = star_plan(server_net, problem, chunks=_chunks(n))
    out.append(("star", server_net, plan, time.perf_counter() - t))
    if n <= NAIVE_MAX:
        t = time.perf_counter()
        plan = naive_plan(topo, problem)
        out.append(("naive", topo, plan, time.perf_counter() - t))
    t = time.perf_counter()
    plan = optimised_plan(topo, problem, chunks=_chunks(n))
    out.append(("optimised", topo, plan, time.perf_counter() - t))
    return out


def _simulated(log: ResultLog, seed: int, sizes: dict[str, list[int]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for scenario, ns in sizes.items():
        for kind in TOPOLOGIES:
            for n in ns:
                if kind == "mesh" and n > MESH_MAX_PEERS // 2:
                    continue
                topo = generate(kind, n, seed)
                if scenario == "broadcast":
                    problem = broadcast(random.Random(seed).randrange(n), AGGREGATE, topo.peers)
                else:
                    problem = allgather(topo.peers, UPDATE)
                bounds: dict[bool, Any] = {}
                for strategy, net, plan, plan_s in _strategies(topo, problem, n):
                    with_server = net.server is not None
                    if with_server not in bounds:
                        bounds[with_server] = lower_bound(net, problem)
                    bound = bounds[with_server]
                    t = time.perf_counter()
                    result = simulate(net, plan)
                    row = {
                        "kind": "simulated",
                        "scenario": scenario,
                        "topology": kind,
                        "peers": n,
                        "strategy": strategy,
                        "seed": seed,
                        "finish_s": result.finish,
                        "bound_s": bound.value,
                        "bound_binding": bound.binding,
                        "ratio_to_bound": result.finish / bound.value,
                        "median_peer_s": statistics.median(result.completion.values()),
                        "bytes_sent": result.bytes_sent,
                        "transfers": result.transfers_run,
                        "plan_s": plan_s,
                        "simulate_s": time.perf_counter() - t,
                    }
                    log.append(row)
                    rows.append(row)
    return rows


def _testbed(log: ResultLog, seed: int, peers: int, repeats: int) -> list[dict[str, Any]]:
    from bcfl.network.agent import run_on_testbed
    from bcfl.network.testbed import available

    reason = available()
    if reason is not None:
        row = {"kind": "testbed", "skipped": reason, "peers": peers}
        log.append(row)
        return [row]
    topo = generate("mesh", peers, seed, model=TESTBED_MODEL)
    problem = broadcast(random.Random(seed).randrange(peers), TESTBED_SIZE, topo.peers)
    data = os.urandom(TESTBED_SIZE)
    rows = []
    server_net = topo.with_server(up=40 * MBIT, down=40 * MBIT)
    plans = [
        ("star", server_net, star_plan(server_net, problem, chunks=8)),
        ("optimised", topo, optimised_plan(topo, problem, chunks=8)),
    ]
    for strategy, net, plan in plans:
        predicted = simulate(net, plan)
        for rep in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                real = run_on_testbed(net, plan, {"aggregate": data}, Path(tmp), timeout=120)
            finish = max(real.values())
            per_peer = [
                abs(real[p] - predicted.completion[p]) / predicted.completion[p]
                for p in real
                if predicted.completion[p] > 0
            ]
            row = {
                "kind": "testbed",
                "strategy": strategy,
                "peers": peers,
                "seed": seed,
                "repeat": rep,
                "real_finish_s": finish,
                "sim_finish_s": predicted.finish,
                "finish_error": (finish - predicted.finish) / predicted.finish,
                "mean_abs_peer_error": statistics.fmean(per_peer),
                "bound_s": lower_bound(net, problem).value,
                "real_completion": {str(k): v for k, v in sorted(real.items())},
            }
            log.append(row)
            rows.append(row)
    return rows


def _server_sweep(log: ResultLog, seed: int) -> list[dict[str, Any]]:
    """Speedup of optimised over star at 64 peers as the server's capacity varies."""
    topo = generate("mesh", 64, seed)
    problem = broadcast(random.Random(seed).randrange(64), AGGREGATE, topo.peers)
    optimised = simulate(topo, optimised_plan(topo, problem, chunks=32)).finish
    rows = []
    for mbit in (100, 300, 1000, 3000, 10000):
        net = topo.with_server(up=mbit * MBIT, down=mbit * MBIT)
        star = simulate(net, star_plan(net, problem, chunks=32)).finish
        row = {
            "kind": "server_sweep",
            "server_mbit": mbit,
            "star_s": star,
            "optimised_s": optimised,
            "speedup": star / optimised,
            "seed": seed,
        }
        log.append(row)
        rows.append(row)
    return rows


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted({r["scenario"] for r in rows})
    fig, axes = plt.subplots(
        len(scenarios), len(TOPOLOGIES), figsize=(4.2 * len(TOPOLOGIES), 3.4 * len(scenarios)), squeeze=False
    )
    for i, scenario in enumerate(scenarios):
        for j, kind in enumerate(TOPOLOGIES):
            ax = axes[i][j]
            sel = [r for r in rows if r["scenario"] == scenario and r["topology"] == kind]
            for strategy in ("star", "naive", "optimised"):
                pts = sorted((r["peers"], r["finish_s"]) for r in sel if r["strategy"] == strategy)
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=strategy)
            pts = sorted({(r["peers"], r["bound_s"]) for r in sel if r["strategy"] == "optimised"})
            if pts:
                ax.plot(*zip(*pts, strict=True), linestyle="--", color="black", label="lower bound (peers)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{scenario}, {kind}")
            ax.set_xlabel("peers")
            ax.set_ylabel("time until all hold (s)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out_dir: Path, *, quick: bool, seed: int = 0) -> None:
    """Write results.jsonl, paths.md and paths.png under `out_dir`."""
    log = ResultLog(out_dir, COMMAND)
    if quick:
        sizes = {"broadcast": [16, 64, 256], "allgather": [16]}
        testbed_repeats = 2
    else:
        sizes = {"broadcast": [16, 64, 256, 1024, 4096, 10000], "allgather": [16, 32, 64]}
        testbed_repeats = 3
    rows = _simulated(log, seed, sizes)
    sweep = _server_sweep(log, seed)
    bed = _testbed(log, seed, 8, testbed_repeats)
    _plot(rows, out_dir / "paths.png")

    lines = [f"# Weight-transfer paths ({'quick' if quick else 'full'}, seed {seed})\n"]
    lines.append(
        markdown_table(
            [
                "scenario",
                "topology",
                "peers",
                "strategy",
                "time (s)",
                "bound (s)",
                "binding",
                "ratio",
                "plan (s)",
                "sim (s)",
            ],
            [
                [
                    r["scenario"],
                    r["topology"],
                    r["peers"],
                    r["strategy"],
                    r["finish_s"],
                    r["bound_s"],
                    r["bound_binding"],
                    r["ratio_to_bound"],
                    r["plan_s"],
                    r["simulate_s"],
                ]
                for r in rows
            ],
        )
    )
    speed = []
    for scenario in sizes:
        for kind in TOPOLOGIES:
            by = {
                r["strategy"]: r
                for r in rows
                if r["scenario"] == scenario and r["topology"] == kind and r["peers"] == 64
            }
            if "star" in by and "optimised" in by:
                speed.append(
                    [
                        scenario,
                        kind,
                        by["star"]["finish_s"] / by["optimised"]["finish_s"],
                        by["optimised"]["ratio_to_bound"],
                    ]
                )
    if speed:
        lines.append("\n## At 64 peers: optimised vs star\n")
        lines.append(
            markdown_table(["scenario", "topology", "speedup over star", "optimised / bound"], speed)
        )
    lines.append("\n## Server capacity sweep (mesh, 64 peers, broadcast)\n")
    lines.append(
        markdown_table(
            ["server Mbit/s", "star (s)", "optimised (s)", "speedup"],
            [[r["server_mbit"], r["star_s"], r["optimised_s"], r["speedup"]] for r in sweep],
        )
    )
    lines.append("\n## Namespace testbed vs simulator (8 peers)\n")
    if bed and "skipped" in bed[0]:
        lines.append(f"Not run: {bed[0]['skipped']}\n")
    else:
        lines.append(
            markdown_table(
                ["strategy", "repeat", "testbed (s)", "simulator (s)", "finish error", "mean per-peer error"],
                [
                    [
                        r["strategy"],
                        r["repeat"],
                        r["real_finish_s"],
                        r["sim_finish_s"],
                        r["finish_error"],
                        r["mean_abs_peer_error"],
                    ]
                    for r in bed
                ],
            )
        )
    (out_dir / "paths.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    import sys

    run(Path(sys.argv[1] if len(sys.argv) > 1 else "results/paths"), quick="--full" not in sys.argv)
