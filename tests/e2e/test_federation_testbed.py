"""Peer processes on separate network hosts: one testbed namespace each, with shaped links.

Every peer runs inside its own namespace with its own address and htb-shaped access links, serves
its blockstore there, and fetches the other peers' updates and vote files across the testbed's
switch along the round's plan (`storage = "p2p"`, peers file carrying the hosts' link rates).
The devnet stays in the root namespace, reached from each host through a forwarder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bcfl.audit.checks import audit_federation
from bcfl.chain.federation import RoundStatus
from bcfl.errors import BcflError
from bcfl.network.hosts import OBJECT_PORT, TestbedHosts
from bcfl.network.paths import slot_counts
from bcfl.network.testbed import Testbed
from bcfl.network.topology import MBIT
from bcfl.node.p2p import load_peers_file
from bcfl.orchestrate import LocalFederation
from tests.e2e.specs import tiny_spec
from tests.testbeds import shaped_testbed

pytestmark = pytest.mark.e2e

UPLOAD_MBIT = [8.0, 16.0, 32.0, 64.0]


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    yield from shaped_testbed(UPLOAD_MBIT, [4 * u for u in UPLOAD_MBIT])


def test_peers_on_separate_hosts_exchange_updates_over_shaped_links(tmp_path: Path, testbed: Testbed) -> None:
    spec = tiny_spec(tmp_path, storage="p2p")
    hosts = TestbedHosts(testbed)
    with LocalFederation(spec, hosts) as fed:
        assert fed.federation is not None and fed.peers_file is not None
        chain = fed.federation
        assert fed.wait_for_round(1, timeout=240) is RoundStatus.FINALISED
        votes = len(chain.vote_commits(1))
        for audit in audit_federation(chain, fed.reader(tmp_path / "auditor"), rounds=[1]):
            assert audit.ok, f"round {audit.round}: {audit.first_failure()}"
        peers = load_peers_file(fed.peers_file)
        # Every peer plans with its host's real access links.
        for p in fed.processes:
            entry = peers.peers[p.index]
            assert entry.server.host == testbed.addresses[p.index] and entry.server.port == OBJECT_PORT
            assert entry.upload == pytest.approx(UPLOAD_MBIT[p.index] * MBIT)
            assert entry.download == pytest.approx(4 * UPLOAD_MBIT[p.index] * MBIT)
    own = {f"{testbed.addresses[i]}:{OBJECT_PORT}": i for i in range(len(testbed.hosts))}
    slots = slot_counts(peers.topology())[0]
    assert slots[3] > slots[0]  # the 64 Mbit/s host sends more objects at once than the 8 Mbit/s one
    fetched = 0
    for p in fed.processes:
        events = fed.events(p.index)
        serving = [e for e in events if e.get("event") == "p2p_serving"]
        assert serving and serving[0]["port"] == OBJECT_PORT
        assert serving[0]["upload_slots"] == slots[p.index]  # as many at once as the plans assume
        for e in events:
            if e.get("event") == "peer_fetch":
                assert own[e["peer"]] != p.index and e["bytes"] > 0  # across the switch, from another host
                fetched += 1
    assert fetched >= votes * (votes - 1)  # at least every other voter's vote file, by each voter


def test_non_p2p_storage_is_refused_on_separate_hosts(tmp_path: Path, testbed: Testbed) -> None:
    with (
        pytest.raises(BcflError, match="peers on other hosts need p2p"),
        LocalFederation(tiny_spec(tmp_path, storage="embedded"), TestbedHosts(testbed)),
    ):
        pass
