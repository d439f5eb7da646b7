"""What a peer node does with bad input, against a real Anvil (tiny model, embedded store).

The chain going down mid-round (a loopback proxy in front of Anvil is switched off, then on),
storage going down mid-round (the real Kubo client against a dead daemon URL), a base model that
does not verify, a revert decoded into the contract's error, a missing data file, and a second
node on the same key and data folder. Each must give a clear message and lose nothing.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bcfl.chain.connection import connect
from bcfl.chain.deployment import Deployment, FederationSettings, deploy
from bcfl.chain.devnet import DevnetInfo, free_port
from bcfl.chain.federation import Federation, ModelRef
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.errors import BcflError
from bcfl.node.config import NodeConfig
from bcfl.node.journal import DataDirLock, Journal, NodeLockedError, PendingUpdate
from bcfl.node.learner import Learner
from bcfl.node.loop import PeerNode
from bcfl.node.runner import run_node
from bcfl.node.timing import PhaseRecorder, TimedStorage, time_chain
from bcfl.node.work import PeerWork, build_work, publish_genesis
from bcfl.storage.base import DEFAULT_MAX_BYTES, Storage
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.kubo import KuboStorage
from tests.conftest import funded_accounts

pytestmark = pytest.mark.integration


# -- fixtures ---------------------------------------------------------------------------------


class SwitchableProxy:
    """A loopback TCP proxy to `target_port` that can be switched off (connections refused and
    open ones cut) and on again on the same port: a chain endpoint that goes down and comes back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


class SwitchableStorage:
    """The embedded store while up; the real Kubo client against a dead daemon URL while down."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.dead = KuboStorage(f"http://127.0.0.1:{free_port()}", timeout=2)
        self.is_down = False

    @property
    def _now(self) -> Storage:
        return self.dead if self.is_down else self.inner

    @property
    def location(self) -> str:
        return self._now.location

    def put(self, data: bytes) -> str:
        return self._now.put(data)

    def put_file(self, path: Path) -> str:
        return self._now.put_file(path)

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        return self._now.put_directory(files)

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        return self._now.get(cid, max_bytes=max_bytes, timeout=timeout)

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        return self._now.get_directory(cid, max_bytes=max_bytes, timeout=timeout)

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        self._now.pin(cid, timeout=timeout)

    def has(self, cid: str) -> bool:
        return self._now.has(cid)


@pytest.fixture(scope="module")
def learner_conf(tmp_path_factory: pytest.TempPathFactory) -> NodeConfig:
    root = tmp_path_factory.mktemp("node-bad-input")
    return NodeConfig(
        model="tiny",
        peers=2,
        peer_index=0,
        storage=f"embedded:{root / 'store'}",
        data_dir=root / "peer",
        local_steps=1,
        batch_size=2,
        max_tokens=32,
        eval_examples=2,
        progress=False,
    )


@pytest.fixture(scope="module")
def learner(learner_conf: NodeConfig) -> Learner:
    return Learner.from_config(learner_conf, address="0x" + "11" * 20)


def _deploy(w3: Web3, store_dir: Path, genesis: ModelRef | None = None) -> tuple[Deployment, LocalAccount]:
    genesis = genesis or publish_genesis("tiny", f"embedded:{store_dir}", store_dir.parent)
    deployer, peer = funded_accounts(w3, 2)
    settings = FederationSettings(async_quorum=2, max_staleness=1, score_threshold=0, min_bond_wei=0)
    return deploy(TxSender(w3, deployer, default_decoder()), genesis, settings.to_config()), peer


def _node(
    w3: Web3,
    record: Deployment,
    acct: LocalAccount,
    storage: Storage,
    learner: Learner,
    data_dir: Path,
    *,
    journal: Journal | None = None,
    on_event: object = None,
) -> PeerNode:
    fed = Federation(
        w3, record.address, sender=TxSender(w3, acct, default_decoder()), from_block=record.block_number
    )
    if not fed.peer(acct.address).active:
        fed.join(0)
    data_dir.mkdir(parents=True, exist_ok=True)
    timer = PhaseRecorder()
    work = PeerWork(learner.conf, acct.address, fed, TimedStorage(storage, timer), learner, timer)
    return PeerNode(
        fed,
        work,
        journal or Journal(),
        address=acct.address,
        role="peer",
        data_dir=data_dir,
        on_event=on_event,  # type: ignore[arg-type]
        timer=timer,
    )


def _run_in_thread(node: PeerNode) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(
        target=node.run, kwargs={"poll_interval": 0.05, "should_stop": stop.is_set}, daemon=True
    )
    thread.start()
    return thread, stop


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("round step failed")]


# -- the cases --------------------------------------------------------------------------------


def test_chain_down_mid_round_waits_retries_and_resumes(
    anvil: DevnetInfo, w3: Web3, learner: Learner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bcfl.node")
    record, acct = _deploy(w3, tmp_path / "store")
    proxy = SwitchableProxy(int(anvil.rpc_url.rsplit(":", 1)[1]))
    proxy.up()
    w3p = connect(proxy.url)
    events: list[str] = []

    def on_event(kind: str, data: dict[str, object]) -> None:
        events.append(kind)
        if kind == "trained":
            proxy.down()  # the chain disappears between training and submitting

    node = _node(
        w3p, record, acct, EmbeddedStorage(tmp_path / "store"), learner, tmp_path / "peer", on_event=on_event
    )
    time_chain(w3p, node.timer)
    thread, stop = _run_in_thread(node)
    try:
        _wait(lambda: len(_failures(caplog)) >= 2, 60, "two failed steps while the chain is down")
        assert "submitted" not in events
        proxy.up()
        _wait(lambda: "submitted" in events, 60, "the submission after the chain came back")
    finally:
        stop.set()
        thread.join(timeout=30)
        proxy.down()
    message = _failures(caplog)[0]
    assert f"chain RPC {proxy.url} is not answering" in message and "retrying in" in message
    assert "resumed" in events and events.count("trained") == 1  # the pinned update was kept
    fed = Federation(w3, record.address, from_block=record.block_number)
    assert [s.peer for s in fed.submissions(1)] == [acct.address]
    assert node.timer.rounds[1].transactions == 1


def test_storage_down_mid_round_waits_retries_and_resumes(
    w3: Web3, learner: Learner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bcfl.node")
    record, acct = _deploy(w3, tmp_path / "store")
    storage = SwitchableStorage(EmbeddedStorage(tmp_path / "store"))
    storage.is_down = True  # down before the base model is fetched
    events: list[str] = []
    node = _node(
        w3, record, acct, storage, learner, tmp_path / "peer", on_event=lambda k, d: events.append(k)
    )
    thread, stop = _run_in_thread(node)
    try:
        _wait(lambda: len(_failures(caplog)) >= 2, 60, "two failed steps while storage is down")
        assert "trained" not in events
        storage.is_down = False
        _wait(lambda: "submitted" in events, 60, "the submission after storage came back")
    finally:
        stop.set()
        thread.join(timeout=30)
    message = _failures(caplog)[0]
    assert storage.dead.location in message and "unreachable" in message
    assert events.count("trained") == 1 and "resumed" in events


def test_base_model_that_does_not_verify_is_named_and_nothing_is_sent(
    w3: Web3, learner: Learner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bcfl.node")
    real = publish_genesis("tiny", f"embedded:{tmp_path / 'store'}", tmp_path)
    forged = ModelRef(real.cid, bytes(32 - 1) + b"\x01")  # the right bytes, a wrong committed digest
    record, acct = _deploy(w3, tmp_path / "store", genesis=forged)
    node = _node(w3, record, acct, EmbeddedStorage(tmp_path / "store"), learner, tmp_path / "peer")
    with pytest.raises(BcflError, match=f"adapter {real.cid}: digest .* does not match"):
        node.step()
    thread, stop = _run_in_thread(node)
    try:  # the loop survives it: waits and retries (a peer may still serve the right bytes)
        _wait(lambda: len(_failures(caplog)) >= 2, 30, "two retries")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert thread.is_alive() is False
    assert node.journal.pending is None
    assert Federation(w3, record.address, from_block=record.block_number).submissions(1) == []


def test_revert_is_decoded_and_an_update_the_contract_refuses_is_replaced(
    w3: Web3, learner: Learner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bcfl.node")
    record, acct = _deploy(w3, tmp_path / "store")
    store = EmbeddedStorage(tmp_path / "store")
    # A journal carrying an update "trained from" a future round (a corrupted or foreign journal).
    bogus = PendingUpdate(trained_from=7, cid="bafkreibogus", digest="ab" * 32, samples=3)
    events: list[str] = []
    node = _node(
        w3,
        record,
        acct,
        store,
        learner,
        tmp_path / "peer",
        journal=Journal(pending=bogus),
        on_event=lambda k, d: events.append(k),
    )
    assert node.step() == "update_refused"
    warning = next(r.getMessage() for r in caplog.records if "refused by the contract" in r.getMessage())
    assert "FederationUpdateTooStale(trainedFrom=7, round=1, maxStaleness=1)" in warning
    assert node.journal.pending is None
    assert node.step() == "trained" and node.step() == "submitted"
    fed = Federation(w3, record.address, from_block=record.block_number)
    assert [s.trained_from for s in fed.submissions(1)] == [1]


def test_missing_data_file_is_a_clear_error(
    w3: Web3, learner_conf: NodeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bcfl.learning.data as data

    monkeypatch.setattr(data, "DATA_FILES", ("train.csv.gz", "shard-missing.csv.gz"))
    fed = Federation(w3, "0x" + "22" * 20)
    with pytest.raises(
        BcflError, match=r"cannot load model 'tiny' or the data for peer 0: .*shard-missing\.csv\.gz"
    ):
        build_work(learner_conf, address="0x" + "11" * 20, fed=fed)


def test_second_node_on_the_same_key_and_data_folder_is_refused(
    anvil: DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BCFL_TEST_KEY", "0x" + "42" * 32)  # a throwaway key, never funded
    conf = NodeConfig(rpc=anvil.rpc_url, key_env="BCFL_TEST_KEY", data_dir=tmp_path / "peer", model="tiny")
    refused = pytest.raises(NodeLockedError, match=f"data folder {conf.data_dir} is in use by pid")
    with DataDirLock(conf.data_dir), refused:  # the first node holds the folder
        run_node(conf)
    # The folder also stays bound to its first key: another key is refused, before any chain call.
    (conf.data_dir / "owner.json").write_text('{"address": "0x' + "33" * 20 + '"}\n', encoding="utf-8")
    with pytest.raises(BcflError, match="belongs to peer 0x3333"):
        run_node(conf)
