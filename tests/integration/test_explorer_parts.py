"""The explorer's pure parts (ABI decoding, the SVG chart) and its audit hook, without a chain.

(Kept beside the explorer's integration tests; nothing here starts a daemon.)
"""

from __future__ import annotations

import sys

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from bcfl.chain.build import load_artifact
from bcfl.explorer.decode import AbiDecoder
from bcfl.explorer.enrich import Enricher, load_audit, parse_vote_file
from bcfl.explorer.index import ChainIndex
from bcfl.explorer.plot import Series, line_chart

ABI = load_artifact()["abi"]
PEER = "0x" + "ab" * 20


def test_calls_decode_by_selector_with_named_arguments() -> None:
    contract = Web3().eth.contract(abi=ABI)
    data = contract.encode_abi("submitUpdate", args=[7, "bafyx", b"\x11" * 32, 42, 6])
    call = AbiDecoder(ABI).decode_call(data)
    assert call is not None and call.function == "submitUpdate"
    assert call.args == {
        "round": 7,
        "cid": "bafyx",
        "digest": "0x" + "11" * 32,
        "samples": 42,
        "trainedFrom": 6,
    }
    assert AbiDecoder(ABI).decode_call("0xdeadbeef") is None


def test_events_decode_indexed_and_data_fields() -> None:
    topic0 = "0x" + keccak(text="ReputationSettled(address,uint256,uint32,bool,uint32,uint32)").hex()
    log = {
        "topics": [topic0, "0x" + encode(["address"], [PEER]).hex(), "0x" + encode(["uint256"], [3]).hex()],
        "data": "0x"
        + encode(["uint32", "bool", "uint32", "uint32"], [900_000, True, 500_000, 620_000]).hex(),
        "logIndex": "0x2",
    }
    ev = AbiDecoder(ABI).decode_log(log)
    assert ev is not None and ev.event == "ReputationSettled" and ev.log_index == 2
    assert ev.args == {
        "peer": Web3.to_checksum_address(PEER),
        "round": 3,
        "score": 900_000,
        "included": True,
        "oldReputation": 500_000,
        "newReputation": 620_000,
    }
    assert AbiDecoder(ABI).decode_log({"topics": ["0x" + "00" * 32], "data": "0x"}) is None


def test_chart_scales_points_and_has_an_empty_state() -> None:
    svg = line_chart([Series("a", [(1, 0.0), (3, 1.0)], href="/peer/a")], title="t")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'href="/peer/a"' in svg and "<polyline" in svg
    # y=0 sits on the bottom of the plot area (height 260 - 36), y=1 on the top (28).
    assert 'points="48.0,224.0 704.0,28.0"' in svg
    assert "no data yet" in line_chart([], title="t")


def test_vote_file_reading_is_tolerant_but_rejects_non_votes() -> None:
    info = parse_vote_file(
        b'{"base":{"accuracy":0.4,"loss":1.2},"votes":[{"peer":"0xA","value":0.7,"accuracy":0.5,"loss":1.0}]}',
        "vote file x",
    )
    assert info.status == "ok" and info.base_accuracy == 0.4 and info.votes["0xA"]["accuracy"] == 0.5
    with pytest.raises(Exception, match="vote file x is not valid JSON"):
        parse_vote_file(b"{nope", "vote file x")
    with pytest.raises(Exception, match="is not a vote file"):
        parse_vote_file(b"[]", "vote file x")


def test_missing_audit_module_is_shown_as_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bcfl.audit.checks", None)  # makes the import fail
    fn, why = load_audit()
    assert fn is None and why.startswith("audit not available")
    enricher = Enricher(ChainIndex(), storage=None)
    enricher.start()
    try:
        verdict = enricher.audit(1)
    finally:
        enricher.stop()
    assert verdict.status == "unavailable" and verdict.detail.startswith("audit not available")
