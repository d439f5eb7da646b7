"""Benchmark: the explorer's page load time over a large federation on a real Anvil.

    python -m bcfl.explorer.bench --rounds 100 --peers 20 --out results/explorer

Starts Anvil on a free loopback port, deploys a synchronous serverless federation, runs the
rounds with `bcfl.explorer.filler` (real transactions: joins, submissions, vote commits,
attestations, settlements; vote files in an embedded store), starts the explorer over it, waits
until it has indexed every block and read every vote file, then times each kind of page (HTML
and its JSON twin) over HTTP from a fresh connection, `--repeats` times each. Writes one record
per page kind to `<out>/results.jsonl` and a markdown table to `<out>/explorer-pages.md`.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account

from bcfl.chain.connection import connect
from bcfl.chain.deployment import deploy, save_record
from bcfl.chain.devnet import start_anvil, stop_pid
from bcfl.chain.federation import ClosingRule, Federation, FederationConfig, ModelRef, ResultMode
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.experiments.results import ResultLog, markdown_table, median_spread
from bcfl.explorer.app import Explorer, ExplorerConfig
from bcfl.explorer.filler import fill_rounds
from bcfl.storage.embedded import EmbeddedStorage

TARGET_S = 1.0


def _config(peers: int, threshold: int) -> FederationConfig:
    return FederationConfig(
        closing_rule=ClosingRule.SYNCHRONOUS,
        result_mode=ResultMode.SERVERLESS,
        aggregator="0x" + "00" * 20,
        min_bond=10**15,
        async_quorum=peers,
        max_staleness=0,
        round_duration=600,
        vote_duration=120,
        result_duration=300,
        quorum_bps=5000,
        reputation_weight_bps=3000,
        initial_reputation=500_000,
        score_threshold=threshold,
    )


def _timed_get(url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
        status = int(reply.status)
    return time.perf_counter() - started, status, len(body)


def measure_pages(base: str, pages: dict[str, list[str]], repeats: int) -> list[dict[str, Any]]:
    """Time every page kind: each of its sample paths, `repeats` times."""
    rows = []
    for kind, paths in pages.items():
        times: list[float] = []
        sizes: list[int] = []
        for _ in range(repeats):
            for path in paths:
                seconds, status, size = _timed_get(base + path)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                times.append(seconds)
                sizes.append(size)
        med, lo, hi = median_spread(times)
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        rows.append(
            {
                "page": kind,
                "samples": len(times),
                "median_s": med,
                "min_s": lo,
                "max_s": hi,
                "p95_s": p95,
                "bytes": max(sizes),
                "under_target": hi < TARGET_S,
            }
        )
    return rows


def run(
    rounds: int, peers: int, out: Path, repeats: int, seed: int, threshold: int = 200_000
) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="bcfl-explorer-bench-"))
    devnet = start_anvil(work / "anvil")
    try:
        w3 = connect(devnet.rpc_url)
        deployer, *accounts = [Account.create() for _ in range(peers + 1)]
        for acct in [deployer, *accounts]:
            w3.provider.make_request("anvil_setBalance", [acct.address, hex(1000 * 10**18)])  # type: ignore[arg-type]
        genesis = ModelRef("bafkreibenchgenesis", hashlib.sha256(b"bench genesis").digest())
        record = deploy(TxSender(w3, deployer, default_decoder()), genesis, _config(peers, threshold))
        record_path = save_record(work / "deployments", record)
        fed = Federation(w3, record.address, from_block=record.block_number)
        storage = EmbeddedStorage(work / "storage")
        bad = random.Random(seed).sample(range(peers), max(1, peers // 10))
        started = time.perf_counter()
        fill_rounds(
            w3, devnet.rpc_url, fed, accounts, rounds, storage, bad=bad, threshold=threshold, seed=seed
        )
        fill_s = time.perf_counter() - started
        head = int(w3.eth.block_number)
        transactions = sum(int(w3.eth.get_transaction_count(a.address)) for a in accounts)

        explorer = Explorer(
            ExplorerConfig(rpc_url=devnet.rpc_url, deployment=record_path, port=0, state_dir=work / "state"),
            storage=storage,
        )
        started = time.perf_counter()
        explorer.start()
        try:
            explorer.wait_synced(block=head, timeout=600)
            index_s = time.perf_counter() - started
            explorer.wait_enriched(timeout=600)
            enrich_s = time.perf_counter() - started
            with explorer.index.lock:
                sample_peer = accounts[0].address
                sub_tx = explorer.index.rounds[rounds // 2].submissions[0].tx
                block = explorer.index.txs[sub_tx].block
            mid, last = rounds // 2, rounds
            pages = {
                "rounds list (/)": ["/"],
                "rounds list, page 2": ["/?page=2"],
                "round": [f"/round/{r}" for r in (1, mid, last)],
                "peer": [f"/peer/{a.address}" for a in (accounts[0], accounts[-1])],
                "peers": ["/peers"],
                "block": [f"/block/{block}"],
                "transaction": [f"/tx/{sub_tx}"],
                "api: rounds": ["/api/rounds"],
                "api: round": [f"/api/round/{mid}"],
                "api: peer": [f"/api/peer/{sample_peer}"],
                "api: transaction": [f"/api/tx/{sub_tx}"],
            }
            rows = measure_pages(explorer.url, pages, repeats)
        finally:
            explorer.stop()
    finally:
        stop_pid(devnet.pid)

    log = ResultLog(
        out, command=f"python -m bcfl.explorer.bench --rounds {rounds} --peers {peers} --seed {seed}"
    )
    setup = {
        "rounds": rounds,
        "peers": peers,
        "blocks": head,
        "transactions": transactions,
        "fill_s": round(fill_s, 2),
        "index_s": round(index_s, 2),
        "index_and_vote_files_s": round(enrich_s, 2),
        "repeats": repeats,
        "seed": seed,
    }
    for row in rows:
        log.append({**setup, **row})
    table = markdown_table(
        ["page", "samples", "median s", "p95 s", "max s", "KiB", f"max < {TARGET_S:g} s"],
        [
            [
                r["page"],
                r["samples"],
                r["median_s"],
                r["p95_s"],
                r["max_s"],
                round(r["bytes"] / 1024, 1),
                "yes" if r["under_target"] else "NO",
            ]
            for r in rows
        ],
    )
    header = (
        f"Explorer page load over HTTP (loopback, fresh connection per request), {rounds} rounds x {peers} "
        f"peers: {head} blocks, {transactions} peer transactions. Filling the chain took {fill_s:.1f} s; "
        f"the explorer indexed it from scratch in {index_s:.1f} s and read every vote file by "
        f"{enrich_s:.1f} s.\n\n"
    )
    (out / "explorer-pages.md").write_text(header + table, encoding="utf-8")
    print(header + table)
    return rows


app = typer.Typer(add_completion=False)


@app.command()
def main(
    rounds: Annotated[int, typer.Option(help="Rounds to run")] = 100,
    peers: Annotated[int, typer.Option(help="Peers in the federation")] = 20,
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/explorer"),
    repeats: Annotated[int, typer.Option(help="Times each page is loaded")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic votes")] = 0,
) -> None:
    """Build a federation on Anvil and time the explorer's pages over it."""
    run(rounds, peers, out, repeats, seed)


if __name__ == "__main__":
    app()
