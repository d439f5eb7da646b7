"""Update compression: int8 and top-k of the delta, with bytes on the wire."""

from __future__ import annotations

import pytest
import torch

from bcfl.learning.adapter import AdapterState, LoraSpec, key_a, key_b
from bcfl.learning.compress import (
    CompressionConfig,
    CompressionError,
    apply_delta,
    decode,
    delta_of,
    encode,
    report,
)

SPEC = LoraSpec(rank=8, alpha=16, target_modules=("q_proj",))
MODULES = [f"model.layers.{i}.self_attn.q_proj" for i in range(3)]


def _pair() -> tuple[AdapterState, AdapterState]:
    gen = torch.Generator().manual_seed(0)
    start: dict[str, torch.Tensor] = {}
    update: dict[str, torch.Tensor] = {}
    for module in MODULES:
        a = torch.randn((8, 512), generator=gen)
        start[key_a(module)] = a
        update[key_a(module)] = a.clone()  # frozen A: zero delta, not sent
        start[key_b(module)] = torch.zeros((512, 8))
        update[key_b(module)] = torch.randn((512, 8), generator=gen) * 0.01
    return AdapterState(SPEC, update), AdapterState(SPEC, start)


def test_none_is_lossless_and_skips_zero_deltas() -> None:
    update, start = _pair()
    rep, rebuilt = report(update, start, CompressionConfig("none"))
    assert rep.max_abs_error == 0.0
    assert set(decode(encode(delta_of(update, start), CompressionConfig("none")))) == {
        key_b(m) for m in MODULES
    }
    assert rep.ratio > 1.9  # A is not sent
    for name, tensor in update.tensors.items():
        assert torch.equal(rebuilt.tensors[name], tensor)


def test_int8_is_four_times_smaller_than_fp32_with_bounded_error() -> None:
    update, start = _pair()
    plain, _ = report(update, start, CompressionConfig("none"))
    rep, _ = report(update, start, CompressionConfig("int8"))
    assert plain.wire_bytes / rep.wire_bytes > 3.5
    assert rep.ratio > 4.0  # against the whole fp32 adapter
    delta = delta_of(update, start)
    half_step = max(float(d.abs().max()) for d in delta.values()) / 127 / 2
    assert 0 < rep.max_abs_error <= half_step * 1.0001


def test_topk_keeps_exactly_the_largest_entries() -> None:
    update, start = _pair()
    config = CompressionConfig("topk", topk_fraction=0.25)
    delta = delta_of(update, start)
    decoded = decode(encode(delta, config))
    for name, rebuilt in decoded.items():
        original = delta[name]
        kept = rebuilt != 0
        assert int(kept.sum()) == original.numel() // 4
        assert torch.equal(rebuilt[kept], original[kept])
        assert float(original[~kept].abs().max()) <= float(original[kept].abs().min())


def test_encoding_is_byte_deterministic() -> None:
    update, start = _pair()
    for method in ("none", "int8", "topk"):
        config = CompressionConfig(method)  # type: ignore[arg-type]
        assert encode(delta_of(update, start), config) == encode(delta_of(update, start), config)


def test_garbage_and_tampered_bytes_are_clear_errors() -> None:
    with pytest.raises(CompressionError, match="not valid"):
        decode(b"not a safetensors file")
    from safetensors.torch import save

    tampered = save(
        {"k::i": torch.tensor([0, 999], dtype=torch.int32), "k::v": torch.ones(2)},
        metadata={"bcfl-compression": '{"method": "topk", "shapes": {"k": [4, 4]}}'},
    )
    with pytest.raises(CompressionError, match="out-of-range"):
        decode(tampered)
    missing = save(
        {"k::q": torch.zeros((4, 4), dtype=torch.int8)},
        metadata={"bcfl-compression": '{"method": "int8", "shapes": {"k": [4, 4]}}'},
    )
    with pytest.raises(CompressionError, match="part k::s is missing"):
        decode(missing)
    with pytest.raises(CompressionError, match="NaN"):
        encode({"k": torch.tensor([1.0, float("nan")])}, CompressionConfig("int8"))


def test_delta_that_does_not_fit_is_rejected() -> None:
    _, start = _pair()
    with pytest.raises(CompressionError, match="does not"):
        apply_delta(start, {"unknown": torch.zeros(2)})
    with pytest.raises(CompressionError, match="has shape"):
        apply_delta(start, {key_b(MODULES[0]): torch.zeros(2)})


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        CompressionConfig("zip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="topk_fraction"):
        CompressionConfig("topk", topk_fraction=0)
