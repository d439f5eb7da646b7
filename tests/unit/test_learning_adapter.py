"""Adapter files: byte-deterministic, loadable by PEFT itself, and checked before use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bcfl.learning.adapter import (
    ADAPTER_CONFIG,
    ADAPTER_MODEL,
    AdapterError,
    AdapterState,
    LoraSpec,
    applied,
    expected_shapes,
    from_files,
    init_adapter,
    merged,
    shifted,
    to_files,
)
from bcfl.learning.aggregate import deltas
from bcfl.learning.model import BaseModel, load_base

SPEC = LoraSpec(rank=4, alpha=8)


@pytest.fixture(scope="module")
def tiny() -> BaseModel:
    return load_base("tiny")


def _trained_like(tiny: BaseModel, seed: int = 1) -> AdapterState:
    gen = torch.Generator().manual_seed(seed)
    start = init_adapter(tiny, SPEC, seed=0)
    return start.replace(
        {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in start.tensors.items()}
    )


def test_init_adapter_is_seeded_and_changes_nothing(tiny: BaseModel) -> None:
    a, b, c = init_adapter(tiny, SPEC, 0), init_adapter(tiny, SPEC, 0), init_adapter(tiny, SPEC, 1)
    assert to_files(a) == to_files(b) != to_files(c)
    assert list(a.tensors) == list(expected_shapes(tiny, SPEC))
    assert len(a.modules()) == 2 * 4  # 2 layers x q/k/v/o
    ids = torch.tensor([[3, 4, 5, 6]])
    plain = tiny.model(ids).logits
    with applied(tiny, a) as peft_model:
        assert torch.equal(peft_model(input_ids=ids).logits, plain)  # B = 0


def test_svd_start_takes_the_layers_top_singular_directions(tiny: BaseModel) -> None:
    state = init_adapter(tiny, SPEC, 0, a_init="svd")
    assert list(state.tensors) == list(expected_shapes(tiny, SPEC))
    linear = dict(tiny.model.named_modules())
    for key, a in state.tensors.items():
        if ".lora_B." in key:
            assert not a.any()  # the start changes nothing
            continue
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        w = linear[module].weight.detach().double()
        rows = a.double() * 3**0.5
        assert torch.allclose(rows @ rows.T, torch.eye(SPEC.rank, dtype=torch.float64), atol=1e-5)
        # ||W v|| for each row v is the layer's largest singular values, in order.
        gains = torch.linalg.norm(w @ rows.T, dim=0)
        top = torch.linalg.svdvals(w)[: SPEC.rank]
        assert torch.allclose(gains, top, rtol=1e-4)
    with pytest.raises(ValueError, match="a_init must be one of random, svd"):
        init_adapter(tiny, SPEC, 0, a_init="pissa")


def test_files_are_byte_deterministic_and_round_trip(tiny: BaseModel) -> None:
    state = _trained_like(tiny)
    files = to_files(state)
    assert set(files) == {ADAPTER_CONFIG, ADAPTER_MODEL}
    shuffled = AdapterState(state.spec, dict(reversed(list(state.tensors.items()))))
    assert to_files(shuffled) == files
    back = from_files(files, tiny)
    assert back.spec == state.spec
    assert all(torch.equal(back.tensors[k], v) for k, v in state.tensors.items())


def test_peft_loads_the_files_and_agrees_with_applied(tiny: BaseModel, tmp_path: Path) -> None:
    from peft import PeftModel

    state = _trained_like(tiny)
    for name, blob in to_files(state).items():
        (tmp_path / name).write_bytes(blob)
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    with applied(tiny, state) as ours:
        expected = ours(input_ids=ids).logits
    fresh = load_base("tiny")
    theirs = PeftModel.from_pretrained(fresh.model, str(tmp_path))
    assert torch.allclose(theirs(input_ids=ids).logits, expected, atol=1e-6)
    assert not torch.allclose(expected, tiny.model(ids).logits)


def test_applied_leaves_the_base_model_untouched(tiny: BaseModel) -> None:
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    with applied(tiny, _trained_like(tiny)):
        pass
    after = tiny.model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not any("lora" in name for name, _ in tiny.model.named_modules())


def test_shifted_adds_dense_changes_and_puts_the_weights_back(tiny: BaseModel) -> None:
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    state = _trained_like(tiny)
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad(), applied(tiny, state) as model:
        with_adapter = model(input_ids=ids).logits
    with torch.no_grad(), shifted(tiny, deltas(state)):
        merged = tiny.model(input_ids=ids).logits
    assert torch.allclose(merged, with_adapter, atol=1e-4)  # the adapter folded into the weights
    assert not torch.allclose(merged, tiny.model(input_ids=ids).logits, atol=1e-4)
    bad = dict(deltas(state))
    bad[sorted(bad)[-1]] = torch.zeros(3, 3)
    with pytest.raises(AdapterError, match="has shape"), shifted(tiny, bad):
        pass
    after = tiny.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_merged_folds_the_factors_in_and_swaps_the_weights_back(tiny: BaseModel) -> None:
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    state = _trained_like(tiny)
    ids = torch.tensor([[2, 4, 6, 8, 10]])
    with torch.no_grad(), applied(tiny, state) as model:
        with_adapter = model(input_ids=ids).logits
    with torch.no_grad(), merged(tiny, state) as model:
        folded = model(input_ids=ids).logits
        assert not any("lora" in name for name, _ in model.named_modules())
    assert torch.allclose(folded, with_adapter, atol=1e-5)
    assert not torch.allclose(folded, tiny.model(input_ids=ids).logits, atol=1e-4)
    last_b = [k for k in state.tensors if ".lora_B." in k][-1]  # fails after the others are swapped
    wrong = state.replace({**state.tensors, last_b: torch.zeros(3, SPEC.rank)})
    with pytest.raises(AdapterError, match="do not fit the layer"), merged(tiny, wrong):
        pass
    after = tiny.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)  # bit for bit, error or not


def _tampered(tiny: BaseModel, key_index: int, tensor: torch.Tensor | None) -> dict[str, bytes]:
    from safetensors.torch import save

    state = _trained_like(tiny)
    tensors = dict(state.tensors)
    key = list(tensors)[key_index]
    if tensor is None:
        del tensors[key]
    else:
        tensors[key] = tensor
    return {ADAPTER_CONFIG: to_files(state)[ADAPTER_CONFIG], ADAPTER_MODEL: save(tensors)}


def test_bad_tensors_are_rejected_with_the_tensor_named(tiny: BaseModel) -> None:
    state = _trained_like(tiny)
    first = next(iter(state.tensors))
    shape = state.tensors[first].shape
    nan = state.tensors[first].clone()
    nan[0, 0] = float("nan")
    inf = state.tensors[first].clone()
    inf[0, 0] = float("inf")
    cases = {
        "holds NaN or Inf": _tampered(tiny, 0, nan),
        "holds NaN or Inf ": _tampered(tiny, 0, inf),
        "has shape": _tampered(tiny, 0, torch.zeros((shape[0] + 1, shape[1]))),
        "has dtype torch.float16": _tampered(tiny, 0, state.tensors[first].half()),
        "is missing": _tampered(tiny, 0, None),
    }
    for message, files in cases.items():
        with pytest.raises(AdapterError, match=message.strip()) as info:
            from_files(files, tiny)
        assert first in str(info.value)


def test_unknown_tensor_and_wrong_targets_are_rejected(tiny: BaseModel) -> None:
    from safetensors.torch import save

    state = _trained_like(tiny)
    extra = {**state.tensors, "base_model.model.lm_head.lora_A.weight": torch.zeros((4, 64))}
    files = {ADAPTER_CONFIG: to_files(state)[ADAPTER_CONFIG], ADAPTER_MODEL: save(extra)}
    with pytest.raises(AdapterError, match=r"lm_head\.lora_A\.weight is not a LoRA factor"):
        from_files(files, tiny)
    narrow = json.loads(to_files(state)[ADAPTER_CONFIG])
    narrow["target_modules"] = ["q_proj"]
    files = {ADAPTER_CONFIG: json.dumps(narrow).encode(), ADAPTER_MODEL: to_files(state)[ADAPTER_MODEL]}
    with pytest.raises(AdapterError, match="is not a LoRA factor"):
        from_files(files, tiny)
    narrow["target_modules"] = ["c_attn"]
    files = {ADAPTER_CONFIG: json.dumps(narrow).encode(), ADAPTER_MODEL: to_files(state)[ADAPTER_MODEL]}
    with pytest.raises(AdapterError, match="c_attn match no linear layer"):
        from_files(files, tiny)


def test_malformed_files_are_rejected(tiny: BaseModel) -> None:
    good = to_files(_trained_like(tiny))
    with pytest.raises(AdapterError, match="not valid safetensors"):
        from_files({**good, ADAPTER_MODEL: b"\x00" * 20}, tiny)
    with pytest.raises(AdapterError, match="not valid JSON"):
        from_files({**good, ADAPTER_CONFIG: b"{"}, tiny)
    with pytest.raises(AdapterError, match="peft_type is 'IA3'"):
        from_files({**good, ADAPTER_CONFIG: json.dumps({"peft_type": "IA3"}).encode()}, tiny)
    with pytest.raises(AdapterError, match=r"missing adapter_model\.safetensors"):
        from_files({ADAPTER_CONFIG: good[ADAPTER_CONFIG]}, tiny)
    with pytest.raises(AdapterError, match=r"unexpected files: model\.bin"):
        from_files({**good, "model.bin": b""}, tiny)
    with pytest.raises(AdapterError, match="differ from the federation"):
        from_files(good, tiny, expect=LoraSpec(rank=8))
