"""A local Anvil devnet: started on a free loopback port, state persisted, stopped by its PID.

The devnet's whereabouts (RPC URL, PID, state file) are recorded as JSON in a state folder so
that `bcfl devnet status|down` and peers started later can find it.
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

import requests

from bcfl.errors import BcflError

ANVIL_CHAIN_ID = 31337
# Anvil's well-known development mnemonic accounts (public test keys, never for real funds).
ANVIL_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)


class DevnetError(BcflError):
    """The devnet could not be started, found or stopped."""


@dataclass(frozen=True)
class DevnetInfo:
    rpc_url: str
    pid: int
    port: int
    state_file: str
    chain_id: int = ANVIL_CHAIN_ID


def anvil_binary() -> Path:
    """Anvil's native binary: $BCFL_ANVIL, the npm package in the repo, or `anvil` on PATH."""
    env = os.environ.get("BCFL_ANVIL")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    bundled = root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if bundled.exists():
        return bundled
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise DevnetError("anvil not found: run `make install` (or set BCFL_ANVIL to its path)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rpc_alive(url: str, timeout: float = 1.0) -> bool:
    try:
        reply = requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout
        )
        return reply.ok and "result" in reply.json()
    except (requests.RequestException, ValueError):
        return False


def start_anvil(
    state_dir: Path,
    *,
    port: int | None = None,
    block_time: float | None = None,
    log_file: Path | None = None,
    persist: bool = False,
) -> DevnetInfo:
    """Start Anvil on a free loopback port; with `persist`, chain state is saved under `state_dir`
    (every few seconds and on exit) so a restarted devnet keeps its history."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    state_file = state_dir / "anvil-state.json"
    cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if persist:
        cmd += ["--state", str(state_file), "--state-interval", "5"]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    log = open(log_file or state_dir / "anvil.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevnetError(f"anvil exited with code {proc.returncode}; see {state_dir / 'anvil.log'}")
        if rpc_alive(url, timeout=0.5):
            return DevnetInfo(rpc_url=url, pid=proc.pid, port=port, state_file=str(state_file))
        time.sleep(0.05)
    proc.kill()
    raise DevnetError(f"anvil did not answer on {url} within 20 s")


def stop_pid(pid: int, *, grace: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds. False when no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def record_path(state_dir: Path) -> Path:
    return state_dir / "devnet.json"


def save_record(state_dir: Path, info: DevnetInfo) -> Path:
    path = record_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_record(state_dir: Path) -> DevnetInfo | None:
    path = record_path(state_dir)
    if not path.exists():
        return None
    try:
        return DevnetInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise DevnetError(f"devnet record {path} is unreadable: {exc}") from exc
