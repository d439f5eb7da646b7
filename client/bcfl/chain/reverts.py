"""Reverts decoded into exceptions named after the contract's custom errors.

The contract's ABI lists its custom errors; each becomes a `ContractRevert` subclass with the
same name, found by 4-byte selector (never by matching message strings). Access them as
`reverts.error_class("FederationNotPeer")` or catch `ContractRevert` and read `.name`/`.args`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from bcfl.chain.build import load_artifact
from bcfl.errors import BcflError


class ContractRevert(BcflError):
    """A transaction or call reverted with one of the contract's custom errors."""

    name = "ContractRevert"

    def __init__(self, arguments: dict[str, Any], context: str = "") -> None:
        self.arguments = arguments
        self.context = context
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items())
        where = f" ({context})" if context else ""
        super().__init__(f"reverted with {self.name}({shown}){where}")


class UnknownRevert(BcflError):
    """A revert whose data matches none of the contract's errors (a panic or a plain revert)."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


class RevertDecoder:
    """Maps revert data to exception classes built from an ABI's error entries."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._by_selector: dict[bytes, tuple[type[ContractRevert], list[str], list[str]]] = {}
        self.classes: dict[str, type[ContractRevert]] = {}
        for entry in abi:
            if entry.get("type") != "error":
                continue
            cls = type(entry["name"], (ContractRevert,), {"name": entry["name"]})
            self.classes[entry["name"]] = cls
            selector = keccak(text=_signature(entry))[:4]
            names = [i["name"] for i in entry["inputs"]]
            types = [_abi_type(i) for i in entry["inputs"]]
            self._by_selector[selector] = (cls, names, types)

    def decode(self, data: bytes, context: str = "") -> BcflError:
        """The exception for revert `data` (an UnknownRevert when nothing matches)."""
        if len(data) < 4 or data[:4] not in self._by_selector:
            return UnknownRevert(
                f"reverted without a known custom error (data 0x{data.hex()}){_ctx(context)}"
            )
        cls, names, types = self._by_selector[data[:4]]
        values = abi_decode(types, data[4:]) if types else ()
        return cls(dict(zip(names, values, strict=True)), context)


def _ctx(context: str) -> str:
    return f" ({context})" if context else ""


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    if isinstance(data, bytes):
        return data
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            try:
                return bytes.fromhex(arg[2:])
            except ValueError:
                continue
    return None


_DEFAULT: RevertDecoder | None = None


def default_decoder() -> RevertDecoder:
    """The decoder for the committed FederationRegistry artifact."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RevertDecoder(load_artifact()["abi"])
    return _DEFAULT


def error_class(name: str) -> type[ContractRevert]:
    """The exception class for custom error `name` (KeyError if the contract has none such)."""
    return default_decoder().classes[name]
