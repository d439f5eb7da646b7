"""The audit against tampering: each tampered input makes it fail on exactly that check.

Three peers run in this process (real Anvil, real embedded blockstore, tiny model): round 1
honest, round 2 with a forged aggregate CID attested by everyone, round 3 with a forged score.
Then a vote file and an update of round 1 are corrupted on disk in turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from bcfl.audit.checks import audit_round
from bcfl.chain.deployment import FederationSettings, deploy
from bcfl.chain.federation import Federation, ModelRef, RoundStatus
from bcfl.chain.merkle import merkle_root
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.node.config import NodeConfig
from bcfl.node.journal import Journal
from bcfl.node.learner import Learner
from bcfl.node.loop import Outcome, PeerNode
from bcfl.node.work import PeerWork, publish_genesis
from bcfl.storage.adapter_pack import fetch_adapter
from bcfl.storage.cid import build_bytes
from bcfl.storage.embedded import EmbeddedStorage
from tests.conftest import funded_accounts

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class InProcessFederation:
    fed: Federation
    nodes: list[PeerNode]
    works: list[PeerWork]
    store: EmbeddedStorage

    def run_round(self, round_id: int, *, max_steps: int = 200) -> None:
        for _ in range(max_steps):
            if self.fed.round(round_id).status in (RoundStatus.FINALISED, RoundStatus.EXPIRED):
                return
            for node in self.nodes:
                node.step()
        raise AssertionError(f"round {round_id} did not finish")


@pytest.fixture(scope="module")
def federation(w3: Web3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessFederation]:
    root = tmp_path_factory.mktemp("tamper")
    store_dir = root / "store"
    genesis = publish_genesis("tiny", f"embedded:{store_dir}", root)
    deployer, *peers = funded_accounts(w3, 4)
    settings = FederationSettings(async_quorum=3, max_staleness=1, score_threshold=0, min_bond_wei=0)
    record = deploy(TxSender(w3, deployer, default_decoder()), genesis, settings.to_config())
    nodes, works = [], []
    for i, acct in enumerate(peers):
        fed = Federation(
            w3, record.address, sender=TxSender(w3, acct, default_decoder()), from_block=record.block_number
        )
        fed.join(0)
        conf = NodeConfig(
            model="tiny",
            peers=3,
            peer_index=i,
            storage=f"embedded:{store_dir}",
            data_dir=root / f"peer{i}",
            local_steps=2,
            learning_rate=1e-2,
            max_tokens=48,
            eval_examples=4,
            progress=False,
        )
        conf.data_dir.mkdir(parents=True)
        work = PeerWork(
            conf,
            acct.address,
            fed,
            EmbeddedStorage(store_dir),
            Learner.from_config(conf, address=acct.address),
        )
        works.append(work)
        nodes.append(
            PeerNode(fed, work, Journal(), address=acct.address, role="peer", data_dir=conf.data_dir)
        )
    yield InProcessFederation(nodes[0].fed, nodes, works, EmbeddedStorage(store_dir))


def _forge(works: list[PeerWork], change: str) -> None:
    """Make every peer attest a forged outcome for the next round it attests."""
    for work in works:
        honest = work.outcome

        def forged(*args: object, _honest: object = honest) -> Outcome:
            out: Outcome = _honest(*args)  # type: ignore[operator]
            if change == "aggregate":
                fake = ModelRef(args[1].cid, args[1].digest)  # type: ignore[attr-defined]  # the old base
                return dataclasses.replace(out, aggregate=fake)
            leaves = [
                dataclasses.replace(x, score=min(1_000_000, x.score + 1)) if i == 0 else x
                for i, x in enumerate(out.leaves)
            ]
            return dataclasses.replace(out, leaves=leaves, scores_root=merkle_root(leaves))

        work.outcome = forged  # type: ignore[method-assign]


def _corrupt(store: EmbeddedStorage, data: bytes) -> None:
    blocks: list[bytes] = []
    build_bytes(data, lambda cid, block: blocks.append(cid))
    for cid in blocks:
        path = store.block_path(cid)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))


def _first_failure(fed: InProcessFederation, round_id: int) -> str | None:
    failure = audit_round(fed.fed, fed.store, round_id).first_failure()
    return None if failure is None else failure.check


def test_tampered_inputs_fail_exactly_their_check(federation: InProcessFederation) -> None:
    fed = federation
    fed.run_round(1)
    assert _first_failure(fed, 1) is None

    _forge(fed.works, "aggregate")
    fed.run_round(2)
    assert _first_failure(fed, 2) == "aggregate"

    for work in fed.works:
        del work.outcome  # back to the honest method
    _forge(fed.works, "scores")
    fed.run_round(3)
    assert _first_failure(fed, 3) == "scores"

    # A vote file of round 1 corrupted where it is stored.
    commit = fed.fed.vote_commits(1)[0]
    vote_bytes = fed.store.get(commit.cid)
    _corrupt(fed.store, vote_bytes)
    assert _first_failure(fed, 1) == "votes"
    fed.store.put(vote_bytes)  # restore
    assert _first_failure(fed, 1) is None

    # An included update of round 1 corrupted where it is stored.
    sub = fed.fed.submissions(1)[0]
    files = fetch_adapter(fed.store, sub.cid)
    _corrupt(fed.store, files["adapter_model.safetensors"])
    assert _first_failure(fed, 1) == "updates"
    fed.store.put_directory(files)
    assert _first_failure(fed, 1) is None


def test_audit_reports_unfinished_rounds_without_failing(federation: InProcessFederation) -> None:
    fed = federation
    current = fed.fed.current_round()
    audit = audit_round(fed.fed, fed.store, current)
    assert audit.ok
    assert {c.check: c.ok for c in audit.checks}["aggregate"] is None
    assert Path(fed.store.location).exists()
