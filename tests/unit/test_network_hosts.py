"""Where a local federation's peers run: loopback, or one testbed host each (nothing built here)."""

from __future__ import annotations

import pytest

from bcfl.network import hosts as hosts_module
from bcfl.network import testbed
from bcfl.network.hosts import OBJECT_PORT, LoopbackHosts, TestbedHosts
from bcfl.network.testbed import Testbed

MBIT = 1e6 / 8


def test_loopback_hosts_run_peers_here_on_distinct_ports() -> None:
    hosts = LoopbackHosts()
    assert hosts.command(0, ["python", "-V"]) == ["python", "-V"]
    a, b = hosts.server(0), hosts.server(1)
    assert a.host == b.host == "127.0.0.1" and a.port != b.port
    assert hosts.server(0) == a == hosts.reach_server(0)  # stable per peer
    assert hosts.rates_mbit(0) is None


def test_loopback_hosts_never_hand_one_port_to_two_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([47001, 47001, 47001, 47002])  # the kernel offers a released port again
    monkeypatch.setattr(hosts_module, "free_port", lambda: next(offered))
    hosts = LoopbackHosts()
    assert [hosts.server(0).port, hosts.server(1).port] == [47001, 47002]


def test_testbed_hosts_place_peer_i_on_host_i_with_shaped_or_measured_links() -> None:
    bed = Testbed([8 * MBIT, 16 * MBIT], [32 * MBIT, 64 * MBIT])  # described, not built
    hosts = TestbedHosts(bed)
    assert hosts.command(1, ["python", "-V"])[-4:] == ["exec", bed.hosts[1], "python", "-V"]
    assert hosts.server(1).host == bed.addresses[1] and hosts.server(1).port == OBJECT_PORT
    assert hosts.rates_mbit(0) == pytest.approx((8.0, 32.0))
    measured = TestbedHosts(bed, [(7.5, 30.0), (15.0, 40.0)])
    assert measured.rates_mbit(1) == (15.0, 40.0)
    with pytest.raises(testbed.TestbedError, match="peer 2 has no host"):
        hosts.server(2)
    with pytest.raises(testbed.TestbedError, match="1 measured hosts for a testbed of 2"):
        TestbedHosts(bed, [(1.0, 1.0)])
