"""A peer agent process, and running a plan on the namespace testbed with one agent per host.

Agent protocol on stdio: the agent starts its chunk server and prints `READY`; on a stdin line
`GO <epoch seconds>` it waits for that wall-clock time, pulls what the plan sends it, prints
`DONE <json report>`, and keeps serving until stdin closes or it is terminated. All agents share
one clock (one machine), so completion times are comparable.

    python -m bcfl.network.agent CONFIG.json NODE
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bcfl
from bcfl.network.plan import Plan, plan_from_dict, plan_to_dict
from bcfl.network.testbed import Testbed, TestbedError
from bcfl.network.topology import Topology
from bcfl.network.transfer import Address, ChunkServer, ChunkStore, PlanPeer, manifest

PORT = 7070


async def _agent(config: Mapping[str, Any], node: int) -> None:
    plan = plan_from_dict(config["plan"])
    cids = {(o, int(i)): c for o, i, c in config["cids"]}
    addresses = {int(n): Address(h, int(p)) for n, (h, p) in config["addresses"].items()}
    lat = {int(k): float(v) for k, v in config["latency"].get(str(node), {}).items()}
    server = await ChunkServer(
        ChunkStore(),
        "0.0.0.0",
        addresses[node].port,
        slots=plan.slots(node),
        delay=lambda req: lat.get(req, 0.0),
    ).start()
    peer = PlanPeer(
        node,
        plan,
        cids,
        addresses,
        server=server,
        wait=float(config["wait"]),
        timeout=float(config["timeout"]),
    )
    for obj, path in config["objects"].items():
        if plan.problem.objects[obj].source == node:
            peer.seed({obj: Path(path).read_bytes()})
    loop = asyncio.get_running_loop()
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start = float(line.split()[1])
    await asyncio.sleep(max(0.0, start - time.time()))
    report = await peer.run(start)
    done = {
        "node": node,
        "completion": report.completion,
        "fetched": report.fetched,
        "rerouted": report.rerouted,
        "rejected": report.rejected[:5],
        "arrivals": report.arrivals,
    }
    print("DONE " + json.dumps(done), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # serve until the orchestrator closes stdin
    await server.close()


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    config = json.loads(Path(args[0]).read_text())
    asyncio.run(_agent(config, int(args[1])))


def read_report_line(proc: subprocess.Popen[bytes], deadline: float, what: str) -> str:
    assert proc.stdout is not None
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise TestbedError(f"agent did not report {what} in time")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline().decode()
            if not line:
                raise TestbedError(f"agent exited before reporting {what} (exit code {proc.poll()})")
            if line.startswith(what):
                return line


def start_agents(bed: Testbed, module: str, config: Path) -> list[subprocess.Popen[bytes]]:
    """`python -m MODULE CONFIG HOST` on every testbed host, each started and READY."""
    env = dict(os.environ, PYTHONPATH=str(Path(bcfl.__file__).resolve().parents[1]))
    procs = [
        bed.popen(
            host,
            [sys.executable, "-m", module, str(config), str(host)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for host in range(len(bed.hosts))
    ]
    deadline = time.time() + 60
    for proc in procs:
        read_report_line(proc, deadline, "READY")
    return procs


def go_together(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Tell every agent to start at one wall-clock time, half a second from now."""
    start = time.time() + 0.5
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"GO {start}\n".encode())
        proc.stdin.flush()


def run_on_testbed(
    topo: Topology,
    plan: Plan,
    objects: Mapping[str, bytes],
    work_dir: Path,
    *,
    timeout: float = 120.0,
) -> dict[int, float]:
    """Build a testbed shaped like `topo` (access links; latencies in user space), run `plan` with
    one agent per node, and return each receiver's completion time in seconds."""
    nodes = sorted(topo.graph.nodes)
    if nodes != list(range(len(nodes))):
        raise TestbedError("testbed nodes must be numbered 0..n-1")
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for obj, data in objects.items():
        paths[obj] = str(work_dir / f"{obj}.bin")
        Path(paths[obj]).write_bytes(data)
    with Testbed([topo.up(n) for n in nodes], [topo.down(n) for n in nodes]) as bed:
        config = {
            "plan": plan_to_dict(plan),
            "cids": [[o, i, c] for (o, i), c in manifest(plan, objects).items()],
            "addresses": {str(n): [bed.addresses[n], PORT] for n in nodes},
            "latency": {str(u): {str(v): topo.latency(u, v) for v in topo.out_neighbours(u)} for u in nodes},
            "objects": paths,
            "wait": timeout,
            "timeout": timeout,
        }
        cfg = work_dir / "agents.json"
        cfg.write_text(json.dumps(config))
        procs = start_agents(bed, "bcfl.network.agent", cfg)
        go_together(procs)
        deadline = time.time() + timeout
        done: dict[int, float] = {}
        for n, proc in zip(nodes, procs, strict=True):
            report = json.loads(read_report_line(proc, deadline, "DONE")[5:])
            if os.environ.get("BCFL_TESTBED_TRACE"):
                print(json.dumps(report), file=sys.stderr)
            if n in plan.problem.receivers and report["completion"] is not None:
                done[n] = float(report["completion"])
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
    return done


if __name__ == "__main__":
    main()
