"""The peer node's data path over real shaped links, against the simulator's prediction.

The round's exchange a `storage = "p2p"` node performs, on the namespace testbed: every peer
holds its update and fetches every other peer's, through the node's own `PlannedStorage` and
`ObjectServer` (`bcfl.network.store_agent`), whole objects, all at once. Strategies:
- `optimised`: routes from `whole_object_plan` with relay requests (what `ChainRoutes` gives
  a node);
- `direct`: each object from its source only (naive all-to-all);
- `star`: each object through a server host (the server fetches it from its source when first
  asked, then serves it to everyone), a star through one relay.
With `--upload-slots` every server sends at most as many objects at once as the plan gives it
upload slots, the rest of the requests waiting their turn, as a node's server does, and grants
its slots in the order of its sends in the plan (which a node's server does not do yet;
`--arrival-order` grants them as requests arrive, as a node's server does);
without it every request is sent at once. The testbed's access links are drawn as the `paths`
experiment's testbed draws them (`full_mesh(peers, seed, model=TESTBED_MODEL)`: the stated
model scaled down, median 8 Mbit/s, so that the Python agents of 8-9 hosts on a 2-core machine
are not CPU-bound), the server's at `--server-mbit`; the simulator gets the same rates on a
full mesh with the testbed's small latency and the plan that matches each strategy
(chunks = 1).

    python -m bcfl.experiments.node_path OUT_DIR [--peers 8] [--seeds 0,1] [--repeats 2]
        [--mib 1] [--server-mbit 40] [--upload-slots [--arrival-order]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bcfl.experiments.paths import TESTBED_MODEL
from bcfl.experiments.results import ResultLog, markdown_table, median_spread, read_records
from bcfl.network.paths import naive_plan, star_plan, whole_object_plan
from bcfl.network.peer_storage import routes_from_plan
from bcfl.network.plan import Plan, allgather
from bcfl.network.simulator import simulate
from bcfl.network.store_agent import run_store_path
from bcfl.network.testbed import Testbed
from bcfl.network.topology import MBIT, Topology, full_mesh, uniform_mesh
from bcfl.network.transfer import Address
from bcfl.storage.cid import cid_of_bytes

NAME = "node-path"
STRATEGIES = ("optimised", "direct", "star")
TESTBED_LATENCY = 0.0005  # s: veth + bridge, no added delay


def _routes(plan: Plan, peers: int, cids: dict[str, str]) -> dict[int, dict[str, list[int]]]:
    """Host -> CID -> hosts to ask, from the plan, as the node derives them (earlier only)."""
    addresses = {i: Address(str(i), 0) for i in range(peers)}
    out: dict[int, dict[str, list[int]]] = {}
    for me in range(peers):
        routes = routes_from_plan(plan, me, cids, addresses, earlier_only=True)
        out[me] = {cid: [int(a.host) for a in route] for cid, route in routes.items()}
    return out


def run_once(
    strategy: str,
    drawn: Topology,
    size: int,
    server_rate: float,
    work: Path,
    seed: int,
    *,
    slotted: bool,
    plan_order: bool = True,
) -> dict[str, Any]:
    n = len(drawn.peers)
    ups = [drawn.up(i) for i in range(n)]
    downs = [drawn.down(i) for i in range(n)]
    mesh = uniform_mesh(ups, downs, TESTBED_LATENCY)
    problem = allgather(tuple(range(n)), size)
    data = {obj: os.urandom(size) for obj in problem.objects}
    cids = {obj: cid_of_bytes(b) for obj, b in data.items()}
    objects = {cids[obj]: (spec.source, data[obj]) for obj, spec in problem.objects.items()}
    server = n
    t0 = time.monotonic()
    if strategy == "optimised":
        plan = whole_object_plan(mesh, problem)
        routes, hops, sim_topo = _routes(plan, n, cids), n, mesh
    elif strategy == "direct":
        plan = naive_plan(mesh, problem)
        routes = {h: {cid: [src] for cid, (src, _) in objects.items() if src != h} for h in range(n)}
        hops, sim_topo = 0, mesh
    elif strategy == "star":
        sim_topo = mesh.with_server(up=server_rate, down=server_rate, latency=TESTBED_LATENCY)
        plan = star_plan(sim_topo, problem, chunks=1)
        routes = {h: {cid: [server] for cid, (src, _) in objects.items() if src != h} for h in range(n)}
        routes[server] = {cid: [src] for cid, (src, _) in objects.items()}
        hops = 1
    else:
        raise ValueError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    plan_s = time.monotonic() - t0
    predicted = simulate(sim_topo, plan)
    slots = {h: plan.slots(h) for h in range(n + 1)} if slotted else None
    order = {h: [(cids[t.obj], t.dst) for t in plan.transfers if t.src == h] for h in range(n + 1)}
    with Testbed([*ups, server_rate], [*downs, server_rate]) as bed:
        reports = run_store_path(
            bed,
            objects,
            routes,
            list(range(n)),
            work,
            relay_hops=hops,
            upload_slots=slots,
            serve_order=order if slotted and plan_order else None,
            timeout=300,
        )
    real = {h: float(reports[h]["completion"]) for h in range(n)}
    errors = [abs(real[h] - predicted.completion[h]) / predicted.completion[h] for h in real]
    return {
        "strategy": strategy,
        "plan": plan.strategy,
        "peers": n,
        "object_bytes": size,
        "seed": seed,
        "testbed_s": max(real.values()),
        "simulator_s": predicted.finish,
        "ratio": max(real.values()) / predicted.finish,
        "mean_peer_error": statistics.fmean(errors),
        "per_peer_testbed_s": real,
        "per_peer_simulator_s": predicted.completion,
        "served_bytes": {h: r["served_bytes"] for h, r in reports.items()},
        "plan_s": plan_s,
        "uploads_mbit": [u / MBIT for u in ups],
        "server_mbit": server_rate / MBIT,
        "upload_slots": slots,
        "plan_order": bool(slotted and plan_order),
    }


def run(
    out_dir: Path,
    *,
    peers: int = 8,
    seeds: Sequence[int] = (0, 1),
    repeats: int = 2,
    mib: float = 1.0,
    server_mbit: float = 40.0,
    slotted: bool = False,
    plan_order: bool = True,
    command: str,
) -> None:
    log = ResultLog(out_dir, command=command)
    size = int(mib * (1 << 20))
    rate = server_mbit * MBIT
    for seed in seeds:
        drawn = full_mesh(peers, seed, model=TESTBED_MODEL)
        for strategy in STRATEGIES:
            for repeat in range(repeats):
                work = out_dir / "work" / f"{strategy}-s{seed}-r{repeat}"
                rec = run_once(
                    strategy, drawn, size, rate, work, seed, slotted=slotted, plan_order=plan_order
                )
                shutil.rmtree(work, ignore_errors=True)  # the stores: a copy of every object per host
                log.append({"experiment": NAME, "repeat": repeat, **rec})
                print(
                    f"seed {seed} {strategy:9} testbed {rec['testbed_s']:6.2f} s  "
                    f"simulator {rec['simulator_s']:6.2f} s  ratio {rec['ratio']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    write_table(out_dir)


def write_table(out_dir: Path) -> None:
    records = read_records(out_dir / "results.jsonl")
    records = [r for r in records if r.get("experiment") == NAME]
    rows = []
    for seed in sorted({r["seed"] for r in records}):
        best = {}
        for strategy in STRATEGIES:
            recs = [r for r in records if r["seed"] == seed and r["strategy"] == strategy]
            if not recs:
                continue
            real = median_spread([r["testbed_s"] for r in recs])
            ratio = median_spread([r["ratio"] for r in recs])
            err = median_spread([r["mean_peer_error"] for r in recs])
            best[strategy] = real[0]
            rows.append(
                [
                    seed,
                    strategy,
                    len(recs),
                    f"{real[0]:.2f} ({real[1]:.2f}-{real[2]:.2f})",
                    f"{recs[0]['simulator_s']:.2f}",
                    f"{ratio[0]:.2f} ({ratio[1]:.2f}-{ratio[2]:.2f})",
                    f"{err[0]:.0%}",
                ]
            )
        if "optimised" in best:
            for other in ("direct", "star"):
                if other in best:
                    rows.append(
                        [
                            seed,
                            f"{other} / optimised",
                            "",
                            f"{best[other] / best['optimised']:.2f}x",
                            "",
                            "",
                            "",
                        ]
                    )
    header = [
        "seed",
        "strategy",
        "runs",
        "testbed s, median (min-max)",
        "simulator s",
        "testbed / simulator",
        "mean per-peer error",
    ]
    first = records[0] if records else {}
    mib = first.get("object_bytes", 0) / (1 << 20)
    slotted = first.get("upload_slots")
    sending = "send at most their planned upload slots at once" if slotted else "send every request at once"
    text = (
        f"# The node's data path on the testbed\n\nCommand: `{first.get('command', '')}`\n\n"
        f"{first.get('peers', '?')} peers, each update {mib:g} MiB, every peer fetching every other's "
        f"at once; star server {first.get('server_mbit', '?')} Mbit/s each way; servers {sending}.\n\n"
        + markdown_table(header, rows)
        + "\n"
    )
    (out_dir / "node_path.md").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bcfl.experiments.node_path")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mib", type=float, default=1.0)
    parser.add_argument("--server-mbit", type=float, default=40.0)
    parser.add_argument(
        "--upload-slots",
        action="store_true",
        help="each server sends at most its planned upload slots' worth of objects at once (as a node does)",
    )
    parser.add_argument(
        "--arrival-order",
        action="store_true",
        help="with --upload-slots: grant slots as requests arrive (as a node does), not in the plan's order",
    )
    args = parser.parse_args(argv)
    command = "python -m bcfl.experiments.node_path " + " ".join(argv if argv is not None else sys.argv[1:])
    run(
        args.out_dir,
        peers=args.peers,
        seeds=[int(s) for s in args.seeds.split(",")],
        repeats=args.repeats,
        mib=args.mib,
        server_mbit=args.server_mbit,
        slotted=args.upload_slots,
        plan_order=not args.arrival_order,
        command=command,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
