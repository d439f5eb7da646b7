"""A network testbed of Linux network namespaces (needs root and iproute2).

Each host is a namespace `bcfl-<pid>-<tag>-h<i>` with one veth `eth0` (address 10.231.0.<i+1>/24,
a private range that exists only inside these namespaces) plugged into a bridge in a switch
namespace `bcfl-<pid>-<tag>-sw`. Access links are shaped with htb: the host's `eth0` egress at
its upload rate, the switch port's egress toward the host at its download rate. This kernel has
no netem, so propagation delay is added in user space by the chunk servers
(`bcfl.network.transfer.ChunkServer(delay=...)`). Nothing is created in the root namespace, so
traffic stays between these hosts.

Teardown is guaranteed by the context manager, an atexit hook, a SIGTERM handler (installed
only when none was), and `cleanup_stale()`, which removes testbeds whose creating process is
gone (after a SIGKILL).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from types import FrameType, TracebackType

from bcfl.errors import BcflError

PREFIX = "bcfl-"
SUBNET = "10.231.0"


class TestbedError(BcflError):
    """The testbed cannot be built (not root, no iproute2) or a command in it failed."""


def _ip_binary() -> str:
    path = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if path is None:
        raise TestbedError("the `ip` command (iproute2) is missing: apt-get install -y iproute2")
    return path


def _tc_binary() -> str:
    path = shutil.which("tc") or ("/usr/sbin/tc" if os.path.exists("/usr/sbin/tc") else None)
    if path is None:
        raise TestbedError("the `tc` command (iproute2) is missing: apt-get install -y iproute2")
    return path


def available() -> str | None:
    """None when a testbed can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    try:
        _ip_binary()
        _tc_binary()
    except TestbedError as exc:
        return str(exc)
    return None


def _run(argv: Sequence[str]) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.returncode}")


def _namespaces() -> list[str]:
    proc = subprocess.run(
        [_ip_binary(), "netns", "list"], capture_output=True, text=True, timeout=30, check=False
    )
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete testbed namespaces whose creating process no longer runs; returns their names."""
    removed = []
    for name in _namespaces():
        if not name.startswith(PREFIX):
            continue
        parts = name.split("-")
        if len(parts) < 4 or not parts[1].isdigit():
            continue
        if not _pid_alive(int(parts[1])):
            with contextlib.suppress(TestbedError):
                _run([_ip_binary(), "netns", "delete", name])
                removed.append(name)
    return removed


def _rate(bytes_per_s: float) -> str:
    return f"{max(8000, int(bytes_per_s * 8))}bit"


class Testbed:
    """`len(ups)` hosts on one shaped switch; use as a context manager."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, ups: Sequence[float], downs: Sequence[float]) -> None:
        if len(ups) != len(downs) or not 1 <= len(ups) <= 250:
            raise TestbedError(
                f"a testbed needs 1..250 hosts with one upload and download rate each, got {len(ups)}"
            )
        if min(*ups, *downs) <= 0:
            raise TestbedError("testbed rates must be positive")
        self.ups, self.downs = list(ups), list(downs)
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.switch = f"{self.tag}-sw"
        self.hosts = [f"{self.tag}-h{i}" for i in range(len(ups))]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(len(ups))]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []
        self._old_sigterm: object = None

    def __enter__(self) -> Testbed:
        reason = available()
        if reason is not None:
            raise TestbedError(reason)
        cleanup_stale()
        atexit.register(self.close)
        self._install_sigterm()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _install_sigterm(self) -> None:
        with contextlib.suppress(ValueError):  # not the main thread: rely on atexit and cleanup_stale
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

                def on_term(signum: int, frame: FrameType | None) -> None:
                    raise SystemExit(128 + signum)

                signal.signal(signal.SIGTERM, on_term)
                self._old_sigterm = signal.SIG_DFL

    def _build(self) -> None:
        ip, tc = _ip_binary(), _tc_binary()
        for ns in [self.switch, *self.hosts]:
            _run([ip, "netns", "add", ns])
            self._created.append(ns)
            _run([ip, "-n", ns, "link", "set", "lo", "up"])
        _run([ip, "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        _run([ip, "-n", self.switch, "link", "set", "br0", "up"])
        for i, ns in enumerate(self.hosts):
            port = f"p{i}"
            _run(
                [
                    ip,
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    port,
                    "netns",
                    self.switch,
                ]
            )
            _run([ip, "-n", self.switch, "link", "set", port, "master", "br0"])
            _run([ip, "-n", self.switch, "link", "set", port, "up"])
            _run([ip, "-n", ns, "addr", "add", f"{self.addresses[i]}/24", "dev", "eth0"])
            _run([ip, "-n", ns, "link", "set", "eth0", "up"])
            self._shape(tc, ns, "eth0", self.ups[i])  # host -> switch: upload
            self._shape(tc, self.switch, port, self.downs[i])  # switch -> host: download

    @staticmethod
    def _shape(tc: str, ns: str, dev: str, rate: float) -> None:
        """htb at `rate`, with packets under 256 bytes (ACKs, SYNs, requests) in a priority class:
        without it a peer's ACKs queue behind its own uploads and stall its downloads (bufferbloat),
        which the simulator's access-link model does not have. No fq_codel/sfq in this kernel."""
        full, small = _rate(rate), _rate(rate / 10)
        bulk = _rate(rate * 9 / 10)
        cmds = [
            ["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"],
            ["class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", full, "ceil", full],
            [
                "class",
                "add",
                "dev",
                dev,
                "parent",
                "1:1",
                "classid",
                "1:5",
                "htb",
                "rate",
                small,
                "ceil",
                full,
                "prio",
                "0",
            ],
            [
                "class",
                "add",
                "dev",
                dev,
                "parent",
                "1:1",
                "classid",
                "1:10",
                "htb",
                "rate",
                bulk,
                "ceil",
                full,
                "prio",
                "1",
            ],
            [
                "filter",
                "add",
                "dev",
                dev,
                "parent",
                "1:",
                "protocol",
                "ip",
                "prio",
                "1",
                "u32",
                "match",
                "u16",
                "0x0000",
                "0xff00",
                "at",
                "2",
                "flowid",
                "1:5",
            ],
        ]
        for cmd in cmds:
            _run([tc, "-n", ns, *cmd])

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` inside host `host`'s namespace."""
        return [_ip_binary(), "netns", "exec", self.hosts[host], *argv]

    def popen(self, host: int, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a process inside host `host`'s namespace; it is killed on close()."""
        proc = subprocess.Popen(self.command(host, argv), **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    def run(self, host: int, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host and wait for it."""
        return subprocess.run(
            self.command(host, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        """Stop every process started here and delete every namespace; safe to call twice."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        while self._created:
            ns = self._created.pop()
            with contextlib.suppress(TestbedError, FileNotFoundError):
                _run([_ip_binary(), "netns", "delete", ns])
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        if self._old_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._old_sigterm = None

    def exists(self) -> bool:
        """Whether any of this testbed's namespaces is still present."""
        names = set(_namespaces())
        return any(ns in names for ns in [self.switch, *self.hosts])
