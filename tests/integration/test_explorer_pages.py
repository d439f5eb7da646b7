"""The explorer against a real Anvil with finished rounds: every page's JSON and HTML checked
against the chain as the facade and raw web3 read it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bcfl.chain.devnet import DevnetInfo, free_port
from bcfl.chain.reverts import default_decoder
from bcfl.chain.transactions import TxSender
from bcfl.explorer.app import Explorer, ExplorerConfig
from bcfl.explorer.filler import fill_rounds
from bcfl.explorer.index import ChainIndex, IndexStore, record_meta
from bcfl.storage import cid_of_bytes
from tests.conftest import funded_accounts
from tests.integration.test_explorer_support import (
    THRESHOLD,
    Devnet,
    build_federation,
    foreign_record,
    get,
    get_json,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet(anvil: DevnetInfo, w3: Web3, tmp_path_factory: pytest.TempPathFactory) -> Devnet:
    return build_federation(w3, anvil.rpc_url, tmp_path_factory.mktemp("fed"), peers=4, rounds=3)


@pytest.fixture(scope="module")
def explorer(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    app = Explorer(
        ExplorerConfig(
            rpc_url=devnet.rpc_url,
            deployment=devnet.record_path,
            port=0,
            state_dir=tmp_path_factory.mktemp("explorer-state"),
            poll_interval=0.2,
        ),
        storage=devnet.storage,
    )
    app.start()
    try:
        app.wait_synced(timeout=30)
        app.wait_enriched(timeout=60)
        yield app
    finally:
        app.stop()


def test_rounds_list_matches_the_chain(devnet: Devnet, explorer: Explorer) -> None:
    code, doc = get_json(explorer.url + "/api/rounds")
    assert code == 200
    fed = devnet.fed
    assert doc["total"] == fed.current_round() == 4
    by_round = {r["round"]: r for r in doc["rounds"]}
    for rid in (1, 2, 3):
        info = fed.round(rid)
        final = fed.finalisation(rid)
        assert final is not None
        row = by_round[rid]
        assert row["status"] == info.status.name.lower() == "finalised"
        assert row["submissions"] == info.submissions == 4
        assert row["votes"] == info.votes == 4
        assert row["aggregate_cid"] == final.aggregate.cid
        assert (row["included"], row["excluded"]) == (3, 1)
    assert by_round[4]["status"] == "open"
    code, html = get(explorer.url + "/")
    assert code == 200
    assert 'href="/round/3"' in html and "<svg" in html


def test_round_page_matches_the_chain(devnet: Devnet, explorer: Explorer) -> None:
    fed, w3 = devnet.fed, devnet.w3
    code, r = get_json(explorer.url + "/api/round/2")
    assert code == 200
    subs = fed.submissions(2)
    assert [
        (s["peer"], s["cid"], s["digest"], s["samples"], s["trained_from"]) for s in r["submissions"]
    ] == [(s.peer, s.cid, "0x" + s.digest.hex(), s.samples, s.trained_from) for s in subs]
    assert all(s["staleness"] == 0 for s in r["submissions"])
    # Gas per transaction is the receipt's, and timings come from the blocks' timestamps.
    for s in r["submissions"]:
        assert s["gas_used"] == w3.eth.get_transaction_receipt(s["tx"])["gasUsed"]
        assert s["timestamp"] == w3.eth.get_block(s["block"])["timestamp"]
    final = fed.finalisation(2)
    assert final is not None
    assert r["aggregate_cid"] == final.aggregate.cid
    assert r["scores_root"] == "0x" + fed.scores_root(2).hex()
    assert r["base_cid"] == fed.base_model(2).cid == r["base_cid"]
    assert r["ended_at"] == w3.eth.get_block(final.block_number)["timestamp"]
    assert r["timings"]["total"] == r["ended_at"] - r["opened_at"] > 0
    assert [v["voter"] for v in r["votes"]] == [v.voter for v in fed.vote_commits(2)]
    assert [a["attester"] for a in r["attestations"]] == [a.attester for a in fed.attestations(2)]
    assert sum(a["finalising"] for a in r["attestations"]) == 1
    # Scores and the gate come from the settlements; the bad peer is excluded with the reason.
    settled = {s.peer: s for s in fed.settlements() if s.round == 2}
    for s in r["submissions"]:
        assert (s["score"], s["included"]) == (settled[s["peer"]].score, settled[s["peer"]].included)
    bad = devnet.peers[-1].address
    (bad_row,) = [s for s in r["submissions"] if s["peer"] == bad]
    assert bad_row["included"] is False and bad_row["reason"].startswith("excluded: score 0.")
    assert "below threshold 0.200" in bad_row["reason"]
    assert bad_row["score"] < THRESHOLD
    # Vote files were fetched from storage and their accuracy shown.
    assert all(v["file_status"] == "ok" and v["base_accuracy"] is not None for v in r["votes"])
    assert r["audit"]["status"] in ("ok", "fail", "unavailable", "error")
    assert r["audit"]["detail"]

    code, html = get(explorer.url + "/round/2")
    assert code == 200
    for s in subs:
        assert s.cid in html and f'href="/peer/{s.peer}"' in html and f'href="/tx/{s.tx_hash}"' in html
    assert final.aggregate.cid in html and "excluded: score" in html and 'id="audit"' in html


def test_peer_page_matches_the_chain(devnet: Devnet, explorer: Explorer) -> None:
    for acct in (devnet.peers[0], devnet.peers[-1]):
        info = devnet.fed.peer(acct.address)
        code, p = get_json(explorer.url + f"/api/peer/{acct.address.lower()}")
        assert code == 200
        assert p["address"] == acct.address
        assert (p["reputation"], p["bond"], p["active"]) == (info.reputation, info.bond, info.active)
        history = devnet.fed.settlements(acct.address)
        assert [(h["round"], h["old"], h["new"]) for h in p["reputation_history"]] == [
            (s.round, s.old_reputation, s.new_reputation) for s in history
        ]
        assert p["submissions"] == [1, 2, 3] and p["votes"] == [1, 2, 3]
        assert [pt[1] for pt in p["chart"]["reputation"][acct.address]] == [
            s.new_reputation / 1e6 for s in history
        ]
        nonce = devnet.w3.eth.get_transaction_count(acct.address)
        assert len(p["transactions"]) == nonce  # every transaction it ever sent is listed
    bad = devnet.fed.peer(devnet.peers[-1].address).reputation
    assert bad < 500_000 < devnet.fed.peer(devnet.peers[0].address).reputation
    code, html = get(explorer.url + f"/peer/{devnet.peers[0].address}")
    assert code == 200 and "<svg" in html and "<polyline" in html


def test_transaction_and_block_pages_decode_calls_and_events(devnet: Devnet, explorer: Explorer) -> None:
    sub = devnet.fed.submissions(3)[0]
    code, t = get_json(explorer.url + f"/api/tx/{sub.tx_hash}")
    assert code == 200
    raw = devnet.w3.eth.get_transaction(sub.tx_hash)
    assert t["sender"] == raw["from"] and t["block"] == raw["blockNumber"]
    assert t["function"] == "submitUpdate"
    assert t["args"] == {
        "round": 3,
        "cid": sub.cid,
        "digest": "0x" + sub.digest.hex(),
        "samples": sub.samples,
        "trainedFrom": 3,
    }
    assert [e["event"] for e in t["events"]] == ["UpdateSubmitted"]
    assert (
        t["events"][0]["args"]["peer"] == sub.peer and t["events"][0]["args"]["reputation"] == sub.reputation
    )
    code, html = get(explorer.url + f"/tx/{sub.tx_hash}")
    assert code == 200 and "submitUpdate" in html and "UpdateSubmitted" in html and 'href="/round/3"' in html

    code, b = get_json(explorer.url + f"/api/block/{sub.block_number}")
    assert code == 200
    block = devnet.w3.eth.get_block(sub.block_number)
    assert b["hash"] == "0x" + bytes(block["hash"]).hex() and b["timestamp"] == block["timestamp"]
    assert [x["hash"] for x in b["transactions"]] == [sub.tx_hash]
    code, html = get(explorer.url + f"/block/{sub.block_number}")
    assert code == 200 and f'href="/tx/{sub.tx_hash}"' in html

    # The finalising attestation emits three events, decoded in log order.
    final = devnet.fed.finalisation(3)
    assert final is not None
    code, t = get_json(explorer.url + f"/api/tx/{final.tx_hash}")
    assert [e["event"] for e in t["events"]] == ["ResultAttested", "RoundFinalised", "RoundOpened"]


def test_bad_addresses_get_a_message_and_a_status(explorer: Explorer) -> None:
    cases = {
        "/api/round/99": (404, "round 99 does not exist"),
        "/api/round/x": (400, "round 'x' is not a number"),
        "/api/peer/0x12": (400, "is not an address"),
        "/api/peer/0x" + "ab" * 20: (404, "never joined"),
        "/api/tx/0x" + "00" * 32: (404, "is not a transaction of this federation"),
        "/api/block/0": (404, "before the federation's deployment"),
        "/api/nowhere": (404, "no page at"),
    }
    for path, (status, words) in cases.items():
        code, doc = get_json(explorer.url + path)
        assert code == status and words in doc["error"], path
        code, html = get(explorer.url + path[4:])
        assert code == status and 'id="error-message"' in html and words.split("'")[0] in html, path


def test_index_follows_new_blocks_and_decodes_reverts(devnet: Devnet, explorer: Explorer) -> None:
    version = explorer.index.version
    fill_rounds(
        devnet.w3, devnet.rpc_url, devnet.fed, devnet.peers, 1, devnet.storage, bad=[3], threshold=THRESHOLD
    )
    explorer.wait_synced(block=devnet.w3.eth.block_number, timeout=30)
    code, doc = get_json(explorer.url + "/api/rounds")
    assert doc["total"] == 5 and explorer.index.version > version
    assert {r["round"]: r["status"] for r in doc["rounds"]}[4] == "finalised"

    # A reverted call (a stranger submitting) is indexed, with its custom error decoded.
    (stranger,) = funded_accounts(devnet.w3, 1)
    data = devnet.fed.contract.encode_abi(
        "submitUpdate", args=[5, "bafyx", hashlib.sha256(b"x").digest(), 1, 5]
    )
    tx = stranger.sign_transaction(
        {
            "to": devnet.fed.address,
            "data": data,
            "gas": 200_000,
            "gasPrice": 10**10,
            "nonce": 0,
            "chainId": 31337,
        }
    )
    tx_hash = "0x" + bytes(devnet.w3.eth.send_raw_transaction(tx.raw_transaction)).hex()
    # Anvil may return the hash before the block is mined: wait for the receipt's block itself.
    receipt = devnet.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    explorer.wait_synced(block=receipt["blockNumber"], timeout=30)
    code, t = get_json(explorer.url + f"/api/tx/{tx_hash}")
    assert code == 200 and t["ok"] is False and t["function"] == "submitUpdate"
    assert "FederationNotPeer" in t["error"] and stranger.address.lower() in t["error"].lower()


def test_vote_file_that_does_not_resolve_is_named(anvil: DevnetInfo, w3: Web3, tmp_path: Path) -> None:
    dev = build_federation(w3, anvil.rpc_url, tmp_path, peers=3, rounds=1)
    for acct in dev.peers:  # round 2 closes once all three submitted
        dev.fed.with_sender(_sender(w3, acct)).submit_update(2, f"bafyr2{acct.address}", b"\x01" * 32, 10, 2)
    missing = cid_of_bytes(b"a vote file nobody stored")  # a well-formed CID that does not resolve
    dev.fed.with_sender(_sender(w3, dev.peers[0])).commit_votes(2, missing, b"\x02" * 32)
    app = Explorer(
        ExplorerConfig(rpc_url=dev.rpc_url, deployment=dev.record_path, port=0, poll_interval=0.2),
        storage=dev.storage,
    )
    app.start()
    try:
        app.wait_synced(timeout=30)
        app.wait_enriched(timeout=30)
        code, r = get_json(app.url + "/api/round/2")
        assert code == 200
        (vote,) = r["votes"]
        assert missing in vote["file_status"] and "cannot be used" in vote["file_status"]
        code, html = get(app.url + "/round/2")
        assert code == 200 and missing in html and 'class="vote-error"' in html
    finally:
        app.stop()


def _sender(w3: Web3, acct: LocalAccount) -> TxSender:
    return TxSender(w3, acct, default_decoder())


def test_chain_down_and_foreign_record_give_503_with_the_reason(devnet: Devnet, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    foreign = foreign_record(devnet.record, tmp_path / "1.json", chain_id=1)
    for rpc, record, words in (
        (dead, devnet.record_path, f"chain RPC {dead} is not reachable"),
        (devnet.rpc_url, foreign, "is for chain 1, but the RPC serves 31337"),
    ):
        app = Explorer(ExplorerConfig(rpc_url=rpc, deployment=record, port=0, poll_interval=0.2))
        app.start()
        try:
            for _ in range(200):
                if app.index.error:
                    break
                time.sleep(0.05)
            code, doc = get_json(app.url + "/api/rounds")
            assert code == 503 and words in doc["error"]
            code, html = get(app.url + "/round/1")
            assert code == 503 and words in html and "Traceback" not in html
            code, status = get_json(app.url + "/api/status")
            assert code == 200 and words in status["error"]
        finally:
            app.stop()


def test_persisted_index_replays_to_the_same_views(devnet: Devnet, explorer: Explorer) -> None:
    assert explorer.config.state_dir is not None
    store = IndexStore(explorer.config.state_dir)
    store.save(explorer.index)
    replayed = ChainIndex(record_meta(devnet.record_path))
    assert store.load_into(replayed)
    with explorer.index.lock:
        assert replayed.last_block == explorer.index.last_block
        assert replayed.rounds.keys() == explorer.index.rounds.keys()
        for rid, r in explorer.index.rounds.items():
            got = replayed.rounds[rid]
            assert (got.status, got.aggregate_cid, got.gas_total) == (r.status, r.aggregate_cid, r.gas_total)
            assert [(s.peer, s.score, s.included) for s in got.submissions] == [
                (s.peer, s.score, s.included) for s in r.submissions
            ]
        assert {a: p.reputation for a, p in replayed.peers.items()} == {
            a: p.reputation for a, p in explorer.index.peers.items()
        }
    # A record for another contract does not load someone else's state.
    other = ChainIndex(
        record_meta(
            foreign_record(devnet.record, devnet.record_path.parent / "x.json", address="0x" + "11" * 20)
        )
    )
    assert not store.load_into(other)
