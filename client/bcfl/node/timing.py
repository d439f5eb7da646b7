"""Where a peer's time goes, round by round: a recorder the loop, the work and the clients share.

The loop opens one *step* per pass (`with recorder.step() as step:`); inside it, the work marks
phases (`with recorder.phase("training"):`). Phases nest exclusively: time spent in an inner
phase (a storage fetch inside scoring) counts only to the inner one, and what a busy step spends
outside any phase counts as "other" (journal writes, bookkeeping). A step that found nothing to
do, and the pauses between steps, count as "waiting". So the phases of a round add up to the wall
time this node spent in it. Chain time is caught for every JSON-RPC request by a web3 middleware
(`time_chain`), storage time by a wrapper (`TimedStorage`), so no call site needs to remember.

The recorder writes `timings.json` in the node's data folder; `read_timings` and the pure
`split_of` / `summarise` turn it into the per-round split the demo and `bcfl bench round` print.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from web3 import Web3
from web3.middleware import Web3Middleware
from web3.middleware.base import Middleware
from web3.types import RPCEndpoint, RPCResponse

from bcfl.storage.base import DEFAULT_MAX_BYTES, Storage

# Busy phases (marked by the code that does the work), then the two derived ones.
WORK_PHASES = ("training", "evaluation", "scoring", "storage", "chain")
PHASES = (*WORK_PHASES, "other", "waiting")
# Protocol overhead: everything a peer spends beyond learning (training, evaluating updates)
# and beyond idling for others.
OVERHEAD_PHASES = ("storage", "chain", "scoring", "other")
TIMINGS_FILE = "timings.json"


@dataclass
class RoundTimes:
    """Seconds per phase, and the transactions this node sent, in one round."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    transactions: int = 0
    gas: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "transactions": self.transactions,
            "gas": self.gas,
        }


@dataclass
class Step:
    """One pass of the loop: which round it served and whether it did anything."""

    recorder: PhaseRecorder
    round: int | None = None
    idle: bool = False

    def serves(self, round_id: int) -> None:
        """This step works for `round_id`; a new round saves the finished ones at once, so a node
        stopped in the middle of its next (long) step has still left them on disk."""
        self.round = round_id
        if round_id != self.recorder.last_round:
            self.recorder.save()


class PhaseRecorder:
    """Per-round phase times for one node; `path` (if given) is rewritten as rounds progress."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.rounds: dict[int, RoundTimes] = {}
        self.startup_s: float | None = None
        self._created = clock()
        self.last_round = 0
        self._last_end: float | None = None
        # The open step's phase totals, and the stack of open phases (name, started, nested time).
        self._step: dict[str, float] | None = None
        self._step_tx: list[int] = []
        self._stack: list[list[Any]] = []

    # -- recording ----------------------------------------------------------------------------

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the enclosed time to `name`, minus any phase nested inside it."""
        if name not in WORK_PHASES:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(WORK_PHASES)}")
        frame: list[Any] = [name, self.clock(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent = self.clock() - frame[1]
            self._add(name, spent - frame[2])
            if self._stack:
                self._stack[-1][2] += spent

    def transaction(self, gas: int) -> None:
        """A transaction this node sent and saw mined, with the gas its receipt reports."""
        if self._step is not None:
            self._step_tx.append(gas)
        else:
            self._round(self.last_round).transactions += 1
            self._round(self.last_round).gas += gas

    @contextmanager
    def step(self) -> Iterator[Step]:
        """One pass of the loop; call `.serves(round)` once known, set `.idle` if nothing was done."""
        started = self.clock()
        if self._last_end is None:
            self.startup_s = started - self._created
        else:
            self._round(self.last_round).seconds["waiting"] += started - self._last_end
        self._step, self._step_tx = dict.fromkeys(WORK_PHASES, 0.0), []
        record = Step(self)
        try:
            yield record
        finally:
            ended = self.clock()
            spent, self._step = self._step, None
            round_id = self.last_round if record.round is None else record.round
            times = self._round(round_id)
            if record.idle:
                times.seconds["waiting"] += ended - started
            else:
                for name, seconds in spent.items():
                    times.seconds[name] += seconds
                times.seconds["other"] += max(0.0, (ended - started) - sum(spent.values()))
            times.transactions += len(self._step_tx)
            times.gas += sum(self._step_tx)
            moved = round_id != self.last_round
            self.last_round, self._last_end = round_id, ended
            if moved or not record.idle:
                self.save()

    def _add(self, name: str, seconds: float) -> None:
        if self._step is not None:
            self._step[name] += seconds
        else:  # outside the loop (start-up, tests calling the work directly)
            self._round(self.last_round).seconds[name] += seconds

    def _round(self, round_id: int) -> RoundTimes:
        return self.rounds.setdefault(round_id, RoundTimes())

    # -- persistence --------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "startup_s": None if self.startup_s is None else round(self.startup_s, 3),
            "rounds": {str(r): t.as_json() for r, t in sorted(self.rounds.items())},
        }

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_json(), indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)


def read_timings(data_dir: Path) -> dict[int, RoundTimes]:
    """A node's recorded rounds (empty if it recorded none, or the file is unreadable)."""
    try:
        raw = json.loads((data_dir / TIMINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[int, RoundTimes] = {}
    for key, entry in raw.get("rounds", {}).items():
        seconds = dict.fromkeys(PHASES, 0.0)
        seconds.update({k: float(v) for k, v in entry.get("seconds", {}).items() if k in seconds})
        out[int(key)] = RoundTimes(seconds, int(entry.get("transactions", 0)), int(entry.get("gas", 0)))
    return out


def read_startup(data_dir: Path) -> float | None:
    """Seconds from the node's start to its first step (imports, keystore, model, join)."""
    try:
        value = json.loads((data_dir / TIMINGS_FILE).read_text(encoding="utf-8")).get("startup_s")
    except (OSError, ValueError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


# -- pure summaries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One peer's round: seconds per phase, the round's total, and the overhead share."""

    seconds: Mapping[str, float]
    total: float
    overhead: float  # seconds in OVERHEAD_PHASES
    transactions: int
    gas: int

    @property
    def overhead_share(self) -> float:
        return self.overhead / self.total if self.total > 0 else 0.0


def split_of(times: RoundTimes) -> Split:
    total = sum(times.seconds.values())
    overhead = sum(times.seconds[k] for k in OVERHEAD_PHASES)
    return Split(dict(times.seconds), total, overhead, times.transactions, times.gas)


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    count: int

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.low:.2f}-{self.high:.2f})"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no values to summarise")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def summarise(splits: Sequence[Split]) -> dict[str, Spread]:
    """Median and range over peer-rounds of each phase, the total, the overhead and its share,
    transactions and gas."""
    if not splits:
        return {}
    out = {name: spread([s.seconds[name] for s in splits]) for name in PHASES}
    out["total"] = spread([s.total for s in splits])
    out["overhead"] = spread([s.overhead for s in splits])
    out["overhead_share"] = spread([s.overhead_share for s in splits])
    out["transactions"] = spread([float(s.transactions) for s in splits])
    out["gas"] = spread([float(s.gas) for s in splits])
    return out


# -- the clients' timing ----------------------------------------------------------------------


class _ChainTiming(Web3Middleware):
    recorder: PhaseRecorder

    def wrap_make_request(self, make_request: Any) -> Any:
        def timed(method: RPCEndpoint, params: Any) -> RPCResponse:
            with self.recorder.phase("chain"):
                return cast(RPCResponse, make_request(method, params))

        return timed


def time_chain(w3: Web3, recorder: PhaseRecorder) -> None:
    """Count every JSON-RPC request `w3` makes (reads, event queries, sends, receipt polls) as chain."""

    def build(w3_: Any) -> Web3Middleware:
        middleware = _ChainTiming(w3_)
        middleware.recorder = recorder
        return middleware

    w3.middleware_onion.add(cast(Middleware, build), name="bcfl-phase-timing")


class TimedStorage:
    """A `Storage` whose every call counts as storage time."""

    def __init__(self, inner: Storage, recorder: PhaseRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, data: bytes) -> str:
        with self.recorder.phase("storage"):
            return self.inner.put(data)

    def put_file(self, path: Path) -> str:
        with self.recorder.phase("storage"):
            return self.inner.put_file(path)

    def put_directory(self, files: Mapping[str, bytes]) -> str:
        with self.recorder.phase("storage"):
            return self.inner.put_directory(files)

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None) -> bytes:
        with self.recorder.phase("storage"):
            return self.inner.get(cid, max_bytes=max_bytes, timeout=timeout)

    def get_directory(
        self, cid: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float | None = None
    ) -> dict[str, bytes]:
        with self.recorder.phase("storage"):
            return self.inner.get_directory(cid, max_bytes=max_bytes, timeout=timeout)

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        with self.recorder.phase("storage"):
            self.inner.pin(cid, timeout=timeout)

    def has(self, cid: str) -> bool:
        with self.recorder.phase("storage"):
            return self.inner.has(cid)
