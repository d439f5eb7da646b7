"""Wiring one peer process: wallet, chain, storage, learner and the round loop."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType

from web3.types import RPCEndpoint

from bcfl.chain.connection import connect
from bcfl.chain.deployment import open_federation
from bcfl.chain.federation import Federation
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.chain.wallet import load_account
from bcfl.errors import BcflError
from bcfl.node.config import NodeConfig
from bcfl.node.journal import DataDirLock, load_journal
from bcfl.node.loop import PeerNode, RoundWork
from bcfl.node.timing import TIMINGS_FILE, PhaseRecorder, time_chain

log = logging.getLogger("bcfl.node")


def _claim_data_dir(data_dir: Path, address: str) -> None:
    """A data folder belongs to one key: refuse to mix two peers' journals."""
    owner_file = data_dir / "owner.json"
    if owner_file.exists():
        owner = json.loads(owner_file.read_text(encoding="utf-8")).get("address")
        if owner and owner.lower() != address.lower():
            raise BcflError(f"data folder {data_dir} belongs to peer {owner}, not {address}")
        return
    owner_file.write_text(json.dumps({"address": address}) + "\n", encoding="utf-8")


def run_node(conf: NodeConfig) -> None:
    """Run one peer until stopped (SIGINT/SIGTERM) or until `conf.max_rounds` have finished."""
    from bcfl.node.work import build_work, open_node_storage  # heavy imports (torch) once we run

    timer = PhaseRecorder(conf.data_dir / TIMINGS_FILE)  # start-up (model load, join) counts from here
    account = load_account(keystore=conf.keystore, password_env=conf.password_env, key_env=conf.key_env)
    conf.data_dir.mkdir(parents=True, exist_ok=True)
    with DataDirLock(conf.data_dir):
        _claim_data_dir(conf.data_dir, account.address)
        w3 = connect(conf.rpc)
        # web3 re-asks the chain id before every call and gas estimate (its validation step):
        # two extra requests per read, most of a peer's chain time. An endpoint's id is fixed.
        w3.provider.cache_allowed_requests = True
        w3.provider.cacheable_requests = {RPCEndpoint("eth_chainId")}
        time_chain(w3, timer)
        sender = TxSender(w3, account, default_decoder())
        _, fed = open_federation(w3, conf.deployment, sender=sender)
        fed_config = fed.config()
        log.info("peer %s (%s) on federation %s via %s", account.address, conf.role, fed.address, conf.rpc)
        if conf.role == "peer" and not fed.peer(account.address).active:
            bond = conf.bond_wei if conf.bond_wei is not None else fed_config.min_bond
            receipt = fed.join(bond)
            log.info("joined with bond %d wei (gas %d)", bond, receipt.gas_used)
        if conf.role == "aggregator" and fed_config.aggregator.lower() != account.address.lower():
            raise BcflError(
                f"{account.address} is not this federation's aggregator ({fed_config.aggregator})"
            )
        storage, server = open_node_storage(conf, address=account.address, fed=fed)
        try:
            work = build_work(conf, address=account.address, fed=fed, timer=timer, storage=storage)
            _run(conf, account.address, fed, timer, work)
        finally:
            if server is not None:
                server.stop()
                log.info(
                    "object server stopped: served %d objects (%d bytes); fetched %d bytes from peers",
                    server.served,
                    server.served_bytes,
                    getattr(storage, "fetched_bytes", 0),
                    extra={
                        "event": "p2p_totals",
                        "served": server.served,
                        "served_bytes": server.served_bytes,
                        "fetched_bytes": getattr(storage, "fetched_bytes", 0),
                    },
                )


def _run(conf: NodeConfig, address: str, fed: Federation, timer: PhaseRecorder, work: RoundWork) -> None:
    """The round loop until a signal or `conf.max_rounds`."""
    node = PeerNode(
        fed,
        work,
        load_journal(conf.data_dir),
        address=address,
        role=conf.role,
        data_dir=conf.data_dir,
        slowdown=conf.slowdown,
        timer=timer,
    )
    stopping = {"flag": False}

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current step", signum)
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        node.run(
            max_rounds=conf.max_rounds,
            poll_interval=conf.poll_interval,
            should_stop=lambda: stopping["flag"],
        )
    finally:
        timer.save()
