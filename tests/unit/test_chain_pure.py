"""Pure chain-side helpers: the scores Merkle tree, revert decoding, wallets, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from bcfl.chain.build import compile_contract, load_artifact
from bcfl.chain.deployment import DeploymentError, FederationSettings, read_record
from bcfl.chain.merkle import ScoreLeaf, merkle_proof, merkle_root, verify
from bcfl.chain.reverts import ContractRevert, UnknownRevert, default_decoder
from bcfl.chain.wallet import WalletError, account_from_env, list_keystores, load_keystore, new_keystore

ADDRESSES = [f"0x{i:040x}" for i in range(1, 40)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ADDRESSES), st.integers(0, 10**6), st.booleans()),
        min_size=1,
        max_size=17,
        unique_by=lambda t: t[0],
    )
)
def test_every_leaf_proves_against_the_root(rows: list[tuple[str, int, bool]]) -> None:
    leaves = [ScoreLeaf(4, a, s, i) for a, s, i in rows]
    root = merkle_root(leaves)
    for leaf in leaves:
        assert verify(merkle_proof(leaves, leaf), root, leaf)
    forged = ScoreLeaf(4, leaves[0].peer, (leaves[0].score + 1) % 10**6, leaves[0].included)
    assert not verify(merkle_proof(leaves, leaves[0]), root, forged)


def test_merkle_root_ignores_leaf_order() -> None:
    leaves = [ScoreLeaf(1, a, 10 * i, i % 2 == 0) for i, a in enumerate(ADDRESSES[:5])]
    assert merkle_root(leaves) == merkle_root(list(reversed(leaves)))


def test_reverts_decode_by_selector_with_arguments() -> None:
    data = keccak(text="FederationBondTooLow(uint256,uint256)")[:4] + encode(["uint256", "uint256"], [1, 2])
    err = default_decoder().decode(data, "join")
    assert isinstance(err, ContractRevert) and err.name == "FederationBondTooLow"
    assert err.arguments == {"sent": 1, "required": 2}
    assert str(err) == "reverted with FederationBondTooLow(sent=1, required=2) (join)"
    assert isinstance(default_decoder().decode(b"\x12\x34\x56\x78", ""), UnknownRevert)


def test_committed_artifact_matches_the_source() -> None:
    """Fails when contracts/ changed without `make build` regenerating the committed artifact."""
    fresh = compile_contract()
    committed = load_artifact()
    assert fresh["sourceSha256"] == committed["sourceSha256"], "artifact is stale: run make build"
    assert fresh["bytecode"] == committed["bytecode"]
    assert fresh["abi"] == committed["abi"]


def test_keystore_round_trip_and_wrong_password(tmp_path: Path) -> None:
    entry = new_keystore(tmp_path, "correct horse", kdf_iterations=1024)
    assert list_keystores(tmp_path)[0].address == entry.address
    assert json.loads(entry.path.read_text())["version"] == 3  # standard v3, other tools read it
    assert entry.path.stat().st_mode & 0o777 == 0o600
    assert load_keystore(entry.path, "correct horse").address == entry.address
    with pytest.raises(WalletError, match="wrong password"):
        load_keystore(entry.path, "nope")


def test_key_from_env_never_echoes_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAD_KEY", "0xnot-a-key-but-secret")
    with pytest.raises(WalletError) as err:
        account_from_env("BAD_KEY")
    assert "secret" not in str(err.value) and "BAD_KEY" in str(err.value)
    with pytest.raises(WalletError, match="is not set"):
        account_from_env("SURELY_UNSET_VARIABLE")


def test_deployment_settings_and_records_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs an aggregator"):
        FederationSettings(result_mode="server")
    with pytest.raises(ValueError, match="max_staleness must be 0"):
        FederationSettings(closing_rule="synchronous", max_staleness=2)
    for rate in (0.0, -1.0, 100.5, float("nan")):
        with pytest.raises(ValueError, match="server_learning_rate must be in"):
            FederationSettings(server_learning_rate=rate)
    assert FederationSettings(server_learning_rate=2.5).to_config().server_learning_rate_ppm == 2_500_000
    with pytest.raises(DeploymentError, match="does not exist"):
        read_record(tmp_path / "31337.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DeploymentError, match="not a valid record"):
        read_record(tmp_path / "bad.json")
