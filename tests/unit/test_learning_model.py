"""Base models: the tiny random Llama, local folders, the SmolLM2 conversion cache, bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bcfl.learning import model as model_mod
from bcfl.learning.model import (
    ModelError,
    build_tiny,
    default_cache_dir,
    load_base,
    prepare_smollm2,
    save_folder,
)


def test_tiny_model_is_seeded() -> None:
    a, b, c = build_tiny(model_mod.TinyConfig(), seed=0), load_base("tiny", seed=0), load_base("tiny", seed=1)
    assert a.model_id == b.model_id != c.model_id
    assert a.model_id.startswith("tiny-llama:sha256:")
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(a.model(ids).logits, b.model(ids).logits)
    assert not any(p.requires_grad for p in a.model.parameters())
    assert a.tokenizer.eos_token_id is not None and a.eos_id == a.tokenizer.pad_token_id


def test_tiny_tokenizer_round_trips_text() -> None:
    tok = load_base("tiny").tokenizer
    text = "Transcription: Laparoscopic cholecystectomy.\nSpecialty: Surgery"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_a_saved_folder_loads_as_the_same_model(tmp_path: Path) -> None:
    tiny = load_base("tiny")
    save_folder(tiny, tmp_path / "m")
    loaded = load_base(str(tmp_path / "m"))
    assert loaded.name == str(tmp_path / "m") and loaded.model_id.startswith("m:sha256:")
    ids = torch.tensor([[5, 6, 7]])
    assert torch.allclose(loaded.model(ids).logits, tiny.model(ids).logits)


def test_not_a_causal_lm_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ModelError, match="t5: not a causal language model"):
        load_base(str(tmp_path / "t5"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty: not a Hugging Face model folder"):
        load_base(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="neither 'smollm2', 'tiny' nor an existing folder"):
        load_base(str(tmp_path / "absent"))


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BCFL_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "models"


def test_conversion_runs_once_and_is_atomic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Path] = []

    def fake_convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        (out / model_mod.MARKER).write_text('{"model_id": "x"}')

    def failing_convert(gguf: Path, out: Path) -> None:
        (out / "partial.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(model_mod, "smollm2_gguf", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(model_mod, "_convert_gguf", failing_convert)
    with pytest.raises(RuntimeError):
        prepare_smollm2(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written is left
    monkeypatch.setattr(model_mod, "_convert_gguf", fake_convert)
    first = prepare_smollm2(tmp_path / "cache")
    second = prepare_smollm2(tmp_path / "cache")
    assert first == second == tmp_path / "cache" / model_mod.SMOLLM2_FOLDER
    assert len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [model_mod.SMOLLM2_FOLDER]


def test_missing_smollm2_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_mod, "SMOLLM2_PACKAGE", "no_such_package_here")
    with pytest.raises(ModelError, match="package no_such_package_here is not installed"):
        model_mod.smollm2_gguf()
