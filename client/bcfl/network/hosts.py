"""Where a local federation's peer processes run: on this host's loopback, or one per testbed host.

`LocalFederation` (bcfl.orchestrate) asks its `PeerHosts` how to start peer i, where peer i's
object server listens (as the other peers reach it, and as the orchestrator reaches it for
reports and audits), and which access-link rates to write into the peers file so every peer
plans with the links it really has. The devnet stays in the root namespace; on the testbed each
host reaches it at the same loopback address through a `Forwarder`, so the chain's traffic is
not shaped (it is the control plane: small, and not what the plans carry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bcfl.chain.devnet import free_port
from bcfl.network.forward import Forwarder
from bcfl.network.testbed import Testbed, TestbedError
from bcfl.network.topology import full_mesh
from bcfl.network.transfer import Address

OBJECT_PORT = 7001  # every testbed host has its own address, so they can share a port


class PeerHosts(Protocol):
    def command(self, index: int, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` as peer `index`."""
        ...

    def server(self, index: int) -> Address:
        """Where peer `index` serves its objects, as the other peers reach it."""
        ...

    def rates_mbit(self, index: int) -> tuple[float, float] | None:
        """Peer `index`'s access links (upload, download) in Mbit/s, if known."""
        ...

    def reach_chain(self, rpc: Address) -> None:
        """Make the devnet at `rpc` reachable from every peer at that same address."""
        ...

    def reach_server(self, index: int) -> Address:
        """An address at which this process reaches peer `index`'s object server."""
        ...

    def close(self) -> None: ...


class LoopbackHosts:
    """Every peer on this host's loopback, each on its own free port."""

    def __init__(self) -> None:
        self._servers: dict[int, Address] = {}

    def command(self, index: int, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def server(self, index: int) -> Address:
        if index not in self._servers:
            # The kernel may hand a just-released port out again: never give two peers one port.
            taken = {a.port for a in self._servers.values()}
            port = free_port()
            while port in taken:
                port = free_port()
            self._servers[index] = Address("127.0.0.1", port)
        return self._servers[index]

    def rates_mbit(self, index: int) -> tuple[float, float] | None:
        return None

    def reach_chain(self, rpc: Address) -> None:
        return None

    def reach_server(self, index: int) -> Address:
        return self.server(index)

    def close(self) -> None:
        return None


class TestbedHosts:
    """Peer i on testbed host i (its own namespace, address and shaped access links)."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, testbed: Testbed, measured_mbit: Sequence[tuple[float, float]] | None = None) -> None:
        """`measured_mbit`: each host's (upload, download) as probed (`bcfl peers probe`), written
        into the peers file instead of the rates the testbed was shaped to."""
        if measured_mbit is not None and len(measured_mbit) != len(testbed.hosts):
            raise TestbedError(f"{len(measured_mbit)} measured hosts for a testbed of {len(testbed.hosts)}")
        self.testbed = testbed
        self.measured_mbit = list(measured_mbit) if measured_mbit is not None else None
        self._forwarders: list[Forwarder] = []
        self._reach: dict[int, Address] = {}

    def _host(self, index: int) -> str:
        if not 0 <= index < len(self.testbed.hosts):
            raise TestbedError(f"peer {index} has no host: the testbed has {len(self.testbed.hosts)}")
        return self.testbed.hosts[index]

    def command(self, index: int, argv: Sequence[str]) -> list[str]:
        return self.testbed.command(index, argv)

    def server(self, index: int) -> Address:
        self._host(index)
        return Address(self.testbed.addresses[index], OBJECT_PORT)

    def rates_mbit(self, index: int) -> tuple[float, float]:
        self._host(index)
        if self.measured_mbit is not None:
            return self.measured_mbit[index]
        return self.testbed.ups[index] * 8 / 1e6, self.testbed.downs[index] * 8 / 1e6

    def reach_chain(self, rpc: Address) -> None:
        for host in self.testbed.hosts:
            self._forwarders.append(Forwarder(host, Address("127.0.0.1", rpc.port), None, rpc))

    def reach_server(self, index: int) -> Address:
        if index not in self._reach:
            fwd = Forwarder(None, Address("127.0.0.1", 0), self._host(index), self.server(index))
            self._forwarders.append(fwd)
            self._reach[index] = fwd.address
        return self._reach[index]

    def close(self) -> None:
        for fwd in self._forwarders:
            fwd.close()
        self._forwarders.clear()
        self._reach.clear()


def drawn_testbed(hosts: int, seed: int) -> Testbed:
    """A testbed (not yet built: enter it) whose access links are drawn from the stated bandwidth
    model, as `full_mesh(hosts, seed)` draws them for the simulator."""
    nodes = full_mesh(hosts, seed).graph.nodes
    return Testbed([nodes[i]["up"] for i in range(hosts)], [nodes[i]["down"] for i in range(hosts)])
