"""The p2p storage mode's pure parts: the peers file, its topology, and routes from the chain."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from bcfl.network.topology import MBIT
from bcfl.network.transfer import Address
from bcfl.node.config import NodeConfig
from bcfl.node.p2p import ChainRoutes, PeersFileError, load_peers_file, write_peers_file

A = [f"0x{i:040x}" for i in range(1, 6)]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "peers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _peers(n: int) -> str:
    return "".join(f'[[peer]]\naddress = "{A[i]}"\nserver = "127.0.0.1:{7001 + i}"\n' for i in range(n))


def test_defaults_overrides_and_links_make_the_topology(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[defaults]\nupload_mbit = 40.0\nlatency_ms = 2.0\n"
        + _peers(3)
        + "upload_mbit = 10.0\n"  # the third peer's own upload
        + f'[[link]]\nbetween = ["{A[0]}", "{A[1]}"]\nlatency_ms = 20.0\nbandwidth_mbit = 5.0\n',
    )
    peers = load_peers_file(path)
    topo = peers.topology()
    assert [p.server for p in peers.peers] == [Address("127.0.0.1", 7001 + i) for i in range(3)]
    assert topo.up(0) == 40 * MBIT and topo.up(2) == 10 * MBIT and topo.down(0) == 100 * MBIT
    assert topo.latency(0, 1) == topo.latency(1, 0) == pytest.approx(0.02)
    assert topo.bandwidth(1, 0) == pytest.approx(5 * MBIT)
    assert topo.latency(0, 2) == pytest.approx(0.002) and math.isinf(topo.bandwidth(0, 2))
    assert peers.index_of(A[2].upper().replace("0X", "0x")) == 2 and peers.index_of(A[4]) is None


def test_written_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "peers.toml"
    write_peers_file(path, {A[0]: Address("127.0.0.1", 9001), A[1]: Address("::1", 9002)})
    peers = load_peers_file(path)
    assert [p.address for p in peers.peers] == A[:2]
    assert peers.peers[1].server == Address("::1", 9002)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[peer]]\naddress = 'x'\nserver = '127.0.0.1:1'\n", "is not a 0x-prefixed"),
        (_peers(1) + f"[[peer]]\naddress = '{A[0]}'\nserver = 'h:2'\n", "repeats peer 0"),
        (f"[[peer]]\naddress = '{A[0]}'\nserver = 'nohost'\n", "is not host:port"),
        (f"[[peer]]\naddress = '{A[0]}'\nserver = 'h:70000'\n", "is not host:port"),
        (f"[[peer]]\naddress = '{A[0]}'\n", "no server"),
        (_peers(1) + "colour = 1\n", "unknown key 'colour'"),
        ("[defaults]\nupload_mbit = -1.0\n" + _peers(1), "upload_mbit must be positive"),
        ("", "no [[peer]] entries"),
        (_peers(2) + f"[[link]]\nbetween = ['{A[0]}', '{A[3]}']\n", "is not a [[peer]]"),
        (_peers(2) + f"[[link]]\nbetween = ['{A[0]}']\n", "between must name two"),
        ("[[peer]\n", "is not valid TOML"),
    ],
)
def test_bad_peers_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PeersFileError, match="peers file") as info:
        load_peers_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_peers_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PeersFileError, match="does not exist"):
        load_peers_file(tmp_path / "absent.toml")


def test_p2p_storage_needs_a_peers_file() -> None:
    with pytest.raises(ValueError, match="peers_file"):
        NodeConfig(storage="p2p")
    with pytest.raises(ValueError, match="apply to storage 'p2p' only"):
        NodeConfig(storage="embedded", peers_file=Path("peers.toml"))
    assert NodeConfig(storage="p2p", peers_file=Path("peers.toml")).listen is None


@dataclass
class _Sub:
    peer: str
    cid: str


@dataclass
class _Vote:
    voter: str
    cid: str


class _Chain:
    """The three reads ChainRoutes makes, over fixed rounds."""

    def __init__(self, subs: dict[int, list[_Sub]], votes: dict[int, list[_Vote]]) -> None:
        self.subs, self.votes, self.reads = subs, votes, 0

    def current_round(self) -> int:
        return max(self.subs)

    def submissions(self, r: int) -> list[_Sub]:
        self.reads += 1
        return self.subs.get(r, [])

    def vote_commits(self, r: int) -> list[_Vote]:
        return self.votes.get(r, [])


def test_chain_routes_follow_a_plan_back_to_the_source_without_loops(tmp_path: Path) -> None:
    peers = load_peers_file(_write(tmp_path, _peers(5)))
    chain = _Chain(
        {1: [_Sub(A[i], f"upd{i}") for i in range(5)], 2: []},
        {1: [_Vote(A[i], f"vote{i}") for i in (0, 2)]},
    )
    routes = [ChainRoutes(chain, peers, me) for me in range(5)]  # type: ignore[arg-type,unused-ignore]
    server_of = {p.server: i for i, p in enumerate(peers.peers)}
    for obj, source in [*((f"upd{i}", i) for i in range(5)), ("vote0", 0), ("vote2", 2)]:
        asks = nx.DiGraph()
        for me in range(5):
            if me == source:
                continue
            route = routes[me](obj)
            assert route.relay_hops == 5 and route.wait == 0.0
            assert peers.peers[source].server in route.peers  # the source is always asked
            # A relay asks the peers on its own route: those requests form no cycle.
            asks.add_edges_from((me, server_of[a]) for a in route.peers)
        assert nx.is_directed_acyclic_graph(asks), obj
        assert {n for n in asks if asks.out_degree(n) == 0} == {source}  # every chain ends there
    reads = chain.reads
    routes[1]("upd0")
    assert chain.reads == reads  # cached: planned once per round
    unknown = routes[1]("aggregate-cid")  # not a submission or vote: every other peer, no relay
    assert unknown.relay_hops == 0 and len(unknown.peers) == 4


def test_a_node_missing_from_the_peers_file_or_a_taken_port_is_refused(tmp_path: Path) -> None:
    import socket

    from bcfl.chain.devnet import free_port
    from bcfl.errors import BcflError
    from bcfl.node.p2p import start_p2p_storage
    from bcfl.storage.embedded import EmbeddedStorage

    chain: Any = _Chain({1: []}, {})  # the reads start_p2p_storage makes (none before a fetch)
    store = EmbeddedStorage(tmp_path / "blocks")
    path = _write(tmp_path, _peers(2))
    with pytest.raises(PeersFileError, match=f"this peer {A[4]} is not one of its"):
        start_p2p_storage(store, path, address=A[4], fed=chain)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BcflError, match=f"cannot serve objects on 127.0.0.1:{port}"):
            start_p2p_storage(store, path, address=A[0], fed=chain, listen=f"127.0.0.1:{port}")
    storage, server = start_p2p_storage(
        store, path, address=A[0], fed=chain, listen=f"127.0.0.1:{free_port()}"
    )
    try:
        assert server.address.port > 0 and storage.inner is store
    finally:
        server.stop()
