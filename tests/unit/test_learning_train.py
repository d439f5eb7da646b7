"""LoRA training (both schemes), the target-only loss, and packed label scoring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bcfl.learning.adapter import LoraSpec, init_adapter, key_a, key_b, to_files
from bcfl.learning.data import Example, label_names, load_splits
from bcfl.learning.evaluate import evaluate, label_scores, mean_loss
from bcfl.learning.model import BaseModel, load_base
from bcfl.learning.task import TaskConfig, label_ids, prompt_ids, target_loss, training_batch
from bcfl.learning.train import TrainConfig, TrainError, batch_schedule, train, train_update

SPEC = LoraSpec(rank=4, alpha=8)
SPLITS = load_splits()
NAMES = label_names()


@pytest.fixture(scope="module")
def tiny() -> BaseModel:
    torch.set_num_threads(1)
    return load_base("tiny")


def _cfg(**kw: object) -> TrainConfig:
    base = {"steps": 3, "batch_size": 4, "learning_rate": 1e-2, "lora": SPEC, "progress": False}
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_training_is_deterministic_given_the_seed(tiny: BaseModel) -> None:
    shard = SPLITS.train[:40]
    a = train_update(tiny, None, shard, _cfg(scheme="fedit"))
    b = train_update(tiny, None, shard, _cfg(scheme="fedit"))
    c = train_update(tiny, None, shard, _cfg(scheme="fedit", seed=1))
    assert to_files(a) == to_files(b) != to_files(c)


def test_ffa_trains_b_only_ffa_a_trains_a_only_and_fedit_trains_both(tiny: BaseModel) -> None:
    shard = SPLITS.train[:40]
    start = init_adapter(tiny, SPEC, seed=0)
    module = start.modules()[0]
    ffa = train_update(tiny, None, shard, _cfg(scheme="ffa"))
    assert torch.equal(ffa.tensors[key_a(module)], start.tensors[key_a(module)])
    assert not torch.equal(ffa.tensors[key_b(module)], start.tensors[key_b(module)])
    fedit = train_update(tiny, None, shard, _cfg(scheme="fedit"))
    assert not torch.equal(fedit.tensors[key_a(module)], start.tensors[key_a(module)])
    # "ffa-a" from a trained B: A moves, B stays the start's bit for bit.
    mirrored = train_update(tiny, ffa, shard, _cfg(scheme="ffa-a"))
    assert torch.equal(mirrored.tensors[key_b(module)], ffa.tensors[key_b(module)])
    assert not torch.equal(mirrored.tensors[key_a(module)], ffa.tensors[key_a(module)])


def test_training_lowers_the_loss_on_its_shard(tiny: BaseModel) -> None:
    shard = SPLITS.train[:4]
    result = train(tiny, None, shard, _cfg(steps=25, batch_size=4, learning_rate=3e-2, scheme="fedit"))
    assert result.losses[-1] < result.losses[0] - 0.3
    assert result.tokens > 0 and result.tokens_per_second > 0
    before = evaluate(tiny, None, shard, batch=4, label_names=NAMES)
    after = evaluate(tiny, result.state, shard, batch=4, label_names=NAMES)
    assert after.mean_loss < before.mean_loss


def test_a_kept_optimiser_continues_where_the_last_run_stopped(tiny: BaseModel) -> None:
    shard = SPLITS.train[:4]  # one batch = the whole shard, so every step sees the same examples
    whole = train(tiny, None, shard, _cfg(steps=2, scheme="fedit")).state
    first = train(tiny, None, shard, _cfg(steps=1, scheme="fedit"))
    kept = train(tiny, first.state, shard, _cfg(steps=1, scheme="fedit"), first.optimizer_state).state
    fresh = train(tiny, first.state, shard, _cfg(steps=1, scheme="fedit")).state
    for name, tensor in whole.tensors.items():
        assert torch.allclose(kept.tensors[name], tensor, rtol=1e-4, atol=1e-7), name
    assert any(
        not torch.allclose(fresh.tensors[name], tensor, rtol=1e-4, atol=1e-7)
        for name, tensor in whole.tensors.items()
    )
    assert first.optimizer_state is not None
    with pytest.raises(TrainError, match="kept optimiser state was made for other parameters"):
        train(tiny, first.state, shard, _cfg(steps=1, scheme="ffa"), first.optimizer_state)


def test_progress_bar_goes_to_stderr(tiny: BaseModel, capsys: pytest.CaptureFixture[str]) -> None:
    train_update(tiny, None, SPLITS.train[:8], _cfg(steps=2, progress=True))
    captured = capsys.readouterr()
    assert "LoRA ffa" in captured.err and captured.out == ""


def test_bad_training_inputs(tiny: BaseModel) -> None:
    with pytest.raises(TrainError, match="empty shard"):
        train_update(tiny, None, [], _cfg())
    other = init_adapter(tiny, LoraSpec(rank=2), seed=0)
    with pytest.raises(TrainError, match="start adapter has LoRA settings"):
        train_update(tiny, other, SPLITS.train[:4], _cfg())
    with pytest.raises(ValueError, match="unknown LoRA scheme"):
        _cfg(scheme="lora-fa")


def test_batch_schedule_covers_each_example_once_per_epoch() -> None:
    steps = batch_schedule(10, steps=5, batch_size=4, seed=0)
    flat = [i for step in steps for i in step]
    assert sorted(flat[:10]) == list(range(10)) and len(flat) == 20
    assert steps == batch_schedule(10, steps=5, batch_size=4, seed=0)


def test_target_loss_equals_the_full_logits_loss(tiny: BaseModel) -> None:
    examples = list(SPLITS.train[:3])
    batch = training_batch(tiny.tokenizer, examples, NAMES, TaskConfig(max_text_tokens=16))
    ours = target_loss(tiny.model, batch)
    logits = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    reference = F.cross_entropy(logits[batch.rows, batch.positions], batch.targets)
    assert torch.allclose(ours, reference, atol=1e-5)
    # Only label tokens are predicted: one per name token plus end-of-sequence, per example.
    assert len(batch.targets) == sum(len(label_ids(tiny.tokenizer, NAMES)[e.label]) for e in examples)


def test_truncation_cuts_the_text_only(tiny: BaseModel) -> None:
    long = Example("word " * 500, 0, frozenset({0}))
    short = prompt_ids(tiny.tokenizer, long.text, TaskConfig(max_text_tokens=8))
    full = prompt_ids(tiny.tokenizer, long.text, TaskConfig(max_text_tokens=1000))
    assert len(full) - len(short) > 400
    assert tiny.tokenizer.decode(short).endswith("\nSpecialty:")


def test_packed_scores_equal_one_by_one_scores(tiny: BaseModel) -> None:
    examples = list(SPLITS.test[:2])
    config = TaskConfig(max_text_tokens=24)
    packed = label_scores(tiny.model, tiny.tokenizer, examples, NAMES, config)
    conts = label_ids(tiny.tokenizer, NAMES)
    with torch.no_grad():
        for i, example in enumerate(examples):
            prompt = prompt_ids(tiny.tokenizer, example.text, config)
            for label in (0, 17, 38):
                ids = torch.tensor([prompt + conts[label]])
                logp = torch.log_softmax(tiny.model(ids).logits[0], dim=-1)
                total = sum(float(logp[len(prompt) + j - 1, t]) for j, t in enumerate(conts[label]))
                assert abs(float(packed[i, label, 0]) - total) < 1e-4
                assert int(packed[i, label, 1]) == len(conts[label])


def test_evaluate_reports_accuracy_and_loss(tiny: BaseModel) -> None:
    plain = evaluate(tiny, None, SPLITS.test, max_examples=6, batch=4, label_names=NAMES)
    same = evaluate(
        tiny, init_adapter(tiny, SPEC, 0), SPLITS.test, max_examples=6, batch=3, label_names=NAMES
    )
    assert plain.examples == 6 and len(plain.predictions) == 6
    assert 0 <= plain.accuracy <= plain.any_label_accuracy <= 1
    assert plain.mean_loss > 0
    assert plain.predictions == same.predictions  # B = 0 changes nothing, whatever the batch size
    assert abs(plain.mean_loss - same.mean_loss) < 1e-6


def test_mean_loss_from_the_true_label_alone_equals_evaluate_s(tiny: BaseModel) -> None:
    adapter = init_adapter(tiny, SPEC, 0)
    for state in (None, adapter):
        full = evaluate(tiny, state, SPLITS.test, max_examples=6, batch=4, label_names=NAMES)
        alone = mean_loss(tiny, state, SPLITS.test, max_examples=6, batch=4, label_names=NAMES)
        assert alone == pytest.approx(full.mean_loss, rel=1e-5)
    # The batch size does not change it (beyond float rounding), and the same call repeats to
    # the last bit (what the vote rule's free-rider check relies on).
    once = mean_loss(tiny, adapter, SPLITS.test, max_examples=6, batch=4, label_names=NAMES)
    assert once == mean_loss(tiny, adapter, SPLITS.test, max_examples=6, batch=4, label_names=NAMES)
    assert once == pytest.approx(
        mean_loss(tiny, adapter, SPLITS.test, max_examples=6, batch=6, label_names=NAMES)
    )
    with pytest.raises(ValueError, match="no examples"):
        mean_loss(tiny, None, [], label_names=NAMES)


def test_checkpointing_gives_the_same_update(tiny: BaseModel) -> None:
    shard = SPLITS.train[:16]
    plain = train_update(tiny, None, shard, _cfg(scheme="fedit"))
    saved = train_update(tiny, None, shard, _cfg(scheme="fedit", checkpointing=True))
    for name, tensor in plain.tensors.items():
        assert torch.allclose(saved.tensors[name], tensor, atol=1e-5)
    assert not tiny.model.is_activation_checkpointing
