// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title FederationRegistry
/// @notice On-chain record of a federated fine-tuning run: who the peers are, what each round
/// trained on, which updates were submitted, which vote files were committed, and which result
/// the federation agreed on. Heavy data (adapters, vote files) lives in IPFS; the chain holds
/// content identifiers (in events) and commitments (in storage).
///
/// Round life cycle: Open (collect submissions) -> Closed (collect vote commitments, then
/// attest a result) -> Finalised | Expired. A round finalising or expiring opens the next one.
/// Round `r + 1` trains from the aggregate of the last finalised round (`baseRound`), or from
/// the genesis model when none has finalised yet.
///
/// Gas: every peer action touches a constant number of storage slots; nothing loops over peers
/// or rounds. Reputation is settled per peer against the finalised scores Merkle root.
contract FederationRegistry {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice How a round closes for submissions.
    enum ClosingRule {
        Synchronous, // every active peer submitted, or the deadline passed
        Asynchronous // `asyncQuorum` submissions arrived, or the deadline passed
    }

    /// @notice Who finalises a round's result.
    enum ResultMode {
        Serverless, // a quorum of peers attests the same proposal
        Server // one designated aggregator posts it
    }

    enum RoundStatus {
        None,
        Open,
        Closed,
        Finalised,
        Expired
    }

    /// @notice Deployment-time configuration; immutable for the life of the contract.
    struct Config {
        ClosingRule closingRule;
        ResultMode resultMode;
        address aggregator; // Server mode only; must be zero in Serverless mode
        uint96 minBond; // wei a peer locks on joining (may be zero)
        uint32 asyncQuorum; // K: submissions that close an asynchronous round
        uint32 maxStaleness; // rounds an asynchronous update may lag behind
        uint32 roundDuration; // seconds a round stays open for submissions
        uint32 voteDuration; // seconds after closing during which votes are accepted
        uint32 resultDuration; // seconds after voting during which a result may be posted
        uint16 quorumBps; // share of active peers whose attestations finalise a round
        uint16 reputationWeightBps; // weight of a round's score in the reputation average
        uint32 initialReputation; // reputation of a new peer, parts per million
        uint32 scoreThreshold; // gate threshold used off-chain, parts per million
        uint32 serverLearningRatePpm; // aggregate = base + rate x (mean - base), off-chain, ppm
    }

    /// @dev One storage slot per peer: every per-peer action reads and writes only this.
    struct Peer {
        uint80 bond;
        uint32 reputation; // parts per million
        uint32 lastSubmitted; // round of the latest submission (0: none)
        uint32 lastSettled; // round whose score was last folded into reputation
        uint32 lastVoted;
        uint32 lastAttested;
        bool active;
        bool registered; // ever joined (listed in {peerPage})
    }

    /// @dev One storage slot per round (plus the scores root once finalised).
    struct Round {
        uint48 openedAt;
        uint48 closedAt;
        uint32 submissions;
        uint32 votes;
        uint32 baseRound; // the finalised round whose aggregate this round trains from (0: genesis)
        uint32 attestations; // attestations of the leading proposal (informational)
        RoundStatus status;
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @dev The deployment configuration is inconsistent; `reason` names the field.
    error FederationInvalidConfig(string reason);
    /// @dev `account` is not an active peer.
    error FederationNotPeer(address account);
    /// @dev `account` is already an active peer.
    error FederationAlreadyPeer(address account);
    /// @dev The bond sent is below the minimum.
    error FederationBondTooLow(uint256 sent, uint256 required);
    /// @dev The bond does not fit the bond field.
    error FederationBondTooHigh(uint256 sent);
    /// @dev Nothing is waiting to be withdrawn by `account`.
    error FederationNothingToWithdraw(address account);
    /// @dev Sending the withdrawn bond to `account` failed.
    error FederationTransferFailed(address account, uint256 amount);
    /// @dev The action needs round `round` in status `expected`; it is in `actual`.
    error FederationWrongRoundStatus(uint256 round, RoundStatus expected, RoundStatus actual);
    /// @dev Submissions go to the current round only.
    error FederationNotCurrentRound(uint256 round, uint256 current);
    /// @dev `peer` already submitted in `round`.
    error FederationAlreadySubmitted(address peer, uint256 round);
    /// @dev The update was trained from `trainedFrom`, too far behind (or ahead of) `round`.
    error FederationUpdateTooStale(uint256 trainedFrom, uint256 round, uint256 maxStaleness);
    /// @dev An update must carry at least one training sample.
    error FederationZeroSamples();
    /// @dev A content identifier or digest is empty.
    error FederationEmptyContent();
    /// @dev `peer` must settle its score for `round` before submitting again.
    error FederationReputationUnsettled(address peer, uint256 round);
    /// @dev The round cannot close yet: neither enough submissions nor the deadline.
    error FederationRoundNotClosable(uint256 round, uint256 submissions, uint256 deadline);
    /// @dev A round with no submissions cannot close; it stays open.
    error FederationNoSubmissions(uint256 round);
    /// @dev `voter` already committed votes for `round`.
    error FederationAlreadyVoted(address voter, uint256 round);
    /// @dev Voting for `round` ended at `votingEndsAt` or all expected votes arrived.
    error FederationVotingClosed(uint256 round, uint256 votingEndsAt);
    /// @dev Results for `round` are accepted only after voting ends at `votingEndsAt`.
    error FederationVotingOpen(uint256 round, uint256 votingEndsAt);
    /// @dev The window for posting the result of `round` ended at `resultDeadline`.
    error FederationResultWindowClosed(uint256 round, uint256 resultDeadline);
    /// @dev The round's result window is still open until `resultDeadline`.
    error FederationResultWindowOpen(uint256 round, uint256 resultDeadline);
    /// @dev `attester` already attested a result for `round`.
    error FederationAlreadyAttested(address attester, uint256 round);
    /// @dev Only the aggregator may do this in server mode.
    error FederationNotAggregator(address account);
    /// @dev The action is not available in this result mode.
    error FederationWrongMode(ResultMode mode);
    /// @dev The Merkle proof does not place this score under the round's scores root.
    error FederationInvalidScoreProof(address peer, uint256 round);
    /// @dev `peer` has nothing to settle for `round`.
    error FederationNothingToSettle(address peer, uint256 round);
    /// @dev A score is above 1,000,000 parts per million.
    error FederationScoreOutOfRange(uint256 score);

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice The contract was deployed with this genesis model and configuration.
    event FederationCreated(string genesisCid, bytes32 genesisDigest, Config config);
    event PeerJoined(address indexed peer, uint256 bond, uint32 reputation);
    event PeerLeft(address indexed peer, uint256 bondReleased);
    event BondWithdrawn(address indexed peer, uint256 amount);
    /// @notice Round `round` opened; it trains from the aggregate of `baseRound` (0: genesis).
    /// Its submission deadline is {roundDeadlines}.
    event RoundOpened(uint256 indexed round, uint256 baseRound);
    /// @notice An update for `round`. `reputation` is the peer's reputation when it submitted,
    /// which is the value the gate uses for this submission.
    event UpdateSubmitted(
        uint256 indexed round,
        address indexed peer,
        string cid,
        bytes32 digest,
        uint64 samples,
        uint32 trainedFrom,
        uint32 reputation
    );
    event RoundClosed(uint256 indexed round, uint256 submissions, uint256 votingEndsAt);
    /// @notice A vote file for `round`, with the voter's standing when it voted.
    event VotesCommitted(
        uint256 indexed round, address indexed voter, string cid, bytes32 digest, uint32 reputation, uint256 bond
    );
    /// @notice `attester` attests `proposal` (see {proposalId}) for `round`.
    event ResultAttested(
        uint256 indexed round,
        address indexed attester,
        bytes32 indexed proposal,
        bytes32 scoresRoot,
        bytes32 includedHash,
        string aggregateCid,
        bytes32 aggregateDigest
    );
    /// @notice `round` finalised with `proposal`, whose content is in the {ResultAttested} event
    /// of the same transaction (kept out of this event to keep finalising cheap).
    event RoundFinalised(uint256 indexed round, bytes32 indexed proposal);
    /// @notice `round` produced no result in time; the next round keeps the same base.
    event RoundExpired(uint256 indexed round);
    event ReputationSettled(
        address indexed peer, uint256 indexed round, uint32 score, bool included, uint32 oldReputation, uint32 newReputation
    );

    // ------------------------------------------------------------------------------------------
    // State
    // ------------------------------------------------------------------------------------------

    uint32 public constant PPM = 1_000_000;
    uint16 internal constant _BPS = 10_000;

    ClosingRule public immutable closingRule;
    ResultMode public immutable resultMode;
    address public immutable aggregator;
    uint96 public immutable minBond;
    uint32 public immutable asyncQuorum;
    uint32 public immutable maxStaleness;
    uint32 public immutable roundDuration;
    uint32 public immutable voteDuration;
    uint32 public immutable resultDuration;
    uint16 public immutable quorumBps;
    uint16 public immutable reputationWeightBps;
    uint32 public immutable initialReputation;
    uint32 public immutable scoreThreshold;
    uint32 public immutable serverLearningRatePpm;
    bytes32 public immutable genesisDigest;
    string public genesisCid;

    /// @notice The round accepting submissions (or awaiting its result).
    uint32 public currentRound;
    /// @notice Number of active peers.
    uint32 public activePeers;
    /// @notice Sum of bonds held for active peers plus bonds awaiting withdrawal (wei); packed
    /// with the two counters above so membership changes touch one slot.
    uint192 public totalBonded;

    mapping(address => Peer) internal _peers;
    mapping(address => uint256) public withdrawable;
    mapping(uint256 => Round) internal _rounds;
    mapping(uint256 => bytes32) public scoresRootOf;
    /// @notice Attestations gathered by a proposal that has not finalised (see {attestResult}).
    mapping(bytes32 => uint256) public attestationsOf;
    address[] internal _peerList;

    // ------------------------------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------------------------------

    /// @param genesisCid_ CID of the model round 1 trains from.
    /// @param genesisDigest_ sha256 content digest of that model.
    /// @param config The immutable configuration; see {Config}.
    ///
    /// Requirements: a non-empty genesis; an aggregator exactly in Server mode; durations and
    /// quorums non-zero; basis points at most 10,000; parts per million at most 1,000,000 (the
    /// server learning rate: above zero, at most 100,000,000); a minimum bond that fits the bond field (uint80).
    constructor(string memory genesisCid_, bytes32 genesisDigest_, Config memory config) {
        if (bytes(genesisCid_).length == 0 || genesisDigest_ == bytes32(0)) revert FederationEmptyContent();
        if ((config.resultMode == ResultMode.Server) != (config.aggregator != address(0))) {
            revert FederationInvalidConfig("aggregator");
        }
        // A minimum above what a peer's bond field holds would make every join revert.
        if (config.minBond > type(uint80).max) revert FederationInvalidConfig("minBond");
        if (config.closingRule == ClosingRule.Asynchronous && config.asyncQuorum == 0) {
            revert FederationInvalidConfig("asyncQuorum");
        }
        if (config.closingRule == ClosingRule.Synchronous && config.maxStaleness != 0) {
            revert FederationInvalidConfig("maxStaleness");
        }
        if (config.roundDuration == 0 || config.voteDuration == 0 || config.resultDuration == 0) {
            revert FederationInvalidConfig("duration");
        }
        if (config.quorumBps == 0 || config.quorumBps > _BPS) revert FederationInvalidConfig("quorumBps");
        if (config.reputationWeightBps > _BPS) revert FederationInvalidConfig("reputationWeightBps");
        if (config.initialReputation > PPM) revert FederationInvalidConfig("initialReputation");
        if (config.scoreThreshold > PPM) revert FederationInvalidConfig("scoreThreshold");
        // A zero rate would freeze the model; above 100x one round's mean change overshoots.
        if (config.serverLearningRatePpm == 0 || config.serverLearningRatePpm > 100 * PPM) {
            revert FederationInvalidConfig("serverLearningRatePpm");
        }

        closingRule = config.closingRule;
        resultMode = config.resultMode;
        aggregator = config.aggregator;
        minBond = config.minBond;
        asyncQuorum = config.asyncQuorum;
        maxStaleness = config.maxStaleness;
        roundDuration = config.roundDuration;
        voteDuration = config.voteDuration;
        resultDuration = config.resultDuration;
        quorumBps = config.quorumBps;
        reputationWeightBps = config.reputationWeightBps;
        initialReputation = config.initialReputation;
        scoreThreshold = config.scoreThreshold;
        serverLearningRatePpm = config.serverLearningRatePpm;
        genesisCid = genesisCid_;
        genesisDigest = genesisDigest_;

        emit FederationCreated(genesisCid_, genesisDigest_, config);
        _openRound(1, 0);
    }

    // ------------------------------------------------------------------------------------------
    // Membership
    // ------------------------------------------------------------------------------------------

    /// @notice Join the federation, locking `msg.value` as a bond.
    ///
    /// Requirements: not already an active peer; `msg.value >= minBond`.
    /// Emits a {PeerJoined} event. A peer that left and rejoins keeps its reputation.
    function join() external payable {
        Peer storage p = _peers[msg.sender];
        if (p.active) revert FederationAlreadyPeer(msg.sender);
        if (msg.value < minBond) revert FederationBondTooLow(msg.value, minBond);
        if (msg.value > type(uint80).max) revert FederationBondTooHigh(msg.value);
        if (!p.registered) {
            p.registered = true;
            p.reputation = initialReputation;
            _peerList.push(msg.sender);
        }
        p.bond = uint80(msg.value);
        p.active = true;
        activePeers += 1;
        totalBonded += uint192(msg.value);
        emit PeerJoined(msg.sender, msg.value, p.reputation);
    }

    /// @notice Leave the federation; the bond becomes withdrawable (pull, see {withdraw}).
    ///
    /// Requirements: an active peer. Emits a {PeerLeft} event.
    function leaveFederation() external {
        Peer storage p = _requirePeer(msg.sender);
        uint256 bond = p.bond;
        p.bond = 0;
        p.active = false;
        activePeers -= 1;
        withdrawable[msg.sender] += bond;
        emit PeerLeft(msg.sender, bond);
    }

    /// @notice Withdraw bonds released by {leaveFederation}.
    ///
    /// Requirements: something to withdraw. Emits a {BondWithdrawn} event.
    function withdraw() external {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert FederationNothingToWithdraw(msg.sender);
        // Effects before the interaction, so a re-entrant call finds nothing left.
        withdrawable[msg.sender] = 0;
        totalBonded -= uint192(amount);
        emit BondWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert FederationTransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Submissions
    // ------------------------------------------------------------------------------------------

    /// @notice Submit an update for the current round.
    /// @param round Must be the current round (guards against a peer acting on a stale view).
    /// @param cid IPFS CID of the adapter; `digest` its sha256 content digest.
    /// @param samples Training samples behind the update (aggregation weight).
    /// @param trainedFrom The round whose base model the update was trained from.
    ///
    /// Requirements: an active peer; the round open; one submission per peer per round; the
    /// previous submission's score settled (see {settle}); `trainedFrom` within `maxStaleness`.
    /// Emits {UpdateSubmitted}, and {RoundClosed} when this submission closes the round.
    function submitUpdate(uint32 round, string calldata cid, bytes32 digest, uint64 samples, uint32 trainedFrom)
        external
    {
        Peer storage p = _requirePeer(msg.sender);
        Round storage r = _requireOpen(round);
        if (p.lastSubmitted == round) revert FederationAlreadySubmitted(msg.sender, round);
        if (bytes(cid).length == 0 || digest == bytes32(0)) revert FederationEmptyContent();
        if (samples == 0) revert FederationZeroSamples();
        if (trainedFrom > round || round - trainedFrom > maxStaleness) {
            revert FederationUpdateTooStale(trainedFrom, round, maxStaleness);
        }
        uint32 previous = p.lastSubmitted;
        if (previous != 0 && p.lastSettled != previous && _rounds[previous].status != RoundStatus.Expired) {
            revert FederationReputationUnsettled(msg.sender, previous);
        }

        p.lastSubmitted = round;
        uint32 count = r.submissions + 1;
        r.submissions = count;
        emit UpdateSubmitted(round, msg.sender, cid, digest, samples, trainedFrom, p.reputation);

        if (_closingTarget() <= count) _close(round, r);
    }

    /// @notice Close the current round once its deadline has passed (or its target was reached
    /// while peers left). Anyone may call it.
    ///
    /// Requirements: the round open, with at least one submission, and closable.
    /// Emits a {RoundClosed} event.
    function closeRound(uint32 round) external {
        Round storage r = _requireOpen(round);
        uint256 deadline = uint256(r.openedAt) + roundDuration;
        if (r.submissions == 0) revert FederationNoSubmissions(round);
        if (block.timestamp < deadline && r.submissions < _closingTarget()) {
            revert FederationRoundNotClosable(round, r.submissions, deadline);
        }
        _close(round, r);
    }

    // ------------------------------------------------------------------------------------------
    // Trust votes
    // ------------------------------------------------------------------------------------------

    /// @notice Commit the vote file (evaluations of other peers' updates) for a closed round.
    ///
    /// Requirements: an active peer in Serverless mode, the aggregator in Server mode; the round
    /// closed and voting still open; one vote file per voter per round.
    /// Emits a {VotesCommitted} event.
    function commitVotes(uint32 round, string calldata cid, bytes32 digest) external {
        Round storage r = _requireStatus(round, RoundStatus.Closed);
        uint256 votingEndsAt = uint256(r.closedAt) + voteDuration;
        if (_votingClosed(r)) revert FederationVotingClosed(round, votingEndsAt);
        if (bytes(cid).length == 0 || digest == bytes32(0)) revert FederationEmptyContent();

        uint32 reputation;
        uint256 bond;
        if (resultMode == ResultMode.Server) {
            if (msg.sender != aggregator) revert FederationNotAggregator(msg.sender);
            if (r.votes != 0) revert FederationAlreadyVoted(msg.sender, round);
            reputation = PPM;
        } else {
            Peer storage p = _requirePeer(msg.sender);
            if (p.lastVoted == round) revert FederationAlreadyVoted(msg.sender, round);
            p.lastVoted = round;
            reputation = p.reputation;
            bond = p.bond;
        }
        r.votes += 1;
        emit VotesCommitted(round, msg.sender, cid, digest, reputation, bond);
    }

    // ------------------------------------------------------------------------------------------
    // Results
    // ------------------------------------------------------------------------------------------

    /// @notice Attest a proposed result for `round` (Serverless mode). The round finalises when
    /// the same proposal gathers attestations from `quorumBps` of the active peers.
    /// @param scoresRoot Merkle root of (round, peer, score, included) leaves, see {leafHash}.
    /// @param includedHash Commitment to the ordered list of included submissions.
    /// @param aggregateCid CID of the aggregate adapter; `aggregateDigest` its sha256 digest.
    ///
    /// Requirements: an active peer; the round closed, voting over, result window open; one
    /// attestation per peer per round.
    /// Emits {ResultAttested}, and {RoundFinalised} + {RoundOpened} on reaching quorum.
    function attestResult(
        uint32 round,
        bytes32 scoresRoot,
        bytes32 includedHash,
        string calldata aggregateCid,
        bytes32 aggregateDigest
    ) external {
        if (resultMode != ResultMode.Serverless) revert FederationWrongMode(resultMode);
        Peer storage p = _requirePeer(msg.sender);
        Round storage r = _requireResultWindow(round);
        if (p.lastAttested == round) revert FederationAlreadyAttested(msg.sender, round);
        if (bytes(aggregateCid).length == 0 || aggregateDigest == bytes32(0)) revert FederationEmptyContent();
        p.lastAttested = round;

        bytes32 proposal = proposalId(round, scoresRoot, includedHash, aggregateCid, aggregateDigest);
        uint256 count = attestationsOf[proposal] + 1;
        if (count > r.attestations) r.attestations = uint32(count);
        emit ResultAttested(round, msg.sender, proposal, scoresRoot, includedHash, aggregateCid, aggregateDigest);

        // The finalising attestation is not written back: the count no longer matters once the
        // round is final, and skipping the write keeps this call within the per-action gas budget.
        if (count >= quorum()) _finalise(round, r, proposal, scoresRoot);
        else attestationsOf[proposal] = count;
    }

    /// @notice Post the result of `round` (Server mode); it finalises at once.
    ///
    /// Requirements: the aggregator; the round closed, voting over, result window open.
    /// Emits {ResultAttested}, {RoundFinalised} and {RoundOpened}.
    function postResult(
        uint32 round,
        bytes32 scoresRoot,
        bytes32 includedHash,
        string calldata aggregateCid,
        bytes32 aggregateDigest
    ) external {
        if (resultMode != ResultMode.Server) revert FederationWrongMode(resultMode);
        if (msg.sender != aggregator) revert FederationNotAggregator(msg.sender);
        Round storage r = _requireResultWindow(round);
        if (bytes(aggregateCid).length == 0 || aggregateDigest == bytes32(0)) revert FederationEmptyContent();
        bytes32 proposal = proposalId(round, scoresRoot, includedHash, aggregateCid, aggregateDigest);
        r.attestations = 1;
        emit ResultAttested(round, msg.sender, proposal, scoresRoot, includedHash, aggregateCid, aggregateDigest);
        _finalise(round, r, proposal, scoresRoot);
    }

    /// @notice Give up on a round whose result window passed without a result, so the
    /// federation moves on (the next round keeps the same base). Anyone may call it.
    ///
    /// Requirements: the round closed and its result deadline passed.
    /// Emits {RoundExpired} and {RoundOpened}.
    function expireRound(uint32 round) external {
        Round storage r = _requireStatus(round, RoundStatus.Closed);
        uint256 deadline = _resultDeadline(r);
        if (block.timestamp < deadline) revert FederationResultWindowOpen(round, deadline);
        r.status = RoundStatus.Expired;
        emit RoundExpired(round);
        _openRound(round + 1, r.baseRound);
    }

    // ------------------------------------------------------------------------------------------
    // Reputation
    // ------------------------------------------------------------------------------------------

    /// @notice Fold `peer`'s score in its last submitted round into its reputation:
    /// `new = (old * (10000 - w) + score * w) / 10000` with `w = reputationWeightBps`.
    /// Anyone may settle any peer; a peer must be settled before it submits again.
    /// @param proof Merkle proof of {leafHash}(round, peer, score, included) under the round's
    /// scores root (sorted-pair keccak256).
    ///
    /// Requirements: `round` is the peer's last submitted round, finalised, not yet settled;
    /// a valid proof. Emits a {ReputationSettled} event.
    function settle(address peer, uint32 round, uint32 score, bool included, bytes32[] calldata proof) external {
        Peer storage p = _peers[peer];
        if (p.lastSubmitted != round || p.lastSettled == round || round == 0) {
            revert FederationNothingToSettle(peer, round);
        }
        RoundStatus status = _rounds[round].status;
        if (status != RoundStatus.Finalised) revert FederationWrongRoundStatus(round, RoundStatus.Finalised, status);
        if (score > PPM) revert FederationScoreOutOfRange(score);
        if (!_verify(proof, scoresRootOf[round], leafHash(round, peer, score, included))) {
            revert FederationInvalidScoreProof(peer, round);
        }
        uint32 old = p.reputation;
        uint32 updated = uint32((uint256(old) * (_BPS - reputationWeightBps) + uint256(score) * reputationWeightBps) / _BPS);
        p.reputation = updated;
        p.lastSettled = round;
        emit ReputationSettled(peer, round, score, included, old, updated);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The leaf of the scores tree for one submission (double-hashed against second
    /// preimage attacks).
    function leafHash(uint32 round, address peer, uint32 score, bool included) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(round, peer, score, included))));
    }

    /// @notice The identifier under which attestations of one proposed result are counted.
    function proposalId(
        uint32 round,
        bytes32 scoresRoot,
        bytes32 includedHash,
        string calldata aggregateCid,
        bytes32 aggregateDigest
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(round, scoresRoot, includedHash, keccak256(bytes(aggregateCid)), aggregateDigest));
    }

    /// @notice Attestations needed to finalise a round now: `ceil(activePeers * quorumBps / 1e4)`,
    /// at least one.
    function quorum() public view returns (uint256) {
        uint256 needed = (uint256(activePeers) * quorumBps + _BPS - 1) / _BPS;
        return needed == 0 ? 1 : needed;
    }

    function peerInfo(address account) external view returns (Peer memory) {
        return _peers[account];
    }

    function roundInfo(uint256 id) external view returns (Round memory) {
        return _rounds[id];
    }

    /// @notice Timestamps that bound round `id`: submission deadline, end of voting, result deadline
    /// (the last two are zero while the round is open).
    function roundDeadlines(uint256 id)
        external
        view
        returns (uint256 submitDeadline, uint256 votingEndsAt, uint256 resultDeadline)
    {
        Round storage r = _rounds[id];
        submitDeadline = uint256(r.openedAt) + roundDuration;
        if (r.closedAt != 0) {
            votingEndsAt = uint256(r.closedAt) + voteDuration;
            resultDeadline = _resultDeadline(r);
        }
    }

    /// @notice Whether voting on round `id` is over (all expected votes in, or its time passed).
    function votingClosed(uint256 id) external view returns (bool) {
        Round storage r = _rounds[id];
        return r.status == RoundStatus.Closed && _votingClosed(r);
    }

    function peerCount() external view returns (uint256) {
        return _peerList.length;
    }

    /// @notice Peers ever joined, `count` of them from index `start` (paginated).
    function peerPage(uint256 start, uint256 count) external view returns (address[] memory page) {
        uint256 total = _peerList.length;
        if (start >= total) return new address[](0);
        uint256 end = start + count > total ? total : start + count;
        page = new address[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = _peerList[i];
        }
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _requirePeer(address account) private view returns (Peer storage p) {
        p = _peers[account];
        if (!p.active) revert FederationNotPeer(account);
    }

    function _requireStatus(uint32 id, RoundStatus expected) private view returns (Round storage r) {
        r = _rounds[id];
        if (r.status != expected) revert FederationWrongRoundStatus(id, expected, r.status);
    }

    function _requireOpen(uint32 id) private view returns (Round storage r) {
        if (id != currentRound) revert FederationNotCurrentRound(id, currentRound);
        r = _requireStatus(id, RoundStatus.Open);
    }

    function _requireResultWindow(uint32 id) private view returns (Round storage r) {
        r = _requireStatus(id, RoundStatus.Closed);
        if (!_votingClosed(r)) revert FederationVotingOpen(id, uint256(r.closedAt) + voteDuration);
        uint256 deadline = _resultDeadline(r);
        if (block.timestamp >= deadline) revert FederationResultWindowClosed(id, deadline);
    }

    /// @dev Submissions that close a round: all active peers (sync) or K (async).
    function _closingTarget() private view returns (uint256) {
        if (closingRule == ClosingRule.Asynchronous) return asyncQuorum;
        return activePeers == 0 ? 1 : activePeers;
    }

    /// @dev Voting ends when its time passes, or when every expected vote arrived: one per
    /// submission in Serverless mode, the aggregator's in Server mode.
    function _votingClosed(Round storage r) private view returns (bool) {
        if (block.timestamp >= uint256(r.closedAt) + voteDuration) return true;
        uint256 expected = resultMode == ResultMode.Server ? 1 : r.submissions;
        return r.votes >= expected;
    }

    function _resultDeadline(Round storage r) private view returns (uint256) {
        return uint256(r.closedAt) + voteDuration + resultDuration;
    }

    function _close(uint32 id, Round storage r) private {
        r.status = RoundStatus.Closed;
        r.closedAt = uint48(block.timestamp);
        emit RoundClosed(id, r.submissions, block.timestamp + voteDuration);
    }

    function _finalise(uint32 id, Round storage r, bytes32 proposal, bytes32 scoresRoot) private {
        r.status = RoundStatus.Finalised;
        scoresRootOf[id] = scoresRoot;
        emit RoundFinalised(id, proposal);
        _openRound(id + 1, id);
    }

    function _openRound(uint32 id, uint32 baseRound) private {
        currentRound = id;
        _rounds[id] = Round({
            openedAt: uint48(block.timestamp),
            closedAt: 0,
            submissions: 0,
            votes: 0,
            baseRound: baseRound,
            attestations: 0,
            status: RoundStatus.Open
        });
        emit RoundOpened(id, baseRound);
    }

    /// @dev Sorted-pair Merkle proof verification.
    function _verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) private pure returns (bool) {
        bytes32 node = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            bytes32 sibling = proof[i];
            node = node < sibling
                ? keccak256(abi.encodePacked(node, sibling))
                : keccak256(abi.encodePacked(sibling, node));
        }
        return node == root;
    }
}
