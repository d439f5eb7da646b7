"""The task: an instruction-style prompt whose continuation is the specialty's name.

    Classify the medical specialty of this transcription.
    Transcription: <description, truncated to a token budget>
    Specialty: <name><eos>

Training minimises the cross-entropy of the name and end-of-sequence tokens only; logits are
computed at those positions alone (the vocabulary is 49,152 tokens wide for SmolLM2, so full
logits would dominate memory and time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bcfl.learning.data import Example

PROMPT_TEMPLATE = "Classify the medical specialty of this transcription.\nTranscription: {text}\nSpecialty:"
_PREFIX, _SUFFIX = PROMPT_TEMPLATE.split("{text}")


@dataclass(frozen=True)
class TaskConfig:
    max_text_tokens: int = 96  # the description is cut to this many tokens

    def __post_init__(self) -> None:
        if self.max_text_tokens <= 0:
            raise ValueError(f"max_text_tokens must be positive, got {self.max_text_tokens}")


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, text: str, config: TaskConfig) -> list[int]:
    """Token ids of the prompt; the parts are tokenised apart so truncation cuts the text only."""
    return (
        _ids(tokenizer, _PREFIX) + _ids(tokenizer, text)[: config.max_text_tokens] + _ids(tokenizer, _SUFFIX)
    )


def label_ids(tokenizer: Any, names: Sequence[str]) -> list[list[int]]:
    """Token ids of each label's continuation: " <name>" then end-of-sequence."""
    eos = int(tokenizer.eos_token_id)
    return [[*_ids(tokenizer, f" {name}"), eos] for name in names]


@dataclass(frozen=True)
class Batch:
    """Right-padded prompt + label sequences and where the loss is taken."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    rows: torch.Tensor  # (N,) batch row of each predicted token
    positions: torch.Tensor  # (N,) position whose hidden state predicts it
    targets: torch.Tensor  # (N,) the token to predict

    @property
    def tokens(self) -> int:
        """Tokens processed (not padding): the unit of throughput."""
        return int(self.attention_mask.sum())


def training_batch(
    tokenizer: Any, examples: Sequence[Example], names: Sequence[str], config: TaskConfig
) -> Batch:
    labels = label_ids(tokenizer, names)
    seqs: list[list[int]] = []
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for row, example in enumerate(examples):
        prompt = prompt_ids(tokenizer, example.text, config)
        target = labels[example.label]
        seqs.append(prompt + target)
        for j, token in enumerate(target):
            rows.append(row)
            positions.append(len(prompt) + j - 1)
            targets.append(token)
    width = max(len(s) for s in seqs)
    pad = int(tokenizer.pad_token_id)
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return Batch(input_ids, mask, torch.tensor(rows), torch.tensor(positions), torch.tensor(targets))


def split_lm(model: Any) -> tuple[Any, Any]:
    """(backbone, output head) of a Hugging Face causal LM, through a PEFT wrapper if any."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(lm).__name__} has no output embeddings")
    return backbone, head


def target_loss(model: Any, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of the label tokens, with logits only at the positions that need them."""
    backbone, head = split_lm(model)
    hidden = backbone(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask
    ).last_hidden_state  # (B,T,C)
    logits = head(hidden[batch.rows, batch.positions])  # (N, V)
    return F.cross_entropy(logits.float(), batch.targets)
