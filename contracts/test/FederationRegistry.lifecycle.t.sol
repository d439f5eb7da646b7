// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../FederationRegistry.sol";
import {RegistryFixture} from "./utils/RegistryFixture.sol";
import {ScoresTree} from "./utils/ScoresTree.sol";

/// @dev Synchronous closing with Serverless results: all-submitted and deadline closes, quorum
/// of identical attestations, split proposals, expiry.
contract SyncServerlessLifecycleTest is RegistryFixture {
    address[] internal peers;
    bytes32 internal root = keccak256("scores root");

    function setUp() public {
        _deploy(_sync(), _serverless());
        peers = _joinPeers(4);
    }

    function test_OpensRoundOneFromGenesis() public view {
        FederationRegistry.Round memory r = reg.roundInfo(1);
        assertEq(reg.currentRound(), 1, "current round");
        assertEq(uint256(r.status), uint256(FederationRegistry.RoundStatus.Open), "open");
        assertEq(r.baseRound, 0, "trains from genesis");
        assertEq(r.openedAt, START, "opened at deployment");
        assertEq(reg.genesisDigest(), GENESIS_DIGEST, "genesis digest");
    }

    function test_ClosesWhenAllActivePeersSubmitted() public {
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Open), "open after 3 of 4");
        vm.warp(START + 60);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundClosed(1, 4, START + 60 + VOTE_DURATION);
        _submit(peers[3], 1);
        FederationRegistry.Round memory r = reg.roundInfo(1);
        assertEq(uint256(r.status), uint256(FederationRegistry.RoundStatus.Closed), "closed at 4 of 4");
        assertEq(r.submissions, 4, "submissions");
        assertEq(r.closedAt, START + 60, "closedAt");
        assertEq(reg.currentRound(), 1, "closed round stays current until it finalises");
    }

    function test_ClosesAfterDeadlineWithSomeSubmissions() public {
        _submit(peers[0], 1);
        vm.warp(START + ROUND_DURATION);
        reg.closeRound(1); // anyone may close
        FederationRegistry.Round memory r = reg.roundInfo(1);
        assertEq(uint256(r.status), uint256(FederationRegistry.RoundStatus.Closed), "closed by deadline");
        assertEq(r.submissions, 1, "one submission");
    }

    function test_ClosesWhenTargetReachedAfterPeerLeft() public {
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
        vm.prank(peers[3]);
        reg.leaveFederation();
        reg.closeRound(1); // 3 of 3 active peers: closable before the deadline
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "closed");
    }

    function test_LateJoinerRaisesTheTarget() public {
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
        _join(_peer(10));
        _submit(peers[3], 1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Open), "4 of 5: still open");
        _submit(_peer(10), 1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "5 of 5: closed");
    }

    function test_QuorumOfSameProposalFinalises() public {
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 1);
        for (uint256 i = 0; i < 4; ++i) _vote(peers[i], 1);
        assertTrue(reg.votingClosed(1), "all submitters voted: voting over before its time");
        assertEq(reg.quorum(), 3, "ceil(4 * 60%)");
        bytes32 proposal = reg.proposalId(1, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);

        _attest(peers[0], 1, root);
        _attest(peers[1], 1, root);
        assertEq(reg.attestationsOf(proposal), 2, "two attestations counted");
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "below quorum");

        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundFinalised(1, proposal);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundOpened(2, 1);
        _attest(peers[2], 1, root);

        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "finalised");
        assertEq(reg.scoresRootOf(1), root, "scores root recorded");
        assertEq(reg.roundInfo(1).attestations, 3, "leading proposal count");
        assertEq(reg.currentRound(), 2, "next round open");
        assertEq(reg.roundInfo(2).baseRound, 1, "round 2 trains from round 1's aggregate");
        assertEq(uint256(_status(2)), uint256(FederationRegistry.RoundStatus.Open), "round 2 open");
    }

    function test_SplitProposalsDoNotFinalise() public {
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 1);
        _warpToResultWindow(1);
        bytes32 other = keccak256("other root");
        _attest(peers[0], 1, root);
        _attest(peers[1], 1, other);
        _attest(peers[2], 1, root);
        _attest(peers[3], 1, other);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "2 + 2 of 4: no quorum");
        assertEq(reg.roundInfo(1).attestations, 2, "leading count");
        assertEq(reg.currentRound(), 1, "no new round");
    }

    function test_ProposalsDifferingInAggregateAreDistinct() public {
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 1);
        _warpToResultWindow(1);
        _attest(peers[0], 1, root);
        _attest(peers[1], 1, root);
        vm.prank(peers[2]);
        reg.attestResult(1, root, INCLUDED_HASH, "bafkotheraggregate", AGGREGATE_DIGEST);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "not the same proposal");
        _attest(peers[3], 1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "3 identical");
    }

    function test_QuorumFollowsActivePeers() public {
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 1);
        _warpToResultWindow(1);
        _attest(peers[0], 1, root);
        _attest(peers[1], 1, root);
        vm.prank(peers[3]);
        reg.leaveFederation(); // 3 active: quorum ceil(1.8) = 2, reached by the next attestation
        assertEq(reg.quorum(), 2, "quorum of 3");
        _attest(peers[2], 1, keccak256("other"));
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "other proposal: 1");
        _join(_peer(20));
        _attest(_peer(20), 1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "third vote for root");
    }

    function test_ExpiryOpensNextRoundWithSameBase() public {
        // Round 1 finalises; round 2 gets no result and expires; round 3 keeps round 1's base.
        bytes32[] memory leaves = _flatLeaves(1, peers, 600_000);
        _serverlessRound(peers, 1, ScoresTree.root(leaves));
        for (uint256 i = 0; i < 4; ++i) _settle(peers[i], 1, 600_000, true, leaves);
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 2);
        assertEq(reg.roundInfo(2).baseRound, 1, "round 2 base");
        _warpPastResultDeadline(2);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundExpired(2);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundOpened(3, 1);
        reg.expireRound(2);
        assertEq(uint256(_status(2)), uint256(FederationRegistry.RoundStatus.Expired), "expired");
        assertEq(reg.currentRound(), 3, "round 3 open");
        assertEq(reg.roundInfo(3).baseRound, 1, "same base as round 2");
        assertEq(reg.scoresRootOf(2), bytes32(0), "no scores for an expired round");
        // Submitters of an expired round have nothing to settle and may submit at once.
        _submit(peers[0], 3);
        assertEq(reg.peerInfo(peers[0]).lastSubmitted, 3, "submitted in round 3");
    }

    function test_ExpiryOfFirstRoundKeepsGenesis() public {
        _submit(peers[0], 1);
        vm.warp(START + ROUND_DURATION);
        reg.closeRound(1);
        _warpPastResultDeadline(1);
        reg.expireRound(1);
        assertEq(reg.roundInfo(2).baseRound, 0, "still genesis");
    }

    function test_VotesCarryVoterStanding() public {
        for (uint256 i = 0; i < 4; ++i) _submit(peers[i], 1);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.VotesCommitted(
            1, peers[0], "bafkvotes", keccak256(abi.encode("votes", peers[0], uint32(1))), INITIAL_REPUTATION, MIN_BOND
        );
        _vote(peers[0], 1);
        assertEq(reg.roundInfo(1).votes, 1, "vote counted");
        assertFalse(reg.votingClosed(1), "3 votes missing");
    }
}

/// @dev Asynchronous closing: K submissions, deadline, staleness window.
contract AsyncLifecycleTest is RegistryFixture {
    address[] internal peers;

    function setUp() public {
        _deploy(_async(), _serverless());
        peers = _joinPeers(5);
    }

    function _expireCurrent() internal {
        uint32 r = reg.currentRound();
        if (_status(r) == FederationRegistry.RoundStatus.Open) {
            if (reg.roundInfo(r).submissions == 0) _submit(peers[4], r); // a round needs one to close
            vm.warp(block.timestamp + ROUND_DURATION);
            reg.closeRound(r);
        }
        _warpPastResultDeadline(r);
        reg.expireRound(r);
    }

    function test_ClosesAtKSubmissions() public {
        _submit(peers[0], 1);
        _submit(peers[1], 1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Open), "2 of K=3");
        _submit(peers[2], 1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "K reached with 5 peers");
        assertEq(reg.roundInfo(1).submissions, ASYNC_QUORUM, "K submissions");
    }

    function test_ClosesAtDeadlineBelowK() public {
        _submit(peers[0], 1);
        vm.warp(START + ROUND_DURATION);
        reg.closeRound(1);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "closed by deadline");
    }

    function test_StaleUpdateWithinBoundAccepted() public {
        _expireCurrent();
        _expireCurrent(); // round 3 open; an update trained in round 1 lags by 2 = maxStaleness
        assertEq(reg.currentRound(), 3, "round 3");
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.UpdateSubmitted(3, peers[0], "bafkupdate", _digest(peers[0], 3), 100, 1, INITIAL_REPUTATION);
        _submitFrom(peers[0], 3, 1);
        _submitFrom(peers[1], 3, 2);
        _submitFrom(peers[2], 3, 3);
        assertEq(uint256(_status(3)), uint256(FederationRegistry.RoundStatus.Closed), "stale updates count towards K");
    }

    function test_StaleUpdateBeyondBoundRejected() public {
        for (uint256 i = 0; i < 3; ++i) _expireCurrent();
        assertEq(reg.currentRound(), 4, "round 4");
        vm.prank(peers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 1, 4, MAX_STALENESS)
        );
        reg.submitUpdate(4, "bafkupdate", _digest(peers[0], 4), 100, 1);
        _submitFrom(peers[0], 4, 2); // lag 2: accepted
    }

    function test_LateUpdateCountsInALaterRound() public {
        // Peer 4 trained in round 1 but round 1 closed without it; it lands in round 2.
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
        _expireCurrent();
        _submitFrom(peers[4], 2, 1);
        assertEq(reg.roundInfo(2).submissions, 1, "counted in round 2");
        assertEq(reg.peerInfo(peers[4]).lastSubmitted, 2, "peer's last round");
    }
}

/// @dev Server mode: only the aggregator votes and posts; its post finalises at once.
contract ServerLifecycleTest is RegistryFixture {
    address[] internal peers;
    bytes32 internal root = keccak256("server root");

    function setUp() public {
        _deploy(_sync(), _server());
        peers = _joinPeers(3);
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
    }

    function test_AggregatorVoteClosesVoting() public {
        assertFalse(reg.votingClosed(1), "waiting for the aggregator");
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.VotesCommitted(1, AGGREGATOR, "bafkvotes", keccak256(abi.encode("votes", AGGREGATOR, uint32(1))), 1_000_000, 0);
        _vote(AGGREGATOR, 1);
        assertTrue(reg.votingClosed(1), "the aggregator's vote is the only one expected");
        assertFalse(reg.peerInfo(AGGREGATOR).active, "the aggregator need not be a peer");
    }

    function test_PostFinalisesAtOnce() public {
        _vote(AGGREGATOR, 1);
        bytes32 proposal = reg.proposalId(1, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.ResultAttested(1, AGGREGATOR, proposal, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.RoundFinalised(1, proposal);
        _post(1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "finalised");
        assertEq(reg.roundInfo(1).attestations, 1, "one poster");
        assertEq(reg.roundInfo(2).baseRound, 1, "next base");
        assertEq(reg.scoresRootOf(1), root, "root");
    }

    function test_PostAfterVotingTimeWithoutVotes() public {
        _warpToResultWindow(1);
        _post(1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "finalised");
    }

    function test_ExpiresWithoutPost() public {
        _vote(AGGREGATOR, 1);
        _warpPastResultDeadline(1);
        reg.expireRound(1);
        assertEq(reg.currentRound(), 2, "moved on");
        assertEq(reg.roundInfo(2).baseRound, 0, "genesis kept");
    }
}

/// @dev Reputation settled against real Merkle trees of 1, 2, 3 and 5 leaves.
contract SettlementTest is RegistryFixture {
    function _runRound(uint256 n) internal returns (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) {
        _deploy(_sync(), _server());
        peers = _joinPeers(n);
        scores = new uint32[](n);
        for (uint256 i = 0; i < n; ++i) {
            scores[i] = uint32((i * 237_001) % 1_000_001); // includes a zero (not included) score
            _submit(peers[i], 1);
        }
        leaves = _leaves(1, peers, scores);
        _vote(AGGREGATOR, 1);
        _post(1, ScoresTree.root(leaves));
    }

    function _settleAll(uint256 n) internal {
        (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) = _runRound(n);
        for (uint256 i = 0; i < n; ++i) {
            bool included = scores[i] != 0;
            uint32 expected = uint32((uint256(INITIAL_REPUTATION) * (10_000 - WEIGHT_BPS) + uint256(scores[i]) * WEIGHT_BPS) / 10_000);
            bytes32[] memory proof = ScoresTree.proof(leaves, leaves[i]);
            vm.expectEmit(true, true, true, true, address(reg));
            emit FederationRegistry.ReputationSettled(peers[i], 1, scores[i], included, INITIAL_REPUTATION, expected);
            reg.settle(peers[i], 1, scores[i], included, proof);
            FederationRegistry.Peer memory p = reg.peerInfo(peers[i]);
            assertEq(p.reputation, expected, "EMA");
            assertEq(p.lastSettled, 1, "settled");
        }
    }

    function test_SettleTreeOfOneLeaf() public {
        _settleAll(1);
    }

    function test_SettleTreeOfTwoLeaves() public {
        _settleAll(2);
    }

    function test_SettleTreeOfThreeLeaves() public {
        _settleAll(3);
    }

    function test_SettleTreeOfFiveLeaves() public {
        _settleAll(5);
    }

    function test_ProofLengths() public pure {
        bytes32[] memory leaves = new bytes32[](5);
        for (uint256 i = 0; i < 5; ++i) leaves[i] = keccak256(abi.encode(i));
        uint256 total;
        for (uint256 i = 0; i < 5; ++i) total += ScoresTree.proof(leaves, leaves[i]).length;
        // Sorted leaves a b c d e: pairs (ab)(cd) and e carried twice: 3+3+3+3+1.
        assertEq(total, 13, "proof lengths of a 5-leaf tree");
        bytes32[] memory one = new bytes32[](1);
        one[0] = leaves[0];
        assertEq(ScoresTree.root(one), leaves[0], "a single leaf is its own root");
    }

    /// @dev The same trees built by the Python client (`bcfl.chain.merkle.merkle_root`), so
    /// proofs either side builds verify against a root the other side posted.
    function test_RootsMatchPythonClient() public pure {
        bytes32[4] memory expected = [
            bytes32(0xfa29f8568c7e0eaa86b4ad4c66b93127d8d0d67d18ce0e4a7ba13195a3d4d9b9),
            0x1d11362acf5131bc6a47083751de045e74958951b696032226c929d35264418f,
            0x11fe85650aae36014876f111c906dd52db51bf842a65be52a671fcff461db35d,
            0x25267a3c3209bcda57f6e6a054c9d497ba47090c6ea734f7cde7bfc053010f22
        ];
        uint256[4] memory sizes = [uint256(1), 2, 3, 5];
        for (uint256 k = 0; k < 4; ++k) {
            address[] memory peers = new address[](sizes[k]);
            uint32[] memory scores = new uint32[](sizes[k]);
            for (uint256 i = 0; i < sizes[k]; ++i) {
                peers[i] = _peer(i);
                scores[i] = uint32((i * 237_001) % 1_000_001);
            }
            assertEq(ScoresTree.root(_leaves(1, peers, scores)), expected[k], "root differs from the Python client's");
        }
    }

    function test_LeafHashMatchesContract() public {
        _deploy(_sync(), _server());
        assertEq(reg.leafHash(7, _peer(3), 123_456, true), ScoresTree.leaf(7, _peer(3), 123_456, true), "leaf");
    }

    function test_PeerMustSettleBeforeSubmittingAgain() public {
        (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) = _runRound(3);
        vm.prank(peers[1]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationReputationUnsettled.selector, peers[1], 1)
        );
        reg.submitUpdate(2, "bafkupdate", _digest(peers[1], 2), 100, 2);
        // Anyone may settle for the peer; then it submits.
        vm.prank(_peer(77));
        _settle(peers[1], 1, scores[1], true, leaves);
        _submit(peers[1], 2);
        assertEq(reg.peerInfo(peers[1]).lastSubmitted, 2, "submitted after settling");
    }

    function test_GateReputationCarriedInNextSubmission() public {
        (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) = _runRound(2);
        _settle(peers[1], 1, scores[1], true, leaves);
        uint32 rep = reg.peerInfo(peers[1]).reputation;
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.UpdateSubmitted(2, peers[1], "bafkupdate", _digest(peers[1], 2), 100, 2, rep);
        _submit(peers[1], 2);
    }

    function test_RejoinKeepsReputation() public {
        (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) = _runRound(2);
        _settle(peers[1], 1, scores[1], true, leaves);
        uint32 rep = reg.peerInfo(peers[1]).reputation;
        vm.prank(peers[1]);
        reg.leaveFederation();
        _join(peers[1]);
        assertEq(reg.peerInfo(peers[1]).reputation, rep, "reputation kept across rejoin");
        assertEq(reg.peerCount(), 2, "listed once");
    }

    function test_SettleAfterLeaving() public {
        (address[] memory peers, uint32[] memory scores, bytes32[] memory leaves) = _runRound(3);
        vm.prank(peers[2]);
        reg.leaveFederation();
        _settle(peers[2], 1, scores[2], true, leaves);
        assertEq(reg.peerInfo(peers[2]).lastSettled, 1, "a former peer can still be settled");
    }
}

/// @dev Re-enters {withdraw} from its receive hook and records what happened.
contract ReentrantPeer {
    FederationRegistry internal immutable reg;
    bool internal reenter;
    bytes public reentryError;
    uint256 public received;

    constructor(FederationRegistry reg_) {
        reg = reg_;
    }

    function join() external payable {
        reg.join{value: msg.value}();
    }

    function leave() external {
        reg.leaveFederation();
    }

    function withdraw(bool reenter_) external {
        reenter = reenter_;
        reg.withdraw();
    }

    receive() external payable {
        received += msg.value;
        if (!reenter) return;
        reenter = false;
        try reg.withdraw() {
            reentryError = "re-entry succeeded";
        } catch (bytes memory err) {
            reentryError = err;
        }
    }
}

/// @dev Like {ReentrantPeer} but lets the re-entrant revert propagate.
contract BubblingReentrantPeer {
    FederationRegistry internal immutable reg;

    constructor(FederationRegistry reg_) {
        reg = reg_;
    }

    function join() external payable {
        reg.join{value: msg.value}();
    }

    function leave() external {
        reg.leaveFederation();
    }

    function withdraw() external {
        reg.withdraw();
    }

    receive() external payable {
        reg.withdraw();
    }
}

/// @dev Bonds: join, leave, withdraw as pull payments, and re-entrancy.
contract BondsTest is RegistryFixture {
    address internal alice = _peer(1);

    function setUp() public {
        _deploy(_sync(), _serverless());
    }

    function test_JoinLeaveWithdraw() public {
        uint256 bond = 3 ether;
        vm.deal(alice, bond);
        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.PeerJoined(alice, bond, INITIAL_REPUTATION);
        vm.prank(alice);
        reg.join{value: bond}();
        assertEq(address(reg).balance, bond, "bond held");
        assertEq(reg.totalBonded(), bond, "total");
        assertEq(reg.activePeers(), 1, "active");
        assertEq(reg.peerInfo(alice).bond, bond, "peer bond");

        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.PeerLeft(alice, bond);
        vm.prank(alice);
        reg.leaveFederation();
        assertEq(reg.activePeers(), 0, "inactive");
        assertEq(reg.withdrawable(alice), bond, "withdrawable, not pushed");
        assertEq(alice.balance, 0, "nothing pushed on leaving");
        assertEq(reg.totalBonded(), bond, "still held");

        vm.expectEmit(true, true, true, true, address(reg));
        emit FederationRegistry.BondWithdrawn(alice, bond);
        vm.prank(alice);
        reg.withdraw();
        assertEq(alice.balance, bond, "paid out");
        assertEq(reg.withdrawable(alice), 0, "cleared");
        assertEq(reg.totalBonded(), 0, "total drained");
        assertEq(address(reg).balance, 0, "balance drained");
    }

    function test_RejoinBeforeWithdrawingKeepsBothBonds() public {
        _join(alice);
        vm.prank(alice);
        reg.leaveFederation();
        vm.deal(alice, 2 ether);
        vm.prank(alice);
        reg.join{value: 2 ether}();
        assertEq(reg.totalBonded(), 3 ether, "old bond withdrawable + new bond");
        assertEq(reg.withdrawable(alice), MIN_BOND, "old bond");
        vm.prank(alice);
        reg.withdraw();
        assertEq(reg.peerInfo(alice).bond, 2 ether, "new bond stays locked");
        assertEq(address(reg).balance, 2 ether, "balance");
    }

    function test_ZeroMinimumBond() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.minBond = 0;
        _deploy(c);
        vm.prank(alice);
        reg.join();
        assertEq(reg.activePeers(), 1, "joined without a bond");
        vm.prank(alice);
        reg.leaveFederation();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToWithdraw.selector, alice));
        reg.withdraw();
    }

    function test_PlainTransferRejected() public {
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        (bool ok,) = address(reg).call{value: 1 ether}("");
        assertFalse(ok, "no receive: ether outside join is refused");
    }

    function test_ReentrantWithdrawFindsNothing() public {
        ReentrantPeer attacker = new ReentrantPeer(reg);
        _join(alice); // another peer's bond is in the contract too
        vm.deal(address(this), MIN_BOND);
        attacker.join{value: MIN_BOND}();
        attacker.leave();
        attacker.withdraw(true);
        assertEq(attacker.received(), MIN_BOND, "paid exactly once");
        assertEq(
            keccak256(attacker.reentryError()),
            keccak256(abi.encodeWithSelector(FederationRegistry.FederationNothingToWithdraw.selector, address(attacker))),
            "re-entrant withdraw reverted with NothingToWithdraw"
        );
        assertEq(address(reg).balance, MIN_BOND, "alice's bond untouched");
        assertEq(reg.totalBonded(), MIN_BOND, "accounting matches balance");
    }

    function test_BubblingReentryRevertsWholeWithdraw() public {
        BubblingReentrantPeer attacker = new BubblingReentrantPeer(reg);
        vm.deal(address(this), MIN_BOND);
        attacker.join{value: MIN_BOND}();
        attacker.leave();
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationTransferFailed.selector, address(attacker), MIN_BOND)
        );
        attacker.withdraw();
        assertEq(reg.withdrawable(address(attacker)), MIN_BOND, "state restored");
        assertEq(address(reg).balance, MIN_BOND, "balance restored");
    }

    function test_PeerPagination() public {
        for (uint256 i = 0; i < 5; ++i) _join(_peer(i));
        assertEq(reg.peerCount(), 5, "count");
        address[] memory page = reg.peerPage(3, 10);
        assertEq(page.length, 2, "clipped page");
        assertEq(page[0], _peer(3), "first of page");
        assertEq(page[1], _peer(4), "second of page");
        assertEq(reg.peerPage(5, 1).length, 0, "past the end");
        assertEq(reg.peerPage(0, 2)[1], _peer(1), "from the start");
    }
}
