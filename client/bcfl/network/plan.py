"""What must be disseminated, and a plan for doing it (pure data, no I/O).

A `Problem`: objects, each of `size` bytes held at first by one `source`; every node in
`receivers` must end up holding every object. A `Plan`: the objects split into chunks and an
ordered list of `Transfer`s (sender, receiver, object, chunk). The list order is causal: a
transfer's sender is a source of the chunk or receives it in an earlier transfer. Each sender
works through its own transfers in list order, at most `slots(node)` at once, starting the first
one whose chunk it already holds; a transfer whose receiver already holds (or is being sent) the
chunk is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bcfl.errors import BcflError

ChunkKey = tuple[str, int]


class PlanError(BcflError):
    """A dissemination problem or plan that is inconsistent."""


@dataclass(frozen=True)
class ObjectSpec:
    source: int
    size: int

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise PlanError(f"object at source {self.source} has size {self.size}; it must be positive")


@dataclass(frozen=True)
class Problem:
    """Every receiver must hold every object."""

    objects: Mapping[str, ObjectSpec]
    receivers: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.objects:
            raise PlanError("a dissemination problem needs at least one object")
        if len(set(self.receivers)) != len(self.receivers):
            raise PlanError(f"receivers repeat: {self.receivers}")

    def needs(self, node: int) -> list[str]:
        """Objects `node` must receive (those it is not the source of)."""
        return [o for o, spec in self.objects.items() if spec.source != node]


def broadcast(source: int, size: int, receivers: tuple[int, ...], name: str = "aggregate") -> Problem:
    """One object (a round's aggregate) from one peer to all."""
    return Problem({name: ObjectSpec(source, size)}, receivers)


def allgather(peers: tuple[int, ...], size: int) -> Problem:
    """Each peer's update to every other peer."""
    return Problem({f"update-{p}": ObjectSpec(p, size) for p in peers}, peers)


@dataclass(frozen=True)
class Transfer:
    src: int
    dst: int
    obj: str
    chunk: int

    @property
    def key(self) -> ChunkKey:
        return (self.obj, self.chunk)


@dataclass(frozen=True)
class Plan:
    strategy: str
    problem: Problem
    chunks: Mapping[str, int]  # object -> number of equal chunks (the last may be shorter)
    transfers: tuple[Transfer, ...]
    default_slots: int = 1
    upload_slots: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj, k in self.chunks.items():
            if obj not in self.problem.objects:
                raise PlanError(f"plan chunks unknown object {obj!r}")
            if not 1 <= k <= self.problem.objects[obj].size:
                raise PlanError(
                    f"object {obj!r} of {self.problem.objects[obj].size} bytes cut into {k} chunks"
                )
        if self.default_slots < 1 or any(s < 1 for s in self.upload_slots.values()):
            raise PlanError(f"upload slots must be >= 1 in plan {self.strategy!r}")

    def slots(self, node: int) -> int:
        return self.upload_slots.get(node, self.default_slots)

    def chunk_count(self, obj: str) -> int:
        return self.chunks.get(obj, 1)

    def chunk_size(self, obj: str, index: int) -> int:
        size, k = self.problem.objects[obj].size, self.chunk_count(obj)
        base = -(-size // k)
        return max(0, min(base, size - index * base))

    def chunk_keys(self, obj: str) -> list[ChunkKey]:
        return [(obj, i) for i in range(self.chunk_count(obj))]

    def validate(self) -> None:
        """Causal order holds and every receiver gets every chunk it needs; raises PlanError."""
        holds: dict[int, set[ChunkKey]] = {}
        for obj, spec in self.problem.objects.items():
            holds.setdefault(spec.source, set()).update(self.chunk_keys(obj))
        for i, t in enumerate(self.transfers):
            if t.obj not in self.problem.objects or not 0 <= t.chunk < self.chunk_count(t.obj):
                raise PlanError(f"transfer {i} names unknown chunk {t.obj!r}#{t.chunk}")
            if t.key not in holds.get(t.src, set()):
                raise PlanError(f"transfer {i}: node {t.src} sends {t.obj!r}#{t.chunk} before holding it")
            holds.setdefault(t.dst, set()).add(t.key)
        for r in self.problem.receivers:
            for obj in self.problem.needs(r):
                missing = set(self.chunk_keys(obj)) - holds.get(r, set())
                if missing:
                    raise PlanError(
                        f"plan {self.strategy!r} never delivers {len(missing)} chunks of {obj!r} to {r}"
                    )

    def to_json(self) -> str:
        return json.dumps(plan_to_dict(self), sort_keys=True)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "strategy": plan.strategy,
        "objects": {o: [s.source, s.size] for o, s in plan.problem.objects.items()},
        "receivers": list(plan.problem.receivers),
        "chunks": dict(plan.chunks),
        "transfers": [[t.src, t.dst, t.obj, t.chunk] for t in plan.transfers],
        "default_slots": plan.default_slots,
        "upload_slots": {str(k): v for k, v in plan.upload_slots.items()},
    }


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    try:
        problem = Problem(
            {o: ObjectSpec(int(s), int(z)) for o, (s, z) in data["objects"].items()},
            tuple(int(r) for r in data["receivers"]),
        )
        return Plan(
            str(data["strategy"]),
            problem,
            {str(o): int(k) for o, k in data["chunks"].items()},
            tuple(Transfer(int(a), int(b), str(o), int(c)) for a, b, o, c in data["transfers"]),
            int(data.get("default_slots", 1)),
            {int(k): int(v) for k, v in data.get("upload_slots", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"plan record does not parse: {exc}") from exc
