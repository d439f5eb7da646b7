"""Seeded partitions of a training split among N peers: IID, Dirichlet(alpha), by label.

Every peer gets a non-empty training shard and its own non-empty validation slice (cut from
its shard, so a peer validates on data like its own and nobody else's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bcfl.errors import BcflError
from bcfl.experiments.results import markdown_table
from bcfl.learning.data import Example

Scheme = Literal["iid", "dirichlet", "label"]
SCHEMES: tuple[Scheme, ...] = ("iid", "dirichlet", "label")


class PartitionError(BcflError):
    """A partition that cannot be made as asked."""


@dataclass(frozen=True)
class PartitionConfig:
    peers: int
    scheme: Scheme = "dirichlet"
    alpha: float = 0.5  # Dirichlet concentration: small is more skewed
    validation_fraction: float = 0.1  # of each peer's shard, at least one example
    seed: int = 0

    def __post_init__(self) -> None:
        if self.peers < 1:
            raise ValueError(f"peers must be >= 1, got {self.peers}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown partition scheme {self.scheme!r} (choose from {', '.join(SCHEMES)})")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")


@dataclass(frozen=True)
class Shard:
    peer: int
    train: tuple[Example, ...]
    validation: tuple[Example, ...]

    @property
    def size(self) -> int:
        return len(self.train) + len(self.validation)


def partition(examples: Sequence[Example], config: PartitionConfig) -> list[Shard]:
    """Shards for peers 0..N-1; the same examples and config always give the same shards."""
    if len(examples) < 2 * config.peers:
        raise PartitionError(
            f"{len(examples)} examples cannot give {config.peers} peers two each (train + validation)"
        )
    rng = np.random.default_rng(config.seed)
    ordered = sorted(examples, key=lambda e: e.text)  # independent of the input order
    if config.scheme == "iid":
        groups = _iid(len(ordered), config.peers, rng)
    elif config.scheme == "dirichlet":
        groups = _dirichlet(ordered, config.peers, config.alpha, rng)
    else:
        groups = _by_label(ordered, config.peers, rng)
    _fill_small(groups, minimum=2, rng=rng)
    shards = []
    for peer, indices in enumerate(groups):
        chosen = [ordered[i] for i in rng.permutation(sorted(indices))]
        n_val = max(1, round(len(chosen) * config.validation_fraction))
        shards.append(Shard(peer, tuple(chosen[n_val:]), tuple(chosen[:n_val])))
    return shards


def _iid(n: int, peers: int, rng: np.random.Generator) -> list[list[int]]:
    order = rng.permutation(n)
    return [sorted(int(i) for i in part) for part in np.array_split(order, peers)]


def _dirichlet(
    examples: Sequence[Example], peers: int, alpha: float, rng: np.random.Generator
) -> list[list[int]]:
    """Per class, shares across peers drawn from Dirichlet(alpha) (Hsu et al. 2019)."""
    groups: list[list[int]] = [[] for _ in range(peers)]
    labels = sorted({e.label for e in examples})
    for label in labels:
        members = [i for i, e in enumerate(examples) if e.label == label]
        members = [members[i] for i in rng.permutation(len(members))]
        shares = rng.dirichlet([alpha] * peers)
        cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
        for peer, part in enumerate(np.split(np.array(members, dtype=int), cuts)):
            groups[peer].extend(int(i) for i in part)
    return groups


def _by_label(examples: Sequence[Example], peers: int, rng: np.random.Generator) -> list[list[int]]:
    """Examples sorted by label (random within a label) cut into N equal runs: few labels each."""
    keys = rng.random(len(examples))
    order = sorted(range(len(examples)), key=lambda i: (examples[i].label, keys[i]))
    return [[int(i) for i in part] for part in np.array_split(np.array(order, dtype=int), peers)]


def _fill_small(groups: list[list[int]], minimum: int, rng: np.random.Generator) -> None:
    """Move random examples from the largest shards to any below `minimum` (non-IID draws can
    leave a peer empty); deterministic given the rng state."""
    for small in range(len(groups)):
        while len(groups[small]) < minimum:
            donor = max(range(len(groups)), key=lambda p: (len(groups[p]), -p))
            take = int(rng.integers(len(groups[donor])))
            groups[small].append(groups[donor].pop(take))


def summary_rows(shards: Sequence[Shard], label_names: Sequence[str]) -> list[list[object]]:
    """One row per peer: sizes, distinct labels, and its most common label with its share."""
    rows: list[list[object]] = []
    for shard in shards:
        counts = Counter(e.label for e in (*shard.train, *shard.validation))
        top, top_n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            [
                shard.peer,
                len(shard.train),
                len(shard.validation),
                len(counts),
                f"{label_names[top]} ({top_n / shard.size:.0%})",
            ]
        )
    return rows


SUMMARY_HEADER = ("peer", "train", "validation", "labels", "most common label")


def summary_table(shards: Sequence[Shard], label_names: Sequence[str]) -> str:
    """The partition as a markdown table."""
    return markdown_table(SUMMARY_HEADER, summary_rows(shards, label_names))
