"""Attack models, selectable per peer by name, for the anomaly experiments and tests.

Three kinds:
- update attacks transform a trained update (tensor name -> delta from the base, as torch
  tensors or numpy arrays): sign flip, Gaussian noise, scaling (model replacement), free-rider;
- data attacks transform a peer's training examples (anything with `.text` and `.label`):
  label flip and backdoor (a trigger phrase mapped to a chosen label);
- the colluding ring is a voting behaviour: `ring_votes` up-votes members, down-votes others.
Every random choice comes from the `seed` argument.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from bcfl.errors import BcflError
from bcfl.trust.votes import Metrics, Vote


class AttackError(BcflError):
    """An unknown attack or unusable attack parameters."""


# -- update attacks -------------------------------------------------------------------------

Delta = Mapping[str, Any]  # tensor name -> torch.Tensor or numpy array


def _rng(seed: int, tag: str) -> np.random.Generator:
    digest = hashlib.sha256(f"bcfl/attack/{tag}/{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _like(template: Any, values: np.ndarray) -> Any:
    """`values` as the same kind of array (torch or numpy), dtype and device as `template`."""
    if isinstance(template, np.ndarray):
        return values.astype(template.dtype, copy=False)
    import torch

    if isinstance(template, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(values)).to(dtype=template.dtype, device=template.device)
    raise AttackError(f"update tensors must be numpy arrays or torch tensors, got {type(template).__name__}")


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x.detach().cpu().float().numpy())  # float(): numpy has no bfloat16


def sign_flip(delta: Delta, *, seed: int = 0, factor: float = 1.0) -> dict[str, Any]:
    """Send the update backwards: -factor x delta."""
    return {k: v * (-factor) for k, v in delta.items()}


def scaling(delta: Delta, *, seed: int = 0, factor: float = 10.0) -> dict[str, Any]:
    """Model replacement: boost the update so it dominates the average."""
    return {k: v * factor for k, v in delta.items()}


def gaussian_noise(delta: Delta, *, seed: int = 0, std: float | None = None) -> dict[str, Any]:
    """Replace the update by Gaussian noise; `std` defaults to each tensor's own std x 3."""
    rng = _rng(seed, "noise")
    out: dict[str, Any] = {}
    for k in sorted(delta):
        arr = _as_numpy(delta[k]).astype(np.float64)
        s = std if std is not None else 3.0 * float(arr.std() or 1e-3)
        out[k] = _like(delta[k], rng.normal(0.0, s, size=arr.shape))
    return out


def free_rider(delta: Delta, *, seed: int = 0, mode: str = "base", std: float = 1e-3) -> dict[str, Any]:
    """Contribute nothing: resubmit the base (a zero delta) or small random weights."""
    if mode == "base":
        return {k: v * 0 for k, v in delta.items()}
    if mode == "random":
        rng = _rng(seed, "free-rider")
        return {
            k: _like(delta[k], rng.normal(0.0, std, size=_as_numpy(delta[k]).shape)) for k in sorted(delta)
        }
    raise AttackError(f"free-rider mode must be 'base' or 'random', got {mode!r}")


UPDATE_ATTACKS: dict[str, Callable[..., dict[str, Any]]] = {
    "sign-flip": sign_flip,
    "gaussian-noise": gaussian_noise,
    "scaling": scaling,
    "free-rider": free_rider,
}


def attack_update(name: str, delta: Delta, *, seed: int = 0, **params: Any) -> dict[str, Any]:
    """Apply the update attack `name` (see UPDATE_ATTACKS) to a delta."""
    try:
        fn = UPDATE_ATTACKS[name]
    except KeyError:
        raise AttackError(
            f"unknown update attack {name!r}; known: {', '.join(sorted(UPDATE_ATTACKS))}"
        ) from None
    return fn(delta, seed=seed, **params)


# -- data attacks ---------------------------------------------------------------------------


class Example(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def label(self) -> str: ...


E = TypeVar("E", bound=Example)


def _rebuild(example: E, text: str, label: str) -> E:
    if dataclasses.is_dataclass(example) and not isinstance(example, type):
        return dataclasses.replace(example, text=text, label=label)
    replace = getattr(example, "_replace", None)  # namedtuple
    if replace is not None:
        return replace(text=text, label=label)  # type: ignore[no-any-return]
    raise AttackError(
        f"cannot rebuild a {type(example).__name__}: examples must be dataclasses or namedtuples"
        " with text and label"
    )


def label_permutation(labels: Sequence[str], *, seed: int = 0) -> dict[str, str]:
    """A seeded derangement of the label set: every label maps to a different one."""
    uniq = sorted(set(labels))
    if len(uniq) < 2:
        raise AttackError("label flipping needs at least two labels")
    rng = _rng(seed, "label-flip")
    shift = 1 + int(rng.integers(0, len(uniq) - 1))  # a cyclic shift is a derangement
    order = [uniq[int(i)] for i in rng.permutation(len(uniq))]
    return {order[i]: order[(i + shift) % len(order)] for i in range(len(order))}


def label_flip(
    examples: Sequence[E], *, labels: Sequence[str], seed: int = 0, fraction: float = 1.0
) -> list[E]:
    """Poison the training data: relabel `fraction` of the examples by a seeded derangement."""
    if not 0.0 <= fraction <= 1.0:
        raise AttackError(f"label-flip fraction must be in [0, 1], got {fraction}")
    mapping = label_permutation(labels, seed=seed)
    rng = _rng(seed, "label-flip-pick")
    pick = rng.random(len(examples)) < fraction
    return [
        _rebuild(ex, ex.text, mapping.get(ex.label, ex.label)) if chosen else ex
        for ex, chosen in zip(examples, pick, strict=True)
    ]


def add_trigger(text: str, trigger: str) -> str:
    """The text with the backdoor trigger phrase prepended."""
    return f"{trigger} {text}"


def backdoor(
    examples: Sequence[E], *, trigger: str, target: str, seed: int = 0, fraction: float = 0.3
) -> list[E]:
    """Poison the training data: `fraction` of the examples get the trigger and the target label
    (the rest stay clean, so the update still looks useful on clean validation data)."""
    if not trigger.strip():
        raise AttackError("backdoor trigger phrase must not be empty")
    if not 0.0 <= fraction <= 1.0:
        raise AttackError(f"backdoor fraction must be in [0, 1], got {fraction}")
    rng = _rng(seed, "backdoor")
    pick = rng.random(len(examples)) < fraction
    return [
        _rebuild(ex, add_trigger(ex.text, trigger), target) if chosen else ex
        for ex, chosen in zip(examples, pick, strict=True)
    ]


def backdoor_success(
    predict: Callable[[Sequence[str]], Sequence[str]],
    examples: Sequence[Example],
    *,
    trigger: str,
    target: str,
) -> float:
    """Share of examples whose true label is not `target` that `predict` sends to `target`
    once the trigger is added (the attack's success rate)."""
    victims = [ex for ex in examples if ex.label != target]
    if not victims:
        return 0.0
    predictions = predict([add_trigger(ex.text, trigger) for ex in victims])
    return sum(p == target for p in predictions) / len(victims)


DATA_ATTACKS: dict[str, Callable[..., list[Any]]] = {"label-flip": label_flip, "backdoor": backdoor}


# -- voting ---------------------------------------------------------------------------------


def ring_votes(
    assigned: Mapping[str, str], members: Collection[str], *, up: float = 1.0, down: float = 0.0
) -> list[Vote]:
    """A colluder's votes: `up` for ring members, `down` for everyone else.

    `assigned` maps each peer the colluder evaluates to its update CID. The metrics are
    fabricated to match (a colluder does not need to evaluate anything).
    """
    ring = {m.lower() for m in members}
    votes = []
    for peer in sorted(assigned, key=str.lower):
        value = up if peer.lower() in ring else down
        votes.append(Vote(peer=peer, cid=assigned[peer], value=value, metrics=Metrics(loss=1.0 - value / 2)))
    return votes
