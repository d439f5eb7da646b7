"""The node's local journal: what it trained, pinned and sent, per round, in its data folder.

Written atomically after every step, so a node killed at any point restarts knowing which
update it already pinned (and re-uses it instead of training again) and never double-submits:
the chain is the authority on what was sent, the journal on what exists locally.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bcfl.errors import BcflError


class NodeLockedError(BcflError):
    """Another node process already uses this data folder."""


@dataclass
class PendingUpdate:
    """An update trained and pinned, not yet known to be on-chain."""

    trained_from: int
    cid: str
    digest: str  # hex
    samples: int


@dataclass
class Journal:
    pending: PendingUpdate | None = None
    submitted_rounds: list[int] = field(default_factory=list)
    rounds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def note(self, round_id: int, **values: Any) -> None:
        self.rounds.setdefault(str(round_id), {}).update(values)


def load_journal(data_dir: Path) -> Journal:
    path = data_dir / "journal.json"
    if not path.exists():
        return Journal()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BcflError(f"node journal {path} is unreadable: {exc}") from exc
    pending = PendingUpdate(**raw["pending"]) if raw.get("pending") else None
    return Journal(
        pending=pending, submitted_rounds=raw.get("submitted_rounds", []), rounds=raw.get("rounds", {})
    )


def save_journal(data_dir: Path, journal: Journal) -> None:
    path = data_dir / "journal.json"
    tmp = path.with_suffix(".tmp")
    data = {
        "pending": asdict(journal.pending) if journal.pending else None,
        "submitted_rounds": journal.submitted_rounds,
        "rounds": journal.rounds,
    }
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class DataDirLock:
    """An exclusive lock on the data folder for the life of the node (released by the OS on death)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "node.lock"
        self._fh: IO[str] | None = None

    def __enter__(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise NodeLockedError(
                f"data folder {self.path.parent} is in use by {holder}; one node per key and data folder"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
