"""Sending signed transactions: one nonce manager per key, estimated gas, retries.

Every write goes through `TxSender.send`, which estimates gas (a revert at estimation becomes
the contract's custom error), signs locally, hands out nonces under a lock (so concurrent
threads never collide), waits for the receipt, re-broadcasts a dropped transaction and
resynchronises after "nonce too low".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TimeExhausted, TransactionNotFound

from bcfl.chain.reverts import RevertDecoder, UnknownRevert, revert_data
from bcfl.errors import BcflError

log = logging.getLogger(__name__)

GAS_MARGIN = 1.2  # state may change between estimation and inclusion


class TransactionFailed(BcflError):
    """A transaction could not be mined after its retries."""


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int
    logs: list[Any]
    raw: Any


class TxSender:
    """Signs and sends transactions for one account; safe to share between threads."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        *,
        receipt_timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address: str = account.address
        self.decoder = decoder
        self.receipt_timeout = receipt_timeout
        self.retries = retries
        self._lock = threading.Lock()
        self._next_nonce: int | None = None
        self._chain_id: int | None = None

    def _allocate_nonce(self) -> int:
        with self._lock:
            pending = int(self.w3.eth.get_transaction_count(cast(Any, self.address), "pending"))
            nonce = pending if self._next_nonce is None else max(self._next_nonce, pending)
            self._next_nonce = nonce + 1
            return nonce

    def _resync(self) -> None:
        with self._lock:
            self._next_nonce = None

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def call_error(self, fn: ContractFunction, value: int, context: str) -> BcflError | None:
        """The revert a call would raise now, if any (used to explain a failed transaction)."""
        try:
            fn.call(cast(Any, {"from": self.address, "value": value}))
        except Exception as exc:  # web3 raises several types for reverts
            data = revert_data(exc)
            if data is not None:
                return self.decoder.decode(data, context)
            return UnknownRevert(f"call reverted: {exc} ({context})")
        return None

    def send(self, fn: ContractFunction, *, value: int = 0, context: str = "") -> Receipt:
        """Send `fn` as a transaction and wait for it to be mined successfully."""
        params: dict[str, Any] = {"from": self.address, "value": value, "chainId": self._chain()}
        last_error: Exception | None = None
        for attempt in range(1, self.retries + 1):
            params["gas"] = self._gas_limit(fn, params, context)
            nonce = self._allocate_nonce()
            tx = fn.build_transaction(cast(Any, {**params, "nonce": nonce}))
            signed = self.account.sign_transaction(cast(Any, tx))
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                message = str(exc).lower()
                if "nonce too low" in message or "already known" in message or "replacement" in message:
                    log.info("nonce %d taken; resynchronising (attempt %d)", nonce, attempt)
                    self._resync()
                    last_error = exc
                    continue
                data = revert_data(exc)
                if data is not None:
                    raise self.decoder.decode(data, context) from None
                raise TransactionFailed(f"sending transaction failed ({context}): {exc}") from exc
            receipt = self._wait(tx_hash, signed.raw_transaction)
            if receipt is None:
                log.warning("transaction %s not mined in time; retrying", tx_hash.hex())
                self._resync()
                last_error = TimeExhausted(tx_hash.hex())
                continue
            if int(receipt["status"]) != 1:
                error = self.call_error(fn, value, context)
                if error is not None:
                    raise error
                if int(receipt["gasUsed"]) >= params["gas"]:
                    # Another transaction changed the state between estimate and inclusion so
                    # that this one needed more gas (e.g. it became a round's finalising vote).
                    log.info("transaction %s ran out of gas; estimating again", tx_hash.hex())
                    last_error = TransactionFailed(f"transaction {tx_hash.hex()} ran out of gas ({context})")
                    continue
                raise TransactionFailed(f"transaction {tx_hash.hex()} reverted ({context})")
            return Receipt(
                tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
                block_number=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
                logs=list(receipt["logs"]),
                raw=receipt,
            )
        raise TransactionFailed(
            f"transaction not mined after {self.retries} attempts ({context}): {last_error}"
        )

    def _gas_limit(self, fn: ContractFunction, params: dict[str, Any], context: str) -> int:
        """The estimate for the current state, with a margin; a revert is decoded and raised."""
        try:
            gas = int(fn.estimate_gas(cast(Any, {k: v for k, v in params.items() if k != "gas"})))
        except Exception as exc:
            data = revert_data(exc)
            if data is not None:
                raise self.decoder.decode(data, context) from None
            raise TransactionFailed(f"gas estimation failed ({context}): {exc}") from exc
        return int(gas * GAS_MARGIN) + 10_000

    def _wait(self, tx_hash: Any, raw: bytes) -> Any | None:
        """The receipt; re-broadcasts once if the node forgot the transaction (dropped)."""
        deadline = time.monotonic() + self.receipt_timeout
        rebroadcast = False
        while time.monotonic() < deadline:
            try:
                return self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=min(5.0, max(0.1, deadline - time.monotonic())), poll_latency=0.05
                )
            except TimeExhausted:
                try:
                    self.w3.eth.get_transaction(tx_hash)
                except TransactionNotFound:
                    if rebroadcast:
                        return None
                    try:
                        self.w3.eth.send_raw_transaction(raw)
                    except Exception as exc:  # mined meanwhile or nonce moved on: re-check
                        log.info("re-broadcast refused: %s", exc)
                    rebroadcast = True
        return None
