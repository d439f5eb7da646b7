"""Compression of an update's delta (the trained adapter minus the adapter it started from).

Methods (pure functions; the wire format is a safetensors file, so decoding never unpickles):
- "none": fp32 tensors.
- "int8": symmetric int8 in blocks of 128 entries, one fp32 scale per block (3.9x smaller).
- "topk": the k largest-magnitude entries of each tensor (int32 index + fp32 value), ties
  broken by position so the choice is deterministic.
Tensors whose delta is all zero (e.g. the frozen A of scheme "ffa") are not sent at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from bcfl.errors import BcflError
from bcfl.learning.adapter import AdapterState

Method = Literal["none", "int8", "topk"]
METHODS: tuple[Method, ...] = ("none", "int8", "topk")
FORMAT_KEY = "bcfl-compression"
BLOCK = 128  # entries per int8 scale: LoRA B rows are only `rank` long, too short to scale alone


class CompressionError(BcflError):
    """Compressed bytes that cannot be decoded, or a delta that does not fit its adapter."""


@dataclass(frozen=True)
class CompressionConfig:
    method: Method = "int8"
    topk_fraction: float = 0.1  # share of each tensor's entries kept by "topk"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown compression {self.method!r} (choose from {', '.join(METHODS)})")
        if not 0 < self.topk_fraction <= 1:
            raise ValueError(f"topk_fraction must be in (0, 1], got {self.topk_fraction}")


@dataclass(frozen=True)
class WireReport:
    method: str
    raw_bytes: int  # the fp32 tensors of the whole adapter (what an uncompressed update sends)
    wire_bytes: int  # the encoded delta
    max_abs_error: float  # largest reconstruction error of any entry

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.wire_bytes if self.wire_bytes else math.inf


def delta_of(update: AdapterState, start: AdapterState) -> dict[str, torch.Tensor]:
    if list(update.tensors) != list(start.tensors):
        raise CompressionError("update and start adapter hold different tensors")
    return {k: update.tensors[k] - start.tensors[k] for k in update.tensors}


def apply_delta(start: AdapterState, delta: Mapping[str, torch.Tensor]) -> AdapterState:
    """start + delta; tensors absent from the delta are unchanged."""
    unknown = sorted(set(delta) - set(start.tensors))
    if unknown:
        raise CompressionError(f"delta holds tensor {unknown[0]} that the adapter does not")
    out = {}
    for key, tensor in start.tensors.items():
        if key in delta:
            if delta[key].shape != tensor.shape:
                raise CompressionError(
                    f"delta of {key} has shape {tuple(delta[key].shape)}, expected {tuple(tensor.shape)}"
                )
            out[key] = tensor + delta[key].to(torch.float32)
        else:
            out[key] = tensor
    return start.replace(out)


def encode(delta: Mapping[str, torch.Tensor], config: CompressionConfig) -> bytes:
    from safetensors.torch import save

    parts: dict[str, torch.Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for key in sorted(delta):
        x = delta[key].detach().to(torch.float32).contiguous()
        if not bool(torch.isfinite(x).all()):
            raise CompressionError(f"delta of {key} holds NaN or Inf")
        if not bool(x.any()):
            continue
        shapes[key] = list(x.shape)
        if config.method == "none":
            parts[f"{key}::v"] = x
        elif config.method == "int8":
            q, scale = _int8_blocks(x.flatten())
            parts[f"{key}::q"] = q
            parts[f"{key}::s"] = scale
        else:
            flat = x.flatten()
            k = max(1, math.ceil(config.topk_fraction * flat.numel()))
            order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
            index = torch.sort(order).values
            parts[f"{key}::i"] = index.to(torch.int32)
            parts[f"{key}::v"] = flat[index]
    # One metadata entry: safetensors writes several in no fixed order, which would break
    # byte-determinism.
    meta = {FORMAT_KEY: json.dumps({"method": config.method, "shapes": shapes}, sort_keys=True)}
    return save(parts, metadata=meta)


def decode(blob: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        parts = load(blob)
        header = json.loads(_metadata(blob).get(FORMAT_KEY, "null"))
        if not isinstance(header, dict):
            raise ValueError(f"no {FORMAT_KEY} metadata")
        method, shapes = header.get("method"), header.get("shapes")
    except (SafetensorError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise CompressionError(f"compressed update is not valid ({exc})") from None
    if method not in METHODS or not isinstance(shapes, dict):
        raise CompressionError(f"compressed update has unknown method {method!r} or no shapes")
    out: dict[str, torch.Tensor] = {}
    expected: set[str] = set()
    for key, shape in shapes.items():
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
            raise CompressionError(f"compressed update: tensor {key} has an invalid shape {shape!r}")
        numel = math.prod(shape)
        try:
            if method == "none":
                expected |= {f"{key}::v"}
                value = parts[f"{key}::v"].reshape(shape)
            elif method == "int8":
                expected |= {f"{key}::q", f"{key}::s"}
                q, s = parts[f"{key}::q"], parts[f"{key}::s"]
                if q.dtype != torch.int8 or q.shape != (numel,) or s.shape != (-(-numel // BLOCK),):
                    raise CompressionError(f"compressed update: tensor {key} has malformed int8 parts")
                value = _int8_restore(q, s).reshape(shape)
            else:
                expected |= {f"{key}::i", f"{key}::v"}
                index, vals = parts[f"{key}::i"].to(torch.int64), parts[f"{key}::v"]
                if (
                    index.shape != vals.shape
                    or index.ndim != 1
                    or (index.numel() and (index.min() < 0 or index.max() >= numel))
                ):
                    raise CompressionError(f"compressed update: tensor {key} has out-of-range top-k indices")
                flat = torch.zeros(numel, dtype=torch.float32)
                flat[index] = vals.to(torch.float32)
                value = flat.reshape(shape)
        except KeyError as exc:
            raise CompressionError(f"compressed update: part {exc.args[0]} is missing") from None
        except RuntimeError as exc:
            raise CompressionError(
                f"compressed update: tensor {key} does not fit shape {shape} ({exc})"
            ) from None
        if value.dtype != torch.float32 or not bool(torch.isfinite(value).all()):
            raise CompressionError(f"compressed update: tensor {key} is not finite float32")
        out[key] = value
    extra = sorted(set(parts) - expected)
    if extra:
        raise CompressionError(f"compressed update holds unexpected part {extra[0]}")
    return out


def _int8_blocks(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, fp32 scale per block of BLOCK entries) of a flat fp32 tensor."""
    blocks = -(-flat.numel() // BLOCK)
    padded = torch.zeros(blocks * BLOCK, dtype=torch.float32)
    padded[: flat.numel()] = flat
    rows = padded.reshape(blocks, BLOCK)
    scale = rows.abs().amax(dim=1) / 127.0  # (blocks,)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / safe[:, None]).clamp(-127, 127).to(torch.int8)
    return q.flatten()[: flat.numel()].contiguous(), scale


def _int8_restore(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    per_entry = scale.repeat_interleave(BLOCK)[: q.numel()]
    return q.to(torch.float32) * per_entry


def _metadata(blob: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors blob, read from its JSON header."""
    if len(blob) < 8:
        raise ValueError("too short for a safetensors header")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError("header length exceeds the data")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    if not isinstance(meta, dict):
        raise ValueError("metadata is not an object")
    return {str(k): str(v) for k, v in meta.items()}


def report(
    update: AdapterState, start: AdapterState, config: CompressionConfig
) -> tuple[WireReport, AdapterState]:
    """Bytes on the wire for sending `update` relative to `start`, and what the receiver rebuilds."""
    delta = delta_of(update, start)
    blob = encode(delta, config)
    rebuilt = apply_delta(start, decode(blob))
    error = max(
        (float((rebuilt.tensors[k] - update.tensors[k]).abs().max()) for k in update.tensors), default=0.0
    )
    raw = sum(t.numel() * 4 for t in update.tensors.values())
    return WireReport(config.method, raw, len(blob), error), rebuilt
