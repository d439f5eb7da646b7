"""The explorer as one object: index + chain follower + storage enricher + HTTP server.

explorer = Explorer(ExplorerConfig(rpc_url="http://127.0.0.1:8545",
                                   deployment=Path("deploy/deployments/31337.json")))
explorer.start()      # returns at once; pages answer 503 with the reason until indexed
explorer.wait_synced(timeout=30)
... explorer.url ...
explorer.stop()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from bcfl.chain.federation import Federation
from bcfl.errors import BcflError
from bcfl.explorer.enrich import Enricher
from bcfl.explorer.index import ChainIndex, Follower, IndexStore
from bcfl.explorer.server import ExplorerHTTPServer
from bcfl.storage.base import Storage


class ExplorerError(BcflError):
    """The explorer could not start (port taken, bad options) or did not catch up in time."""


@dataclass(frozen=True)
class ExplorerConfig:
    rpc_url: str
    deployment: Path
    host: str = "127.0.0.1"  # loopback: exposing it is the user's explicit choice
    port: int = 8600  # 0 picks a free port
    state_dir: Path | None = None  # persist the index here, and resume from it
    poll_interval: float = 1.0  # seconds between eth_blockNumber polls
    storage_timeout: float = 10.0  # per vote file / audit fetch
    audit: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        if not self.rpc_url.startswith(("http://", "https://")):
            raise ExplorerError(f"RPC URL {self.rpc_url!r} must start with http:// or https://")
        if not 0 <= self.port <= 65535:
            raise ExplorerError(f"port {self.port} is out of range 0..65535")
        if self.poll_interval <= 0:
            raise ExplorerError(f"poll interval must be positive, got {self.poll_interval}")
        if self.storage_timeout <= 0:
            raise ExplorerError(f"storage timeout must be positive, got {self.storage_timeout}")


class Explorer:
    def __init__(self, config: ExplorerConfig, *, storage: Storage | None = None) -> None:
        self.config = config
        self.index = ChainIndex()
        store = IndexStore(config.state_dir) if config.state_dir is not None else None
        self.enricher = Enricher(
            self.index,
            storage,
            timeout=config.storage_timeout,
            poll_interval=config.poll_interval,
            audit=config.audit,
        )
        self.follower = Follower(
            self.index,
            config.rpc_url,
            config.deployment,
            poll_interval=config.poll_interval,
            store=store,
            on_connect=self._connected,
        )
        try:
            self.server = ExplorerHTTPServer(
                (config.host, config.port), self.index, config.rpc_url, verbose=config.verbose
            )
        except OSError as exc:
            raise ExplorerError(
                f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from exc

    def _connected(self, w3: Web3, fed: Federation) -> None:
        self.enricher.set_federation(fed)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()
        self.follower.start()
        self.enricher.start()

    def stop(self) -> None:
        self.follower.stop()
        self.enricher.stop()
        self.server.stop()

    def wait_synced(self, *, block: int | None = None, timeout: float = 60.0) -> None:
        """Wait until the index reaches `block` (default: the head when called)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.index.lock:
                head = block if block is not None else self.index.head
                if head is not None and self.index.last_block is not None and self.index.last_block >= head:
                    return
            time.sleep(0.05)
        raise ExplorerError(
            f"the explorer did not index up to block {block if block is not None else self.index.head} "
            f"within {timeout:g} s (indexed to {self.index.last_block}; {self.index.error or 'no error'})"
        )

    def wait_enriched(self, *, timeout: float = 60.0) -> None:
        """Wait until every vote file was tried and every finished round has a verdict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.index.lock:
                votes_done = (
                    all(
                        (r.round, v.voter) in self.index.vote_files
                        for r in self.index.rounds.values()
                        for v in r.votes
                    )
                    or self.enricher.storage is None
                )
                audits_done = all(
                    r.round in self.index.audits
                    for r in self.index.rounds.values()
                    if r.status in ("finalised", "expired")
                )
            if votes_done and audits_done:
                return
            time.sleep(0.05)
        raise ExplorerError(f"the explorer did not read storage for every round within {timeout:g} s")
