"""Namespace testbeds for the tests: skipped with the reason where they cannot be built."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from bcfl.network.testbed import Testbed, available
from bcfl.network.topology import MBIT


def require_testbed() -> None:
    """Skip the calling test where network namespaces cannot be built (not root, no iproute2)."""
    reason = available()
    if reason is not None:
        pytest.skip(f"testbed cannot run here: {reason}")


def shaped_testbed(up_mbit: Sequence[float], down_mbit: Sequence[float]) -> Iterator[Testbed]:
    """For a fixture to `yield from`: hosts with these access links (Mbit/s), built and torn down."""
    require_testbed()
    with Testbed([u * MBIT for u in up_mbit], [d * MBIT for d in down_mbit]) as bed:
        yield bed
