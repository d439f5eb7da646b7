"""Real peer processes with their own stores, exchanging adapters and vote files over TCP.

`FederationSpec(storage="p2p")`: every peer keeps its own blockstore in its data folder, serves it
on a loopback port, and fetches what it lacks from the other peers along the optimised plan of
the round (bcfl.node.p2p). No folder is shared: an update reaches another peer's store only by
travelling over a TCP connection between two peer processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.audit.checks import audit_federation
from bcfl.chain.federation import RoundStatus
from bcfl.orchestrate import LocalFederation
from bcfl.storage.embedded import EmbeddedStorage
from tests.e2e.specs import tiny_spec

pytestmark = pytest.mark.e2e


def test_p2p_peers_fetch_each_others_updates_over_tcp_and_the_round_audits(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, storage="p2p")
    with LocalFederation(spec) as fed:
        assert fed.federation is not None and fed.peers_file is not None
        chain = fed.federation
        assert fed.wait_for_round(1, timeout=240) is RoundStatus.FINALISED
        subs = chain.submissions(1)
        votes = chain.vote_commits(1)
        final = chain.finalisation(1)
        assert final is not None
        for audit in audit_federation(chain, fed.reader(tmp_path / "auditor"), rounds=[1]):
            assert audit.ok, f"round {audit.round}: {audit.first_failure()}"
        # Each peer's own store holds the other submitters' updates it needed and every vote file.
        stores = {p.address: EmbeddedStorage(fed.peer_dir(p.index)) for p in fed.processes}
        attested = {
            p.address for p in fed.processes if any(e.get("event") == "attested" for e in fed.events(p.index))
        }
        assert len(attested) >= 2
        for peer in attested:
            others = [s for s in subs if s.peer != peer]
            held = [s for s in others if stores[peer].has(s.cid)]
            assert len(held) >= len(others) - 1, f"{peer} holds {len(held)} of {len(others)} other updates"
            assert all(stores[peer].has(v.cid) for v in votes)
            assert stores[peer].has(final.aggregate.cid)
    assert not (spec.workdir / "store").exists()  # no shared folder was ever made
    servers = {f"{a.host}:{a.port}": i for i, a in fed.servers.items()}
    fetched_from_others = 0
    served = 0
    for p in fed.processes:
        events = fed.events(p.index)
        for e in events:
            if e.get("event") == "peer_fetch":
                assert servers[e["peer"]] != p.index and e["bytes"] > 0  # from another process
                fetched_from_others += 1
        totals = [e for e in events if e.get("event") == "p2p_totals"]
        assert len(totals) == 1, f"peer {p.index} logged no totals on stopping"
        served += totals[0]["served"]
    # Every update of another peer a voter evaluated, and every vote file, crossed TCP.
    assert fetched_from_others >= len(attested) * (len(votes) - 1)
    assert served >= fetched_from_others
