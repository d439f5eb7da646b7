"""Evaluation: the log-likelihood of every label name, all in one forward pass per example.

Each example becomes one packed sequence: the prompt, then the 40 continuations side by side.
A 4-D attention mask lets every continuation see the whole prompt and its own earlier tokens
but no other continuation, and position ids restart after the prompt for each, so the scores
equal scoring the continuations one by one at about a third of the cost. The prediction is the
label of highest total log-likelihood; the loss is the true label's mean per-token negative
log-likelihood (the quantity training minimises).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from bcfl.learning.adapter import AdapterState, merged
from bcfl.learning.data import Example
from bcfl.learning.task import TaskConfig, label_ids, prompt_ids, split_lm, training_batch

if TYPE_CHECKING:
    from bcfl.learning.model import BaseModel

_T = TypeVar("_T")


@dataclass(frozen=True)
class EvalResult:
    examples: int
    accuracy: float  # prediction == majority label
    any_label_accuracy: float  # prediction is any label the description carries
    mean_loss: float  # mean per-token NLL of the true label's continuation (nats)
    predictions: tuple[int, ...]


@dataclass(frozen=True)
class _Packed:
    ids: list[int]
    positions: list[int]
    prompt_len: int
    spans: list[tuple[int, int]]  # (start, length) of each continuation


def _pack(prompt: list[int], conts: Sequence[list[int]]) -> _Packed:
    ids = list(prompt)
    positions = list(range(len(prompt)))
    spans = []
    for cont in conts:
        spans.append((len(ids), len(cont)))
        ids.extend(cont)
        positions.extend(range(len(prompt), len(prompt) + len(cont)))
    return _Packed(ids, positions, len(prompt), spans)


def _mask(packed: Sequence[_Packed], width: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, T, T) mask: 0 where a query may attend a key, the dtype's min elsewhere."""
    allow = torch.zeros((len(packed), width, width), dtype=torch.bool)
    for b, p in enumerate(packed):
        n = p.prompt_len
        allow[b, :n, :n] = torch.ones((n, n), dtype=torch.bool).tril()
        for start, length in p.spans:
            allow[b, start : start + length, :n] = True
            allow[b, start : start + length, start : start + length] = torch.ones(
                (length, length), dtype=torch.bool
            ).tril()
        for pad in range(len(p.ids), width):  # padding attends to itself only (no NaN rows)
            allow[b, pad, pad] = True
    mask = torch.zeros((len(packed), 1, width, width), dtype=dtype)
    mask.masked_fill_(~allow.unsqueeze(1), torch.finfo(dtype).min)
    return mask


@torch.inference_mode()
def label_scores(
    model: Any, tokenizer: Any, examples: Sequence[Example], names: Sequence[str], config: TaskConfig
) -> torch.Tensor:
    """(E, L, 2): per example and label, total log-likelihood and token count of the label."""
    conts = label_ids(tokenizer, names)
    packed = [_pack(prompt_ids(tokenizer, e.text, config), conts) for e in examples]
    width = max(len(p.ids) for p in packed)
    pad = int(tokenizer.pad_token_id)
    input_ids = torch.full((len(packed), width), pad, dtype=torch.long)
    position_ids = torch.zeros((len(packed), width), dtype=torch.long)
    rows: list[int] = []
    sources: list[int] = []
    targets: list[int] = []
    for b, p in enumerate(packed):
        input_ids[b, : len(p.ids)] = torch.tensor(p.ids)
        position_ids[b, : len(p.positions)] = torch.tensor(p.positions)
        for start, length in p.spans:
            for j in range(length):
                rows.append(b)
                sources.append(p.prompt_len - 1 if j == 0 else start + j - 1)
                targets.append(p.ids[start + j])
    backbone, head = split_lm(model)
    dtype = next(model.parameters()).dtype
    hidden = backbone(
        input_ids=input_ids, attention_mask=_mask(packed, width, dtype), position_ids=position_ids
    ).last_hidden_state  # (B, T, C)
    logp = torch.log_softmax(head(hidden[rows, sources]).float(), dim=-1)  # (N, V)
    token_logp = logp[torch.arange(len(targets)), torch.tensor(targets)]  # (N,)
    out = torch.zeros((len(examples), len(names), 2), dtype=torch.float64)
    cursor = 0
    for b, p in enumerate(packed):
        for label, (_, length) in enumerate(p.spans):
            out[b, label, 0] = token_logp[cursor : cursor + length].double().sum()
            out[b, label, 1] = length
            cursor += length
    return out


def _selection(
    examples: Sequence[Example], max_examples: int | None, batch: int, label_names: Sequence[str] | None
) -> tuple[list[Example], Sequence[str]]:
    """The examples to evaluate and the label names (the package's by default), checked."""
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    chosen = list(examples[:max_examples] if max_examples is not None else examples)
    if not chosen:
        raise ValueError("no examples to evaluate")
    if label_names is None:
        from bcfl.learning.data import label_names as package_label_names

        label_names = package_label_names()
    return chosen, label_names


def _on_model(base: BaseModel, adapter_state: AdapterState | None, measure: Callable[[Any], _T]) -> _T:
    """`measure` run on the base model, or on the base with the adapter merged into its weights
    (the same function as PEFT's injected layers, with one matmul per layer instead of three)."""
    if adapter_state is None:
        return measure(base.model)
    with merged(base, adapter_state) as model:
        return measure(model)


def evaluate(
    base: BaseModel,
    adapter_state: AdapterState | None,
    examples: Sequence[Example],
    *,
    max_examples: int | None = None,
    batch: int = 4,
    label_names: Sequence[str] | None = None,
    task: TaskConfig | None = None,
) -> EvalResult:
    """Accuracy and loss of the base model (with the adapter, if given) on the first
    `max_examples` examples."""
    chosen, label_names = _selection(examples, max_examples, batch, label_names)
    config = task or TaskConfig()
    return _on_model(
        base, adapter_state, lambda model: _score(model, base.tokenizer, chosen, label_names, config, batch)
    )


@torch.inference_mode()
def true_label_nll(
    model: Any, tokenizer: Any, examples: Sequence[Example], names: Sequence[str], config: TaskConfig
) -> torch.Tensor:
    """(E,) float64: each example's mean per-token NLL of its true label's continuation, from
    one forward pass over prompt + true label only (the 39 other labels are not scored)."""
    batch = training_batch(tokenizer, examples, names, config)
    backbone, head = split_lm(model)
    hidden = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    logp = torch.log_softmax(head(hidden[batch.rows, batch.positions]).float(), dim=-1)
    nll = -logp[torch.arange(len(batch.targets)), batch.targets].double()
    total = torch.zeros(len(examples), dtype=torch.float64).index_add_(0, batch.rows, nll)
    count = torch.bincount(batch.rows, minlength=len(examples)).double()
    return total / count


def mean_loss(
    base: BaseModel,
    adapter_state: AdapterState | None,
    examples: Sequence[Example],
    *,
    max_examples: int | None = None,
    batch: int = 4,
    label_names: Sequence[str] | None = None,
    task: TaskConfig | None = None,
) -> float:
    """The loss `evaluate` reports (mean over examples of the true label's mean per-token NLL)
    without the accuracy: a forward pass over the true label alone, a fraction of the cost of
    scoring all 40 (what a voter needs: the vote rule reads only the loss)."""
    chosen, label_names = _selection(examples, max_examples, batch, label_names)
    config = task or TaskConfig()

    def run(model: Any) -> float:
        parts = [
            true_label_nll(model, base.tokenizer, chosen[i : i + batch], label_names, config)
            for i in range(0, len(chosen), batch)
        ]
        return float(torch.cat(parts).mean())

    return _on_model(base, adapter_state, run)


def _score(
    model: Any, tokenizer: Any, examples: list[Example], names: Sequence[str], config: TaskConfig, batch: int
) -> EvalResult:
    predictions: list[int] = []
    correct = any_correct = 0
    loss = 0.0
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        scores = label_scores(model, tokenizer, chunk, names, config)
        for example, s in zip(chunk, scores, strict=True):
            pred = int(torch.argmax(s[:, 0]))
            predictions.append(pred)
            correct += pred == example.label
            any_correct += pred in example.labels
            loss += float(-s[example.label, 0] / s[example.label, 1])
    n = len(examples)
    return EvalResult(n, correct / n, any_correct / n, loss / n, tuple(predictions))
