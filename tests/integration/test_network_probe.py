"""Link probing across the namespace testbed: measured figures against the shaped ones."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bcfl.network.hosts import OBJECT_PORT
from bcfl.network.probe import LinkSample, ProbeError, ProbeReport, load_report, merge_reports
from bcfl.network.testbed import Testbed
from bcfl.network.topology import MBIT
from bcfl.network.transfer import Address
from bcfl.node.p2p import load_peers_file, write_peers_file
from tests.testbeds import shaped_testbed

pytestmark = pytest.mark.integration

UP_MBIT = [8.0, 16.0, 32.0]
PEERS = [f"0x{i:040x}" for i in range(1, 4)]


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    yield from shaped_testbed(UP_MBIT, [4 * u for u in UP_MBIT])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bcfl.cli.app", "peers", *args]


def test_probes_on_every_host_measure_the_shaped_links(testbed: Testbed, tmp_path: Path) -> None:
    shared = tmp_path / "peers.toml"
    write_peers_file(shared, {a: Address(testbed.addresses[i], OBJECT_PORT) for i, a in enumerate(PEERS)})
    servers = [
        testbed.popen(i, _cli("serve", "--peers-file", str(shared), "--address", a), stdout=subprocess.PIPE)
        for i, a in enumerate(PEERS)
    ]
    for s in servers:
        assert s.stdout is not None and s.stdout.readline().strip() == b"READY"
    reports = []
    for i, a in enumerate(PEERS):  # one host at a time, so probes do not share links
        out = tmp_path / f"probe{i}.json"
        args = ("probe", "--peers-file", str(shared), "--address", a, "--out", str(out), "--probe-kib", "512")
        done = testbed.run(i, _cli(*args, "--repeats", "2"), timeout=120)
        assert done.returncode == 0, done.stderr
        reports.append(out)
    merged = tmp_path / "measured.toml"
    done = subprocess.run(
        _cli("merge", "--peers-file", str(shared), "--out", str(merged), *map(str, reports)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = load_peers_file(merged)
    for i, entry in enumerate(measured.peers):
        # htb shapes link-layer bytes; TCP payload gets a little less of it.
        assert 0.8 * UP_MBIT[i] * MBIT <= entry.upload <= 1.15 * UP_MBIT[i] * MBIT, (i, entry.upload / MBIT)
    # Host 0's download (32 Mbit/s) is the bottleneck when both others send at once (16 + 32).
    assert 0.8 * 32 * MBIT <= measured.peers[0].download <= 1.15 * 32 * MBIT
    # Host 2's download (128) cannot be filled by the others (8 + 16): the figure is what they send.
    assert 0.8 * 24 * MBIT <= measured.peers[2].download <= 1.15 * 24 * MBIT
    assert len(measured.links) == 6 and all(lat < 0.005 for lat, _ in measured.links.values())
    assert all(bw == float("inf") for _, bw in measured.links.values())  # core not measured
    assert json.loads(reports[0].read_text())["peer"] == PEERS[0]


def test_merge_refuses_incomplete_or_foreign_reports() -> None:
    a, b, c = PEERS
    ra = ProbeReport(a, {b: LinkSample(0.001, 1e6)}, 1e6, 1024)
    rb = ProbeReport(b, {a: LinkSample(0.001, 2e6)}, 2e6, 1024)
    links = merge_reports([ra, rb])
    assert links.upload == {b: 1e6, a: 2e6} and links.latency[(a, b)] == links.latency[(b, a)]
    with pytest.raises(ProbeError, match="same peer"):
        merge_reports([ra, ra])
    with pytest.raises(ProbeError, match="sent no report"):
        merge_reports([ProbeReport(a, {c: LinkSample(0.001, 1e6)}, 1e6, 1024), rb])
    with pytest.raises(ProbeError, match="upload is unknown"):
        merge_reports([ra, ProbeReport(b, {}, 2e6, 1024)])


def test_a_report_that_is_not_one_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text(
        '{"peer": "0x1", "pairs": {"0x2": {"latency_s": 0.001, "rate": -5}}, '
        '"download": 1, "probe_bytes": 1, "taken_at": 0}'
    )
    with pytest.raises(ProbeError, match="non-positive rate"):
        load_report(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ProbeError, match="not a probe report"):
        load_report(bad)


def test_a_peer_that_cannot_be_reached_is_reported_not_fatal(tmp_path: Path) -> None:
    from bcfl.chain.devnet import free_port
    from bcfl.network.peer_storage import ObjectServer
    from bcfl.network.probe import probe_peers
    from bcfl.storage.embedded import EmbeddedStorage

    dead = Address("127.0.0.1", free_port())  # nothing listens there
    with ObjectServer(EmbeddedStorage(tmp_path / "store")) as live:
        servers = {PEERS[0]: Address("127.0.0.1", 1), PEERS[1]: live.address, PEERS[2]: dead}
        report = probe_peers(PEERS[0], servers, probe_bytes=64 * 1024, repeats=1, timeout=5)
        assert set(report.pairs) == {PEERS[1]} and report.pairs[PEERS[1]].rate > 0
        assert set(report.unreachable) == {PEERS[2]} and "cannot reach" in report.unreachable[PEERS[2]]
        assert load_report_roundtrip(report, tmp_path).unreachable == report.unreachable
    with pytest.raises(ProbeError, match="no other peer could be measured"):
        probe_peers(PEERS[0], {PEERS[0]: dead, PEERS[2]: dead}, probe_bytes=1024, repeats=1, timeout=5)


def load_report_roundtrip(report: ProbeReport, tmp_path: Path) -> ProbeReport:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report.to_json()))
    return load_report(path)
