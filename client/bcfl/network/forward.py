"""TCP forwarding between network namespaces, in-process (Linux, root).

A socket belongs to the network namespace its creating thread was in when it was made, and
`setns(2)` moves only the calling thread. So `netns_socket(ns)` switches this thread into `ns`,
makes the socket and switches back; bind, connect and I/O can then happen from any thread.
`Forwarder` listens in one namespace and, for each connection, dials a target in another and
copies bytes both ways. The testbed uses it to reach the devnet (in the root namespace) from its
hosts, and a host's servers from the root namespace, without creating any interface there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator

from bcfl.errors import BcflError
from bcfl.network.transfer import Address

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"  # where `ip netns add` keeps its namespaces


class ForwardError(BcflError):
    """A forwarder cannot start (no such namespace, no permission, address in use)."""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def _in_namespace(ns: str | None) -> Iterator[None]:
    """Run the body with this thread in namespace `ns` (None: stay where it is)."""
    if ns is None:
        yield
        return
    path = os.path.join(NETNS_DIR, ns)
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ForwardError(f"network namespace {ns!r} cannot be opened ({path}): {exc.strerror}") from exc
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            _setns(target)
        except OSError as exc:
            raise ForwardError(f"cannot enter network namespace {ns!r} (needs root): {exc}") from exc
        try:
            yield
        finally:
            _setns(home)  # a thread left in the wrong namespace must not go on silently
    finally:
        os.close(target)
        os.close(home)


def netns_socket(ns: str | None) -> socket.socket:
    """A TCP socket in network namespace `ns` (None: this thread's own)."""
    with _in_namespace(ns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


class Forwarder:
    """Accept on `listen` inside `listen_ns`; connect each client to `target` inside `target_ns`."""

    def __init__(
        self, listen_ns: str | None, listen: Address, target_ns: str | None, target: Address
    ) -> None:
        self.listen_ns, self.target_ns = listen_ns, target_ns
        self.target = target
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = netns_socket(listen_ns)
        try:
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._server.bind((listen.host, listen.port))
            self._server.listen(64)
        except OSError as exc:
            self._server.close()
            where = listen_ns or "the root namespace"
            raise ForwardError(f"cannot listen on {listen.host}:{listen.port} in {where}: {exc}") from exc
        host, port = self._server.getsockname()[:2]
        self.address = Address(str(host), int(port))
        self._thread = threading.Thread(target=self._accept, name=f"forward-{port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            try:
                upstream = netns_socket(self.target_ns)
            except ForwardError:
                client.close()
                continue
            try:
                upstream.connect((self.target.host, self.target.port))
            except OSError:
                upstream.close()
                client.close()  # the client sees a reset, as it would from a dead service
                continue
            with self._lock:
                self._conns = [c for c in self._conns if c.fileno() != -1] + [client, upstream]
            threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns.clear()
        self._thread.join(timeout=5)
