"""Forwarding TCP between the root namespace and testbed hosts (bcfl.network.forward, hosts)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bcfl.network.forward import Forwarder, ForwardError
from bcfl.network.hosts import OBJECT_PORT, TestbedHosts
from bcfl.network.testbed import Testbed
from bcfl.network.transfer import Address
from tests.testbeds import require_testbed, shaped_testbed

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def need_root() -> None:
    require_testbed()


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    yield from shaped_testbed([20, 20], [80, 80])


def _echo_server() -> tuple[socket.socket, Address]:
    """An upper-casing echo service on the root namespace's loopback."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv, Address("127.0.0.1", srv.getsockname()[1])


CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"through the namespace wall")
s.shutdown(socket.SHUT_WR)
print(s.recv(4096).decode())
"""


def test_a_root_service_is_reached_from_every_host_at_the_same_address(testbed: Testbed) -> None:
    srv, addr = _echo_server()
    hosts = TestbedHosts(testbed)
    try:
        # Before forwarding, the host's loopback has nothing on that port.
        before = testbed.run(0, [sys.executable, "-c", CLIENT, str(addr.port)])
        assert before.returncode != 0 and "Connection refused" in before.stderr
        hosts.reach_chain(addr)
        for host in range(2):
            out = testbed.run(host, [sys.executable, "-c", CLIENT, str(addr.port)])
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == "THROUGH THE NAMESPACE WALL"
    finally:
        hosts.close()
        srv.close()


def test_a_hosts_server_is_reached_from_the_root_namespace(testbed: Testbed) -> None:
    hosts = TestbedHosts(testbed)
    server = testbed.popen(
        1,
        [sys.executable, "-m", "http.server", str(OBJECT_PORT), "--bind", testbed.addresses[1]],
        stdout=None,
        stderr=None,
    )
    try:
        assert hosts.server(1) == Address(testbed.addresses[1], OBJECT_PORT)
        local = hosts.reach_server(1)
        assert local.host == "127.0.0.1"
        deadline = time.monotonic() + 20
        reply = b""
        while time.monotonic() < deadline and not reply.startswith(b"HTTP/1.0 200"):
            try:
                with socket.create_connection((local.host, local.port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    reply = s.recv(64)
            except ConnectionResetError:  # the server is still starting: the forwarder's dial failed
                time.sleep(0.2)
        assert reply.startswith(b"HTTP/1.0 200")
    finally:
        server.terminate()
        hosts.close()


def test_a_namespace_that_does_not_exist_is_named() -> None:
    with pytest.raises(ForwardError, match="bcfl-no-such-namespace"):
        Forwarder("bcfl-no-such-namespace", Address("127.0.0.1", 0), None, Address("127.0.0.1", 1))
