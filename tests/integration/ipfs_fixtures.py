"""Real js-ipfs daemons for integration tests, started on free loopback ports and stopped after.

Import the fixtures into a test module (`from tests.integration.ipfs_fixtures import ipfs_pair`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bcfl.storage.ipfs_daemons import (
    INSTALL_COMMAND,
    IpfsDaemon,
    IpfsDaemonError,
    jsipfs_cli,
    start_daemons,
    stop_daemons,
)


def require_jsipfs() -> None:
    """Fail (never skip) with the install command when js-ipfs is not installed."""
    try:
        jsipfs_cli()
    except IpfsDaemonError as exc:
        pytest.fail(f"{exc} (or `make install-ipfs`); install command: {INSTALL_COMMAND}", pytrace=False)


@pytest.fixture(scope="module")
def ipfs_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[IpfsDaemon]]:
    """Two connected daemons, A (index 0) and B (index 1), per test module (start-up is ~10 s)."""
    require_jsipfs()
    daemons = start_daemons(2, tmp_path_factory.mktemp("ipfs"))
    try:
        yield daemons
    finally:
        stop_daemons(daemons)
