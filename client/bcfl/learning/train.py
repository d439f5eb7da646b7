"""LoRA fine-tuning of a base model on one peer's shard.

Schemes, chosen by the federation:
- "fedit": A and B both trained (the common FedIT baseline). Averaging A and B separately is
  inexact: mean(B) @ mean(A) != mean(B @ A).
- "ffa": A stays frozen at the federation's seeded shared init and only B is trained, so every
  update's weight delta is B_i @ A with the same A, and mean(B_i) @ A == mean(B_i @ A) exactly.
- "ffa-a": the mirror image, B frozen at the round's base and A trained (mean(B @ A_i) ==
  B @ mean(A_i)); rounds that alternate "ffa" and "ffa-a" train both factors and every
  round's average stays exact. B starts at zero, so the first round must train B.

Training is a pure function of (base, start adapter, shard, config): batches are drawn from a
seeded generator and the torch RNG is forked and seeded, so two runs give the same bits.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from bcfl.errors import BcflError
from bcfl.learning.adapter import AdapterState, LoraSpec, applied, init_adapter, state_of
from bcfl.learning.data import Example
from bcfl.learning.task import TaskConfig, target_loss, training_batch

if TYPE_CHECKING:
    from bcfl.learning.model import BaseModel

LoraScheme = Literal["fedit", "ffa", "ffa-a"]
LORA_SCHEMES: tuple[LoraScheme, ...] = ("fedit", "ffa", "ffa-a")
FROZEN_FACTOR: dict[LoraScheme, str | None] = {"fedit": None, "ffa": ".lora_A.", "ffa-a": ".lora_B."}


def alternating_scheme(round_index: int) -> LoraScheme:
    """The scheme of round `round_index` (1-based) when rounds alternate: B first, then A."""
    if round_index < 1:
        raise ValueError(f"round index must be >= 1, got {round_index}")
    return "ffa" if round_index % 2 else "ffa-a"


class TrainError(BcflError):
    """Training that cannot run as configured."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4
    batch_size: int = 4
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    lora: LoraSpec = field(default_factory=LoraSpec)
    scheme: LoraScheme = "ffa"
    task: TaskConfig = field(default_factory=TaskConfig)
    seed: int = 0  # batch order and torch RNG of this training run
    init_seed: int = 0  # the federation's shared initial A (used when no start adapter is given)
    threads: int | None = None  # torch intra-op threads (None: leave as is)
    progress: bool = True  # a progress bar on stderr
    # Recompute each layer's activations in the backward pass instead of keeping them: about a
    # third more compute, several times less activation memory (SmolLM2 fits a small peer).
    checkpointing: bool = False
    label_names: tuple[str, ...] | None = None  # default: the shipped data set's 40 names

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.scheme not in LORA_SCHEMES:
            raise ValueError(f"unknown LoRA scheme {self.scheme!r} (choose from {', '.join(LORA_SCHEMES)})")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be positive, got {self.threads}")


@dataclass(frozen=True)
class TrainResult:
    state: AdapterState
    losses: tuple[float, ...]  # per step
    tokens: int  # non-padding tokens processed
    seconds: float  # wall time of the steps (not model loading)
    # AdamW's moments and step count at the end (the peer's own; not part of the update), to
    # pass back to `train` so the next round's steps continue the same optimiser
    optimizer_state: dict[str, Any] | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def batch_schedule(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Indices of each step's batch: epochs of seeded permutations, concatenated."""
    rng = np.random.default_rng(seed)
    flat: list[int] = []
    while len(flat) < steps * batch_size:
        flat.extend(int(i) for i in rng.permutation(n))
    return [flat[s * batch_size : (s + 1) * batch_size] for s in range(steps)]


def train(
    base: BaseModel,
    start_adapter: AdapterState | None,
    shard: Sequence[Example],
    cfg: TrainConfig,
    optimizer_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune LoRA factors on `shard`, starting from `start_adapter` (or the shared init).
    `optimizer_state` (a previous result's) continues that AdamW instead of a fresh one: the
    moments a peer built in earlier rounds then scale this round's steps, as one optimiser's would."""
    from bcfl.learning.data import label_names

    if not shard:
        raise TrainError("cannot train on an empty shard")
    names = cfg.label_names or label_names()
    start = start_adapter or init_adapter(base, cfg.lora, cfg.init_seed)
    if start.spec != cfg.lora:
        raise TrainError(f"start adapter has LoRA settings {start.spec}, the config asks for {cfg.lora}")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    schedule = batch_schedule(len(shard), cfg.steps, cfg.batch_size, cfg.seed)
    losses: list[float] = []
    tokens = 0
    with torch.random.fork_rng(devices=[]), applied(base, start) as model:
        torch.manual_seed(cfg.seed)
        params = []
        for name, param in model.named_parameters():
            frozen = FROZEN_FACTOR[cfg.scheme]
            trainable = (".lora_A." in name or ".lora_B." in name) and (frozen is None or frozen not in name)
            param.requires_grad_(trainable)
            if trainable:
                params.append(param)
        model.train()
        lm = model.get_base_model()
        if cfg.checkpointing:
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        if optimizer_state is not None:
            _load_optimizer(optimizer, optimizer_state, cfg)
        bar = _progress(cfg)
        started = time.perf_counter()
        for indices in schedule:
            batch = training_batch(base.tokenizer, [shard[i] for i in indices], names, cfg.task)
            loss = target_loss(model, batch)
            if not torch.isfinite(loss):
                raise TrainError(f"training loss became {float(loss)} at step {len(losses) + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
            tokens += batch.tokens
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        if cfg.checkpointing:
            lm.activation_checkpointing_disable()
        model.eval()
        state = state_of(model, cfg.lora)
        kept = optimizer.state_dict()  # the optimiser ends here, so its tensors need no copy
    return TrainResult(state, tuple(losses), tokens, seconds, kept)


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any], cfg: TrainConfig) -> None:
    """Load a kept AdamW state, refusing one made for other parameters (another scheme or rank)."""
    params = optimizer.param_groups[0]["params"]
    moments = saved.get("state", {})
    if len(saved.get("param_groups", [{}])[0].get("params", [])) != len(params) or any(
        moments[i]["exp_avg"].shape != p.shape for i, p in enumerate(params) if i in moments
    ):
        raise TrainError(
            f"the kept optimiser state was made for other parameters than this run's "
            f"(scheme {cfg.scheme!r}, rank {cfg.lora.rank})"
        )
    optimizer.load_state_dict(copy.deepcopy(saved))
    for group in optimizer.param_groups:  # this run's settings, not the saved run's
        group["lr"] = cfg.learning_rate
        group["weight_decay"] = cfg.weight_decay


def train_update(
    base: BaseModel, start_adapter: AdapterState | None, shard: Sequence[Example], cfg: TrainConfig
) -> AdapterState:
    """The adapter after `cfg.steps` steps on `shard` (see `train` for timings and losses)."""
    return train(base, start_adapter, shard, cfg).state


def _progress(cfg: TrainConfig) -> Any:
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, desc=f"LoRA {cfg.scheme}", unit="step", file=sys.stderr, leave=False)
