"""What the explorer adds from storage: vote files (accuracy per round) and the audit verdict.

Both run in one background thread, outside the index lock, so a slow or missing CID never holds
up a page: the page shows "not fetched" until the answer arrives, and then either the data or the
error naming the CID. A failed fetch is retried after `retry_after` seconds (a daemon may come
back). The audit is `bcfl.audit.checks.audit_round`, run once per round when the round is over;
when that module is absent or no storage is configured, the verdict says so.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from bcfl.chain.federation import Federation
from bcfl.errors import BcflError
from bcfl.explorer.index import AuditVerdict, ChainIndex, VoteFileInfo
from bcfl.storage.base import Storage, check_digest, sha256

AuditFn = Callable[..., Any]


def load_audit() -> tuple[AuditFn | None, str]:
    """The audit entry point, or None with the reason it cannot be used."""
    # Audit hook: `bcfl.audit.checks.audit_round(fed, storage, round_id, timeout=...)` returns a
    # RoundAudit whose `.checks` each carry `.check`, `.ok` (True/False/None) and `.detail`.
    try:
        from bcfl.audit.checks import audit_round
    except Exception as exc:  # not built yet, or a dependency of it missing
        return None, f"audit not available ({type(exc).__name__}: {exc})"
    return audit_round, ""


def parse_vote_file(data: bytes, where: str) -> VoteFileInfo:
    """The metrics the explorer shows from a vote file (see bcfl.trust.votes for the format).

    Tolerant on purpose: the explorer shows what a file says; judging it is the audit's job.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BcflError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("votes"), list):
        raise BcflError(f"{where} is not a vote file (no 'votes' list)")
    base: dict[str, Any] = doc["base"] if isinstance(doc.get("base"), dict) else {}
    info = VoteFileInfo(
        status="ok", base_accuracy=_num(base.get("accuracy")), base_loss=_num(base.get("loss"))
    )
    for item in doc["votes"]:
        if isinstance(item, dict) and isinstance(item.get("peer"), str):
            info.votes[item["peer"]] = {
                "value": _num(item.get("value")),
                "accuracy": _num(item.get("accuracy")),
                "loss": _num(item.get("loss")),
            }
    return info


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class Enricher:
    """Fetches vote files and runs audits for the rounds in `index` (a daemon thread)."""

    def __init__(
        self,
        index: ChainIndex,
        storage: Storage | None,
        *,
        timeout: float = 10.0,
        retry_after: float = 60.0,
        poll_interval: float = 1.0,
        audit: bool = True,
    ) -> None:
        self.index = index
        self.storage = storage
        self.timeout = timeout
        self.retry_after = retry_after
        self.poll_interval = poll_interval
        self.audit_enabled = audit
        self.federation: Federation | None = None
        self._audit_fn: AuditFn | None = None
        self._audit_missing = ""
        self._failed_at: dict[tuple[int, str], float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def set_federation(self, fed: Federation) -> None:
        self.federation = fed
        self._wake.set()

    def start(self) -> None:
        self._audit_fn, self._audit_missing = load_audit() if self.audit_enabled else (None, "audit disabled")
        self._thread = threading.Thread(target=self._run, name="explorer-enricher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # keep going; the index shows per-item errors
                self.index.set_error(f"reading storage failed: {type(exc).__name__}: {exc}")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # -- one pass -----------------------------------------------------------------------------

    def step(self) -> None:
        self.fetch_votes()
        self.run_audits()

    def _pending_votes(self) -> list[tuple[int, str, str, str]]:
        now = time.monotonic()
        with self.index.lock:
            pending = []
            for r in self.index.rounds.values():
                for v in r.votes:
                    key = (r.round, v.voter)
                    info = self.index.vote_files.get(key)
                    failed = self._failed_at.get(key)
                    if info is None or (
                        info.status != "ok" and failed is not None and now - failed > self.retry_after
                    ):
                        pending.append((r.round, v.voter, v.cid, v.digest))
            return pending

    def fetch_votes(self) -> int:
        if self.storage is None:
            return 0
        done = 0
        for round_id, voter, cid, digest in self._pending_votes():
            if self._stop.is_set():
                break
            where = f"vote file {cid} of {voter} for round {round_id}"
            try:
                data = self.storage.get(cid, max_bytes=1 << 20, timeout=self.timeout)
                check_digest(sha256(data), bytes.fromhex(digest[2:]), where)
                info = parse_vote_file(data, where)
                self._failed_at.pop((round_id, voter), None)
            except BcflError as exc:
                info = VoteFileInfo(status=f"{where} cannot be used: {exc}")
                self._failed_at[(round_id, voter)] = time.monotonic()
            self.index.set_vote_file(round_id, voter, info)
            done += 1
        return done

    def run_audits(self) -> int:
        with self.index.lock:
            due = [
                r.round
                for r in sorted(self.index.rounds.values(), key=lambda r: r.round)
                if r.status in ("finalised", "expired") and r.round not in self.index.audits
            ]
        done = 0
        for round_id in due:
            if self._stop.is_set():
                break
            self.index.set_audit(round_id, self.audit(round_id))
            done += 1
        return done

    def audit(self, round_id: int) -> AuditVerdict:
        if self._audit_fn is None:
            return AuditVerdict("unavailable", self._audit_missing, at=time.time())
        if self.storage is None:
            return AuditVerdict(
                "unavailable", "the audit needs a storage backend (--storage)", at=time.time()
            )
        if self.federation is None:
            return AuditVerdict("pending", "waiting for the chain", at=time.time())
        try:
            kwargs = (
                {"timeout": self.timeout} if "timeout" in inspect.signature(self._audit_fn).parameters else {}
            )
            result = self._audit_fn(self.federation, self.storage, round_id, **kwargs)
        except Exception as exc:
            what = str(exc) if isinstance(exc, BcflError) else f"{type(exc).__name__}: {exc}"
            return AuditVerdict(
                "error", f"the audit of round {round_id} could not run: {what}", at=time.time()
            )
        checks = [
            {"check": str(c.check), "ok": c.ok, "detail": str(getattr(c, "detail", ""))}
            for c in getattr(result, "checks", [])
        ]
        failed = [c for c in checks if c["ok"] is False]
        detail = f"{failed[0]['check']}: {failed[0]['detail']}" if failed else f"{len(checks)} checks passed"
        return AuditVerdict("fail" if failed else "ok", detail, checks, at=time.time())
