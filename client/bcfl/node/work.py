"""The computation a peer does for the protocol: train, evaluate and vote, score and aggregate.

`PeerWork` implements the loop's `RoundWork` over the learning, trust and storage packages.
Everything it reads from other peers is fetched by CID and verified against the on-chain digest;
a bad update is voted down (and so excluded), never allowed to crash the peer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcfl.chain.federation import Federation, ModelRef, ResultMode, Submission, VoteCommit
from bcfl.chain.merkle import ScoreLeaf
from bcfl.errors import BcflError
from bcfl.node.config import NodeConfig
from bcfl.node.journal import PendingUpdate
from bcfl.node.loop import Outcome
from bcfl.node.timing import TIMINGS_FILE, PhaseRecorder, TimedStorage
from bcfl.outcome import (
    RoundDecision,
    adapter_state,
    aggregate_files,
    assignment_seed,
    decide_round,
    fetch_votes,
    rebased_update,
    votes_per_peer,
)
from bcfl.storage.adapter_pack import fetch_adapter, json_digest, store_adapter
from bcfl.storage.base import Storage, open_storage
from bcfl.trust.assignment import assign_evaluations

if TYPE_CHECKING:
    from bcfl.network.peer_storage import ObjectServer

log = logging.getLogger("bcfl.node")


def open_storage_spec(spec: str, data_dir: Path) -> Storage:
    """`embedded` (in data_dir), `embedded:PATH` (a shared blockstore folder) or a Kubo RPC URL;
    `p2p` opens the peer's own blockstore in data_dir (the peer layer: `open_node_storage`)."""
    if spec.startswith("embedded:"):
        return open_storage("embedded", Path(spec.split(":", 1)[1]))
    if spec == "p2p":
        return open_storage("embedded", data_dir)
    return open_storage(spec, data_dir)


def open_node_storage(
    conf: NodeConfig, *, address: str, fed: Federation
) -> tuple[Storage, ObjectServer | None]:
    """The node's storage, and the object server to stop when it ends (None unless `p2p`)."""
    store = open_storage_spec(conf.storage, conf.data_dir)
    if conf.storage != "p2p":
        return store, None
    from bcfl.node.p2p import start_p2p_storage

    assert conf.peers_file is not None  # NodeConfig checks it
    return start_p2p_storage(store, conf.peers_file, address=address, fed=fed, listen=conf.listen)


@dataclass
class PeerWork:
    """The work, with each part timed on `timer`: fetching and verifying adapters and pinning
    them count as storage, the learner's training and evaluation as training and evaluation,
    deciding the round and aggregating as scoring (their own storage and chain calls aside)."""

    conf: NodeConfig
    address: str
    fed: Federation
    storage: Storage
    learner: Any  # bcfl.node.learner.Learner
    timer: PhaseRecorder = field(default_factory=PhaseRecorder)

    _decisions: dict[int, RoundDecision] | None = None

    def _cache(self) -> dict[int, RoundDecision]:
        if self._decisions is None:
            self._decisions = {}
        return self._decisions

    # -- training -----------------------------------------------------------------------------

    def train(self, base: ModelRef, trained_from: int) -> PendingUpdate:
        with self.timer.phase("storage"):
            base_files = fetch_adapter(self.storage, base.cid, digest=base.digest)
        with self.timer.phase("training"):
            files, samples = self.learner.train(base_files, round_id=trained_from, attack=self.conf.attack)
        with self.timer.phase("storage"):
            cid, digest = store_adapter(self.storage, files)
        return PendingUpdate(trained_from=trained_from, cid=cid, digest=digest.hex(), samples=samples)

    # -- voting -------------------------------------------------------------------------------

    def votes(self, round_id: int, base: ModelRef, submissions: list[Submission]) -> ModelRef:
        """Evaluate this peer's assigned updates (seeded by the round's public data) into a vote file."""
        info = self.fed.round(round_id)
        seed = assignment_seed(self.fed.address, round_id, info.closed_at)
        peers = [s.peer for s in submissions]
        server = self.fed.config().result_mode is ResultMode.SERVER
        k = votes_per_peer(len(peers), server=server)
        assigned = set(assign_evaluations(seed, self.address, peers, k))
        targets = [s for s in submissions if s.peer in assigned]
        candidates: list[tuple[Submission, dict[str, bytes] | None, str]] = []
        own = next((s for s in submissions if s.peer.lower() == self.address.lower()), None)
        with self.timer.phase("storage"):
            base_files = fetch_adapter(self.storage, base.cid, digest=base.digest)
            # The size reference for the oversized-update check: this peer's own change from this
            # base (a late own update, trained from an older base, is no reference).
            own_files = None
            if own is not None and own.trained_from == round_id:
                own_files = fetch_adapter(self.storage, own.cid, digest=own.digest)
            base_state = None
            for sub in targets:
                try:
                    if sub.trained_from == round_id:
                        files = fetch_adapter(self.storage, sub.cid, digest=sub.digest)
                    else:  # judged as it would be aggregated: its change applied to this base
                        from bcfl.learning.adapter import to_files

                        base_state = base_state or adapter_state(base_files, f"base {base.cid}")
                        late = rebased_update(
                            self.storage, sub, base_state, round_id, self.fed.base_model, timeout=30.0
                        )
                        files = to_files(late)
                    candidates.append((sub, files, ""))
                except BcflError as exc:
                    # Unverifiable or malformed: voted 0 with the reason, never evaluated.
                    log.warning("update of %s in round %d rejected: %s", sub.peer, round_id, exc)
                    candidates.append((sub, None, str(exc)))
        with self.timer.phase("evaluation"):
            data = self.learner.vote_file(
                round_id,
                self.address,
                base_files,
                candidates,
                all_peers=peers,
                attack=self.conf.attack,
                against_median=not server,
                own_files=own_files,
            )
        with self.timer.phase("storage"):
            cid = self.storage.put(data)
            self.storage.pin(cid)
        return ModelRef(cid, json_digest(data))

    # -- results ------------------------------------------------------------------------------

    def decision(
        self, round_id: int, submissions: list[Submission], commits: list[VoteCommit]
    ) -> RoundDecision:
        cached = self._cache().get(round_id)
        if cached is None:
            with self.timer.phase("scoring"):
                cached = decide_round(self.fed, round_id, submissions, fetch_votes(self.storage, commits))
            self._cache()[round_id] = cached
        return cached

    def outcome(
        self, round_id: int, base: ModelRef, submissions: list[Submission], commits: list[VoteCommit]
    ) -> Outcome:
        decision = self.decision(round_id, submissions, commits)
        for peer, reason in decision.excluded.items():
            log.info("round %d excludes %s: %s", round_id, peer, reason)
        with self.timer.phase("scoring"):
            files = aggregate_files(
                self.storage,
                base,
                round_id,
                decision,
                base_of=self.fed.base_model,
                server_lr=self.fed.config().server_learning_rate,
            )
        with self.timer.phase("storage"):
            cid, digest = store_adapter(self.storage, files)
        return Outcome(
            leaves=decision.leaves,
            scores_root=decision.scores_root,
            included_hash=decision.included_hash,
            aggregate=ModelRef(cid, digest),
        )

    def leaves_of(self, round_id: int) -> list[ScoreLeaf]:
        return self.decision(round_id, self.fed.submissions(round_id), self.fed.vote_commits(round_id)).leaves

    def score_of(self, round_id: int, peer: str) -> ScoreLeaf | None:
        return next((x for x in self.leaves_of(round_id) if x.peer.lower() == peer.lower()), None)


def build_work(
    conf: NodeConfig,
    *,
    address: str,
    fed: Federation,
    timer: PhaseRecorder | None = None,
    storage: Storage | None = None,
) -> PeerWork:
    """The work of one peer: its storage (`storage`, else opened from the config; timed on
    `timer`), model and data shard."""
    from bcfl.node.learner import Learner

    timer = timer or PhaseRecorder(conf.data_dir / TIMINGS_FILE)
    storage = TimedStorage(storage or open_storage_spec(conf.storage, conf.data_dir), timer)
    try:
        learner = Learner.from_config(conf, address=address)
    except OSError as exc:  # a missing or unreadable model or data file: name it, no traceback
        raise BcflError(
            f"cannot load model {conf.model!r} or the data for peer {conf.peer_index}: {exc}"
        ) from exc
    return PeerWork(conf=conf, address=address, fed=fed, storage=storage, learner=learner, timer=timer)


def publish_genesis(model: str, storage_spec: str, data_dir: Path, *, lora_rank: int = 8) -> ModelRef:
    """Create the genesis adapter for `model`, store it, and return its CID and digest."""
    from bcfl.node.learner import genesis_files

    storage = open_storage_spec(storage_spec, data_dir)
    cid, digest = store_adapter(storage, genesis_files(model, lora_rank=lora_rank))
    return ModelRef(cid, digest)
