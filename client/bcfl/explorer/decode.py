"""Decoding contract calls and events from raw JSON-RPC data with the contract's ABI alone.

Pure functions over the ABI: a call's 4-byte selector names the function, an event's first
topic names the event; the arguments are decoded with eth_abi and turned into JSON-friendly
values (bytes as 0x-hex, addresses checksummed, structs as objects with their field names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter (structs as tuples)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(abi_type(i) for i in entry['inputs'])})"


def plain(value: Any, param: Mapping[str, Any]) -> Any:
    """An eth_abi value as JSON-friendly data, guided by its ABI parameter."""
    kind = str(param["type"])
    if kind.endswith("]"):
        inner = dict(param, type=kind[: kind.rindex("[")])
        return [plain(v, inner) for v in value]
    if kind == "tuple":
        return {c["name"]: plain(v, c) for c, v in zip(param["components"], value, strict=True)}
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


@dataclass(frozen=True)
class DecodedCall:
    function: str
    args: dict[str, Any]


@dataclass(frozen=True)
class DecodedEvent:
    event: str
    args: dict[str, Any]
    log_index: int


class AbiDecoder:
    """Selector and topic tables built once from an ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._functions: dict[bytes, Mapping[str, Any]] = {}
        self._events: dict[bytes, Mapping[str, Any]] = {}
        self.constructor: Mapping[str, Any] | None = None
        for entry in abi:
            if entry.get("type") == "function":
                self._functions[keccak(text=signature(entry))[:4]] = entry
            elif entry.get("type") == "event" and not entry.get("anonymous"):
                self._events[keccak(text=signature(entry))] = entry
            elif entry.get("type") == "constructor":
                self.constructor = entry

    def decode_call(self, data: str) -> DecodedCall | None:
        """The function and arguments of calldata (None when it matches no function)."""
        raw = _hex_bytes(data)
        entry = self._functions.get(raw[:4]) if len(raw) >= 4 else None
        if entry is None:
            return None
        try:
            values = abi_decode([abi_type(i) for i in entry["inputs"]], raw[4:])
        except Exception:  # malformed calldata: the call reverted, show it undecoded
            return DecodedCall(str(entry["name"]), {"_undecodable": "0x" + raw[4:].hex()})
        args = {i["name"]: plain(v, i) for i, v in zip(entry["inputs"], values, strict=True)}
        return DecodedCall(str(entry["name"]), args)

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """The event of a raw log (topics and data as hex strings); None when unknown."""
        topics = [_hex_bytes(t) for t in log.get("topics", [])]
        entry = self._events.get(topics[0]) if topics else None
        if entry is None:
            return None
        indexed = [i for i in entry["inputs"] if i.get("indexed")]
        rest = [i for i in entry["inputs"] if not i.get("indexed")]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=False):
            kind = abi_type(param)
            if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                args[param["name"]] = "0x" + topic.hex()  # only the hash is in the topic
            else:
                args[param["name"]] = plain(abi_decode([kind], topic)[0], param)
        values = abi_decode([abi_type(i) for i in rest], _hex_bytes(str(log.get("data", "0x"))))
        for param, value in zip(rest, values, strict=True):
            args[param["name"]] = plain(value, param)
        ordered = {i["name"]: args[i["name"]] for i in entry["inputs"] if i["name"] in args}
        return DecodedEvent(str(entry["name"]), ordered, int(str(log.get("logIndex", "0x0")), 16))
