"""The Python facade against a real Anvil: deploy, a full serverless round, reverts decoded."""

from __future__ import annotations

import hashlib

import pytest
from web3 import Web3

from bcfl.chain.deployment import deploy
from bcfl.chain.federation import Federation, ModelRef, RoundStatus
from bcfl.chain.merkle import ScoreLeaf, included_hash, merkle_proof, merkle_root
from bcfl.chain.reverts import ContractRevert, default_decoder, error_class
from bcfl.chain.transactions import TxSender
from tests.conftest import GENESIS, funded_accounts, make_config

pytestmark = pytest.mark.integration


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _deploy(w3: Web3, **overrides: object) -> tuple[Federation, list[Federation]]:
    deployer, *peers = funded_accounts(w3, 5)
    dec = default_decoder()
    record = deploy(TxSender(w3, deployer, dec), GENESIS, make_config(**overrides))
    base = Federation(w3, record.address, from_block=record.block_number)
    return base, [base.with_sender(TxSender(w3, p, dec)) for p in peers]


def test_full_serverless_round_and_settlement(w3: Web3) -> None:
    fed, peers = _deploy(w3)
    for p in peers:
        p.join(10**15)
    assert fed.active_peers() == 4
    assert fed.base_model(1) == GENESIS

    for i, p in enumerate(peers[:3]):
        p.submit_update(1, f"bafyupdate{i}", _digest(f"u{i}"), 10 + i, 1)
    info = fed.round(1)
    assert info.status is RoundStatus.CLOSED and info.submissions == 3
    subs = fed.submissions(1)
    assert [s.cid for s in subs] == ["bafyupdate0", "bafyupdate1", "bafyupdate2"]
    assert subs[1].samples == 11 and subs[1].reputation == 500_000

    # A late peer finds the round closed: the async rule says it waits for the next round.
    with pytest.raises(error_class("FederationWrongRoundStatus")):
        peers[3].submit_update(1, "bafylate", _digest("late"), 5, 1)

    for i, p in enumerate(peers[:3]):
        p.commit_votes(1, f"bafyvotes{i}", _digest(f"v{i}"))
    assert fed.voting_closed(1)

    leaves = [ScoreLeaf(1, s.peer, 900_000 - 100_000 * i, True) for i, s in enumerate(subs)]
    root = merkle_root(leaves)
    inc = included_hash([(s.peer, s.cid) for s in subs])
    aggregate = ModelRef("bafyaggregate1", _digest("agg1"))
    peers[0].attest_result(1, root, inc, aggregate)
    assert fed.round(1).status is RoundStatus.CLOSED  # 1 of quorum 2
    peers[1].attest_result(1, root, inc, aggregate)
    assert fed.round(1).status is RoundStatus.FINALISED
    assert fed.current_round() == 2
    assert fed.base_model(2) == aggregate
    assert fed.scores_root(1) == root

    # The contract's leaf hash matches ours, and settlement folds the score into reputation.
    assert fed.leaf_hash(1, leaves[0].peer, leaves[0].score, True) == bytes(
        Web3.keccak(Web3.keccak(_abi_leaf(leaves[0])))
    )
    with pytest.raises(error_class("FederationReputationUnsettled")):
        peers[0].submit_update(2, "bafyr2", _digest("r2"), 10, 2)
    peers[3].settle(leaves[0].peer, 1, leaves[0].score, True, merkle_proof(leaves, leaves[0]))
    assert fed.peer(leaves[0].peer).reputation == (500_000 * 7000 + 900_000 * 3000) // 10_000
    peers[0].submit_update(2, "bafyr2", _digest("r2"), 10, 2)


def _abi_leaf(leaf: ScoreLeaf) -> bytes:
    from eth_abi.abi import encode

    return encode(["uint32", "address", "uint32", "bool"], [leaf.round, leaf.peer, leaf.score, leaf.included])


def test_reverts_are_named_custom_errors(w3: Web3) -> None:
    _, peers = _deploy(w3)
    with pytest.raises(ContractRevert) as err:
        peers[0].submit_update(1, "bafyx", _digest("x"), 1, 1)
    assert err.value.name == "FederationNotPeer"
    assert "FederationNotPeer" in str(err.value)
    with pytest.raises(error_class("FederationBondTooLow")) as low:
        peers[0].join(1)
    assert low.value.arguments == {"sent": 1, "required": 10**15}
    peers[0].join(10**15)
    with pytest.raises(error_class("FederationAlreadyPeer")):
        peers[0].join(10**15)
    with pytest.raises(error_class("FederationUpdateTooStale")):
        peers[0].submit_update(1, "bafyx", _digest("x"), 1, 2)


def test_concurrent_sends_from_one_key_get_distinct_nonces(w3: Web3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    feds = [_deploy(w3)[0] for _ in range(6)]
    (account,) = funded_accounts(w3, 1)
    sender = TxSender(w3, account, default_decoder())
    # Six writes from one key at once, one per federation: all must land, none "nonce too low".
    with ThreadPoolExecutor(max_workers=6) as pool:
        receipts = list(pool.map(lambda f: f.with_sender(sender).join(10**15), feds))
    assert len({r.tx_hash for r in receipts}) == 6
    assert all(f.peer(account.address).active for f in feds)
    assert w3.eth.get_transaction_count(account.address) == 6


def test_a_vote_that_became_the_finalising_one_after_its_estimate_is_sent_again(
    w3: Web3, caplog: pytest.LogCaptureFixture
) -> None:
    deployer, *accounts = funded_accounts(w3, 4)
    dec = default_decoder()
    record = deploy(TxSender(w3, deployer, dec), GENESIS, make_config())
    fed = Federation(w3, record.address, from_block=record.block_number)
    senders = [TxSender(w3, a, dec) for a in accounts[:3]]
    peers = [fed.with_sender(s) for s in senders]
    for i, p in enumerate(peers):
        p.join(10**15)
        p.submit_update(1, f"bafyupdate{i}", _digest(f"u{i}"), 10, 1)
    for i, p in enumerate(peers):
        p.commit_votes(1, f"bafyvotes{i}", _digest(f"v{i}"))
    subs = fed.submissions(1)
    leaves = [ScoreLeaf(1, s.peer, 900_000, True) for s in subs]
    args = (
        1,
        merkle_root(leaves),
        included_hash([(s.peer, s.cid) for s in subs]),
        ModelRef("bafyagg", _digest("a")),
    )

    # Peer 1 estimates its vote as a non-final one; peer 0's vote lands before peer 1's is
    # mined, so peer 1's becomes the finalising vote and needs more gas than estimated.
    real = senders[1]._gas_limit
    calls: list[int] = []

    def estimate_then_race(*a: object) -> int:
        gas = real(*a)  # type: ignore[arg-type]
        if not calls:
            peers[0].attest_result(*args)
        calls.append(gas)
        return gas

    senders[1]._gas_limit = estimate_then_race  # type: ignore[method-assign]
    with caplog.at_level("INFO", logger="bcfl.chain"):
        receipt = peers[1].attest_result(*args)
    assert fed.round(1).status is RoundStatus.FINALISED
    assert len(calls) == 2 and calls[1] > calls[0], "estimated again for the new state"
    assert receipt.gas_used > calls[0]
    assert "ran out of gas" in caplog.text


def test_the_server_learning_rate_is_read_back_from_the_chain_and_bounded(w3: Web3) -> None:
    fed, _ = _deploy(w3, server_learning_rate_ppm=10_000_000)
    assert fed.config().server_learning_rate == 10.0
    deployer = funded_accounts(w3, 1)[0]
    for bad in (0, 100_000_001):
        with pytest.raises(error_class("FederationInvalidConfig")) as err:
            deploy(
                TxSender(w3, deployer, default_decoder()), GENESIS, make_config(server_learning_rate_ppm=bad)
            )
        assert err.value.arguments == {"reason": "serverLearningRatePpm"}
