"""Peers fetch adapter folders from each other along a plan over TCP, verified by CID."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from bcfl.network.paths import optimised_plan
from bcfl.network.peer_storage import ObjectServer, PlannedStorage, routes_from_plan
from bcfl.network.plan import Plan, Transfer, broadcast
from bcfl.network.topology import generate
from bcfl.network.transfer import Address
from bcfl.storage.cid import cid_of_directory
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.errors import CidNotFound

pytestmark = pytest.mark.integration

ADAPTER = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": os.urandom(300_000)}


class CorruptServer(ObjectServer):
    """A relay that serves every object it is asked for, with one byte flipped."""

    def payload(self, cid: str, kind: str, wait: float) -> bytes | None:
        data = super().payload(cid, kind, wait)
        return None if data is None else data[:-1] + bytes([data[-1] ^ 1])


def _stores(tmp_path: Path, n: int) -> list[EmbeddedStorage]:
    return [EmbeddedStorage(tmp_path / f"peer{i}") for i in range(n)]


def test_a_folder_is_relayed_down_a_line_and_verified(tmp_path: Path) -> None:
    stores = _stores(tmp_path, 3)
    cid = stores[0].put_directory(ADAPTER)
    with ObjectServer(stores[0]) as s0, ObjectServer(stores[1]) as s1:
        # peer 2 asks peer 1 first; peer 1 is still fetching it from peer 0, and answers when it holds it
        p1 = PlannedStorage(stores[1], {cid: [s0.address]})
        p2 = PlannedStorage(stores[2], {cid: [s1.address, s0.address]}, wait=10.0)
        got: dict[str, dict[str, bytes]] = {}
        late = threading.Thread(target=lambda: got.update(two=p2.get_directory(cid)))
        late.start()
        got["one"] = p1.get_directory(cid)
        late.join(timeout=20)
        assert got["one"] == ADAPTER and got["two"] == ADAPTER
        assert [e.outcome for e in p2.events] == ["ok"]
        assert p2.events[0].peer == f"{s1.address.host}:{s1.address.port}"  # from the relay, not the source
        assert stores[2].has(cid) and s1.served == 1 and s0.served == 1


def test_corrupt_relay_is_caught_by_the_cid_and_routed_around(tmp_path: Path) -> None:
    stores = _stores(tmp_path, 3)
    cid = stores[0].put_directory(ADAPTER)
    stores[1].put_directory(ADAPTER)
    raw = os.urandom(5000)
    raw_cid = stores[1].put(raw)
    stores[0].put(raw)
    with ObjectServer(stores[0]) as good, CorruptServer(stores[1]) as bad:
        planned = PlannedStorage(
            stores[2], {cid: [bad.address, good.address], raw_cid: [bad.address, good.address]}
        )
        assert planned.get_directory(cid) == ADAPTER
        assert "not " + cid in planned.events[0].outcome and planned.events[1].outcome == "ok"
        assert bad.address in planned.banned
        assert planned.get(raw_cid) == raw  # the banned relay is not asked again
        assert [e.peer for e in planned.events[2:]] == [f"{good.address.host}:{good.address.port}"]


def test_dead_peers_then_the_inner_store(tmp_path: Path) -> None:
    stores = _stores(tmp_path, 2)
    cid = cid_of_directory(ADAPTER)
    dead = Address("127.0.0.1", 9)  # discard port: nothing listens
    with ObjectServer(stores[0]) as empty:
        planned = PlannedStorage(stores[1], {cid: [dead, empty.address]}, wait=0.1, connect_timeout=1.0)
        with pytest.raises(CidNotFound, match=cid):
            planned.get_directory(cid)
        outcomes = [e.outcome for e in planned.events]
        assert (
            "could not be asked" in outcomes[0] and "not held" in outcomes[1] and "not found" in outcomes[2]
        )
        stores[1].put_directory(ADAPTER)
        assert planned.get_directory(cid) == ADAPTER  # held locally now: no peer asked
        assert planned.events[-1].peer == "inner"


def test_a_host_that_does_not_answer_is_left_out_of_routes_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = _stores(tmp_path, 2)
    objects = [os.urandom(1000) for _ in range(3)]
    cids = [stores[0].put(o) for o in objects]
    down = Address("127.0.0.1", 9)
    connect = socket.create_connection

    def black_hole(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
        if address == (down.host, down.port):  # a host that drops every packet
            raise TimeoutError("timed out")
        return connect(address, timeout=timeout)

    monkeypatch.setattr(socket, "create_connection", black_hole)
    with ObjectServer(stores[0]) as live:
        planned = PlannedStorage(
            stores[1], {cid: [down, live.address] for cid in cids}, connect_timeout=1.0, unreachable_for=0.5
        )
        assert planned.get(cids[0]) == objects[0]
        assert planned.get(cids[1]) == objects[1]
        where = f"{down.host}:{down.port}"
        assert [e.peer for e in planned.events].count(where) == 1  # asked for the first object only
        assert planned.route(cids[2]) == [live.address]
        time.sleep(0.6)  # the set-aside time is over: it is tried again first
        assert planned.route(cids[2]) == [down, live.address]
        assert planned.get(cids[2]) == objects[2]
        assert [e.peer for e in planned.events].count(where) == 2


def test_a_refused_connection_is_asked_again_next_time(tmp_path: Path) -> None:
    stores = _stores(tmp_path, 2)
    objects = [os.urandom(1000) for _ in range(2)]
    cids = [stores[0].put(o) for o in objects]
    starting = Address("127.0.0.1", 9)  # nothing listens yet: refused at once
    with ObjectServer(stores[0]) as live:
        planned = PlannedStorage(stores[1], {cid: [starting, live.address] for cid in cids})
        assert planned.get(cids[0]) == objects[0] and planned.get(cids[1]) == objects[1]
        where = f"{starting.host}:{starting.port}"
        assert [e.peer for e in planned.events].count(where) == 2 and not planned.unreachable


def test_routes_follow_the_plan(tmp_path: Path) -> None:
    problem = broadcast(0, 1000, (0, 1, 2, 3))
    plan = Plan(
        "line",
        problem,
        {"aggregate": 1},
        (Transfer(0, 1, "aggregate", 0), Transfer(1, 2, "aggregate", 0), Transfer(2, 3, "aggregate", 0)),
    )
    addresses = {i: Address("127.0.0.1", 7000 + i) for i in range(4)}
    routes = routes_from_plan(plan, 3, {"aggregate": "bafyx"}, addresses)
    assert routes == {"bafyx": [addresses[2], addresses[1], addresses[0]]}
    assert routes_from_plan(plan, 1, {"aggregate": "bafyx"}, addresses) == {"bafyx": [addresses[0]]}


def test_every_peer_of_an_optimised_plan_gets_the_aggregate(tmp_path: Path) -> None:
    topo = generate("waxman", 6, seed=4)
    plan = optimised_plan(topo, broadcast(0, 300_000, topo.peers), chunks=4)
    stores = _stores(tmp_path, 6)
    cid = stores[0].put_directory(ADAPTER)
    servers = [ObjectServer(s).start() for s in stores]
    try:
        addresses = {i: s.address for i, s in enumerate(servers)}
        routes = [routes_from_plan(plan, i, {"aggregate": cid}, addresses)[cid] for i in range(6)]
        planned = [PlannedStorage(stores[i], {cid: routes[i]}, wait=10.0) for i in range(6)]
        results: dict[int, dict[str, bytes]] = {}
        threads = [
            threading.Thread(target=lambda i=i: results.update({i: planned[i].get_directory(cid)}))
            for i in range(1, 6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert all(results[i] == ADAPTER for i in range(1, 6))
        for i in range(1, 6):  # each peer got it from the first sender its plan names
            first = routes[i][0]
            assert [(e.peer, e.outcome) for e in planned[i].events] == [(f"{first.host}:{first.port}", "ok")]
        assert sum(s.served for s in servers) == 5
    finally:
        for s in servers:
            s.stop()


def test_upload_slots_hold_further_objects_until_one_is_sent(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "peer0")
    cid = store.put(os.urandom(10_000))
    with pytest.raises(ValueError, match="upload_slots"):
        ObjectServer(store, upload_slots=0)
    with ObjectServer(store, upload_slots=1) as server:
        # The requester's read timeout (2.5 s) is shorter than its wait: the server's WAIT lines
        # (one a second) keep the request alive until the slot frees.
        reader = PlannedStorage(
            EmbeddedStorage(tmp_path / "peer1"), {cid: [server.address]}, wait=0.0, connect_timeout=2.5
        )
        got: list[bytes] = []
        with server.upload_slot():  # the only slot is taken: the request waits its turn
            fetching = threading.Thread(target=lambda: got.append(reader.get(cid)))
            fetching.start()
            fetching.join(timeout=5.0)
            assert fetching.is_alive() and not got
        fetching.join(timeout=10)
        assert got and len(got[0]) == 10_000 and server.served == 1
        assert [e.outcome for e in reader.events] == ["ok"]


def test_a_free_slot_goes_to_the_request_the_plan_serves_first(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "peer0")
    order = [("cid-x", "10.0.0.2"), ("cid-x", "10.0.0.3")]
    with ObjectServer(store, upload_slots=1, serve_order=order, hold=2.0) as server:
        granted: list[str] = []

        def ask(requester: str) -> None:
            with server.upload_slot(cid="cid-x", requester=requester):
                granted.append(requester)
                time.sleep(0.05)

        late_in_plan = threading.Thread(target=ask, args=("10.0.0.3",))
        late_in_plan.start()  # arrives first, with the slot free: still waits for 10.0.0.2
        time.sleep(0.3)
        assert granted == []
        first_in_plan = threading.Thread(target=ask, args=("10.0.0.2",))
        first_in_plan.start()
        for t in (late_in_plan, first_in_plan):
            t.join(timeout=5)
        assert granted == ["10.0.0.2", "10.0.0.3"]
        # A request the plan does not name waits at most `hold` for the planned ones.
        started = time.monotonic()
        with server.upload_slot(cid="cid-y", requester="10.0.0.9"):
            pass
        assert time.monotonic() - started < 1.0
    with ObjectServer(store, upload_slots=1, serve_order=order, hold=0.2) as server:
        started = time.monotonic()
        with server.upload_slot(cid="cid-x", requester="10.0.0.3"):  # 10.0.0.2 never asks
            waited = time.monotonic() - started
        assert 0.15 <= waited < 1.0


def test_a_queued_requester_that_goes_away_holds_no_one_up(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "peer0")
    with ObjectServer(store, upload_slots=1) as server:
        gone: list[BaseException] = []

        def vanish() -> None:
            raise BrokenPipeError("requester closed the connection")

        def queued() -> None:
            try:
                with server.upload_slot(vanish, cid="cid-x", requester="10.0.0.2"):
                    pass
            except BrokenPipeError as exc:
                gone.append(exc)

        with server.upload_slot(cid="cid-x", requester="10.0.0.1"):  # the only slot is taken
            waiting = threading.Thread(target=queued)
            waiting.start()
            waiting.join(timeout=5)  # its first keepalive fails after a second
            assert gone and not waiting.is_alive()
        served: list[str] = []

        def later() -> None:
            with server.upload_slot(cid="cid-x", requester="10.0.0.3"):
                served.append("10.0.0.3")

        after = threading.Thread(target=later, daemon=True)
        after.start()
        after.join(timeout=2)
        assert served == ["10.0.0.3"]  # not stuck behind the request that went away
