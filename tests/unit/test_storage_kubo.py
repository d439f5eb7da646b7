"""The Kubo-RPC backend against a fake daemon that lies: every lie is caught, errors are typed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from bcfl.storage.cid import CHUNK_SIZE, build_bytes, cid_string, parse_cid
from bcfl.storage.errors import CidParseError, CidTimeout, IntegrityError, ObjectTooLarge, StorageUnavailable
from bcfl.storage.kubo import KuboStorage, url_to_multiaddr


@dataclass
class FakeDaemon:
    """Serves block/get, cat and add from dictionaries the test can corrupt."""

    blocks: dict[str, bytes] = field(default_factory=dict)
    cat: dict[str, bytes] = field(default_factory=dict)
    add_answer: str = ""
    delay: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    url: str = ""


def _handler(fake: FakeDaemon) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            parsed = urlparse(self.path)
            arg = parse_qs(parsed.query).get("arg", [""])[0]
            op = parsed.path.removeprefix("/api/v0/")
            fake.calls.append(op)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            elif self.headers.get("Transfer-Encoding") == "chunked":
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    self.rfile.read(size + 2)
                    if size == 0:
                        break
            if fake.delay:
                time.sleep(fake.delay)
            table = {"block/get": fake.blocks, "cat": fake.cat}.get(op)
            if op == "add":
                body = json.dumps({"Name": "f", "Hash": fake.add_answer, "Size": "1"}).encode()
            elif table is None or arg not in table:
                self.send_response(500)
                message = fake.errors.get(arg, f"{arg} not found")
                body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            else:
                body = table[arg]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                self.wfile.write(body)

    return Handler


@pytest.fixture()
def fake() -> Iterator[FakeDaemon]:
    daemon = FakeDaemon()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(daemon))
    daemon.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        server.shutdown()
        server.server_close()


def serve_file(fake: FakeDaemon, data: bytes) -> str:
    def sink(cid: bytes, block: bytes | memoryview) -> None:
        fake.blocks[cid_string(cid)] = bytes(block)

    root = build_bytes(data, sink).text
    fake.cat[root] = data
    return root


DATA = hashlib.shake_128(b"kubo").digest(2 * CHUNK_SIZE + 100)


def test_honest_daemon(fake: FakeDaemon) -> None:
    cid = serve_file(fake, DATA)
    assert KuboStorage(fake.url).get(cid) == DATA
    assert "cat" in fake.calls


def test_lying_cat_falls_back_to_verified_blocks(fake: FakeDaemon) -> None:
    cid = serve_file(fake, DATA)
    fake.cat[cid] = DATA[:-1] + b"!"
    assert KuboStorage(fake.url).get(cid) == DATA
    assert fake.calls.count("block/get") == 4  # the root once, then each of the 3 leaves


def test_lying_blocks_and_cat_are_refused(fake: FakeDaemon) -> None:
    cid = serve_file(fake, DATA)
    fake.cat[cid] = DATA[:-1] + b"!"
    leaf = next(k for k in fake.blocks if k.startswith("bafkrei"))
    fake.blocks[leaf] = fake.blocks[leaf][:-1] + b"!"
    with pytest.raises(IntegrityError, match=leaf):
        KuboStorage(fake.url).get(cid)


def test_lying_root_is_refused(fake: FakeDaemon) -> None:
    cid = serve_file(fake, b"small")
    fake.blocks[cid] = b"other"
    with pytest.raises(IntegrityError, match=cid):
        KuboStorage(fake.url).get(cid)


def test_oversized_refused_before_content_moves(fake: FakeDaemon) -> None:
    cid = serve_file(fake, DATA)
    with pytest.raises(ObjectTooLarge, match=cid):
        KuboStorage(fake.url).get(cid, max_bytes=CHUNK_SIZE)
    assert fake.calls == ["block/get"]  # only the root block


def test_add_answering_another_cid_is_refused(fake: FakeDaemon) -> None:
    fake.add_answer = build_bytes(b"not what was sent").text
    with pytest.raises(IntegrityError, match="stored"):
        KuboStorage(fake.url).put(b"what was sent")


def test_timeout_names_the_cid(fake: FakeDaemon) -> None:
    cid = serve_file(fake, b"slow")
    fake.delay = 2.0
    with pytest.raises(CidTimeout, match=cid):
        KuboStorage(fake.url).get(cid, timeout=0.3)


def test_daemon_side_timeout_is_a_cid_timeout(fake: FakeDaemon) -> None:
    missing = build_bytes(b"nowhere").text
    fake.errors[missing] = "Failed to get block: request timed out"  # js-ipfs's words
    with pytest.raises(CidTimeout, match=missing):
        KuboStorage(fake.url).get(missing, timeout=0.5)


def test_daemon_down_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    store = KuboStorage(url, timeout=2)
    with pytest.raises(StorageUnavailable, match=url):
        store.get(build_bytes(b"x").text)
    with pytest.raises(StorageUnavailable, match=url):
        store.put(b"x")


def test_unparseable_cid_never_reaches_the_daemon(fake: FakeDaemon) -> None:
    with pytest.raises(CidParseError):
        KuboStorage(fake.url).get("bafy-nonsense")
    assert fake.calls == []


def test_url_to_multiaddr() -> None:
    assert url_to_multiaddr("http://127.0.0.1:5001") == ("/ip4/127.0.0.1/tcp/5001/http", "api/v0")
    assert url_to_multiaddr("https://ipfs.example.org/api/v0") == (
        "/dns/ipfs.example.org/tcp/443/https",
        "api/v0",
    )
    assert parse_cid(build_bytes(b"").text).is_raw
