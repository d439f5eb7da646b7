"""The namespace testbed: build three shaped hosts, move real bytes, tear everything down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bcfl
from bcfl.network.agent import run_on_testbed
from bcfl.network.paths import tree_plan
from bcfl.network.plan import broadcast
from bcfl.network.simulator import simulate
from bcfl.network.testbed import Testbed, _namespaces, cleanup_stale
from bcfl.network.topology import MBIT, uniform_mesh
from tests.testbeds import require_testbed

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def need_root() -> None:
    require_testbed()


def test_three_hosts_shaped_transfer_matches_the_simulator(tmp_path: Path) -> None:
    # host 0 uploads at 8 Mbit/s to host 1, which relays to host 2
    topo = uniform_mesh([8 * MBIT, 8 * MBIT, 8 * MBIT], [40 * MBIT] * 3, 0.02)
    problem = broadcast(0, 1_000_000, (1, 2))
    plan = tree_plan(problem, {"aggregate": {1: 0, 2: 1}}, chunks=8)
    real = run_on_testbed(topo, plan, {"aggregate": os.urandom(1_000_000)}, tmp_path, timeout=60)
    predicted = simulate(topo, plan)
    assert set(real) == {1, 2}
    # 1 MB at 1 MB/s: about 1 s, not the unshaped few milliseconds
    assert real[1] > 0.9
    assert abs(real[2] - predicted.completion[2]) / predicted.completion[2] < 0.25
    assert not any(ns.startswith(f"bcfl-{os.getpid()}-") for ns in _namespaces())


def test_testbed_is_torn_down_on_error_and_on_kill(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Testbed([MBIT] * 2, [MBIT] * 2) as bed:
        assert bed.exists()
        assert bed.addresses[0] in bed.run(0, ["ip", "-4", "addr", "show", "eth0"]).stdout
        raise RuntimeError("interrupted")
    assert not bed.exists()

    # a process killed with SIGKILL leaves namespaces that cleanup_stale() removes
    script = (
        "import time; from bcfl.network.testbed import Testbed\n"
        "bed = Testbed([125000.0], [125000.0]).__enter__()\n"
        "print(bed.tag, flush=True); time.sleep(60)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(bcfl.__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        tag = proc.stdout.readline().strip()
        assert any(ns.startswith(tag) for ns in _namespaces())
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    removed = cleanup_stale()
    assert any(ns.startswith(tag) for ns in removed)
    assert not any(ns.startswith(tag) for ns in _namespaces())
