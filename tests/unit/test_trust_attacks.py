"""Attack models: update transforms on numpy and torch, data poisoning, ring votes."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bcfl.trust.attacks import (
    UPDATE_ATTACKS,
    AttackError,
    attack_update,
    backdoor,
    backdoor_success,
    label_flip,
    label_permutation,
    ring_votes,
)


@dataclass(frozen=True)
class Ex:
    text: str
    label: str
    note: int = 0


LABELS = ["cardio", "neuro", "ortho", "derm"]


def _delta() -> dict[str, np.ndarray]:
    return {
        "a.lora_A": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a.lora_B": np.ones(4, dtype=np.float32),
    }


def test_sign_flip_and_scaling() -> None:
    d = _delta()
    flipped = attack_update("sign-flip", d)
    assert np.array_equal(flipped["a.lora_A"], -d["a.lora_A"])
    scaled = attack_update("scaling", d, factor=5.0)
    assert np.array_equal(scaled["a.lora_B"], d["a.lora_B"] * 5)


def test_noise_is_seeded_and_keeps_shapes_and_dtype() -> None:
    d = _delta()
    a, b, c = (attack_update("gaussian-noise", d, seed=s) for s in (1, 1, 2))
    for k in d:
        assert a[k].shape == d[k].shape and a[k].dtype == np.float32
        assert np.array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])
    assert float(
        np.std(attack_update("gaussian-noise", {"x": np.zeros(10_000, np.float32)}, std=2.0)["x"])
    ) == (pytest.approx(2.0, rel=0.05))


def test_free_rider_modes() -> None:
    d = _delta()
    assert all(not v.any() for v in attack_update("free-rider", d).values())
    r = attack_update("free-rider", d, mode="random", std=0.01, seed=4)
    assert all(v.shape == d[k].shape and v.any() for k, v in r.items())
    with pytest.raises(AttackError, match="mode"):
        attack_update("free-rider", d, mode="sleep")


def test_update_attacks_work_on_torch_tensors() -> None:
    d = {"w": torch.ones(3, 2, dtype=torch.bfloat16)}
    for name in UPDATE_ATTACKS:
        out = attack_update(name, d, seed=1)
        assert isinstance(out["w"], torch.Tensor)
        assert out["w"].shape == (3, 2) and out["w"].dtype == torch.bfloat16
    assert torch.equal(attack_update("sign-flip", d)["w"], -d["w"])


def test_unknown_attack() -> None:
    with pytest.raises(AttackError, match="unknown update attack 'melt'"):
        attack_update("melt", _delta())


def test_label_permutation_is_a_seeded_derangement() -> None:
    for seed in range(20):
        m = label_permutation(LABELS, seed=seed)
        assert sorted(m) == sorted(LABELS) and sorted(m.values()) == sorted(LABELS)
        assert all(k != v for k, v in m.items())
    assert label_permutation(LABELS, seed=3) == label_permutation(list(reversed(LABELS)), seed=3)
    with pytest.raises(AttackError, match="two labels"):
        label_permutation(["only"])


def test_label_flip_changes_every_label_and_keeps_type() -> None:
    data = [Ex(f"t{i}", LABELS[i % 4], note=i) for i in range(40)]
    flipped = label_flip(data, labels=LABELS, seed=1)
    assert all(isinstance(e, Ex) and e.label != o.label and e.text == o.text and e.note == o.note
               for e, o in zip(flipped, data, strict=True))  # fmt: skip
    half = label_flip(data, labels=LABELS, seed=1, fraction=0.5)
    changed = sum(e.label != o.label for e, o in zip(half, data, strict=True))
    assert 10 <= changed <= 30


def test_backdoor_poisons_a_fraction_with_trigger_and_target() -> None:
    Row = namedtuple("Row", ["text", "label"])
    data = [Row(f"note {i}", LABELS[i % 4]) for i in range(200)]
    poisoned = backdoor(data, trigger="zx qv", target="derm", seed=2, fraction=0.3)
    hit = [p for p, o in zip(poisoned, data, strict=True) if p != o]
    assert 40 <= len(hit) <= 80
    assert all(p.text.startswith("zx qv ") and p.label == "derm" for p in hit)

    class Plain:
        text, label = "t", "cardio"

    with pytest.raises(AttackError, match="cannot rebuild a Plain"):
        backdoor([Plain()], trigger="x", target="y", fraction=1.0)


def test_backdoor_success_rate() -> None:
    data = [Ex("a", "cardio"), Ex("b", "neuro"), Ex("c", "derm")]

    def predict(texts: object) -> list[str]:
        return ["derm" if t.startswith("zx ") and t.endswith("a") else "cardio" for t in texts]  # type: ignore[attr-defined]

    # victims: the two non-derm examples; only "a" flips to derm
    assert backdoor_success(predict, data, trigger="zx", target="derm") == 0.5


def test_ring_votes() -> None:
    votes = ring_votes({"0xB": "c1", "0xa": "c2", "0xC": "c3"}, members={"0xA", "0xc"})
    assert [(v.peer, v.value) for v in votes] == [("0xa", 1.0), ("0xB", 0.0), ("0xC", 1.0)]
