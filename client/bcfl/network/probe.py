"""Measuring the links between live peers, and turning the measurements into a peers file.

Every peer's object server answers `PROBE <n>` with n bytes (bcfl.network.peer_storage). A peer
measures, from its own host:
- per other peer j: the one-way latency (half the TCP connect time, the handshake's round trip)
  and the rate at which j's bytes reach it alone, which is min(j's upload, its own download,
  the path between them);
- its download: the sum of the streams' rates while all other peers' probes reach it at once,
  which is about min(its download, the sum of their uploads).

`merge_reports` combines every peer's report into the figures a peers file holds: upload of j =
the best rate any peer received from j alone (its upload, unless every receiver or path was
slower); download of i = the best of its all-at-once rate and any single rate it received; each
pair's latency = the mean of the two directions. Every peer plans with the merged file, so
every peer computes the same plan from the same figures.
"""

from __future__ import annotations

import json
import math
import socket
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bcfl.errors import BcflError
from bcfl.network.transfer import Address

MBIT = 1e6 / 8
DEFAULT_PROBE_BYTES = 1 << 20


class ProbeError(BcflError):
    """A peer that cannot be measured, or reports that cannot be merged."""


@dataclass(frozen=True)
class LinkSample:
    latency_s: float  # one way
    rate: float  # bytes/s


def _fetch(address: Address, nbytes: int, timeout: float) -> LinkSample:
    where = f"{address.host}:{address.port}"
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot reach peer server {where}: {exc}") from exc
    connected = time.perf_counter()
    with sock:
        try:
            sock.sendall(f"PROBE {nbytes}\n".encode())
            reader = sock.makefile("rb")
            head = reader.readline(256).decode("ascii", "replace").split()
            if len(head) != 2 or head[0] != "OK" or int(head[1]) != nbytes:
                raise ProbeError(f"peer server {where} refused the probe: {' '.join(head) or 'no answer'}")
            first = time.perf_counter()
            got = 0
            while got < nbytes:
                chunk = reader.read1(1 << 16)
                if not chunk:
                    raise ProbeError(f"peer server {where} closed the probe after {got} of {nbytes} bytes")
                got += len(chunk)
            done = time.perf_counter()
        except (OSError, ValueError) as exc:
            raise ProbeError(f"probing {where} failed: {exc}") from exc
    elapsed = max(done - first, 1e-9)
    return LinkSample(latency_s=(connected - t0) / 2, rate=nbytes / elapsed if nbytes else math.inf)


@dataclass(frozen=True)
class ProbeReport:
    """One peer's measurements: `pairs[j]` = (latency s, rate B/s) of j's bytes reaching it."""

    peer: str
    pairs: Mapping[str, LinkSample]
    download: float  # bytes/s, all other reachable peers at once
    probe_bytes: int
    taken_at: float = field(default_factory=time.time)
    unreachable: Mapping[str, str] = field(default_factory=dict)  # peer -> why it was not measured

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "pairs": {k: asdict(v) for k, v in sorted(self.pairs.items())},
            "download": self.download,
            "probe_bytes": self.probe_bytes,
            "taken_at": self.taken_at,
            "unreachable": dict(sorted(self.unreachable.items())),
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any], where: str) -> ProbeReport:
        try:
            pairs = {
                str(k): LinkSample(float(v["latency_s"]), float(v["rate"])) for k, v in doc["pairs"].items()
            }
            report = ProbeReport(
                str(doc["peer"]),
                pairs,
                float(doc["download"]),
                int(doc["probe_bytes"]),
                float(doc["taken_at"]),
                {str(k): str(v) for k, v in doc.get("unreachable", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProbeError(f"{where}: not a probe report ({type(exc).__name__}: {exc})") from exc
        bad = [k for k, v in pairs.items() if not (v.latency_s >= 0 and v.rate > 0)]
        if bad or not report.download > 0:
            raise ProbeError(f"{where}: non-positive rate or negative latency for {bad or ['download']}")
        return report


def probe_peers(
    me: str,
    servers: Mapping[str, Address],
    *,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
    repeats: int = 3,
    timeout: float = 60.0,
) -> ProbeReport:
    """Measure every other peer's link to this one (median of `repeats`), then all at once. A
    peer that cannot be measured is listed in `unreachable` with the reason; none reachable is
    an error."""
    if repeats < 1 or probe_bytes < 1:
        raise ProbeError(f"a probe needs repeats >= 1 and bytes >= 1, got {repeats} and {probe_bytes}")
    others = {a: s for a, s in servers.items() if a.lower() != me.lower()}
    if not others:
        raise ProbeError("there is no other peer to measure")
    pairs = {}
    unreachable = {}
    for peer, server in sorted(others.items()):
        try:
            samples = [_fetch(server, probe_bytes, timeout) for _ in range(repeats)]
        except ProbeError as exc:
            unreachable[peer] = str(exc)
            continue
        pairs[peer] = LinkSample(
            statistics.median(s.latency_s for s in samples), statistics.median(s.rate for s in samples)
        )
    if not pairs:
        raise ProbeError(f"no other peer could be measured: {'; '.join(unreachable.values())}")
    reachable = [others[p] for p in pairs]
    download = statistics.median(_all_at_once(reachable, probe_bytes, timeout) for _ in range(repeats))
    return ProbeReport(me, pairs, download, probe_bytes, unreachable=unreachable)


def _all_at_once(servers: Sequence[Address], probe_bytes: int, timeout: float) -> float:
    """The sum of the streams' rates while every other peer sends at once: the receiver's
    download where that is the bottleneck, else what the senders could send together."""
    rates: list[float] = []
    errors: list[BaseException] = []

    def one(server: Address) -> None:
        try:
            rates.append(_fetch(server, probe_bytes, timeout).rate)
        except ProbeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise ProbeError(str(errors[0]))
    return sum(rates)


@dataclass(frozen=True)
class MeasuredLinks:
    upload: Mapping[str, float]  # bytes/s
    download: Mapping[str, float]
    latency: Mapping[tuple[str, str], float]  # seconds one way, both orders of each pair


def merge_reports(reports: Sequence[ProbeReport]) -> MeasuredLinks:
    """Every peer's access links and every measured pair's latency (rules in the module doc)."""
    peers = {r.peer.lower(): r.peer for r in reports}
    if len(peers) != len(reports):
        raise ProbeError("two reports come from the same peer")
    upload: dict[str, float] = {}
    download: dict[str, float] = {}
    one_way: dict[tuple[str, str], list[float]] = {}
    for r in reports:
        download[r.peer] = max([r.download, *(s.rate for s in r.pairs.values())])
        for sender, sample in r.pairs.items():
            key = peers.get(sender.lower())
            if key is None:
                raise ProbeError(f"report of {r.peer} measures {sender}, which sent no report")
            upload[key] = max(upload.get(key, 0.0), sample.rate)
            pair = (min(key, r.peer), max(key, r.peer))
            one_way.setdefault(pair, []).append(sample.latency_s)
    missing = [p for p in peers.values() if p not in upload]
    if missing:
        raise ProbeError(f"no report measures {', '.join(missing)}: their upload is unknown")
    latency: dict[tuple[str, str], float] = {}
    for (a, b), values in one_way.items():
        latency[(a, b)] = latency[(b, a)] = sum(values) / len(values)
    return MeasuredLinks(upload, download, latency)


def load_report(path: Path) -> ProbeReport:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProbeError(f"{path}: cannot read a probe report: {exc}") from exc
    return ProbeReport.from_json(doc, str(path))
