"""A minimal JSON-RPC client with batching, for following a chain over any EVM RPC URL.

Only standard `eth_` methods are used. A batch that the endpoint refuses falls back to single
calls, since batching is optional for JSON-RPC servers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import requests

from bcfl.chain.connection import ChainUnavailable
from bcfl.errors import BcflError


class RpcError(BcflError):
    """The RPC endpoint answered a call with an error."""

    def __init__(self, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.data = data


class RpcClient:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        self._ids = itertools.count(1)
        self._batch_ok = True

    def _post(self, payload: Any) -> Any:
        try:
            reply = self._session.post(self.url, json=payload, timeout=self.timeout)
            reply.raise_for_status()
            return reply.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnavailable(f"chain RPC {self.url} is not reachable ({type(exc).__name__})") from exc

    @staticmethod
    def _result(method: str, answer: Any) -> Any:
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: malformed JSON-RPC answer {answer!r:.200}")
        if "error" in answer:
            err = answer["error"] or {}
            data = err.get("data") if isinstance(err, dict) else None
            message = err.get("message") if isinstance(err, dict) else err
            raise RpcError(f"{method} failed: {message}", data if isinstance(data, str) else None)
        return answer.get("result")

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        answer = self._post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        return self._result(method, answer)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results in call order; raises on the first call that failed."""
        if not calls:
            return []
        if self._batch_ok:
            ids = [next(self._ids) for _ in calls]
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
            answers = self._post(payload)
            if isinstance(answers, list) and len(answers) == len(calls):
                by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
                if all(i in by_id for i in ids):
                    return [self._result(m, by_id[i]) for i, (m, _) in zip(ids, calls, strict=True)]
            self._batch_ok = False  # the endpoint does not batch: use single calls from now on
        return [self.call(m, p) for m, p in calls]

    def close(self) -> None:
        self._session.close()
