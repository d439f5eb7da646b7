"""Deterministic aggregation: FedIT (inexact) and the exact frozen-A scheme; staleness weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bcfl.learning.adapter import AdapterState, LoraSpec, key_a, key_b
from bcfl.learning.aggregate import (
    AggregationError,
    WeightedUpdate,
    aggregate,
    change_norm,
    deltas,
    fedit_residual,
    fold,
    incompatibility,
    normalised_weights,
    rebase,
    server_step,
    staleness_weight,
)
from bcfl.learning.train import alternating_scheme

SPEC = LoraSpec(rank=4, alpha=8, target_modules=("q_proj", "v_proj"))
MODULES = ("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj")


def _state(seed: int, shared_a: bool) -> AdapterState:
    gen = torch.Generator().manual_seed(seed)
    a_gen = torch.Generator().manual_seed(999) if shared_a else gen
    tensors = {}
    for module in MODULES:
        tensors[key_a(module)] = torch.randn((4, 16), generator=a_gen)
        tensors[key_b(module)] = torch.randn((12, 4), generator=gen)
    return AdapterState(SPEC, tensors)


def _updates(shared_a: bool, n: int = 5) -> list[WeightedUpdate]:
    return [WeightedUpdate(f"cid-{i}", _state(i, shared_a), weight=float(10 + 7 * i)) for i in range(n)]


@pytest.mark.parametrize("scheme", ["fedit", "ffa"])
def test_any_arrival_order_gives_a_bit_identical_aggregate(scheme: str) -> None:
    updates = _updates(shared_a=True)
    reference = aggregate(updates, scheme)  # type: ignore[arg-type]
    for order in itertools.permutations(updates):
        result = aggregate(list(order), scheme)  # type: ignore[arg-type]
        for name, tensor in reference.tensors.items():
            assert result.tensors[name].numpy().tobytes() == tensor.numpy().tobytes()


def test_fedit_is_the_weighted_mean_of_each_factor() -> None:
    updates = _updates(shared_a=False)
    result = aggregate(updates, "fedit")
    total = sum(u.weight for u in updates)
    for name in result.tensors:
        expected = sum(u.state.tensors[name].double() * (u.weight / total) for u in updates)
        assert torch.allclose(result.tensors[name].double(), expected, atol=1e-6)


def test_ffa_is_exact_on_the_weight_deltas_and_fedit_is_not() -> None:
    weights = [u.weight / sum(v.weight for v in _updates(True)) for u in _updates(True)]
    shared = _updates(shared_a=True)
    exact = deltas(aggregate(shared, "ffa"))
    for module, delta in exact.items():
        mean = sum(deltas(u.state)[module] * w for u, w in zip(shared, weights, strict=True))
        assert torch.allclose(delta, mean, atol=1e-5)
    independent = _updates(shared_a=False)
    inexact = deltas(aggregate(independent, "fedit"))
    for module, delta in inexact.items():
        mean = sum(deltas(u.state)[module] * w for u, w in zip(independent, weights, strict=True))
        assert float((delta - mean).abs().max()) > 0.1


def test_ffa_rejects_updates_with_different_a() -> None:
    with pytest.raises(AggregationError, match=r"update cid-1: .*lora_A.* differs from the shared frozen"):
        aggregate(_updates(shared_a=False), "ffa")


def test_single_update_is_returned_unchanged() -> None:
    only = _updates(shared_a=True, n=1)
    result = aggregate(only, "fedit")
    for name, tensor in only[0].state.tensors.items():
        assert torch.equal(result.tensors[name], tensor)


def test_bad_inputs_are_clear_errors() -> None:
    updates = _updates(shared_a=True, n=3)
    with pytest.raises(AggregationError, match="no updates"):
        aggregate([], "ffa")
    with pytest.raises(AggregationError, match="cid-0 appears twice"):
        aggregate([updates[0], updates[0]], "ffa")
    zero = [WeightedUpdate(u.key, u.state, 0.0) for u in updates]
    with pytest.raises(AggregationError, match="sum to zero"):
        aggregate(zero, "ffa")
    other = AdapterState(
        LoraSpec(rank=4, alpha=4, target_modules=("q_proj", "v_proj")), updates[1].state.tensors
    )
    with pytest.raises(AggregationError, match="cid-x: LoRA settings"):
        aggregate([updates[0], WeightedUpdate("cid-x", other, 1.0)], "ffa")
    fewer = AdapterState(SPEC, dict(list(updates[1].state.tensors.items())[:2]))
    with pytest.raises(AggregationError, match="cid-y: its tensors"):
        aggregate([updates[0], WeightedUpdate("cid-y", fewer, 1.0)], "ffa")
    with pytest.raises(AggregationError, match="unknown aggregation scheme"):
        aggregate(updates, "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight must be finite"):
        WeightedUpdate("k", updates[0].state, math.nan)


def test_normalised_weights_sum_to_one_in_any_order() -> None:
    updates = _updates(shared_a=True)
    weights = normalised_weights(updates)
    assert math.isclose(sum(weights), 1.0)
    assert normalised_weights(updates[::-1]) == weights[::-1]


def test_staleness_weight() -> None:
    assert staleness_weight(100, 0) == 100.0
    assert staleness_weight(100, 3) == pytest.approx(50.0)  # (1 + 3) ** -0.5
    assert staleness_weight(100, 3, exponent=1.0) == pytest.approx(25.0)
    assert staleness_weight(100, 5, max_staleness=4) == 0.0
    values = [staleness_weight(10, s) for s in range(6)]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="must be >= 0"):
        staleness_weight(10, -1)


def test_incompatibility_names_a_changed_frozen_factor_and_other_mismatches() -> None:
    base = _state(0, shared_a=True)
    assert incompatibility(base, _state(3, shared_a=True)) is None
    forged = _state(3, shared_a=False)
    assert "frozen factor" in (incompatibility(base, forged) or "")
    assert incompatibility(base, forged, "fedit") is None  # FedIT trains A: any A is fine
    wide = base.replace({k: torch.zeros(v.shape[0], v.shape[1] + 1) for k, v in base.tensors.items()})
    assert "(4, 17)" in (incompatibility(base, wide) or "")
    other_spec = AdapterState(LoraSpec(rank=4, alpha=4, target_modules=SPEC.target_modules), base.tensors)
    assert "LoRA settings" in (incompatibility(base, other_spec) or "")


def test_rebase_applies_a_late_updates_change_to_the_current_base() -> None:
    start, update, base = _state(0, shared_a=True), _state(1, shared_a=True), _state(2, shared_a=True)
    rebased = rebase(update, start, base)
    for name, tensor in rebased.tensors.items():
        expected = base.tensors[name].double() + update.tensors[name].double() - start.tensors[name].double()
        assert torch.equal(tensor, expected.float())
    # Onto its own start it is the update itself, bit for bit.
    same = rebase(update, start, start)
    assert all(torch.equal(same.tensors[k], update.tensors[k]) for k in update.tensors)
    other = AdapterState(LoraSpec(rank=4, alpha=4, target_modules=SPEC.target_modules), base.tensors)
    with pytest.raises(AggregationError, match="cannot rebase an update onto the base"):
        rebase(update, start, other)


def test_server_step_scales_the_averaged_change_and_keeps_ffa_exact() -> None:
    updates = _updates(shared_a=True)
    base = _state(9, shared_a=True)
    mean = aggregate(updates, "ffa")
    assert all(torch.equal(server_step(base, mean, 1.0).tensors[k], mean.tensors[k]) for k in mean.tensors)
    stepped = server_step(base, mean, 3.0)
    for name, tensor in stepped.tensors.items():
        start = base.tensors[name].double()
        assert torch.equal(tensor, (start + (mean.tensors[name].double() - start) * 3.0).float())
    # A is shared by base and mean, so it stays frozen; the weight delta moves 3x as far.
    for module, delta in deltas(stepped).items():
        step = deltas(mean)[module] - deltas(base)[module]
        assert torch.allclose(delta, deltas(base)[module] + 3.0 * step, atol=1e-5)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="server learning rate"):
            server_step(base, mean, bad)
    other = AdapterState(LoraSpec(rank=4, alpha=4, target_modules=SPEC.target_modules), base.tensors)
    with pytest.raises(AggregationError, match="cannot step from the base"):
        server_step(other, mean, 2.0)


@pytest.mark.parametrize("lr", [1.0, 3.0])
def test_fedit_residual_makes_the_factor_average_exact(lr: float) -> None:
    updates = _updates(shared_a=False)
    start = _state(9, shared_a=False)
    stepped = server_step(start, aggregate(updates, "fedit"), lr)
    residual = fedit_residual(start, updates, stepped, lr)
    total = sum(u.weight for u in updates)
    for module, after in deltas(stepped).items():
        mean = sum(deltas(u.state)[module] * (u.weight / total) for u in updates)
        wanted = deltas(start)[module] + lr * (mean - deltas(start)[module])
        assert float((after - wanted).abs().max()) > 0.1  # the factors alone miss it
        assert torch.allclose(after + residual[module].double(), wanted, atol=1e-5)
    for order in itertools.permutations(updates[:4]):
        again = fedit_residual(
            start, list(order), server_step(start, aggregate(list(order), "fedit"), lr), lr
        )
        partial = fedit_residual(
            start, updates[:4], server_step(start, aggregate(updates[:4], "fedit"), lr), lr
        )
        assert all(torch.equal(again[m], partial[m]) for m in partial)
    other = AdapterState(LoraSpec(rank=4, alpha=4, target_modules=SPEC.target_modules), start.tensors)
    with pytest.raises(AggregationError, match="cannot take the residual against the start"):
        fedit_residual(other, updates, stepped, lr)


def test_ffa_a_averages_a_under_a_shared_b_exactly() -> None:
    shared_b = _state(999, shared_a=True)
    updates = []
    for i in range(4):
        own = _state(i, shared_a=False)
        tensors = {k: (shared_b.tensors[k] if ".lora_B." in k else own.tensors[k]) for k in own.tensors}
        updates.append(WeightedUpdate(f"cid-{i}", AdapterState(SPEC, tensors), float(3 + i)))
    weights = normalised_weights(updates)
    exact = deltas(aggregate(updates, "ffa-a"))
    for module, delta in exact.items():
        mean = sum(deltas(u.state)[module] * w for u, w in zip(updates, weights, strict=True))
        assert torch.allclose(delta, mean, atol=1e-5)
    # Under "ffa-a" a changed B is the forgery, and a changed A is the update itself.
    base = updates[0].state
    assert incompatibility(base, updates[1].state, "ffa-a") is None
    assert "frozen factor" in (incompatibility(base, _state(5, shared_a=True), "ffa-a") or "")
    with pytest.raises(AggregationError, match=r"lora_B.* differs from the shared frozen factor"):
        aggregate(_updates(shared_a=True), "ffa-a")


def test_alternating_rounds_train_b_first() -> None:
    assert [alternating_scheme(r) for r in (1, 2, 3, 4)] == ["ffa", "ffa-a", "ffa", "ffa-a"]
    with pytest.raises(ValueError, match="round index must be >= 1"):
        alternating_scheme(0)


def test_change_norm_is_the_l2_norm_of_everything_an_update_changes() -> None:
    base, update = _state(0, shared_a=True), _state(1, shared_a=True)
    expected = math.sqrt(
        sum(float(((update.tensors[k].double() - t.double()) ** 2).sum()) for k, t in base.tensors.items())
    )
    assert change_norm(base, update) == pytest.approx(expected, rel=1e-12)
    assert change_norm(base, base) == 0.0
    doubled = base.replace(
        {k: base.tensors[k] + 2 * (update.tensors[k] - base.tensors[k]) for k in base.tensors}
    )
    assert change_norm(base, doubled) == pytest.approx(2 * change_norm(base, update), rel=1e-6)
    with pytest.raises(AggregationError, match="cannot measure the change"):
        change_norm(base, AdapterState(SPEC, {k: v for k, v in base.tensors.items() if "v_proj" not in k}))


def test_fold_adds_each_rounds_exact_delta_to_the_dense_change() -> None:
    first, second = _state(1, shared_a=False), _state(2, shared_a=False)
    folded = fold(fold({}, deltas(first)), deltas(second))
    assert set(folded) == set(MODULES)
    for module in MODULES:
        wanted = deltas(first)[module] + deltas(second)[module]
        assert folded[module].dtype == torch.float64
        assert torch.equal(folded[module], wanted)
        # two rounds against different A factors span twice the rank one adapter can
        assert torch.linalg.matrix_rank(folded[module]).item() == 2 * SPEC.rank
    with pytest.raises(AggregationError, match=f"cannot fold {MODULES[0]}"):
        fold({MODULES[0]: torch.zeros(3, 3)}, deltas(first))
