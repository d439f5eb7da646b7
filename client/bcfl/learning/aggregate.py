"""Deterministic aggregation of LoRA updates (pure functions, no I/O).

Independent peers must reach bit-identical aggregates (hence the same CID) from the same
included updates, whatever order those arrived in. So updates are sorted by their key (e.g.
the update's CID), weights are normalised with exactly rounded sums (`math.fsum`), and each
tensor is accumulated in that fixed order, one update at a time, in float64 with a separate
multiply and add (each one correctly rounded IEEE operation, so no fused multiply-add or
vector width can change a bit across machines), then rounded once to float32.

Schemes:
- "fedit": weighted mean of A and of B separately (the common baseline; inexact, since
  mean(B) @ mean(A) != mean(B @ A)).
- "ffa": every update must carry the same A (frozen at the shared init); B is averaged, so
  mean(B) @ A == mean(B @ A): the aggregate is the exact mean of the updates' weight deltas.
- "ffa-a": the same with the roles swapped (B frozen and shared, A averaged), for rounds that
  alternate which factor they train.

`fedit_residual` makes FedIT exact: what FedIT's averaged factors miss of the mean of the
updates' weight deltas, as a dense correction to fold into the base weights. `fold` adds to such
a dense change, e.g. a round's exact aggregate, for rounds that restart from a new A (the
learning experiment's "redraw").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from bcfl.errors import BcflError
from bcfl.learning.adapter import AdapterState
from bcfl.learning.train import FROZEN_FACTOR, LORA_SCHEMES, LoraScheme


class AggregationError(BcflError):
    """Updates that cannot be aggregated together."""


@dataclass(frozen=True, eq=False)
class WeightedUpdate:
    key: str  # fixes the order of accumulation (e.g. the update's CID); must be unique
    state: AdapterState
    weight: float  # e.g. samples x staleness discount x trust

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"update {self.key}: weight must be finite and >= 0, got {self.weight}")


def staleness_weight(
    samples: int, staleness: int, *, exponent: float = 0.5, max_staleness: int | None = None
) -> float:
    """samples x (1 + staleness)^-exponent: an update trained from an older round counts less
    (the polynomial discount of asynchronous FedAsync); beyond `max_staleness` it counts 0."""
    if samples < 0 or staleness < 0:
        raise ValueError(f"samples ({samples}) and staleness ({staleness}) must be >= 0")
    if exponent < 0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    if max_staleness is not None and staleness > max_staleness:
        return 0.0
    return float(samples) * float((1.0 + staleness) ** -exponent)


def normalised_weights(updates: Sequence[WeightedUpdate]) -> list[float]:
    """Weights summing to 1, in the order given (exactly rounded total, so order-free)."""
    total = math.fsum(u.weight for u in updates)
    if not total > 0:
        raise AggregationError("the updates' weights sum to zero: nothing to aggregate")
    return [u.weight / total for u in updates]


def _ordered(updates: Sequence[WeightedUpdate]) -> list[WeightedUpdate]:
    if not updates:
        raise AggregationError("no updates to aggregate")
    ordered = sorted(updates, key=lambda u: u.key)
    for prev, nxt in itertools.pairwise(ordered):
        if prev.key == nxt.key:
            raise AggregationError(f"update {nxt.key} appears twice")
    first = ordered[0].state
    for u in ordered[1:]:
        if u.state.spec != first.spec:
            raise AggregationError(f"update {u.key}: LoRA settings {u.state.spec} differ from {first.spec}")
        if list(u.state.tensors) != list(first.tensors):
            raise AggregationError(f"update {u.key}: its tensors are not those of update {ordered[0].key}")
        for name, tensor in u.state.tensors.items():
            if tensor.shape != first.tensors[name].shape:
                raise AggregationError(f"update {u.key}: tensor {name} has shape {tuple(tensor.shape)}")
    return ordered


def weighted_mean(
    tensors: Sequence[torch.Tensor], weights: Sequence[float], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """sum_i w_i * t_i accumulated in the order given (float64), rounded once to `dtype`."""
    acc = torch.zeros_like(tensors[0], dtype=torch.float64)
    for tensor, weight in zip(tensors, weights, strict=True):
        term = tensor.to(torch.float64) * weight
        acc = acc + term
    return acc.to(dtype)


def aggregate(updates: Sequence[WeightedUpdate], scheme: LoraScheme = "ffa") -> AdapterState:
    """The weighted aggregate of `updates` under `scheme`, bit-identical for any input order."""
    if scheme not in LORA_SCHEMES:
        raise AggregationError(
            f"unknown aggregation scheme {scheme!r} (choose from {', '.join(LORA_SCHEMES)})"
        )
    ordered = _ordered(updates)
    weights = normalised_weights(ordered)
    first = ordered[0].state
    frozen = FROZEN_FACTOR[scheme]
    out: dict[str, torch.Tensor] = {}
    for name in first.tensors:
        column = [u.state.tensors[name] for u in ordered]
        if frozen is not None and frozen in name:
            for u, tensor in zip(ordered[1:], column[1:], strict=True):
                if not torch.equal(tensor, column[0]):
                    raise AggregationError(
                        f"update {u.key}: {name} differs from the shared frozen factor "
                        f"(scheme {scheme!r} needs it identical)"
                    )
            out[name] = column[0].clone()
        else:
            out[name] = weighted_mean(column, weights)
    return first.replace(out)


def server_step(base: AdapterState, mean: AdapterState, lr: float) -> AdapterState:
    """base + lr x (mean - base), per tensor in float64, rounded once to float32: the aggregate
    taken as one step of a server optimiser (server learning rate `lr`; 1 returns `mean` itself,
    bit for bit). Linear in the factors, so with A frozen it is still exact in the weight deltas."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"server learning rate must be finite and > 0, got {lr}")
    problem = incompatibility(base, mean, "fedit")
    if problem is not None:
        raise AggregationError(f"cannot step from the base to the aggregate: {problem}")
    if lr == 1.0:
        return mean
    out = {}
    for name, tensor in base.tensors.items():
        start = tensor.to(torch.float64)
        out[name] = (start + (mean.tensors[name].to(torch.float64) - start) * lr).to(torch.float32)
    return base.replace(out)


def incompatibility(base: AdapterState, update: AdapterState, scheme: LoraScheme = "ffa") -> str | None:
    """Why `update` cannot be aggregated onto `base` (None: it can). Under "ffa" the frozen A
    factors must be the base's, bit for bit: an update that changed them would break the exact
    average, or, alone in a round, replace A for every later round."""
    if update.spec != base.spec:
        return f"its LoRA settings {update.spec} differ from the base's {base.spec}"
    if update.tensors.keys() != base.tensors.keys():
        return "its tensor names differ from the base's"
    for name, tensor in base.tensors.items():
        other = update.tensors[name]
        if other.shape != tensor.shape or other.dtype != tensor.dtype:
            found, wanted = f"{other.dtype} {tuple(other.shape)}", f"{tensor.dtype} {tuple(tensor.shape)}"
            return f"tensor {name} is {found}, the base's is {wanted}"
        frozen = FROZEN_FACTOR[scheme]
        if frozen is not None and frozen in name and not torch.equal(other, tensor):
            return f"its frozen factor {name} differs from the base's"
    return None


def rebase(update: AdapterState, start: AdapterState, base: AdapterState) -> AdapterState:
    """An update trained from an older `start`, as its change applied to the current `base`:
    base + (update - start), per tensor in float64, rounded once to float32. A late update then
    adds what it learned instead of pulling the aggregate back to the base it started from."""
    for state, what in ((start, "its start"), (base, "the base")):
        problem = incompatibility(state, update, "fedit")
        if problem is not None:
            raise AggregationError(f"cannot rebase an update onto {what}: {problem}")
    out = {}
    for name, tensor in base.tensors.items():
        change = update.tensors[name].to(torch.float64) - start.tensors[name].to(torch.float64)
        out[name] = (tensor.to(torch.float64) + change).to(torch.float32)
    return base.replace(out)


def change_norm(base: AdapterState, update: AdapterState) -> float:
    """The L2 norm of everything `update` changes in `base`'s tensors (under "ffa" that is B's
    change alone), summed in float64 in name order so every peer gets the same figure."""
    problem = incompatibility(base, update, "fedit")
    if problem is not None:
        raise AggregationError(f"cannot measure the change of an update: {problem}")
    squares = [
        float(torch.sum((update.tensors[name].double() - tensor.double()) ** 2))
        for name, tensor in sorted(base.tensors.items())
    ]
    return math.sqrt(math.fsum(squares))


def deltas(state: AdapterState) -> dict[str, torch.Tensor]:
    """Each adapted module's weight delta, scaling x B @ A (float64, for checks and metrics)."""
    out: dict[str, torch.Tensor] = {}
    for module in state.modules():
        a = state.tensors[f"base_model.model.{module}.lora_A.weight"].double()
        b = state.tensors[f"base_model.model.{module}.lora_B.weight"].double()
        out[module] = state.spec.scaling * (b @ a)
    return out


def fedit_residual(
    start: AdapterState, updates: Sequence[WeightedUpdate], stepped: AdapterState, lr: float = 1.0
) -> dict[str, torch.Tensor]:
    """Per adapted module, the dense weight change R that makes FedIT exact: with `stepped` the
    factors FedIT keeps (the averaged factors after the server step of rate `lr` from `start`),
    W + R + delta(stepped) == W + delta(start) + lr x (sum_i w_i delta(update_i) - delta(start)),
    i.e. R = (1 - lr) delta(start) + lr x sum_i w_i delta(update_i) - delta(stepped), where
    delta = scaling x B @ A. Both factors train and the model is still the exact weighted mean
    of the peers' models. Accumulated in float64 in key order (order-free), rounded once."""
    ordered = _ordered(updates)
    weights = normalised_weights(ordered)
    for state, what in ((start, "the start"), (stepped, "the stepped aggregate")):
        problem = incompatibility(state, ordered[0].state, "fedit")
        if problem is not None:
            raise AggregationError(f"cannot take the residual against {what}: {problem}")
    before, after = deltas(start), deltas(stepped)
    each = [deltas(u.state) for u in ordered]
    out: dict[str, torch.Tensor] = {}
    for module, start_delta in before.items():
        mean = weighted_mean([d[module] for d in each], weights, torch.float64)
        out[module] = ((1.0 - lr) * start_delta + lr * mean - after[module]).to(torch.float32)
    return out


def fold(change: Mapping[str, torch.Tensor], more: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`change` plus `more`, per adapted module, in float64: the dense change the base weights
    carry once more is merged into them (a round's `deltas`, so that the next round can train
    B against a new A from zero, or a `fedit_residual`). A module `change` lacks starts from zero."""
    out = {module: tensor.to(torch.float64) for module, tensor in change.items()}
    for module, added in more.items():
        held = out.get(module)
        if held is not None and held.shape != added.shape:
            raise AggregationError(
                f"cannot fold {module}: the change held is {tuple(held.shape)}, the one added "
                f"{tuple(added.shape)}"
            )
        out[module] = added.to(torch.float64) if held is None else held + added
    return out
