"""The node's data path (PlannedStorage + ObjectServer) run on testbed hosts, relays included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bcfl.network.store_agent import run_store_path
from bcfl.network.testbed import Testbed
from bcfl.storage.cid import cid_of_bytes
from tests.testbeds import shaped_testbed

pytestmark = pytest.mark.integration


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    yield from shaped_testbed([4, 40, 40], [80, 80, 80])


def test_a_relay_serves_on_what_it_fetched_for_another_host(testbed: Testbed, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    cid = cid_of_bytes(data)
    # Host 0 (slow upload) holds the object; host 2 asks host 1, which must relay it from host 0.
    routes = {1: {cid: [0]}, 2: {cid: [1]}}
    reports = run_store_path(testbed, {cid: (0, data)}, routes, [1, 2], tmp_path, relay_hops=2)
    assert all(cid in reports[h]["arrivals"] and not reports[h]["errors"] for h in (1, 2))
    assert reports[0] == {"served_bytes": len(data)}  # the holder served host 1 only
    assert reports[1]["served_bytes"] == len(data)  # host 1 served host 2 what it fetched
    # 300 kB over host 0's 4 Mbit/s upload takes about 0.6 s; host 2 cannot have it sooner.
    assert reports[2]["completion"] >= reports[1]["completion"] >= 0.5


def test_an_object_nobody_can_route_is_reported(testbed: Testbed, tmp_path: Path) -> None:
    data = os.urandom(1000)
    cid = cid_of_bytes(data)
    with pytest.raises(Exception, match="did not get every object"):
        run_store_path(testbed, {cid: (0, data)}, {1: {cid: [2]}}, [1], tmp_path, relay_hops=0, timeout=30)
