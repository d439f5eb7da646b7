"""The js-ipfs daemon helpers that need no daemon: config, records, install errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.storage.ipfs_daemons import (
    INSTALL_COMMAND,
    IpfsDaemon,
    IpfsDaemonError,
    _free_ports,
    _local_config,
    clear_record,
    jsipfs_cli,
    load_daemons,
    save_daemons,
    start_daemons,
)


def test_config_is_confined_to_loopback() -> None:
    config = {
        "Addresses": {"Swarm": ["/ip4/0.0.0.0/tcp/4002"], "Delegates": ["/dns4/x/tcp/443/https"]},
        "Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/Qm"],
        "Discovery": {"MDNS": {"Enabled": True}, "webRTCStar": {"Enabled": True}},
    }
    out = _local_config(config, {"swarm": 1, "api": 2, "gateway": 3, "rpc": 4})
    assert out["Bootstrap"] == [] and out["Addresses"]["Delegates"] == []
    assert out["Discovery"]["MDNS"]["Enabled"] is False and out["Discovery"]["webRTCStar"]["Enabled"] is False
    addresses = [
        *out["Addresses"]["Swarm"],
        out["Addresses"]["API"],
        out["Addresses"]["Gateway"],
        out["Addresses"]["RPC"],
    ]
    assert all(a.startswith("/ip4/127.0.0.1/tcp/") for a in addresses)


def test_free_ports_are_distinct() -> None:
    ports = _free_ports(12)
    assert len(set(ports)) == 12


def test_record_round_trip(tmp_path: Path) -> None:
    daemon = IpfsDaemon(
        "http://127.0.0.1:1",
        123,
        "12D3Koo",
        "/ip4/127.0.0.1/tcp/2/p2p/12D3Koo",
        "http://127.0.0.1:3",
        "r",
        "l",
    )
    save_daemons(tmp_path, [daemon])
    assert load_daemons(tmp_path) == [daemon]
    clear_record(tmp_path)
    assert load_daemons(tmp_path) == []
    (tmp_path / "ipfs-daemons.json").write_text("{broken")
    with pytest.raises(IpfsDaemonError, match="unreadable"):
        load_daemons(tmp_path)


def test_missing_install_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BCFL_JSIPFS", str(tmp_path / "nowhere" / "cli.js"))
    with pytest.raises(IpfsDaemonError, match="npm --prefix tools/ipfs") as err:
        jsipfs_cli()
    assert INSTALL_COMMAND in str(err.value)
    with pytest.raises(IpfsDaemonError):
        start_daemons(0, tmp_path)
