"""Partitions of the training split among peers."""

from __future__ import annotations

from collections import Counter

import pytest

from bcfl.learning.data import Example, label_names, load_splits
from bcfl.learning.partition import PartitionConfig, PartitionError, partition, summary_table

TRAIN = load_splits().train


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "label"])
@pytest.mark.parametrize("peers", [1, 3, 10, 40])
def test_every_example_goes_to_exactly_one_peer_and_no_shard_is_empty(scheme: str, peers: int) -> None:
    shards = partition(TRAIN, PartitionConfig(peers=peers, scheme=scheme, alpha=0.1))  # type: ignore[arg-type]
    assert [s.peer for s in shards] == list(range(peers))
    texts = [e.text for s in shards for e in (*s.train, *s.validation)]
    assert sorted(texts) == sorted(e.text for e in TRAIN)
    assert all(s.train and s.validation for s in shards)


def test_partition_is_seeded_and_input_order_free() -> None:
    config = PartitionConfig(peers=10, scheme="dirichlet", alpha=0.5, seed=3)
    a = partition(TRAIN, config)
    b = partition(list(reversed(TRAIN)), config)
    assert a == b
    c = partition(TRAIN, PartitionConfig(peers=10, scheme="dirichlet", alpha=0.5, seed=4))
    assert a != c


def _labels_per_peer(scheme: str, alpha: float = 0.5) -> float:
    shards = partition(TRAIN, PartitionConfig(peers=10, scheme=scheme, alpha=alpha))  # type: ignore[arg-type]
    return sum(len({e.label for e in (*s.train, *s.validation)}) for s in shards) / len(shards)


def test_non_iid_schemes_are_skewed() -> None:
    iid, dirichlet, by_label = (
        _labels_per_peer("iid"),
        _labels_per_peer("dirichlet"),
        _labels_per_peer("label"),
    )
    assert by_label < dirichlet < iid
    assert by_label <= 6


def test_iid_shards_have_equal_sizes() -> None:
    sizes = Counter(s.size for s in partition(TRAIN, PartitionConfig(peers=7, scheme="iid")))
    assert max(sizes) - min(sizes) <= 1


def test_too_few_examples_is_a_clear_error() -> None:
    few = [Example(f"t{i}", 0, frozenset({0})) for i in range(5)]
    with pytest.raises(PartitionError, match="5 examples cannot give 3 peers"):
        partition(few, PartitionConfig(peers=3))


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="alpha"):
        PartitionConfig(peers=2, alpha=0)
    with pytest.raises(ValueError, match="unknown partition scheme"):
        PartitionConfig(peers=2, scheme="zipf")  # type: ignore[arg-type]


def test_summary_table_lists_every_peer() -> None:
    shards = partition(TRAIN, PartitionConfig(peers=4, scheme="label"))
    table = summary_table(shards, label_names())
    lines = table.strip().splitlines()
    assert lines[0].startswith("| peer | train | validation | labels | most common label |")
    assert len(lines) == 2 + 4
    # Sorted by label, peer 0 holds the first labels and the last peer the last ones.
    assert any(f"| {name} (" in lines[2] for name in label_names()[:12])
    assert any(f"| {name} (" in lines[-1] for name in label_names()[28:])
