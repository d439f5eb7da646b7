"""Connecting to an EVM JSON-RPC endpoint, with a clear error when it is down."""

from __future__ import annotations

import requests
from web3 import Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from bcfl.errors import BcflError


class ChainUnavailable(BcflError):
    """The chain's RPC endpoint did not answer."""


def connect(rpc_url: str, *, timeout: float = 10.0, expect_chain_id: int | None = None) -> Web3:
    """A Web3 client for `rpc_url`, checked to be answering (and on the expected chain)."""
    provider = Web3.HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=ExceptionRetryConfiguration(
            errors=(requests.ConnectionError, requests.Timeout), retries=2, backoff_factor=0.2
        ),
    )
    w3 = Web3(provider)
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # connection refused, DNS, HTTP errors, bad JSON: all "down"
        raise ChainUnavailable(f"chain RPC {rpc_url} is not reachable ({type(exc).__name__})") from exc
    if expect_chain_id is not None and chain_id != expect_chain_id:
        raise ChainUnavailable(f"chain RPC {rpc_url} serves chain id {chain_id}, expected {expect_chain_id}")
    return w3
