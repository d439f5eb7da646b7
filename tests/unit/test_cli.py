"""The command line: help lists the subcommands; errors are one clean line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _bcfl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bcfl.cli.app", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_lists_subcommands() -> None:
    out = _bcfl("--help")
    assert out.returncode == 0
    for command in ("devnet", "deploy", "account", "node", "demo", "audit", "explorer", "cid", "bench"):
        assert command in out.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    out = _bcfl(
        "deploy", "--rpc", "http://127.0.0.1:9", "--key-env", "NOT_SET_ANYWHERE", "--config", "/nope.toml"
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr

    node = _bcfl("node", "--config", str(tmp_path / "missing.toml"))
    assert node.returncode == 1 and "missing.toml does not exist" in node.stderr


def test_unreachable_rpc_is_named(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    out = _bcfl(
        "audit",
        "--rpc",
        "http://127.0.0.1:9",
        "--deployment",
        str(tmp_path / "d.json"),
        "--data-dir",
        str(tmp_path),
    )
    assert out.returncode == 1
    assert "http://127.0.0.1:9 is not reachable" in out.stderr


def test_node_p2p_flags_are_checked_before_anything_starts(tmp_path: Path) -> None:
    stray = _bcfl("node", "--listen", "127.0.0.1:9")
    assert stray.returncode == 1
    assert "peers_file and listen apply to storage 'p2p' only" in stray.stderr
    bare = _bcfl("node", "--storage", "p2p")
    assert bare.returncode == 1 and "storage 'p2p' needs peers_file" in bare.stderr
