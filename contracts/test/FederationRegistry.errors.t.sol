// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../FederationRegistry.sol";
import {RegistryFixture} from "./utils/RegistryFixture.sol";
import {ScoresTree} from "./utils/ScoresTree.sol";

/// @dev Accepts nothing: withdrawing to it fails.
contract RejectingPeer {
    function join(FederationRegistry reg) external payable {
        reg.join{value: msg.value}();
    }

    function leave(FederationRegistry reg) external {
        reg.leaveFederation();
    }

    function withdraw(FederationRegistry reg) external {
        reg.withdraw();
    }
}

/// @dev Every configuration the constructor refuses, each with its exact error.
contract ConfigErrorsTest is RegistryFixture {
    function _expectConfig(string memory reason) internal {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidConfig.selector, reason));
    }

    function _tryDeploy(FederationRegistry.Config memory c) internal {
        new FederationRegistry(GENESIS_CID, GENESIS_DIGEST, c);
    }

    function test_RevertWhen_GenesisCidEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        new FederationRegistry("", GENESIS_DIGEST, _config(_sync(), _serverless()));
    }

    function test_RevertWhen_GenesisDigestZero() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        new FederationRegistry(GENESIS_CID, bytes32(0), _config(_sync(), _serverless()));
    }

    function test_RevertWhen_ServerModeWithoutAggregator() public {
        FederationRegistry.Config memory c = _config(_sync(), _server());
        c.aggregator = address(0);
        _expectConfig("aggregator");
        _tryDeploy(c);
    }

    function test_RevertWhen_ServerlessModeWithAggregator() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.aggregator = AGGREGATOR;
        _expectConfig("aggregator");
        _tryDeploy(c);
    }

    function test_RevertWhen_AsyncQuorumZero() public {
        FederationRegistry.Config memory c = _config(_async(), _serverless());
        c.asyncQuorum = 0;
        _expectConfig("asyncQuorum");
        _tryDeploy(c);
    }

    function test_RevertWhen_SyncWithStaleness() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.maxStaleness = 1;
        _expectConfig("maxStaleness");
        _tryDeploy(c);
    }

    function test_RevertWhen_RoundDurationZero() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.roundDuration = 0;
        _expectConfig("duration");
        _tryDeploy(c);
    }

    function test_RevertWhen_VoteDurationZero() public {
        FederationRegistry.Config memory c = _config(_async(), _server());
        c.voteDuration = 0;
        _expectConfig("duration");
        _tryDeploy(c);
    }

    function test_RevertWhen_ResultDurationZero() public {
        FederationRegistry.Config memory c = _config(_sync(), _server());
        c.resultDuration = 0;
        _expectConfig("duration");
        _tryDeploy(c);
    }

    function test_RevertWhen_QuorumBpsZero() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.quorumBps = 0;
        _expectConfig("quorumBps");
        _tryDeploy(c);
    }

    function test_RevertWhen_QuorumBpsAboveOne() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.quorumBps = 10_001;
        _expectConfig("quorumBps");
        _tryDeploy(c);
    }

    function test_RevertWhen_ReputationWeightAboveOne() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.reputationWeightBps = 10_001;
        _expectConfig("reputationWeightBps");
        _tryDeploy(c);
    }

    function test_RevertWhen_InitialReputationAbovePpm() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.initialReputation = 1_000_001;
        _expectConfig("initialReputation");
        _tryDeploy(c);
    }

    function test_RevertWhen_ScoreThresholdAbovePpm() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.scoreThreshold = 1_000_001;
        _expectConfig("scoreThreshold");
        _tryDeploy(c);
    }

    function test_RevertWhen_ServerLearningRateZeroOrAboveHundred() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.serverLearningRatePpm = 0;
        _expectConfig("serverLearningRatePpm");
        _tryDeploy(c);
        c.serverLearningRatePpm = 100_000_001;
        _expectConfig("serverLearningRatePpm");
        _tryDeploy(c);
    }

    /// @dev A minimum bond that no bond field can hold would make joining impossible.
    function test_RevertWhen_MinBondAboveBondField() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.minBond = uint96(type(uint80).max) + 1;
        _expectConfig("minBond");
        _tryDeploy(c);
    }

    function test_AcceptsMinBondAtBondFieldMaximum() public {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.minBond = type(uint80).max;
        FederationRegistry r = new FederationRegistry(GENESIS_CID, GENESIS_DIGEST, c);
        vm.deal(_peer(1), type(uint80).max);
        vm.prank(_peer(1));
        r.join{value: type(uint80).max}();
        assertEq(r.activePeers(), 1, "the largest minimum bond can still be paid");
    }

    /// @dev The boundaries themselves are valid: full weights, zero bond, everything at maximum.
    function test_AcceptsBoundaryConfig() public {
        FederationRegistry.Config memory c = _config(_async(), _server());
        c.minBond = 0;
        c.quorumBps = 10_000;
        c.reputationWeightBps = 10_000;
        c.initialReputation = 1_000_000;
        c.scoreThreshold = 1_000_000;
        c.serverLearningRatePpm = 100_000_000;
        c.maxStaleness = type(uint32).max;
        FederationRegistry r = new FederationRegistry(GENESIS_CID, GENESIS_DIGEST, c);
        assertEq(r.currentRound(), 1, "round 1 opens at deployment");
        assertEq(r.quorum(), 1, "quorum is at least one");
        assertEq(r.aggregator(), AGGREGATOR, "aggregator");
        assertEq(r.serverLearningRatePpm(), 100_000_000, "server learning rate");
    }
}

/// @dev Membership and bond errors (join, leaveFederation, withdraw).
contract MembershipErrorsTest is RegistryFixture {
    address internal alice = _peer(1);

    function setUp() public {
        _deploy(_sync(), _serverless());
    }

    function test_RevertWhen_JoinTwice() public {
        _join(alice);
        vm.deal(alice, MIN_BOND);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationAlreadyPeer.selector, alice));
        reg.join{value: MIN_BOND}();
    }

    function test_RevertWhen_BondTooLow() public {
        vm.deal(alice, MIN_BOND);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationBondTooLow.selector, MIN_BOND - 1, MIN_BOND)
        );
        reg.join{value: MIN_BOND - 1}();
    }

    function test_RevertWhen_BondTooLowZero() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationBondTooLow.selector, 0, MIN_BOND));
        reg.join();
    }

    function test_RevertWhen_BondTooHigh() public {
        uint256 tooMuch = uint256(type(uint80).max) + 1;
        vm.deal(alice, tooMuch);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationBondTooHigh.selector, tooMuch));
        reg.join{value: tooMuch}();
    }

    function test_RevertWhen_LeaveWithoutJoining() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, alice));
        reg.leaveFederation();
    }

    function test_RevertWhen_LeaveTwice() public {
        _join(alice);
        vm.prank(alice);
        reg.leaveFederation();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, alice));
        reg.leaveFederation();
    }

    function test_RevertWhen_WithdrawNothing() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToWithdraw.selector, alice));
        reg.withdraw();
    }

    function test_RevertWhen_WithdrawWhileStillBonded() public {
        _join(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToWithdraw.selector, alice));
        reg.withdraw();
    }

    function test_RevertWhen_WithdrawTwice() public {
        _join(alice);
        vm.startPrank(alice);
        reg.leaveFederation();
        reg.withdraw();
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToWithdraw.selector, alice));
        reg.withdraw();
        vm.stopPrank();
    }

    function test_RevertWhen_ReceiverRejectsBond() public {
        RejectingPeer peer = new RejectingPeer();
        vm.deal(address(this), MIN_BOND);
        peer.join{value: MIN_BOND}(reg);
        peer.leave(reg);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationTransferFailed.selector, address(peer), MIN_BOND)
        );
        peer.withdraw(reg);
        // The failed transfer rolled back: the bond is still there to withdraw.
        assertEq(reg.withdrawable(address(peer)), MIN_BOND, "bond kept after failed transfer");
        assertEq(address(reg).balance, MIN_BOND, "balance kept");
    }
}

/// @dev Submission and closing errors, Synchronous + Serverless.
contract SubmissionErrorsTest is RegistryFixture {
    address[] internal peers;

    function setUp() public {
        _deploy(_sync(), _serverless());
        peers = _joinPeers(3);
    }

    function _trySubmit(address who, uint32 round, bytes memory err) internal {
        vm.prank(who);
        vm.expectRevert(err);
        reg.submitUpdate(round, "bafkupdate", _digest(who, round), 100, round);
    }

    function test_RevertWhen_NonPeerSubmits() public {
        address outsider = _peer(99);
        _trySubmit(outsider, 1, abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, outsider));
    }

    function test_RevertWhen_FormerPeerSubmits() public {
        vm.prank(peers[0]);
        reg.leaveFederation();
        _trySubmit(peers[0], 1, abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, peers[0]));
    }

    function test_RevertWhen_SubmitToFutureRound() public {
        _trySubmit(
            peers[0], 2, abi.encodeWithSelector(FederationRegistry.FederationNotCurrentRound.selector, 2, 1)
        );
    }

    function test_RevertWhen_SubmitToRoundZero() public {
        _trySubmit(
            peers[0], 0, abi.encodeWithSelector(FederationRegistry.FederationNotCurrentRound.selector, 0, 1)
        );
    }

    function test_RevertWhen_SubmitToPastRound() public {
        _serverlessRound(peers, 1, keccak256("root"));
        assertEq(reg.currentRound(), 2, "round 2 open");
        _trySubmit(
            peers[0], 1, abi.encodeWithSelector(FederationRegistry.FederationNotCurrentRound.selector, 1, 2)
        );
    }

    function test_RevertWhen_SubmitToClosedRound() public {
        _submit(peers[0], 1);
        _submit(peers[1], 1);
        vm.prank(peers[2]);
        reg.leaveFederation(); // the target drops to 2, but closing still needs a call
        reg.closeRound(1);
        _join(_peer(7));
        _trySubmit(
            _peer(7),
            1,
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                1,
                FederationRegistry.RoundStatus.Open,
                FederationRegistry.RoundStatus.Closed
            )
        );
    }

    function test_RevertWhen_SubmitTwice() public {
        _submit(peers[0], 1);
        _trySubmit(
            peers[0], 1, abi.encodeWithSelector(FederationRegistry.FederationAlreadySubmitted.selector, peers[0], 1)
        );
    }

    function test_RevertWhen_SubmitEmptyCid() public {
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.submitUpdate(1, "", _digest(peers[0], 1), 100, 1);
    }

    function test_RevertWhen_SubmitZeroDigest() public {
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.submitUpdate(1, "bafkupdate", bytes32(0), 100, 1);
    }

    function test_RevertWhen_SubmitZeroSamples() public {
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationZeroSamples.selector));
        reg.submitUpdate(1, "bafkupdate", _digest(peers[0], 1), 0, 1);
    }

    function test_RevertWhen_TrainedFromFutureRound() public {
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 2, 1, 0));
        reg.submitUpdate(1, "bafkupdate", _digest(peers[0], 1), 100, 2);
    }

    function test_RevertWhen_SyncUpdateFromEarlierRound() public {
        _serverlessRound(peers, 1, keccak256("root"));
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 1, 2, 0));
        reg.submitUpdate(2, "bafkupdate", _digest(peers[0], 2), 100, 1);
    }

    function test_RevertWhen_PreviousScoreUnsettled() public {
        bytes32[] memory leaves = _flatLeaves(1, peers, 400_000);
        _serverlessRound(peers, 1, ScoresTree.root(leaves));
        _trySubmit(
            peers[0], 2, abi.encodeWithSelector(FederationRegistry.FederationReputationUnsettled.selector, peers[0], 1)
        );
    }

    function test_RevertWhen_CloseNonCurrentRound() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotCurrentRound.selector, 2, 1));
        reg.closeRound(2);
    }

    function test_RevertWhen_CloseClosedRound() public {
        for (uint256 i = 0; i < peers.length; ++i) _submit(peers[i], 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                1,
                FederationRegistry.RoundStatus.Open,
                FederationRegistry.RoundStatus.Closed
            )
        );
        reg.closeRound(1);
    }

    function test_RevertWhen_CloseWithoutSubmissions() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNoSubmissions.selector, 1));
        reg.closeRound(1);
    }

    function test_RevertWhen_CloseWithoutSubmissionsAfterDeadline() public {
        vm.warp(START + ROUND_DURATION + 1 days);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNoSubmissions.selector, 1));
        reg.closeRound(1);
    }

    function test_RevertWhen_CloseBeforeDeadline() public {
        _submit(peers[0], 1);
        vm.warp(START + ROUND_DURATION - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationRoundNotClosable.selector, 1, 1, START + ROUND_DURATION
            )
        );
        reg.closeRound(1);
    }
}

/// @dev Staleness errors of the Asynchronous rule.
contract AsyncSubmissionErrorsTest is RegistryFixture {
    address[] internal peers;

    function setUp() public {
        _deploy(_async(), _server());
        peers = _joinPeers(4);
    }

    /// @dev Runs rounds 1..n to Expired with a single submission each (no settling needed).
    function _advanceTo(uint32 round) internal {
        for (uint32 r = reg.currentRound(); r < round; ++r) {
            _submit(peers[3], r);
            vm.warp(block.timestamp + ROUND_DURATION);
            reg.closeRound(r);
            _warpPastResultDeadline(r);
            reg.expireRound(r);
        }
    }

    function test_RevertWhen_AsyncUpdateBeyondStaleness() public {
        _advanceTo(5);
        vm.prank(peers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 2, 5, MAX_STALENESS)
        );
        reg.submitUpdate(5, "bafkupdate", _digest(peers[0], 5), 100, 2);
    }

    function test_RevertWhen_AsyncUpdateFromFuture() public {
        _advanceTo(3);
        vm.prank(peers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 4, 3, MAX_STALENESS)
        );
        reg.submitUpdate(3, "bafkupdate", _digest(peers[0], 3), 100, 4);
    }

    function test_RevertWhen_AsyncCloseBeforeQuorumAndDeadline() public {
        _submit(peers[0], 1);
        _submit(peers[1], 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationRoundNotClosable.selector, 1, 2, START + ROUND_DURATION
            )
        );
        reg.closeRound(1);
    }
}

/// @dev Vote, result and expiry errors in Serverless mode.
contract ServerlessResultErrorsTest is RegistryFixture {
    address[] internal peers;
    bytes32 internal root = keccak256("scores root");

    function setUp() public {
        _deploy(_sync(), _serverless());
        peers = _joinPeers(4);
    }

    function _close() internal {
        for (uint256 i = 0; i < peers.length; ++i) _submit(peers[i], 1);
    }

    function _wrongStatus(uint256 round, FederationRegistry.RoundStatus expected, FederationRegistry.RoundStatus actual)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(FederationRegistry.FederationWrongRoundStatus.selector, round, expected, actual);
    }

    function test_RevertWhen_VoteOnOpenRound() public {
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Open)
        );
        _vote(peers[0], 1);
    }

    function test_RevertWhen_VoteOnUnopenedRound() public {
        vm.expectRevert(
            _wrongStatus(7, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.None)
        );
        _vote(peers[0], 7);
    }

    function test_RevertWhen_VoteOnFinalisedRound() public {
        _serverlessRound(peers, 1, root);
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Finalised)
        );
        _vote(peers[0], 1);
    }

    function test_RevertWhen_VoteAfterVotingTime() public {
        _close();
        (, uint256 votingEndsAt,) = reg.roundDeadlines(1);
        vm.warp(votingEndsAt);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationVotingClosed.selector, 1, votingEndsAt));
        _vote(peers[0], 1);
    }

    function test_RevertWhen_VoteAfterAllVotesIn() public {
        _close();
        for (uint256 i = 0; i < peers.length; ++i) _vote(peers[i], 1);
        (, uint256 votingEndsAt,) = reg.roundDeadlines(1);
        address late = _peer(9);
        _join(late);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationVotingClosed.selector, 1, votingEndsAt));
        _vote(late, 1);
    }

    function test_RevertWhen_VoteEmptyCid() public {
        _close();
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.commitVotes(1, "", keccak256("v"));
    }

    function test_RevertWhen_VoteZeroDigest() public {
        _close();
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.commitVotes(1, "bafkvotes", bytes32(0));
    }

    function test_RevertWhen_NonPeerVotes() public {
        _close();
        address outsider = _peer(99);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, outsider));
        _vote(outsider, 1);
    }

    function test_RevertWhen_VoteTwice() public {
        _close();
        _vote(peers[0], 1);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationAlreadyVoted.selector, peers[0], 1));
        _vote(peers[0], 1);
    }

    function test_RevertWhen_PostResultInServerlessMode() public {
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationWrongMode.selector, FederationRegistry.ResultMode.Serverless)
        );
        _post(1, root);
    }

    function test_RevertWhen_NonPeerAttests() public {
        _close();
        _warpToResultWindow(1);
        address outsider = _peer(99);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotPeer.selector, outsider));
        _attest(outsider, 1, root);
    }

    function test_RevertWhen_AttestOpenRound() public {
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Open)
        );
        _attest(peers[0], 1, root);
    }

    function test_RevertWhen_AttestFinalisedRound() public {
        _serverlessRound(peers, 1, root);
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Finalised)
        );
        _attest(peers[3], 1, root);
    }

    function test_RevertWhen_AttestWhileVotingOpen() public {
        _close();
        _vote(peers[0], 1);
        (, uint256 votingEndsAt,) = reg.roundDeadlines(1);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationVotingOpen.selector, 1, votingEndsAt));
        _attest(peers[0], 1, root);
    }

    function test_RevertWhen_AttestAfterResultDeadline() public {
        _close();
        (,, uint256 resultDeadline) = reg.roundDeadlines(1);
        vm.warp(resultDeadline);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationResultWindowClosed.selector, 1, resultDeadline)
        );
        _attest(peers[0], 1, root);
    }

    function test_RevertWhen_AttestTwice() public {
        _close();
        _warpToResultWindow(1);
        _attest(peers[0], 1, root);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationAlreadyAttested.selector, peers[0], 1));
        _attest(peers[0], 1, keccak256("another root"));
    }

    function test_RevertWhen_AttestEmptyAggregateCid() public {
        _close();
        _warpToResultWindow(1);
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.attestResult(1, root, INCLUDED_HASH, "", AGGREGATE_DIGEST);
    }

    function test_RevertWhen_AttestZeroAggregateDigest() public {
        _close();
        _warpToResultWindow(1);
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.attestResult(1, root, INCLUDED_HASH, AGGREGATE_CID, bytes32(0));
    }

    function test_RevertWhen_ExpireOpenRound() public {
        vm.warp(START + 365 days);
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Open)
        );
        reg.expireRound(1);
    }

    function test_RevertWhen_ExpireFinalisedRound() public {
        _serverlessRound(peers, 1, root);
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Finalised)
        );
        reg.expireRound(1);
    }

    function test_RevertWhen_ExpireTwice() public {
        _close();
        _warpPastResultDeadline(1);
        reg.expireRound(1);
        vm.expectRevert(
            _wrongStatus(1, FederationRegistry.RoundStatus.Closed, FederationRegistry.RoundStatus.Expired)
        );
        reg.expireRound(1);
    }

    function test_RevertWhen_ExpireWithinResultWindow() public {
        _close();
        (,, uint256 resultDeadline) = reg.roundDeadlines(1);
        vm.warp(resultDeadline - 1);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationResultWindowOpen.selector, 1, resultDeadline)
        );
        reg.expireRound(1);
    }
}

/// @dev Vote and result errors in Server mode.
contract ServerResultErrorsTest is RegistryFixture {
    address[] internal peers;
    bytes32 internal root = keccak256("scores root");

    function setUp() public {
        _deploy(_sync(), _server());
        peers = _joinPeers(2);
        _submit(peers[0], 1);
        _submit(peers[1], 1); // closes round 1
    }

    function test_RevertWhen_PeerVotesInServerMode() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotAggregator.selector, peers[0]));
        _vote(peers[0], 1);
    }

    /// @dev In Server mode the aggregator's one vote completes voting, so a second vote meets
    /// the closed vote (the AlreadyVoted branch of that mode cannot be reached).
    function test_RevertWhen_AggregatorVotesTwice() public {
        _vote(AGGREGATOR, 1);
        (, uint256 votingEndsAt,) = reg.roundDeadlines(1);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationVotingClosed.selector, 1, votingEndsAt));
        _vote(AGGREGATOR, 1);
    }

    function test_RevertWhen_AttestInServerMode() public {
        _vote(AGGREGATOR, 1);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationWrongMode.selector, FederationRegistry.ResultMode.Server)
        );
        _attest(peers[0], 1, root);
    }

    function test_RevertWhen_NonAggregatorPosts() public {
        _vote(AGGREGATOR, 1);
        vm.prank(peers[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNotAggregator.selector, peers[0]));
        reg.postResult(1, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
    }

    function test_RevertWhen_PostOnOpenRound() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                2,
                FederationRegistry.RoundStatus.Closed,
                FederationRegistry.RoundStatus.None
            )
        );
        _post(2, root);
    }

    function test_RevertWhen_PostTwice() public {
        _vote(AGGREGATOR, 1);
        _post(1, root);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                1,
                FederationRegistry.RoundStatus.Closed,
                FederationRegistry.RoundStatus.Finalised
            )
        );
        _post(1, root);
    }

    function test_RevertWhen_PostWhileVotingOpen() public {
        (, uint256 votingEndsAt,) = reg.roundDeadlines(1);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationVotingOpen.selector, 1, votingEndsAt));
        _post(1, root);
    }

    function test_RevertWhen_PostAfterResultDeadline() public {
        _vote(AGGREGATOR, 1);
        (,, uint256 resultDeadline) = reg.roundDeadlines(1);
        vm.warp(resultDeadline);
        vm.expectRevert(
            abi.encodeWithSelector(FederationRegistry.FederationResultWindowClosed.selector, 1, resultDeadline)
        );
        _post(1, root);
    }

    function test_RevertWhen_PostEmptyAggregateCid() public {
        _vote(AGGREGATOR, 1);
        vm.prank(AGGREGATOR);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.postResult(1, root, INCLUDED_HASH, "", AGGREGATE_DIGEST);
    }

    function test_RevertWhen_PostZeroAggregateDigest() public {
        _vote(AGGREGATOR, 1);
        vm.prank(AGGREGATOR);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.postResult(1, root, INCLUDED_HASH, AGGREGATE_CID, bytes32(0));
    }

    function test_RevertWhen_AggregatorVoteEmptyCid() public {
        vm.prank(AGGREGATOR);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationEmptyContent.selector));
        reg.commitVotes(1, "", keccak256("v"));
    }
}

/// @dev Settlement errors, with proofs over a real 3-leaf tree.
contract SettleErrorsTest is RegistryFixture {
    address[] internal peers;
    uint32[] internal scores;
    bytes32[] internal leaves;

    function setUp() public {
        _deploy(_sync(), _server());
        peers = _joinPeers(3);
        scores = [uint32(700_000), 200_000, 0];
        leaves = _leaves(1, peers, scores);
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 1);
        _vote(AGGREGATOR, 1);
        _post(1, ScoresTree.root(leaves));
    }

    function _proof(uint256 i) internal view returns (bytes32[] memory) {
        return ScoresTree.proof(leaves, leaves[i]);
    }

    function test_RevertWhen_SettleNonSubmitter() public {
        address outsider = _peer(99);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToSettle.selector, outsider, 1));
        reg.settle(outsider, 1, 0, false, new bytes32[](0));
    }

    function test_RevertWhen_SettleRoundZero() public {
        address outsider = _peer(99);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToSettle.selector, outsider, 0));
        reg.settle(outsider, 0, 0, false, new bytes32[](0));
    }

    function test_RevertWhen_SettleOtherRound() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToSettle.selector, peers[0], 2));
        reg.settle(peers[0], 2, scores[0], true, _proof(0));
    }

    function test_RevertWhen_SettleTwice() public {
        reg.settle(peers[0], 1, scores[0], true, _proof(0));
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationNothingToSettle.selector, peers[0], 1));
        reg.settle(peers[0], 1, scores[0], true, _proof(0));
    }

    function test_RevertWhen_SettleUnfinalisedRound() public {
        for (uint256 i = 0; i < 3; ++i) reg.settle(peers[i], 1, scores[i], scores[i] != 0, _proof(i));
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                2,
                FederationRegistry.RoundStatus.Finalised,
                FederationRegistry.RoundStatus.Closed
            )
        );
        reg.settle(peers[0], 2, scores[0], true, _proof(0));
    }

    function test_RevertWhen_SettleExpiredRound() public {
        for (uint256 i = 0; i < 3; ++i) reg.settle(peers[i], 1, scores[i], scores[i] != 0, _proof(i));
        for (uint256 i = 0; i < 3; ++i) _submit(peers[i], 2);
        _warpPastResultDeadline(2);
        reg.expireRound(2);
        vm.expectRevert(
            abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector,
                2,
                FederationRegistry.RoundStatus.Finalised,
                FederationRegistry.RoundStatus.Expired
            )
        );
        reg.settle(peers[0], 2, scores[0], true, _proof(0));
    }

    function test_RevertWhen_ScoreAbovePpm() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationScoreOutOfRange.selector, 1_000_001));
        reg.settle(peers[0], 1, 1_000_001, true, _proof(0));
    }

    function test_RevertWhen_ProofForWrongScore() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidScoreProof.selector, peers[0], 1));
        reg.settle(peers[0], 1, scores[0] + 1, true, _proof(0));
    }

    function test_RevertWhen_ProofWithWrongIncludedFlag() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidScoreProof.selector, peers[2], 1));
        reg.settle(peers[2], 1, 0, true, _proof(2));
    }

    function test_RevertWhen_ProofOfAnotherPeer() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidScoreProof.selector, peers[1], 1));
        reg.settle(peers[1], 1, scores[0], true, _proof(0));
    }

    function test_RevertWhen_EmptyProof() public {
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidScoreProof.selector, peers[0], 1));
        reg.settle(peers[0], 1, scores[0], true, new bytes32[](0));
    }
}
