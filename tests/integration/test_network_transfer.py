"""Real TCP transfers on loopback along a plan, with a lying relay and a dropped link."""

from __future__ import annotations

import asyncio
import os

import pytest

from bcfl.network.paths import optimised_plan
from bcfl.network.plan import Plan, Transfer, broadcast
from bcfl.network.topology import uniform_mesh
from bcfl.network.transfer import (
    ChunkServer,
    ChunkStore,
    ServerFaults,
    TransferError,
    cid_verify,
    fetch,
    run_local,
)
from bcfl.storage.cid import cid_of_bytes

pytestmark = pytest.mark.integration


def relay_chain() -> Plan:
    """0 -> 1 -> {2, 3}: node 1 is the only planned relay."""
    problem = broadcast(0, 300_000, (1, 2, 3))
    transfers = []
    for c in range(4):
        transfers += [
            Transfer(0, 1, "aggregate", c),
            Transfer(1, 2, "aggregate", c),
            Transfer(1, 3, "aggregate", c),
        ]
    return Plan("chain", problem, {"aggregate": 4}, tuple(transfers))


def test_plan_delivers_verified_bytes_over_tcp() -> None:
    topo = uniform_mesh([1e6] * 5, [4e6] * 5, 0.01)
    plan = optimised_plan(topo, broadcast(0, 500_000, topo.peers), chunks=8)
    reports = asyncio.run(run_local(plan, {"aggregate": os.urandom(500_000)}))
    for node in range(1, 5):
        assert reports[node].fetched > 0 or reports[node].completion is not None
        assert reports[node].rejected == []
        assert reports[node].completion is not None


def test_corrupting_relay_is_caught_and_routed_around() -> None:
    data = os.urandom(300_000)
    reports = asyncio.run(
        run_local(relay_chain(), {"aggregate": data}, faults={1: ServerFaults(corrupt=True)})
    )
    for node in (2, 3):
        assert reports[node].banned == {1}
        assert any("do not match CID" in line for line in reports[node].rejected)
        assert reports[node].rerouted >= 1
        assert reports[node].completion is not None  # run_local also re-checks the assembled CID


def test_link_dropped_mid_transfer_is_retried_elsewhere() -> None:
    data = os.urandom(300_000)
    reports = asyncio.run(
        run_local(relay_chain(), {"aggregate": data}, faults={1: ServerFaults(drop_after=5000)})
    )
    for node in (2, 3):
        assert any("dropped the connection after 5000 bytes" in line for line in reports[node].rejected)
        assert reports[node].rerouted == 4
        assert reports[node].completion is not None


def test_every_holder_lying_is_an_error_naming_the_cid() -> None:
    data = os.urandom(300_000)
    faults = {0: ServerFaults(corrupt=True), 1: ServerFaults(corrupt=True)}
    with pytest.raises(TransferError, match="could not fetch CID b"):
        asyncio.run(run_local(relay_chain(), {"aggregate": data}, faults=faults, wait=1.0))


def test_server_waits_for_a_chunk_that_arrives_later() -> None:
    async def scenario() -> bytes:
        store = ChunkStore()
        server = await ChunkServer(store).start()
        try:
            chunk = b"relayed later" * 1000
            cid = cid_of_bytes(chunk)
            pending = asyncio.ensure_future(fetch("127.0.0.1", server.port, cid, wait=5.0))
            await asyncio.sleep(0.2)
            store.put(cid, chunk)
            got = await pending
            assert cid_verify(cid, got)
            return got
        finally:
            await server.close()

    assert asyncio.run(scenario()).startswith(b"relayed later")
