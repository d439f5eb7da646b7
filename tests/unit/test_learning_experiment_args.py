"""The learning experiment refuses unknown methods and a round count that does not split the
shared step budget, before loading any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.experiments import learning


def test_unknown_methods_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\]"):
        learning.run(tmp_path, quick=True, methods=["ffa", "nope"])


def test_rounds_must_split_the_same_total_steps(tmp_path: Path) -> None:
    total = learning.QUICK.total_steps  # 10 peers x 8 rounds x 5 steps
    assert total % (learning.QUICK.peers * 3)
    with pytest.raises(ValueError, match=f"{total} steps over 10 peers do not split into 3 rounds"):
        learning.run(tmp_path, quick=True, methods=["ffa"], rounds=3)


def test_redraw_folds_each_round_into_the_weights_and_spans_more_than_one_rank() -> None:
    """ "redraw": every round's exact aggregate goes into the dense change, the adapter left
    after the last round changes nothing, and two rounds' changes span twice the rank."""
    from dataclasses import replace

    import torch

    from bcfl.learning.adapter import init_adapter, key_a, key_b
    from bcfl.learning.data import SplitConfig, load_splits
    from bcfl.learning.model import load_base
    from bcfl.learning.partition import PartitionConfig, partition

    torch.set_num_threads(1)
    base = load_base("tiny")
    setup = replace(learning.QUICK, peers=2, rounds=2, local_steps=1, round_eval_examples=0, lora_rank=2)
    train_split = load_splits(SplitConfig(seed=0)).train[:60]
    shards = partition(train_split, PartitionConfig(peers=2, scheme="iid", seed=0))
    run = learning.federated(base, shards, [], setup, "redraw", seed=0)

    module = run.state.modules()[0]
    assert not run.state.tensors[key_b(module)].any(), "the adapter left over must change nothing"
    second_a = init_adapter(base, setup.lora, seed=2).tensors[key_a(module)]
    assert torch.equal(run.state.tensors[key_a(module)], second_a)
    assert set(run.residual) == set(run.state.modules())
    change = run.residual[module]
    assert torch.linalg.matrix_rank(change).item() == 2 * setup.lora_rank
    one_round = learning.federated(base, shards, [], replace(setup, rounds=1), "redraw", seed=0)
    assert torch.linalg.matrix_rank(one_round.residual[module]).item() == setup.lora_rank
