"""A peer's learner: its base model, its private shard, and the training/evaluation it runs.

Built once per process (loading the model is the expensive part), then asked each round to
train an update from the current base adapter, or to evaluate other peers' updates into a vote
file. Attack behaviours for experiments and the demo are applied here, at the edges: to the
training data (label flip, backdoor) or to the trained update (sign flip, noise, scaling,
free riding), never inside the learning code.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bcfl.chain.federation import Submission
from bcfl.errors import BcflError
from bcfl.learning import adapter as adapters
from bcfl.learning.adapter import AdapterState, LoraSpec
from bcfl.learning.aggregate import change_norm, incompatibility
from bcfl.learning.data import Example, SplitConfig, load_splits
from bcfl.learning.evaluate import evaluate, mean_loss
from bcfl.learning.model import BaseModel, load_base
from bcfl.learning.partition import PartitionConfig, partition
from bcfl.learning.task import TaskConfig
from bcfl.learning.train import TrainConfig, train_update
from bcfl.node.config import NodeConfig
from bcfl.outcome import AGGREGATION_SCHEME
from bcfl.trust import attacks
from bcfl.trust.votes import MAX_NORM_RATIO, Metrics, Vote, VoteFile, encode_votes, oversized, vote_values

log = logging.getLogger("bcfl.node")

GENESIS_SEED = 0  # the federation's shared initial LoRA A (FFA keeps it frozen)
BACKDOOR_TRIGGER = "per protocol zx9"


def genesis_files(model: str, *, lora_rank: int = 8) -> dict[str, bytes]:
    """The genesis adapter of `model`: seeded A, zero B (so it starts as the base model)."""
    base = load_base(model)
    return adapters.to_files(adapters.init_adapter(base, LoraSpec(rank=lora_rank), GENESIS_SEED))


def _attack_kind(attack: str | None) -> tuple[str | None, str | None]:
    """(update attack, data attack) for an attack name given with '-' or '_'."""
    if not attack:
        return None, None
    name = attack.replace("_", "-")
    if name in attacks.UPDATE_ATTACKS:
        return name, None
    if name in attacks.DATA_ATTACKS:
        return None, name
    known = sorted([*attacks.UPDATE_ATTACKS, *attacks.DATA_ATTACKS])
    raise BcflError(f"unknown attack {attack!r}; known: {', '.join(known)}")


@dataclass
class Learner:
    base: BaseModel
    spec: LoraSpec
    train_examples: Sequence[Example]
    validation: Sequence[Example]
    conf: NodeConfig
    peer_seed: int

    @classmethod
    def from_config(cls, conf: NodeConfig, *, address: str) -> Learner:
        torch.set_num_threads(conf.threads)
        _attack_kind(conf.attack)  # reject an unknown attack before the slow model load
        base = load_base(conf.model)
        splits = load_splits(SplitConfig(seed=conf.data_seed))
        shards = partition(
            splits.train,
            PartitionConfig(peers=conf.peers, scheme=conf.partition, alpha=conf.alpha, seed=conf.data_seed),
        )
        shard = shards[conf.peer_index]
        log.info(
            "model %s, shard %d/%d: %d training and %d validation examples",
            base.name,
            conf.peer_index,
            conf.peers,
            len(shard.train),
            len(shard.validation),
        )
        return cls(
            base=base,
            spec=LoraSpec(rank=conf.lora_rank),
            train_examples=shard.train,
            validation=shard.validation,
            conf=conf,
            peer_seed=zlib.crc32(address.lower().encode()),
        )

    # -- training -----------------------------------------------------------------------------

    def train(
        self, base_files: dict[str, bytes], *, round_id: int, attack: str | None
    ) -> tuple[dict[str, bytes], int]:
        start = adapters.from_files(base_files, self.base, expect=self.spec)
        update_attack, data_attack = _attack_kind(attack)
        examples: Sequence[Any] = self.train_examples
        seed = (self.peer_seed * 1_000_003 + round_id) % 2**31
        if data_attack == "label-flip":
            names = sorted({e.label for e in examples})
            examples = attacks.label_flip(examples, labels=names, seed=seed)  # type: ignore[arg-type]
        elif data_attack == "backdoor":
            examples = attacks.backdoor(examples, trigger=BACKDOOR_TRIGGER, target=0, seed=seed)  # type: ignore[arg-type]
        cfg = TrainConfig(
            steps=self.conf.local_steps,
            batch_size=self.conf.batch_size,
            learning_rate=self.conf.learning_rate,
            lora=self.spec,
            scheme=AGGREGATION_SCHEME,
            task=TaskConfig(max_text_tokens=self.conf.max_tokens),
            seed=seed,
            threads=self.conf.threads,
            checkpointing=self.conf.checkpointing,
            progress=self.conf.progress,
        )
        state = train_update(self.base, start, examples, cfg)
        if update_attack is not None:
            state = _attacked(update_attack, start, state, seed)
        return adapters.to_files(state), len(self.train_examples)

    # -- evaluation ---------------------------------------------------------------------------

    def _metrics(self, state: AdapterState, *, accuracy: bool = False) -> Metrics:
        """Loss on this peer's validation slice, from the true label alone (what the vote rule
        reads); with `accuracy` also the accuracy, which scores all 40 labels (a longer pass,
        so only the base's is measured, when `base_accuracy` is on: the explorer charts it)."""
        task = TaskConfig(max_text_tokens=self.conf.max_tokens)
        loss = mean_loss(self.base, state, self.validation, max_examples=self.conf.eval_examples, task=task)
        if not accuracy:
            return Metrics(loss=loss)
        result = evaluate(self.base, state, self.validation, max_examples=self.conf.eval_examples, task=task)
        # The loss stays the one-label pass's, as every candidate's is: a resubmitted base must
        # measure exactly the base loss (the vote rule's free-rider check compares bits).
        return Metrics(loss=loss, accuracy=result.accuracy)

    def vote_file(
        self,
        round_id: int,
        voter: str,
        base_files: dict[str, bytes],
        candidates: list[tuple[Submission, dict[str, bytes] | None, str]],
        *,
        all_peers: list[str],
        attack: str | None,
        against_median: bool = True,
        own_files: dict[str, bytes] | None = None,
    ) -> bytes:
        """Evaluate each candidate update on this peer's validation slice and vote with the
        protocol's rule (`bcfl.trust.votes.vote_values`: against the base and half this voter's
        typical improvement, or the base alone when `against_median` is off: a server-mode
        aggregator sees every update, and half of them are below any median).
        An update that cannot be loaded, or whose change is oversized against this voter's own
        update (`own_files`) or, without one, against the candidates' median
        (`bcfl.trust.votes.oversized`), gets 0 without being evaluated."""
        base_state = adapters.from_files(base_files, self.base, expect=self.spec)
        base_metrics = self._metrics(base_state, accuracy=self.conf.base_accuracy)
        states: list[AdapterState | None] = []
        problems: list[str] = []
        for _, files, problem in candidates:
            state = None
            if files is not None:
                try:
                    state = adapters.from_files(files, self.base, expect=self.spec)
                    problem = incompatibility(base_state, state, AGGREGATION_SCHEME) or ""
                except BcflError as exc:
                    problem = str(exc)
            states.append(None if problem else state)
            problems.append(problem)
        norms = [math.inf if st is None else change_norm(base_state, st) for st in states]
        own = None
        if own_files is not None:
            own = change_norm(base_state, adapters.from_files(own_files, self.base, expect=self.spec))
        for i, too_large in enumerate(oversized(norms, own)):
            if too_large and not problems[i]:
                reference = "this peer's own update" if own is not None else "the candidates' median"
                problems[i] = f"its change has norm {norms[i]:.4g}, over {MAX_NORM_RATIO:g}x {reference}'s"
        measured: list[Metrics] = []
        for (sub, _, _), state, problem in zip(candidates, states, problems, strict=True):
            if problem:
                log.warning("round %d: update of %s gets vote 0: %s", round_id, sub.peer, problem)
            measured.append(Metrics(loss=math.inf) if problem or state is None else self._metrics(state))
        values = vote_values(base_metrics.loss, [m.loss for m in measured], against_median=against_median)
        votes = [
            Vote(peer=sub.peer, cid=sub.cid, value=value, metrics=metrics)
            for (sub, _, _), value, metrics in zip(candidates, values, measured, strict=True)
        ]
        examples = min(self.conf.eval_examples, len(self.validation))
        document = VoteFile(
            round=round_id, voter=voter, base=base_metrics, votes=tuple(votes), examples=examples
        )
        return encode_votes(document)


def _attacked(name: str, start: AdapterState, trained: AdapterState, seed: int) -> AdapterState:
    """Apply an update attack to the delta of the factors the protocol trains (B under "ffa";
    an update with a changed frozen A is simply invalid), and rebuild the adapter."""
    attacked = [k for k in trained.tensors if AGGREGATION_SCHEME != "ffa" or ".lora_A." not in k]
    delta = {k: (trained.tensors[k] - start.tensors[k]).numpy() for k in attacked}
    poisoned = attacks.attack_update(name, delta, seed=seed)
    tensors = dict(trained.tensors)
    for k in attacked:
        tensors[k] = start.tensors[k] + torch.as_tensor(poisoned[k], dtype=torch.float32)
    return trained.replace(tensors)
