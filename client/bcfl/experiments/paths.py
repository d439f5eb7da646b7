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

Two further entries (`python -m bcfl.experiments.paths OUT --targets` / `--scale`):
- targets: 64 peers, broadcast, every topology, several seeds: optimised against the bound and
  against the star at several server capacities (the star's server is an assumption, so its
  capacity is a parameter of the comparison, never a single number);
- scale: 100, 1,000 and 10,000 peers on the sparse generated topologies: each strategy's time
  and ratio to the bound, and the planner's, bound's and simulator's own run times.
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
from bcfl.network.paths import naive_plan, optimised_choice, optimised_plan, star_plan
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


SERVER_MBITS = (100, 300, 1000, 3000, 10000)


def run_targets(
    out_dir: Path, *, seeds: tuple[int, ...] = (0, 1, 2), peers: int = 64
) -> list[dict[str, Any]]:
    """The 64-peer targets: optimised / bound, and star / optimised at each server capacity."""
    log = ResultLog(out_dir, COMMAND + " (targets)")
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for kind in TOPOLOGIES:
            topo = generate(kind, peers, seed)
            problem = broadcast(random.Random(seed).randrange(peers), AGGREGATE, topo.peers)
            bound = lower_bound(topo, problem)
            t = time.perf_counter()
            plan, policy, candidates = optimised_choice(topo, problem, chunks=_chunks(peers))
            plan_s = time.perf_counter() - t
            optimised = simulate(topo, plan).finish
            row: dict[str, Any] = {
                "kind": "targets",
                "topology": kind,
                "peers": peers,
                "seed": seed,
                "optimised_s": optimised,
                "policy": policy.label,
                "candidates_s": candidates,
                "bound_s": bound.value,
                "bound_binding": bound.binding,
                "ratio_to_bound": optimised / bound.value,
                "plan_s": plan_s,
            }
            for mbit in SERVER_MBITS:
                net = topo.with_server(up=mbit * MBIT, down=mbit * MBIT)
                star = simulate(net, star_plan(net, problem, chunks=_chunks(peers))).finish
                row[f"star_{mbit}_s"] = star
                row[f"speedup_{mbit}"] = star / optimised
            log.append(row)
            rows.append(row)
    lines = [f"# 64-peer targets (broadcast of {AGGREGATE} bytes, seeds {list(seeds)})\n"]
    lines.append(
        markdown_table(
            [
                "topology",
                "seed",
                "optimised (s)",
                "bound (s)",
                "binding",
                "ratio",
                "policy",
                *(f"star {m} Mbit/s (s)" for m in SERVER_MBITS),
            ],
            [
                [
                    r["topology"],
                    r["seed"],
                    r["optimised_s"],
                    r["bound_s"],
                    r["bound_binding"],
                    r["ratio_to_bound"],
                    r["policy"],
                    *(r[f"star_{m}_s"] for m in SERVER_MBITS),
                ]
                for r in rows
            ],
        )
    )
    summary = []
    for kind in TOPOLOGIES:
        sel = [r for r in rows if r["topology"] == kind]
        ratio = sorted(r["ratio_to_bound"] for r in sel)
        cells = [kind, f"{statistics.median(ratio):.2f} ({ratio[0]:.2f}-{ratio[-1]:.2f})"]
        for m in SERVER_MBITS:
            sp = sorted(r[f"speedup_{m}"] for r in sel)
            cells.append(f"{statistics.median(sp):.2f} ({sp[0]:.2f}-{sp[-1]:.2f})")
        summary.append(cells)
    lines.append("\n## Median (min-max) over seeds\n")
    lines.append(
        markdown_table(
            ["topology", "optimised / bound", *(f"star/optimised, server {m} Mbit/s" for m in SERVER_MBITS)],
            summary,
        )
    )
    (out_dir / "targets.md").write_text("\n".join(lines), encoding="utf-8")
    return rows


def _plan(strategy: str, net: Topology, problem: Problem, chunks: int) -> Plan:
    if strategy == "star":
        return star_plan(net, problem, chunks=chunks)
    if strategy == "naive":
        return naive_plan(net, problem)
    return optimised_plan(net, problem, chunks=chunks)


def run_scale(
    out_dir: Path, *, seed: int = 0, sizes: tuple[int, ...] = (100, 1000, 10000)
) -> list[dict[str, Any]]:
    """Time until all hold, ratio to the bound, and run times at 100 to 10,000 peers."""
    log = ResultLog(out_dir, COMMAND + " (scale)")
    rows: list[dict[str, Any]] = []
    for kind in ("waxman", "barabasi-albert"):
        for n in sizes:
            t = time.perf_counter()
            topo = generate(kind, n, seed)
            generate_s = time.perf_counter() - t
            problem = broadcast(random.Random(seed).randrange(n), AGGREGATE, topo.peers)
            server_net = topo.with_server(up=SERVER_RATE, down=SERVER_RATE)
            t = time.perf_counter()
            bounds = {False: lower_bound(topo, problem), True: lower_bound(server_net, problem)}
            bound_s = time.perf_counter() - t
            for strategy, net in (("star", server_net), ("naive", topo), ("optimised", topo)):
                t = time.perf_counter()
                plan = _plan(strategy, net, problem, _chunks(n))
                plan_s = time.perf_counter() - t
                t = time.perf_counter()
                result = simulate(net, plan)
                sim_s = time.perf_counter() - t
                bound = bounds[net.server is not None]
                row = {
                    "kind": "scale",
                    "topology": kind,
                    "peers": n,
                    "strategy": strategy,
                    "seed": seed,
                    "finish_s": result.finish,
                    "bound_s": bound.value,
                    "bound_binding": bound.binding,
                    "ratio_to_bound": result.finish / bound.value,
                    "transfers": result.transfers_run,
                    "generate_s": generate_s,
                    "bound_run_s": bound_s,
                    "plan_s": plan_s,
                    "simulate_s": sim_s,
                }
                log.append(row)
                rows.append(row)
    lines = [f"# Dissemination at scale (broadcast of {AGGREGATE} bytes, seed {seed})\n"]
    lines.append(
        markdown_table(
            [
                "topology",
                "peers",
                "strategy",
                "time (s)",
                "bound (s)",
                "binding",
                "ratio",
                "transfers",
                "generate (s)",
                "bounds (s)",
                "plan (s)",
                "simulate (s)",
            ],
            [
                [
                    r["topology"],
                    r["peers"],
                    r["strategy"],
                    r["finish_s"],
                    r["bound_s"],
                    r["bound_binding"],
                    r["ratio_to_bound"],
                    r["transfers"],
                    r["generate_s"],
                    r["bound_run_s"],
                    r["plan_s"],
                    r["simulate_s"],
                ]
                for r in rows
            ],
        )
    )
    (out_dir / "scale.md").write_text("\n".join(lines), encoding="utf-8")
    return rows


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "results/paths")
    if "--targets" in sys.argv:
        run_targets(target)
    elif "--scale" in sys.argv:
        run_scale(target)
    else:
        run(target, quick="--full" not in sys.argv)
