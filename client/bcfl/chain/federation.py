"""A typed facade over the FederationRegistry contract.

No I/O happens in the constructor. Reads return dataclasses; writes go through a `TxSender`
(and raise the contract's custom errors as exceptions); event queries are filtered by the
indexed round so that listing a round's activity never scans other rounds.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from bcfl.chain.build import load_artifact
from bcfl.chain.reverts import RevertDecoder, default_decoder, revert_data
from bcfl.chain.transactions import Receipt, TxSender
from bcfl.errors import BcflError

PPM = 1_000_000


class ClosingRule(enum.IntEnum):
    SYNCHRONOUS = 0
    ASYNCHRONOUS = 1


class ResultMode(enum.IntEnum):
    SERVERLESS = 0
    SERVER = 1


class RoundStatus(enum.IntEnum):
    NONE = 0
    OPEN = 1
    CLOSED = 2
    FINALISED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class FederationConfig:
    closing_rule: ClosingRule
    result_mode: ResultMode
    aggregator: str
    min_bond: int
    async_quorum: int
    max_staleness: int
    round_duration: int
    vote_duration: int
    result_duration: int
    quorum_bps: int
    reputation_weight_bps: int
    initial_reputation: int
    score_threshold: int
    server_learning_rate_ppm: int = PPM  # 1,000,000: the aggregate is the plain weighted mean

    @property
    def server_learning_rate(self) -> float:
        return self.server_learning_rate_ppm / PPM

    def as_tuple(self) -> tuple[Any, ...]:
        """The constructor's `Config` struct, in ABI order."""
        return (
            int(self.closing_rule),
            int(self.result_mode),
            self.aggregator,
            self.min_bond,
            self.async_quorum,
            self.max_staleness,
            self.round_duration,
            self.vote_duration,
            self.result_duration,
            self.quorum_bps,
            self.reputation_weight_bps,
            self.initial_reputation,
            self.score_threshold,
            self.server_learning_rate_ppm,
        )


@dataclass(frozen=True)
class ModelRef:
    cid: str
    digest: bytes


@dataclass(frozen=True)
class PeerInfo:
    address: str
    bond: int
    reputation: int
    last_submitted: int
    last_settled: int
    last_voted: int
    last_attested: int
    active: bool
    registered: bool


@dataclass(frozen=True)
class RoundInfo:
    round: int
    opened_at: int
    closed_at: int
    submissions: int
    votes: int
    base_round: int
    attestations: int
    status: RoundStatus
    submit_deadline: int
    voting_ends_at: int
    result_deadline: int


@dataclass(frozen=True)
class Submission:
    round: int
    peer: str
    cid: str
    digest: bytes
    samples: int
    trained_from: int
    reputation: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class VoteCommit:
    round: int
    voter: str
    cid: str
    digest: bytes
    reputation: int
    bond: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Attestation:
    round: int
    attester: str
    proposal: bytes
    scores_root: bytes
    included_hash: bytes
    aggregate: ModelRef
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Finalisation:
    round: int
    proposal: bytes
    scores_root: bytes
    included_hash: bytes
    aggregate: ModelRef
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Settlement:
    peer: str
    round: int
    score: int
    included: bool
    old_reputation: int
    new_reputation: int
    block_number: int


class FederationError(BcflError):
    """The federation contract could not be read."""


class Federation:
    """The contract at `address`; `sender` (optional) signs writes for one account."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        sender: TxSender | None = None,
        from_block: int = 0,
        abi: Sequence[dict[str, Any]] | None = None,
        decoder: RevertDecoder | None = None,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.abi = list(abi) if abi is not None else load_artifact()["abi"]
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.sender = sender
        self.from_block = from_block
        self.decoder = decoder or default_decoder()
        self._config: FederationConfig | None = None

    def with_sender(self, sender: TxSender) -> Federation:
        return Federation(
            self.w3,
            self.address,
            sender=sender,
            from_block=self.from_block,
            abi=self.abi,
            decoder=self.decoder,
        )

    # -- reads --------------------------------------------------------------------------------

    def _call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        try:
            return getattr(self.contract.functions, name)(*args).call(block_identifier=block)
        except Exception as exc:
            data = revert_data(exc)
            if data is not None:
                raise self.decoder.decode(data, name) from None
            raise FederationError(f"reading {name} from {self.address} failed: {exc}") from exc

    def config(self) -> FederationConfig:
        """The contract's configuration (immutable, so read once)."""
        if self._config is None:
            self._config = self._read_config()
        return self._config

    def _read_config(self) -> FederationConfig:
        f = self.contract.functions
        return FederationConfig(
            closing_rule=ClosingRule(f.closingRule().call()),
            result_mode=ResultMode(f.resultMode().call()),
            aggregator=f.aggregator().call(),
            min_bond=f.minBond().call(),
            async_quorum=f.asyncQuorum().call(),
            max_staleness=f.maxStaleness().call(),
            round_duration=f.roundDuration().call(),
            vote_duration=f.voteDuration().call(),
            result_duration=f.resultDuration().call(),
            quorum_bps=f.quorumBps().call(),
            reputation_weight_bps=f.reputationWeightBps().call(),
            initial_reputation=f.initialReputation().call(),
            score_threshold=f.scoreThreshold().call(),
            server_learning_rate_ppm=f.serverLearningRatePpm().call(),
        )

    def genesis(self) -> ModelRef:
        return ModelRef(cid=self._call("genesisCid"), digest=bytes(self._call("genesisDigest")))

    def current_round(self) -> int:
        return int(self._call("currentRound"))

    def active_peers(self) -> int:
        return int(self._call("activePeers"))

    def quorum(self) -> int:
        return int(self._call("quorum"))

    def total_bonded(self) -> int:
        return int(self._call("totalBonded"))

    def withdrawable(self, account: str) -> int:
        return int(self._call("withdrawable", Web3.to_checksum_address(account)))

    def peer(self, account: str, *, block: int | str = "latest") -> PeerInfo:
        raw = self._call("peerInfo", Web3.to_checksum_address(account), block=block)
        return PeerInfo(Web3.to_checksum_address(account), *[_plain(v) for v in raw])

    def peers(self, *, page_size: int = 200) -> list[str]:
        """Every peer ever joined, read page by page."""
        total = int(self._call("peerCount"))
        found: list[str] = []
        for start in range(0, total, page_size):
            found.extend(self._call("peerPage", start, page_size))
        return found

    def round(self, round_id: int) -> RoundInfo:
        raw = self._call("roundInfo", round_id)
        submit_deadline, voting_ends, result_deadline = self._call("roundDeadlines", round_id)
        return RoundInfo(
            round=round_id,
            opened_at=int(raw[0]),
            closed_at=int(raw[1]),
            submissions=int(raw[2]),
            votes=int(raw[3]),
            base_round=int(raw[4]),
            attestations=int(raw[5]),
            status=RoundStatus(int(raw[6])),
            submit_deadline=int(submit_deadline),
            voting_ends_at=int(voting_ends),
            result_deadline=int(result_deadline),
        )

    def voting_closed(self, round_id: int) -> bool:
        return bool(self._call("votingClosed", round_id))

    def scores_root(self, round_id: int) -> bytes:
        return bytes(self._call("scoresRootOf", round_id))

    def attestations_of(self, proposal: bytes) -> int:
        return int(self._call("attestationsOf", proposal))

    def leaf_hash(self, round_id: int, peer: str, score: int, included: bool) -> bytes:
        return bytes(self._call("leafHash", round_id, Web3.to_checksum_address(peer), score, included))

    # -- events -------------------------------------------------------------------------------

    def _logs(self, event: str, **filters: Any) -> list[Any]:
        ev = getattr(self.contract.events, event)
        try:
            logs = ev.get_logs(
                from_block=self.from_block, to_block="latest", argument_filters=filters or None
            )
        except Exception as exc:
            raise FederationError(f"reading {event} events from {self.address} failed: {exc}") from exc
        return sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))

    def submissions(self, round_id: int) -> list[Submission]:
        return [
            Submission(
                round=round_id,
                peer=e["args"]["peer"],
                cid=e["args"]["cid"],
                digest=bytes(e["args"]["digest"]),
                samples=int(e["args"]["samples"]),
                trained_from=int(e["args"]["trainedFrom"]),
                reputation=int(e["args"]["reputation"]),
                block_number=int(e["blockNumber"]),
                tx_hash=_hex(e["transactionHash"]),
                log_index=int(e["logIndex"]),
            )
            for e in self._logs("UpdateSubmitted", round=round_id)
        ]

    def vote_commits(self, round_id: int) -> list[VoteCommit]:
        return [
            VoteCommit(
                round=round_id,
                voter=e["args"]["voter"],
                cid=e["args"]["cid"],
                digest=bytes(e["args"]["digest"]),
                reputation=int(e["args"]["reputation"]),
                bond=int(e["args"]["bond"]),
                block_number=int(e["blockNumber"]),
                tx_hash=_hex(e["transactionHash"]),
            )
            for e in self._logs("VotesCommitted", round=round_id)
        ]

    def attestations(self, round_id: int) -> list[Attestation]:
        return [
            Attestation(
                round=round_id,
                attester=e["args"]["attester"],
                proposal=bytes(e["args"]["proposal"]),
                scores_root=bytes(e["args"]["scoresRoot"]),
                included_hash=bytes(e["args"]["includedHash"]),
                aggregate=ModelRef(e["args"]["aggregateCid"], bytes(e["args"]["aggregateDigest"])),
                block_number=int(e["blockNumber"]),
                tx_hash=_hex(e["transactionHash"]),
            )
            for e in self._logs("ResultAttested", round=round_id)
        ]

    def finalisation(self, round_id: int) -> Finalisation | None:
        """The round's agreed result: the finalising event plus the attested proposal's content."""
        found = self._logs("RoundFinalised", round=round_id)
        if not found:
            return None
        e = found[0]
        proposal = bytes(e["args"]["proposal"])
        attested = next((a for a in self.attestations(round_id) if a.proposal == proposal), None)
        if attested is None:
            raise FederationError(
                f"round {round_id} finalised proposal 0x{proposal.hex()} without its attestation"
            )
        return Finalisation(
            round=round_id,
            proposal=proposal,
            scores_root=attested.scores_root,
            included_hash=attested.included_hash,
            aggregate=attested.aggregate,
            block_number=int(e["blockNumber"]),
            tx_hash=_hex(e["transactionHash"]),
        )

    def settlements(self, peer: str | None = None) -> list[Settlement]:
        filters = {"peer": Web3.to_checksum_address(peer)} if peer else {}
        return [
            Settlement(
                peer=e["args"]["peer"],
                round=int(e["args"]["round"]),
                score=int(e["args"]["score"]),
                included=bool(e["args"]["included"]),
                old_reputation=int(e["args"]["oldReputation"]),
                new_reputation=int(e["args"]["newReputation"]),
                block_number=int(e["blockNumber"]),
            )
            for e in self._logs("ReputationSettled", **filters)
        ]

    def base_model(self, round_id: int) -> ModelRef:
        """The model round `round_id` trains from: the aggregate of its base round, or genesis."""
        base_round = self.round(round_id).base_round
        if base_round == 0:
            return self.genesis()
        final = self.finalisation(base_round)
        if final is None:
            raise FederationError(f"round {round_id} names base round {base_round}, which has no result")
        return final.aggregate

    # -- writes -------------------------------------------------------------------------------

    def _send(self, fn_name: str, *args: Any, value: int = 0) -> Receipt:
        if self.sender is None:
            raise FederationError(f"cannot call {fn_name}: this facade has no signing account")
        fn = getattr(self.contract.functions, fn_name)(*args)
        return self.sender.send(fn, value=value, context=fn_name)

    def join(self, bond: int) -> Receipt:
        return self._send("join", value=bond)

    def leave(self) -> Receipt:
        return self._send("leaveFederation")

    def withdraw(self) -> Receipt:
        return self._send("withdraw")

    def submit_update(
        self, round_id: int, cid: str, digest: bytes, samples: int, trained_from: int
    ) -> Receipt:
        return self._send("submitUpdate", round_id, cid, digest, samples, trained_from)

    def close_round(self, round_id: int) -> Receipt:
        return self._send("closeRound", round_id)

    def commit_votes(self, round_id: int, cid: str, digest: bytes) -> Receipt:
        return self._send("commitVotes", round_id, cid, digest)

    def attest_result(
        self, round_id: int, scores_root: bytes, included_hash: bytes, aggregate: ModelRef
    ) -> Receipt:
        return self._send(
            "attestResult", round_id, scores_root, included_hash, aggregate.cid, aggregate.digest
        )

    def post_result(
        self, round_id: int, scores_root: bytes, included_hash: bytes, aggregate: ModelRef
    ) -> Receipt:
        return self._send("postResult", round_id, scores_root, included_hash, aggregate.cid, aggregate.digest)

    def expire_round(self, round_id: int) -> Receipt:
        return self._send("expireRound", round_id)

    def settle(self, peer: str, round_id: int, score: int, included: bool, proof: Sequence[bytes]) -> Receipt:
        return self._send("settle", Web3.to_checksum_address(peer), round_id, score, included, list(proof))


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool) else int(value)


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()
