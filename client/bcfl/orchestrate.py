"""A whole federation on one machine: devnet, deployment, and N peer processes.

Used by `bcfl demo`, the end-to-end tests and the experiments that run real peer processes.
Each peer is its own OS process (`bcfl node`) with its own generated keystore, talking to the
chain over JSON-RPC and to storage through the configured backend: one blockstore folder shared
by every peer (`embedded`), one js-ipfs daemon per peer (`ipfs`), or each peer's own blockstore
served to the others over TCP, objects fetched along planned paths (`p2p`). Where the peers run
is passed in (`bcfl.network.hosts`): this host's loopback by default, or one testbed host each
(its own namespace, address and shaped links; `p2p` storage only).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account
from web3 import Web3

from bcfl.chain.connection import connect
from bcfl.chain.deployment import FederationSettings, deploy, save_record
from bcfl.chain.devnet import ANVIL_DEV_KEYS, DevnetInfo, pid_alive, start_anvil, stop_pid
from bcfl.chain.federation import Federation, ModelRef, RoundStatus
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.chain.wallet import new_keystore
from bcfl.errors import BcflError
from bcfl.network.hosts import LoopbackHosts, PeerHosts
from bcfl.network.transfer import Address
from bcfl.node.timing import RoundTimes, read_timings
from bcfl.storage.base import Storage

PASSWORD_ENV = "BCFL_PEER_PASSWORD"


@dataclass(frozen=True)
class FederationSpec:
    workdir: Path
    peers: int = 5
    attackers: dict[int, str] = field(default_factory=lambda: {4: "sign_flip"})
    slowdowns: dict[int, float] = field(default_factory=dict)
    model: str = "tiny"
    closing_rule: str = "asynchronous"
    result_mode: str = "serverless"
    async_quorum: int = 4
    max_staleness: int = 2
    round_duration: int = 600
    vote_duration: int = 120
    result_duration: int = 300
    score_threshold: int = 450_000
    server_learning_rate: float = 1.0
    rounds: int = 3
    storage: str = "embedded"  # or "ipfs": one js-ipfs daemon per peer; "p2p": see the module doc
    local_steps: int = 4
    learning_rate: float = 2e-3
    batch_size: int = 4
    max_tokens: int = 96
    eval_examples: int = 8
    base_accuracy: bool = True  # each vote file also carries the base's accuracy (explorer)
    threads: int = 1
    partition: str = "dirichlet"
    alpha: float = 0.5
    data_seed: int = 0


@dataclass
class PeerProcess:
    index: int
    address: str
    keystore: Path
    config_path: Path
    log_path: Path
    role: str
    proc: subprocess.Popen[bytes] | None = None


class LocalFederation:
    """Start with `with LocalFederation(spec) as fed:`; everything started is stopped on exit."""

    def __init__(self, spec: FederationSpec, hosts: PeerHosts | None = None) -> None:
        self.spec = spec
        self.hosts: PeerHosts = hosts if hosts is not None else LoopbackHosts()
        self.devnet: DevnetInfo | None = None
        self.w3: Web3 | None = None
        self.federation: Federation | None = None
        self.processes: list[PeerProcess] = []
        self.ipfs_state: Path | None = None
        self.storage_urls: list[str] = []
        self.genesis: ModelRef | None = None
        self.peers_file: Path | None = None  # p2p: where every peer serves
        self.servers: dict[int, Address] = {}  # p2p: peer index -> its object server
        self._password = secrets.token_urlsafe(16)
        self.timings: dict[str, float] = {}

    # -- set-up -------------------------------------------------------------------------------

    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def deployment_path(self) -> Path:
        return self.spec.workdir / "deployments" / "31337.json"

    def start(self) -> None:
        spec = self.spec
        if spec.storage not in ("embedded", "ipfs", "p2p"):
            raise BcflError(f"storage {spec.storage!r} is not one of embedded, ipfs, p2p")
        if spec.storage != "p2p" and not isinstance(self.hosts, LoopbackHosts):
            raise BcflError(
                f"storage {spec.storage!r} keeps objects on this host: peers on other hosts need p2p"
            )
        if spec.workdir.exists():
            shutil.rmtree(spec.workdir)
        spec.workdir.mkdir(parents=True)
        t0 = time.monotonic()
        self.devnet = start_anvil(spec.workdir / "anvil")
        self.w3 = connect(self.devnet.rpc_url)
        self.hosts.reach_chain(Address("127.0.0.1", self.devnet.port))
        self._start_storage()
        self.genesis = self._publish_genesis()
        self.timings["genesis_s"] = time.monotonic() - t0
        deployer = Account.from_key(ANVIL_DEV_KEYS[0])  # Anvil's well-known dev key, devnet only
        sender = TxSender(self.w3, deployer, default_decoder())
        peers = self._make_peers()
        if spec.storage == "p2p":
            self._plan_p2p(peers)
        aggregator = next((p.address for p in peers if p.role == "aggregator"), "")
        settings = FederationSettings(
            closing_rule=spec.closing_rule,
            result_mode=spec.result_mode,
            aggregator=aggregator,
            min_bond_wei=10**15,
            async_quorum=spec.async_quorum,
            max_staleness=spec.max_staleness if spec.closing_rule == "asynchronous" else 0,
            round_duration=spec.round_duration,
            vote_duration=spec.vote_duration,
            result_duration=spec.result_duration,
            score_threshold=spec.score_threshold,
            server_learning_rate=spec.server_learning_rate,
        )
        record = deploy(sender, self.genesis, settings.to_config())
        save_record(self.deployment_path.parent, record)
        self.federation = Federation(self.w3, record.address, from_block=record.block_number)
        for p in peers:
            self.w3.provider.make_request("anvil_setBalance", [p.address, hex(10**19)])  # type: ignore[arg-type]
        for p in peers:
            self._write_config(p)
            self.spawn(p)
        self.processes = peers
        self.timings["setup_s"] = time.monotonic() - t0

    def _start_storage(self) -> None:
        storage = self.spec.storage
        if storage == "ipfs":
            import bcfl.storage.ipfs_daemons as ipfs_daemons

            self.ipfs_state = self.spec.workdir
            daemons = ipfs_daemons.start_daemons(self.spec.peers + 1, self.ipfs_state)
            ipfs_daemons.save_daemons(self.ipfs_state, daemons)
            self.storage_urls = [d.api_url for d in daemons]
        elif storage == "p2p":
            self.storage_urls = ["p2p"] * (self.spec.peers + 1)
        else:
            shared = self.spec.workdir / "store"
            self.storage_urls = [f"embedded:{shared}"] * (self.spec.peers + 1)

    def _plan_p2p(self, peers: list[PeerProcess]) -> None:
        """A server address per peer, the peers file naming them, the genesis in every store."""
        from bcfl.node.p2p import write_peers_file
        from bcfl.storage.embedded import EmbeddedStorage

        assert self.genesis is not None
        self.servers = {p.index: self.hosts.server(p.index) for p in peers}
        rates = {p.address: r for p in peers if (r := self.hosts.rates_mbit(p.index)) is not None}
        self.peers_file = self.spec.workdir / "peers.toml"
        write_peers_file(self.peers_file, {p.address: self.servers[p.index] for p in peers}, rates)
        files = EmbeddedStorage(self.spec.workdir / "genesis").get_directory(self.genesis.cid)
        for p in peers:
            store = EmbeddedStorage(self.peer_dir(p.index))
            if store.put_directory(files) != self.genesis.cid:
                raise BcflError(f"genesis seeded into {self.peer_dir(p.index)} has another CID")
            store.pin(self.genesis.cid)

    def reader(self, data_dir: Path) -> Storage:
        """Storage from which the federation's objects can be read (reports, audits): the shared
        store or an IPFS daemon; with `p2p`, a store in `data_dir` that asks every peer."""
        from bcfl.node.work import open_storage_spec

        store = open_storage_spec(self.storage_spec(self.spec.peers), data_dir)
        if self.spec.storage != "p2p":
            return store
        from bcfl.network.peer_storage import PlannedStorage, Route

        everyone = Route(tuple(self.hosts.reach_server(i) for i in sorted(self.servers)), 0, 0.0)
        return PlannedStorage(store, lambda cid: everyone, wait=0.0)

    def peer_dir(self, index: int) -> Path:
        """Peer `index`'s data folder (journal, timings, lock)."""
        return self.spec.workdir / "peers" / f"peer{index}"

    def storage_spec(self, index: int) -> str:
        return self.storage_urls[index]

    def _publish_genesis(self) -> ModelRef:
        from bcfl.node.work import publish_genesis

        return publish_genesis(
            self.spec.model, self.storage_spec(self.spec.peers), self.spec.workdir / "genesis"
        )

    def _make_peers(self) -> list[PeerProcess]:
        keys = self.spec.workdir / "keystores"
        peers = []
        roles = ["peer"] * self.spec.peers
        if self.spec.result_mode == "server":
            roles.append("aggregator")
        for i, role in enumerate(roles):
            entry = new_keystore(keys, self._password, kdf_iterations=2048)
            peers.append(
                PeerProcess(
                    index=i,
                    address=entry.address,
                    keystore=entry.path,
                    config_path=self.spec.workdir / "peers" / f"peer{i}.toml",
                    log_path=self.spec.workdir / "peers" / f"peer{i}.log",
                    role=role,
                )
            )
        return peers

    def _write_config(self, p: PeerProcess) -> None:
        spec = self.spec
        assert self.devnet is not None
        values: dict[str, Any] = {
            "rpc": self.devnet.rpc_url,
            "deployment": str(self.deployment_path),
            "keystore": str(p.keystore),
            "password_env": PASSWORD_ENV,
            "data_dir": str(self.peer_dir(p.index)),
            "storage": self.storage_spec(p.index),
            "model": spec.model,
            "role": p.role,
            "peer_index": min(p.index, spec.peers - 1),
            "peers": spec.peers,
            "partition": spec.partition,
            "alpha": spec.alpha,
            "data_seed": spec.data_seed,
            "local_steps": spec.local_steps,
            "learning_rate": spec.learning_rate,
            "batch_size": spec.batch_size,
            "max_tokens": spec.max_tokens,
            "eval_examples": spec.eval_examples,
            "base_accuracy": spec.base_accuracy,
            "threads": spec.threads,
            "slowdown": spec.slowdowns.get(p.index, 0.0),
            "log_format": "json",
            "progress": False,
            "poll_interval": 0.3,
        }
        if self.peers_file is not None:
            values["peers_file"] = str(self.peers_file)
        if p.index in spec.attackers:
            values["attack"] = spec.attackers[p.index]
        p.config_path.parent.mkdir(parents=True, exist_ok=True)
        p.config_path.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in values.items()), encoding="utf-8")

    def spawn(self, p: PeerProcess) -> None:
        env = {**os.environ, PASSWORD_ENV: self._password, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "bcfl.cli.app", "node", "--config", str(p.config_path)]
        log = p.log_path.open("ab")
        p.proc = subprocess.Popen(
            self.hosts.command(p.index, argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()

    def kill(self, index: int) -> None:
        """SIGKILL a peer process (for restart-safety tests)."""
        p = self.processes[index]
        if p.proc is not None:
            p.proc.kill()
            p.proc.wait(timeout=10)

    # -- observing ----------------------------------------------------------------------------

    def wait_for_round(self, round_id: int, *, timeout: float) -> RoundStatus:
        """Block until round `round_id` is finalised or expired; fail if a peer process died."""
        assert self.federation is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.federation.round(round_id).status
            if status in (RoundStatus.FINALISED, RoundStatus.EXPIRED):
                return status
            self._check_alive()
            time.sleep(0.5)
        raise BcflError(
            f"round {round_id} did not finish within {timeout:.0f} s; see {self.spec.workdir}/peers/*.log"
        )

    def _check_alive(self) -> None:
        for p in self.processes:
            if p.proc is not None and p.proc.poll() is not None and p.proc.returncode not in (0, -9):
                tail = p.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise BcflError(f"peer {p.index} exited with code {p.proc.returncode}:\n{tail}")

    def events(self, index: int) -> list[dict[str, Any]]:
        """The JSON log records of peer `index`."""
        records = []
        for line in self.processes[index].log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def peer_timings(self, index: int) -> dict[int, RoundTimes]:
        """The per-round phase times peer `index` has recorded so far (see bcfl.node.timing)."""
        return read_timings(self.peer_dir(index))

    def wait_for_timings(self, round_id: int, *, timeout: float) -> list[int]:
        """Wait until every peer has moved past `round_id` (so its record of it is complete);
        return the peers that have, which is all of them unless `timeout` ran out."""
        deadline = time.monotonic() + timeout
        while True:
            done = [p.index for p in self.processes if max(self.peer_timings(p.index), default=0) > round_id]
            if len(done) == len(self.processes) or time.monotonic() >= deadline:
                return done
            self._check_alive()
            time.sleep(0.5)

    # -- tear-down ----------------------------------------------------------------------------

    def stop(self) -> None:
        for p in self.processes:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for p in self.processes:
            if p.proc is not None:
                try:
                    p.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait(timeout=5)
        if self.ipfs_state is not None:
            import bcfl.storage.ipfs_daemons as ipfs_daemons

            ipfs_daemons.stop_daemons(ipfs_daemons.load_daemons(self.ipfs_state))
            self.ipfs_state = None
        if self.devnet is not None and pid_alive(self.devnet.pid):
            stop_pid(self.devnet.pid)
        self.hosts.close()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
