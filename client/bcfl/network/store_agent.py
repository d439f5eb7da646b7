"""The peer node's own data path on the namespace testbed, timed.

One agent per testbed host runs what a `storage = "p2p"` node runs: an embedded blockstore
holding the host's own objects, a `PlannedStorage` over it with one `Route` per CID (relay
requests allowed, as the node's `ChainRoutes` makes them) and an `ObjectServer` on the host's
address. On `GO` every agent asks its storage for every object it lacks, all at once (as
attesters fetch a round's updates), and reports when each arrived. Same stdio protocol as
`bcfl.network.agent`: `READY`, then `GO <epoch seconds>`, then `DONE <json>`.

    python -m bcfl.network.store_agent CONFIG.json NODE
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bcfl.network.agent import go_together, read_report_line, start_agents
from bcfl.network.peer_storage import ObjectServer, PlannedStorage, Route
from bcfl.network.testbed import Testbed, TestbedError
from bcfl.network.transfer import Address
from bcfl.storage.embedded import EmbeddedStorage

PORT = 7002


def _agent(config: Mapping[str, Any], node: int) -> None:
    store = EmbeddedStorage(Path(config["stores"]) / f"node{node}")
    for path in config["seed"].get(str(node), []):
        store.put(Path(path).read_bytes())
    routes = {
        cid: Route(tuple(Address(h, int(p)) for h, p in peers), int(config["relay_hops"]), 0.0)
        for cid, peers in config["routes"].get(str(node), {}).items()
    }
    storage = PlannedStorage(store, routes, wait=float(config["timeout"]))
    slots = config["upload_slots"].get(str(node))
    order = [(cid, host) for cid, host in config["serve_order"].get(str(node), [])]
    server = ObjectServer(
        storage, config["hosts"][str(node)], PORT, upload_slots=slots, serve_order=order
    ).start()
    print("READY", flush=True)
    start = float(sys.stdin.readline().split()[1])
    time.sleep(max(0.0, start - time.time()))
    wanted = [c for c in config["cids"] if not store.has(c)]
    arrivals: dict[str, float] = {}
    errors: list[str] = []

    def fetch(cid: str) -> None:
        try:
            storage.get(cid)
            arrivals[cid] = time.time() - start
        except Exception as exc:  # reported, not raised: the orchestrator decides
            errors.append(f"{cid}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=fetch, args=(c,)) for c in wanted]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = len(arrivals) == len(wanted)
    report = {
        "node": node,
        "completion": (max(arrivals.values(), default=0.0) if done else None),
        "arrivals": arrivals,
        "errors": errors[:5],
    }
    print("DONE " + json.dumps(report), flush=True)
    sys.stdin.read()  # serve until the orchestrator closes stdin
    server.stop()
    print(f"SERVED {server.served_bytes}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    _agent(json.loads(Path(args[0]).read_text()), int(args[1]))


def run_store_path(
    bed: Testbed,
    objects: Mapping[str, tuple[int, bytes]],
    routes: Mapping[int, Mapping[str, Sequence[int]]],
    receivers: Sequence[int],
    work_dir: Path,
    *,
    relay_hops: int,
    upload_slots: Mapping[int, int] | None = None,
    serve_order: Mapping[int, Sequence[tuple[str, int]]] | None = None,
    timeout: float = 120.0,
) -> dict[int, dict[str, Any]]:
    """On a built testbed: `objects` (CID -> (holder host, bytes)) start on their holders;
    host h asks for CID c from the hosts `routes[h][c]`, in order, and sends at most
    `upload_slots[h]` objects at once (default: no limit), granting them in the order of
    `serve_order[h]` ((CID, receiving host) in plan order). Every host runs an agent;
    returns each receiver's report (completion s, arrivals, errors) and every host's bytes
    served (`served_bytes`; a host that received nothing has only that)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    seed: dict[str, list[str]] = {}
    for cid, (holder, data) in objects.items():
        path = work_dir / f"{cid}.bin"
        path.write_bytes(data)
        seed.setdefault(str(holder), []).append(str(path))
    hosts = range(len(bed.hosts))
    config = {
        "stores": str(work_dir / "stores"),
        "seed": seed,
        "cids": sorted(objects),
        "hosts": {str(h): bed.addresses[h] for h in hosts},
        "routes": {
            str(h): {cid: [[bed.addresses[p], PORT] for p in peers] for cid, peers in by_cid.items()}
            for h, by_cid in routes.items()
        },
        "relay_hops": relay_hops,
        "upload_slots": {str(h): n for h, n in (upload_slots or {}).items()},
        "serve_order": {
            str(h): [[cid, bed.addresses[r]] for cid, r in order] for h, order in (serve_order or {}).items()
        },
        "timeout": timeout,
    }
    cfg = work_dir / "store-agents.json"
    cfg.write_text(json.dumps(config))
    procs = start_agents(bed, "bcfl.network.store_agent", cfg)
    try:
        go_together(procs)
        deadline = time.time() + timeout
        reports = {}
        for h, proc in zip(hosts, procs, strict=True):
            report = json.loads(read_report_line(proc, deadline, "DONE")[5:])
            if h in receivers:
                if report["completion"] is None:
                    raise TestbedError(f"host {h} did not get every object: {report['errors']}")
                reports[h] = report
        for proc in procs:  # everyone is done: stop serving and say how much was served
            assert proc.stdin is not None
            proc.stdin.close()
        deadline = time.time() + 30
        for h, proc in zip(hosts, procs, strict=True):
            served = int(read_report_line(proc, deadline, "SERVED").split()[1])
            reports.setdefault(h, {})["served_bytes"] = served
        return reports
    finally:
        for proc in procs:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
