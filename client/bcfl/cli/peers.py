"""`bcfl peers serve | probe | merge`: measure the links between peers into a peers file.

Each peer runs `bcfl peers serve` (or its node, whose object server answers probes too) and
`bcfl peers probe` on its own host; `bcfl peers merge` turns every peer's report into the
measured peers file all of them then run with.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bcfl.cli.common import err_console

if TYPE_CHECKING:
    from bcfl.network.testbed import Testbed

peers_app = typer.Typer(
    help="Measure the links between peers (probe reports -> peers file).", no_args_is_help=True
)


@peers_app.command("serve")
def serve(
    peers_file: Annotated[Path, typer.Option(help="The shared peers file (TOML)")],
    address: Annotated[str, typer.Option(help="This peer's chain address in that file")],
    seconds: Annotated[float, typer.Option(help="Stop after this many seconds (0: until interrupted)")] = 0.0,
) -> None:
    """Answer other peers' probes on this peer's server address (no objects are served)."""
    from bcfl.network.peer_storage import ObjectServer
    from bcfl.node.p2p import PeersFileError, load_peers_file
    from bcfl.storage.embedded import EmbeddedStorage

    peers = load_peers_file(peers_file)
    me = peers.index_of(address)
    if me is None:
        raise PeersFileError(f"peers file {peers_file}: {address} is not one of its [[peer]]s")
    bind = peers.peers[me].server
    with (
        tempfile.TemporaryDirectory() as empty,
        ObjectServer(EmbeddedStorage(Path(empty)), bind.host, bind.port),
    ):
        err_console.print(f"answering probes on {bind.host}:{bind.port}", highlight=False)
        print("READY", flush=True)
        deadline = time.monotonic() + seconds if seconds > 0 else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


@peers_app.command("probe")
def probe(
    peers_file: Annotated[Path, typer.Option(help="The shared peers file (TOML)")],
    address: Annotated[str, typer.Option(help="This peer's chain address in that file")],
    out: Annotated[Path, typer.Option(help="Where to write this peer's report (JSON)")],
    probe_kib: Annotated[int, typer.Option(help="Bytes per probe, KiB")] = 1024,
    repeats: Annotated[int, typer.Option(help="Probes per peer (the median is kept)")] = 3,
) -> None:
    """Measure every other peer's link to this one, and this peer's download."""
    from bcfl.network.probe import probe_peers
    from bcfl.node.p2p import PeersFileError, load_peers_file

    peers = load_peers_file(peers_file)
    if peers.index_of(address) is None:
        raise PeersFileError(f"peers file {peers_file}: {address} is not one of its [[peer]]s")
    servers = {p.address: p.server for p in peers.peers}
    report = probe_peers(address, servers, probe_bytes=probe_kib * 1024, repeats=repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    for peer, s in sorted(report.pairs.items()):
        err_console.print(
            f"{peer}: {s.rate * 8 / 1e6:8.1f} Mbit/s, {s.latency_s * 1000:6.2f} ms", highlight=False
        )
    for peer, why in sorted(report.unreachable.items()):
        err_console.print(f"{peer}: not measured: {why}", highlight=False)
    err_console.print(
        f"download, all at once: {report.download * 8 / 1e6:.1f} Mbit/s -> {out}", highlight=False
    )


@peers_app.command("merge")
def merge(
    peers_file: Annotated[Path, typer.Option(help="The shared peers file (TOML) the probes used")],
    out: Annotated[Path, typer.Option(help="The measured peers file to write")],
    reports: Annotated[list[Path], typer.Argument(help="Every peer's probe report")],
) -> None:
    """Write a peers file with every peer's measured upload, download and pair latencies."""
    from bcfl.network.probe import ProbeError, load_report, merge_reports
    from bcfl.node.p2p import load_peers_file, write_peers_file

    peers = load_peers_file(peers_file)
    measured = merge_reports([load_report(p) for p in reports])
    names = {p.address.lower(): p.address for p in peers.peers}
    strangers = [a for a in measured.upload if a.lower() not in names]
    if strangers:
        raise ProbeError(f"reports name peers not in {peers_file}: {', '.join(strangers)}")
    if len(measured.upload) != len(peers.peers):
        raise ProbeError(
            f"{len(reports)} reports for the {len(peers.peers)} peers of {peers_file}: one per peer"
        )
    rates = {
        names[a.lower()]: (measured.upload[a] * 8 / 1e6, measured.download[a] * 8 / 1e6)
        for a in measured.upload
    }
    latency = {(names[a.lower()], names[b.lower()]): s * 1000 for (a, b), s in measured.latency.items()}
    write_peers_file(out, {p.address: p.server for p in peers.peers}, rates, latency)
    load_peers_file(out)  # what was written reads back
    err_console.print(f"measured peers file -> {out}", highlight=False)


def measure_testbed(
    bed: Testbed, workdir: Path, *, probe_kib: int = 256, repeats: int = 2
) -> list[tuple[float, float]]:
    """Each testbed host's (upload, download) in Mbit/s, as `bcfl peers serve` / `probe` / the
    merge rules measure them from inside the hosts, one host probing at a time."""
    import subprocess
    import sys

    from bcfl.network.hosts import OBJECT_PORT
    from bcfl.network.probe import ProbeError, load_report, merge_reports
    from bcfl.network.transfer import Address
    from bcfl.node.p2p import write_peers_file

    workdir.mkdir(parents=True, exist_ok=True)
    names = [f"0x{i + 1:040x}" for i in range(len(bed.hosts))]  # placeholders: no chain needed
    shared = workdir / "probe-peers.toml"
    write_peers_file(shared, {a: Address(bed.addresses[i], OBJECT_PORT) for i, a in enumerate(names)})
    cli = [sys.executable, "-m", "bcfl.cli.app", "peers"]
    servers = [
        bed.popen(i, [*cli, "serve", "--peers-file", str(shared), "--address", a], stdout=subprocess.PIPE)
        for i, a in enumerate(names)
    ]
    try:
        for i, proc in enumerate(servers):
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"READY":
                raise ProbeError(f"the probe server on testbed host {i} did not start")
        reports = []
        for i, a in enumerate(names):
            out = workdir / f"probe-{i}.json"
            args = ["probe", "--peers-file", str(shared), "--address", a, "--out", str(out)]
            done = bed.run(
                i, [*cli, *args, "--probe-kib", str(probe_kib), "--repeats", str(repeats)], timeout=300
            )
            if done.returncode != 0:
                raise ProbeError(f"probing from testbed host {i} failed: {done.stderr.strip()[-500:]}")
            reports.append(load_report(out))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)
    measured = merge_reports(reports)
    return [(measured.upload[a] * 8 / 1e6, measured.download[a] * 8 / 1e6) for a in names]


def register(app: typer.Typer) -> None:
    app.add_typer(peers_app, name="peers")
