"""Gate replay: one real loss matrix (tiny model), many assignment draws through decide_from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bcfl.experiments import gate_replay
from bcfl.experiments.anomaly import LoraTask, SweepConfig
from bcfl.experiments.gate_replay import LossMatrix, build_matrix, rates, replay, run, train_updates

TINY = SweepConfig(
    peers=4, warmup_rounds=1, local_steps=4, batch_size=4, val_examples=8,
    attacks=("sign-flip", "free-rider", "label-flip", "ring"),
)  # fmt: skip


@pytest.fixture(scope="module")
def matrix() -> LossMatrix:
    return build_matrix(TINY, 0, 0.25)


def test_matrix_holds_every_voter_s_loss_of_every_update(matrix: LossMatrix) -> None:
    assert len(matrix.bad) == 1
    attacker = matrix.bad[0]
    assert matrix.names[:4] == [f"honest/{i}" for i in range(4)]
    # Only the updates the asked attacks need are made (the ring submits sign-flipped ones).
    assert matrix.names[4:] == [f"{a}/{attacker}" for a in ("label-flip", "sign-flip", "free-rider")]
    assert matrix.has("ring") and not matrix.has("backdoor") and not matrix.has("scaling")
    assert len(matrix.loss) == 4 and all(len(row) == len(matrix.names) for row in matrix.loss)
    # A free-rider resubmits the base: every voter's loss of it is the base loss to the last bit.
    free = matrix.names.index(f"free-rider/{attacker}")
    assert [row[free] for row in matrix.loss] == matrix.base
    assert matrix.column("ring", attacker) == matrix.names.index(f"sign-flip/{attacker}")
    changes = gate_replay.loss_changes(matrix)
    assert list(changes) == ["honest", "label-flip", "sign-flip", "free-rider"]
    assert len(changes["honest"]) == 4 and changes["free-rider"] == [0.0]
    honest = matrix.names.index("honest/0")  # voters 1-3 judge peer 0's update; the median of 3
    expected = sorted((matrix.loss[v][honest] - matrix.base[v]) / matrix.base[v] for v in (1, 2, 3))[1]
    assert changes["honest"][0] == expected
    assert matrix.column("ring", (attacker + 1) % 4) == (attacker + 1) % 4


def test_replay_counts_every_peer_and_drops_the_sign_flipper(matrix: LossMatrix) -> None:
    for draw in range(5):
        tp, fp, fn = replay(matrix, TINY, "none", draw, 3)
        assert fp == 0 and tp + fn == 4
        tp, fp, fn = replay(matrix, TINY, "sign-flip", draw, 3)
        assert fp == 0 and tp + fn == 3
    assert rates([(3, 0, 0), (2, 1, 1)]) == {
        "precision": 5 / 6, "recall": 5 / 6, "rounds_with_an_attacker_in": 0.5,
        "rounds_with_an_honest_peer_out": 0.5,
    }  # fmt: skip


def test_run_writes_table_and_reuses_saved_matrices(
    tmp_path: Path, matrix: LossMatrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_replay, "build_matrix", lambda cfg, seed, fraction, cache=None: matrix)
    rows = run(tmp_path, TINY, seeds=[0], ks=[1, 3], draws=4, fraction=0.25)
    assert [(r["k"], r["attack"]) for r in rows][:2] == [(1, "none"), (1, "sign-flip")]
    assert len(rows) == 2 * 5 and all(0.0 <= r["precision"] <= 1.0 for r in rows)
    saved = json.loads((tmp_path / "matrix-seed0.json").read_text())
    assert saved["matrix"]["names"] == matrix.names

    def rebuilt(*args: object) -> LossMatrix:
        raise AssertionError("the saved matrix should have been reused")

    monkeypatch.setattr(gate_replay, "build_matrix", rebuilt)
    again = run(tmp_path, TINY, seeds=[0], ks=[1, 3], draws=4, fraction=0.25)
    assert [r["precision"] for r in again] == [r["precision"] for r in rows]
    # Another vote rule replays the same evaluations: the matrix is still reused.
    run(tmp_path, dataclasses.replace(TINY, vote_median_share=1.0), seeds=[0], ks=[3], draws=2, fraction=0.25)
    assert "| 3 | ring |" in (tmp_path / "table.md").read_text()


class _NoTraining:
    def warm_start(self) -> None:
        raise AssertionError("retrained")


def test_trained_updates_are_saved_and_reused_only_for_the_same_training(tmp_path: Path) -> None:
    cache = tmp_path / "updates.npz"
    base, updates = train_updates(TINY, 0, 0.25, LoraTask(TINY, 0), cache)
    again_base, again = train_updates(TINY, 0, 0.25, _NoTraining(), cache)
    assert np.array_equal(base, again_base) and list(again) == list(updates)
    assert all(np.array_equal(updates[n], again[n]) for n in updates)
    # Another evaluation setting reuses them; another learning rate does not.
    train_updates(dataclasses.replace(TINY, val_examples=4), 0, 0.25, _NoTraining(), cache)
    with pytest.raises(AssertionError, match="retrained"):
        train_updates(dataclasses.replace(TINY, learning_rate=1e-3), 0, 0.25, _NoTraining(), cache)
    with pytest.raises(AssertionError, match="retrained"):  # another attack needs other updates
        train_updates(dataclasses.replace(TINY, attacks=("backdoor",)), 0, 0.25, _NoTraining(), cache)
    with pytest.raises(AssertionError, match="retrained"):
        train_updates(dataclasses.replace(TINY, warmup_rounds=2), 0, 0.25, _NoTraining(), cache)
    # Update attacks are made from the honest updates on load: another factor needs no training.
    same_size = dataclasses.replace(TINY, sign_flip_factor=1.0, attacks=("sign-flip",))
    _, flipped = train_updates(same_size, 0, 0.25, _NoTraining(), cache)
    (bad,) = {n.split("/")[1] for n in flipped if n.startswith("sign-flip/")}
    assert list(flipped) == [f"honest/{i}" for i in range(4)] + [f"sign-flip/{bad}"]
    assert np.array_equal(flipped[f"sign-flip/{bad}"], -updates[f"honest/{bad}"])
    assert np.array_equal(updates[f"sign-flip/{bad}"], -3.0 * updates[f"honest/{bad}"])


def test_update_sets_saved_with_the_attack_factors_are_still_reused(tmp_path: Path) -> None:
    cache = tmp_path / "updates.npz"
    _, updates = train_updates(TINY, 0, 0.25, LoraTask(TINY, 0), cache)
    with np.load(cache) as saved:
        arrays = {k: saved[k] for k in saved.files}
    settings = json.loads(str(arrays["settings"]))
    assert "sign_flip_factor" not in settings and settings["kinds"] == ["label-flip"]
    # As a file from before the update attacks were recomputed on load: factors in, all kinds.
    settings |= {"sign_flip_factor": 3.0, "scaling_factor": 10.0}
    del settings["kinds"]
    arrays["settings"] = np.array(json.dumps(settings))
    np.savez(cache, **arrays)
    _, again = train_updates(TINY, 0, 0.25, _NoTraining(), cache)
    assert all(np.array_equal(updates[n], again[n]) for n in updates)


def test_a_saved_matrix_without_an_asked_attack_is_rebuilt(
    tmp_path: Path, matrix: LossMatrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_replay, "build_matrix", lambda cfg, seed, fraction, cache=None: matrix)
    run(tmp_path, TINY, seeds=[0], ks=[3], draws=1, fraction=0.25)
    asked: list[tuple[str, ...]] = []

    def rebuilt(cfg: SweepConfig, seed: int, fraction: float, cache: object = None) -> LossMatrix:
        asked.append(cfg.attacks)
        return matrix

    monkeypatch.setattr(gate_replay, "build_matrix", rebuilt)
    run(tmp_path, dataclasses.replace(TINY, attacks=("ring",)), seeds=[0], ks=[3], draws=1, fraction=0.25)
    assert asked == []  # a subset of what the saved matrix holds
    with_backdoor = dataclasses.replace(TINY, attacks=("backdoor",))
    with pytest.raises(ValueError):  # the stand-in matrix lacks it, so replaying it fails loudly
        run(tmp_path, with_backdoor, seeds=[0], ks=[3], draws=1, fraction=0.25)
    assert asked == [("backdoor",)]


def test_baselines_decide_the_round_on_the_same_updates(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, attacks=("sign-flip",))
    defences = ["none", "multi-krum", "fltrust"]
    rows = run(tmp_path, cfg, seeds=[0], ks=[3], draws=2, fraction=0.25, baselines=defences)
    found = {(r["attack"], r["defence"]): r for r in rows if r["experiment"] == "gate-replay-baseline"}
    assert set(found) == {(a, d) for a in ("none", "sign-flip") for d in defences}
    # No defence includes every update, the sign-flipper's too.
    assert (found["sign-flip", "none"]["precision"], found["sign-flip", "none"]["recall"]) == (0.75, 1.0)
    assert found["none", "none"]["precision"] == 1.0
    matrix = gate_replay.load_or_build(tmp_path, cfg, 0, 0.25)
    base, updates = train_updates(cfg, 0, 0.25, _NoTraining(), tmp_path / "updates-seed0.npz")
    tp, fp, fn = gate_replay.baseline_counts(matrix, updates, "sign-flip", "multi-krum", None)
    assert tp + fp == 3 and tp + fn == 3  # told f = 1, Multi-Krum keeps n - f of the 4
    # FLTrust's root-set update is trained once and saved beside the updates.
    root = gate_replay.root_update(cfg, 0, base, tmp_path / "root-seed0.npz")
    assert root.shape == base.shape and np.any(root != 0)
    table = (tmp_path / "table.md").read_text()
    assert "| sign-flip | multi-krum |" in table and "| sign-flip | fltrust |" in table
    assert "| seed | median base loss L0 | honest | sign-flip |" in table
    assert "| seed | measure | honest | sign-flip |" in table and "| 0 | cosine |" in table


def test_update_shapes_give_each_kind_s_norms_and_cosines_to_the_honest_updates() -> None:
    e = np.eye(3, dtype=np.float32)
    updates = {
        "honest/0": e[0],
        "honest/1": e[0] + e[1],
        "flip/1": -2 * (e[0] + e[1]),
        "free-rider/1": 0 * e[0],
    }
    names = list(updates)
    norms = [float(np.linalg.norm(v)) for v in updates.values()]
    matrix = LossMatrix(0, [1], names, [1.0, 1.0], [[1.0] * 4, [1.0] * 4], norms, [1, 1])
    shapes = gate_replay.update_shapes(matrix, updates)
    assert list(shapes) == ["honest", "flip", "free-rider"]
    assert shapes["honest"]["norm"] == pytest.approx([1.0, 2**0.5])
    # Each honest update against the other peer's honest update; the attacker's against peer 0's.
    assert shapes["honest"]["cosine"] == pytest.approx([2**-0.5, 2**-0.5])
    assert shapes["flip"]["cosine"] == pytest.approx([-(2**-0.5)])
    assert shapes["free-rider"] == {"norm": [0.0], "cosine": []}  # no direction to compare
