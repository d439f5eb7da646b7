"""The explorer's HTTP server: stdlib `ThreadingHTTPServer` in a thread, loopback by default.

Every HTML page has a JSON twin under /api. Pages read the index only. A problem is always a
page with a one-line message and a fitting status: 400 for a malformed address, 404 for an
unknown round/peer/block/transaction, 503 while the chain cannot be followed and nothing is
indexed yet (a deployment record for another chain, an RPC URL that is down), 500 otherwise;
never a blank page or a traceback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bcfl.errors import BcflError
from bcfl.explorer import pages, views
from bcfl.explorer.index import ChainIndex


class Unavailable(BcflError):
    """Nothing can be shown yet: the chain is not being followed."""


def _int_arg(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise views.BadRequest(f"{what} {text!r} is not a number") from None
    if value < 0:
        raise views.BadRequest(f"{what} {text!r} is negative")
    return value


Page = tuple[Any, Callable[[dict[str, Any], Any], str] | None]


class ExplorerHandler(BaseHTTPRequestHandler):
    server: ExplorerHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- routing ------------------------------------------------------------------------------

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> Page:
        index = self.server.index
        head = parts[0] if parts else ""
        if head == "status":
            return views.status_view(index), lambda s, d: pages.status_page(s)
        self._require_data()
        if head == "" and len(parts) <= 1:
            page = _int_arg(query.get("page", ["1"])[0], "page")
            data = {"rounds": views.rounds_view(index, page=page), "chart": views.chart_series(index)}
            return data, lambda s, d: pages.index_page(s, d["rounds"], d["chart"])
        if head == "rounds" and len(parts) == 1:
            page = _int_arg(query.get("page", ["1"])[0], "page")
            return views.rounds_view(index, page=page), lambda s, d: pages.index_page(
                s, d, views.chart_series(index)
            )
        if head == "chart" and len(parts) == 1:
            return views.chart_series(index), None
        if head == "peers" and len(parts) == 1:
            return views.peers_view(index), pages.peers_page
        if len(parts) == 2:
            arg = parts[1]
            if head == "round":
                return views.round_view(index, _int_arg(arg, "round")), pages.round_page
            if head == "peer":
                return views.peer_view(index, arg), pages.peer_page
            if head == "block":
                return views.block_view(index, _int_arg(arg, "block")), pages.block_page
            if head == "tx":
                return views.tx_view(index, arg), pages.tx_page
        raise views.NotFound(f"no page at {self.path}")

    def _require_data(self) -> None:
        index = self.server.index
        with index.lock:
            if index.meta is None or index.last_block is None:
                if index.error:
                    raise Unavailable(index.error)
                raise Unavailable(
                    f"still connecting to {self.server.rpc_url}; this page will work in a moment"
                )

    # -- serving ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        api = bool(parts) and parts[0] == "api"
        if api:
            parts = parts[1:]
        if parts == ["favicon.ico"]:
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            return
        status = views.status_view(self.server.index)
        try:
            data, render = self._route(parts, parse_qs(url.query))
            if api or render is None:
                self._json(HTTPStatus.OK, data)
            else:
                self._html(HTTPStatus.OK, render(status, data))
        except views.BadRequest as exc:
            self._problem(HTTPStatus.BAD_REQUEST, str(exc), status, api)
        except views.NotFound as exc:
            self._problem(HTTPStatus.NOT_FOUND, str(exc), status, api)
        except Unavailable as exc:
            self._problem(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), status, api)
        except Exception as exc:  # a bug must still give a page that says what happened
            what = str(exc) if isinstance(exc, BcflError) else f"{type(exc).__name__}: {exc}"
            self._problem(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"the explorer failed on {url.path}: {what}", status, api
            )

    def _problem(self, code: HTTPStatus, message: str, status: dict[str, Any], api: bool) -> None:
        if api:
            self._json(code, {"error": message, "status": int(code)})
        else:
            self._html(code, pages.error_page(int(code), message, status))

    def _json(self, code: HTTPStatus, data: Any) -> None:
        self._send(code, json.dumps(data, sort_keys=True, default=str).encode(), "application/json")

    def _html(self, code: HTTPStatus, text: str) -> None:
        self._send(code, text.encode("utf-8"), "text/html; charset=utf-8")

    def _send(self, code: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class ExplorerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], index: ChainIndex, rpc_url: str, *, verbose: bool = False
    ) -> None:
        super().__init__(address, ExplorerHandler)
        self.index = index
        self.rpc_url = rpc_url
        self.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="explorer-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
