"""Gas per peer per action as the federation grows: deploy on Anvil, run rounds, read receipts.

Every peer joins, then in each round submits, commits votes, attests the result (up to the
quorum) and (from the second round on) settles its previous score. Gas comes from the receipts
of real transactions; every federation size runs its rounds against the same Anvil.

    python -m bcfl.chain.gas_bench --peers 4,16,64,256 --rounds 3 --out results/gas-rounds

writes `results.jsonl` and `gas.md`: per action (median, min, max over every transaction) and
per round (all of the round's gas divided by the peers: flat when the protocol is O(1) per peer).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from web3 import Web3

from bcfl.chain.connection import connect
from bcfl.chain.deployment import FederationSettings, deploy
from bcfl.chain.devnet import start_anvil, stop_pid
from bcfl.chain.federation import Federation, ModelRef
from bcfl.chain.merkle import ScoreLeaf, included_hash, merkle_proof, merkle_root
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.errors import BcflError

ACTIONS = ("join", "submit", "vote", "attest", "attest_finalising", "settle")


@dataclass(frozen=True)
class GasRow:
    peers: int
    action: str
    median_gas: int
    min_gas: int
    max_gas: int
    count: int


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True)
class RoundGas:
    """All gas of one round (every peer's transactions in it) at one federation size."""

    peers: int
    round: int
    transactions: int
    total_gas: int
    wall_s: float

    @property
    def per_peer(self) -> float:
        return self.total_gas / self.peers


def run_rounds(w3: Web3, n_peers: int, rounds: int = 3) -> dict[str, list[int]]:
    """Gas used by each action over `rounds` rounds with `n_peers` peers."""
    gas: dict[str, list[int]] = defaultdict(list)
    for _, action, used in run_rounds_logged(w3, n_peers, rounds)[0]:
        gas[action].append(used)
    return gas


def run_rounds_logged(
    w3: Web3, n_peers: int, rounds: int = 3
) -> tuple[list[tuple[int, str, int]], dict[int, float]]:
    """Every transaction as (round, action, gas) (joins in round 0), and each round's wall seconds."""
    if n_peers < 1 or rounds < 1:
        raise BcflError(f"gas benchmark needs >= 1 peer and >= 1 round, got {n_peers} and {rounds}")
    decoder = default_decoder()
    deployer = Account.create()
    peers = [Account.create() for _ in range(n_peers)]
    for acct in [deployer, *peers]:
        w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**20)])  # type: ignore[arg-type]
    settings = FederationSettings(
        async_quorum=n_peers, quorum_bps=5000, min_bond_wei=10**15, round_duration=3600, vote_duration=3600
    )
    record = deploy(
        TxSender(w3, deployer, decoder), ModelRef("bafygenesis", _digest("g")), settings.to_config()
    )
    feds = [
        Federation(w3, record.address, sender=TxSender(w3, p, decoder), from_block=record.block_number)
        for p in peers
    ]
    log: list[tuple[int, str, int]] = []
    walls: dict[int, float] = {}
    for fed in feds:
        log.append((0, "join", fed.join(10**15).gas_used))
    previous: list[ScoreLeaf] = []
    for r in range(1, rounds + 1):
        started = time.perf_counter()
        for fed, acct in zip(feds, peers, strict=True):
            if previous:
                leaf = next(x for x in previous if x.peer == acct.address)
                proof = merkle_proof(previous, leaf)
                log.append((r, "settle", fed.settle(acct.address, r - 1, leaf.score, True, proof).gas_used))
            used = fed.submit_update(
                r,
                f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55f{r}{acct.address[-4:]}",
                _digest(f"{r}{acct.address}"),
                100,
                r,
            ).gas_used
            log.append((r, "submit", used))
        for fed, acct in zip(feds, peers, strict=True):
            used = fed.commit_votes(
                r, f"bafyvotes-{r}-{acct.address}", _digest(f"v{r}{acct.address}")
            ).gas_used
            log.append((r, "vote", used))
        leaves = [ScoreLeaf(r, a.address, 600_000 + i % 7, True) for i, a in enumerate(peers)]
        root = merkle_root(leaves)
        inc = included_hash([(a.address, f"bafyupdate-{r}-{a.address}") for a in peers])
        aggregate = ModelRef(
            f"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi{r}", _digest(f"agg{r}")
        )
        needed = feds[0].quorum()
        for i, fed in enumerate(feds[:needed]):
            used = fed.attest_result(r, root, inc, aggregate).gas_used
            log.append((r, "attest_finalising" if i == needed - 1 else "attest", used))
        previous = leaves
        walls[r] = time.perf_counter() - started
    return log, walls


def benchmark(peer_counts: Sequence[int], state_dir: Path, rounds: int = 3) -> list[GasRow]:
    """Gas per action (over every transaction of `rounds` rounds) at each federation size."""
    return benchmark_rounds(peer_counts, state_dir, rounds)[0]


def benchmark_rounds(
    peer_counts: Sequence[int], state_dir: Path, rounds: int = 3
) -> tuple[list[GasRow], list[RoundGas]]:
    """Per-action rows and per-round totals, every size on one Anvil."""
    devnet = start_anvil(state_dir)
    try:
        w3 = connect(devnet.rpc_url)
        rows: list[GasRow] = []
        per_round: list[RoundGas] = []
        for n in peer_counts:
            log, walls = run_rounds_logged(w3, n, rounds)
            for action in ACTIONS:
                values = [g for _, a, g in log if a == action]
                if values:
                    rows.append(
                        GasRow(
                            n, action, int(statistics.median(values)), min(values), max(values), len(values)
                        )
                    )
            for r in range(1, rounds + 1):
                used = [g for rr, _, g in log if rr == r]
                per_round.append(RoundGas(n, r, len(used), sum(used), walls[r]))
        return rows, per_round
    finally:
        stop_pid(devnet.pid)


def per_round_total(rows: Sequence[GasRow], peers: int) -> int:
    """A peer's gas in one steady-state round: submit + vote + attest + settle (medians)."""
    by_action = {r.action: r.median_gas for r in rows if r.peers == peers}
    return sum(by_action.get(a, 0) for a in ("submit", "vote", "attest", "settle"))


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def markdown(rows: Sequence[GasRow], per_round: Sequence[RoundGas], command: str) -> str:
    from bcfl.experiments.results import markdown_table

    sizes = sorted({r.peers for r in per_round})
    rounds = sorted({r.round for r in per_round})
    table = markdown_table(
        ["peers", "action", "median gas", "min", "max", "n"],
        [(r.peers, r.action, r.median_gas, r.min_gas, r.max_gas, r.count) for r in rows],
    )
    cell = {(r.peers, r.round): r for r in per_round}
    steady = [r for r in per_round if r.round >= 2] or list(per_round)
    base = statistics.median(r.per_peer for r in steady if r.peers == sizes[0])
    by_size = []
    for n in sizes:
        values = [r.per_peer for r in steady if r.peers == n]
        med = statistics.median(values)
        by_size.append(
            [
                n,
                *(f"{cell[(n, r)].per_peer:,.0f}" for r in rounds),
                f"{med:,.0f}",
                f"{(med - base) / base:+.1%}",
            ]
        )
    table += "\n" + markdown_table(
        ["peers", *(f"round {r} gas/peer" for r in rounds), "median of rounds >= 2", "vs smallest"], by_size
    )
    table += "\n" + markdown_table(
        ["peers", "round", "transactions", "total gas", "wall s"],
        [(r.peers, r.round, r.transactions, r.total_gas, f"{r.wall_s:.1f}") for r in per_round],
    )
    return f"Command: `{command}`\n\nRound 1 has no settle transactions (nothing to settle yet).\n\n{table}"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    from dataclasses import asdict

    from bcfl.experiments.results import ResultLog

    parser = argparse.ArgumentParser(
        prog="python -m bcfl.chain.gas_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--peers", default="4,16,64,256", help="comma-separated federation sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/gas-rounds"))
    args = parser.parse_args(argv)
    sizes = [int(p) for p in args.peers.split(",") if p.strip()]
    command = f"python -m bcfl.chain.gas_bench --peers {args.peers} --rounds {args.rounds} --out {args.out}"
    log = ResultLog(args.out, command=command)
    rows, per_round = benchmark_rounds(sizes, args.out / "anvil", args.rounds)
    for row in rows:
        log.append({"kind": "gas", **asdict(row)})
    for rg in per_round:
        log.append({"kind": "gas_round", **asdict(rg), "per_peer": rg.per_peer})
    text = markdown(rows, per_round, command)
    (args.out / "gas.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
