"""`bcfl bench`: measured figures (gas now; storage and node benchmarks register alongside)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from bcfl.cli.common import err_console

bench_app = typer.Typer(help="Benchmarks that write JSON + markdown results.", no_args_is_help=True)


@bench_app.command("gas")
def gas(
    peers: Annotated[str, typer.Option(help="Comma-separated federation sizes")] = "4,16,64,256",
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/gas"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON on stdout")] = False,
) -> None:
    """Gas per peer per action on a real Anvil, for each federation size."""
    from bcfl.chain.gas_bench import benchmark, per_round_total
    from bcfl.experiments.results import ResultLog, markdown_table

    sizes = [int(p) for p in peers.split(",") if p.strip()]
    log = ResultLog(out, command=f"bcfl bench gas --peers {peers}")
    rows = benchmark(sizes, out / "anvil")
    for row in rows:
        log.append({"kind": "gas", **asdict(row)})
    table = markdown_table(
        ["peers", "action", "median gas", "min", "max", "n"],
        [(r.peers, r.action, r.median_gas, r.min_gas, r.max_gas, r.count) for r in rows],
    )
    totals = [(n, per_round_total(rows, n)) for n in sizes]
    base = totals[0][1]
    table += "\n" + markdown_table(
        ["peers", "gas per peer per round (submit+vote+attest+settle)", "vs smallest"],
        [(n, t, f"{(t - base) / base:+.1%}") for n, t in totals],
    )
    (out / "table.md").write_text(f"Command: `bcfl bench gas --peers {peers}`\n\n{table}", encoding="utf-8")
    err_console.print(table)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))


@bench_app.command("audit")
def audit(
    peers: Annotated[int, typer.Option(help="Peer processes in the federation audited")] = 10,
    rounds: Annotated[int, typer.Option(help="Rounds to run, then audit")] = 2,
    repeats: Annotated[int, typer.Option(help="Audits of every round")] = 3,
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/audit"),
) -> None:
    """Audit time per round: run a tiny-model federation of real peer processes, then audit it."""
    from bcfl.audit.checks import audit_round
    from bcfl.demo import demo_spec
    from bcfl.experiments.results import ResultLog, markdown_table, median_spread
    from bcfl.node.work import open_storage_spec
    from bcfl.orchestrate import LocalFederation

    command = f"bcfl bench audit --peers {peers} --rounds {rounds} --repeats {repeats}"
    log = ResultLog(out, command=command)
    spec = demo_spec(
        out / "federation", quick=True, peers=peers, rounds=rounds, attack="sign-flip", ipfs=False
    )
    rows = []
    with LocalFederation(spec) as fed:
        assert fed.federation is not None
        for r in range(1, rounds + 1):
            fed.wait_for_round(r, timeout=900)
        for p in fed.processes:  # stop the peers so the audit has the machine to itself
            if p.proc is not None:
                p.proc.terminate()
        store = open_storage_spec(fed.storage_spec(peers), out / "auditor")
        for r in range(1, rounds + 1):
            times = []
            for _ in range(repeats):
                result = audit_round(fed.federation, store, r)
                times.append(result.seconds)
                log.append(
                    {"kind": "audit", "peers": peers, "round": r, "seconds": result.seconds, "ok": result.ok}
                )
            med, lo, hi = median_spread(times)
            rows.append(
                (
                    peers,
                    r,
                    len(fed.federation.submissions(r)),
                    f"{med:.3f}",
                    f"{lo:.3f}",
                    f"{hi:.3f}",
                    result.ok,
                )
            )
    table = markdown_table(["peers", "round", "submissions", "median s", "min", "max", "audit ok"], rows)
    (out / "table.md").write_text(f"Command: `{command}`\n\n{table}", encoding="utf-8")
    err_console.print(table)


@bench_app.command("round")
def round_split(
    model: Annotated[str, typer.Option(help="tiny (about a minute) or smollm2")] = "tiny",
    peers: Annotated[int, typer.Option(help="Peer processes (the last one an attacker)")] = 5,
    rounds: Annotated[int, typer.Option(help="Asynchronous rounds to run")] = 3,
    attack: Annotated[str, typer.Option(help="The attacker's behaviour")] = "sign-flip",
    ipfs: Annotated[
        bool, typer.Option(help="One js-ipfs daemon per peer instead of the embedded store")
    ] = False,
    base_accuracy: Annotated[
        bool,
        typer.Option(help="Voters also score the base's accuracy on all 40 labels (the explorer's chart)"),
    ] = True,
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/round"),
) -> None:
    """Wall time of a round split into training, evaluation, scoring, storage, chain and waiting,
    per peer process, with the protocol overhead's share and transactions and gas per peer."""
    from bcfl.experiments.results import ResultLog
    from bcfl.node.round_bench import as_records, markdown, peer_table, run_round_bench

    command = f"bcfl bench round --model {model} --peers {peers} --rounds {rounds}"
    if attack != "sign-flip":
        command += f" --attack {attack}"
    if ipfs:
        command += " --ipfs"
    if not base_accuracy:
        command += " --no-base-accuracy"
    result = run_round_bench(
        model=model,
        peers=peers,
        rounds=rounds,
        out=out,
        attack=attack,
        ipfs=ipfs,
        base_accuracy=base_accuracy,
        command=command,
    )
    log = ResultLog(out, command=command)
    records = as_records(result)
    for record in records:
        log.append(record)
    (out / "round_split.json").write_text(json.dumps(records[-1], indent=1, default=str), encoding="utf-8")
    table = markdown(result)
    (out / "table.md").write_text(table + "\nPer peer and round:\n\n" + peer_table(result), encoding="utf-8")
    err_console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
