// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../../FederationRegistry.sol";
import {TestBase} from "../Vm.sol";
import {ScoresTree} from "./ScoresTree.sol";

/// @dev Deployment defaults and short-hands shared by the contract's test suites.
abstract contract RegistryFixture is TestBase {
    string internal constant GENESIS_CID = "bafkgenesis";
    bytes32 internal constant GENESIS_DIGEST = keccak256("genesis model");
    string internal constant AGGREGATE_CID = "bafkaggregate";
    bytes32 internal constant AGGREGATE_DIGEST = keccak256("aggregate");
    bytes32 internal constant INCLUDED_HASH = keccak256("included");
    uint96 internal constant MIN_BOND = 1 ether;
    uint32 internal constant ROUND_DURATION = 1 hours;
    uint32 internal constant VOTE_DURATION = 30 minutes;
    uint32 internal constant RESULT_DURATION = 20 minutes;
    uint16 internal constant QUORUM_BPS = 6000; // 4 peers: 3 attestations; 5 peers: 3
    uint16 internal constant WEIGHT_BPS = 3000;
    uint32 internal constant INITIAL_REPUTATION = 500_000;
    uint32 internal constant ASYNC_QUORUM = 3;
    uint32 internal constant MAX_STALENESS = 2;
    address internal constant AGGREGATOR = address(0xA99);
    uint256 internal constant START = 1_000_000;

    FederationRegistry internal reg;

    function _config(FederationRegistry.ClosingRule rule, FederationRegistry.ResultMode mode)
        internal
        pure
        returns (FederationRegistry.Config memory c)
    {
        bool async_ = rule == FederationRegistry.ClosingRule.Asynchronous;
        c = FederationRegistry.Config({
            closingRule: rule,
            resultMode: mode,
            aggregator: mode == FederationRegistry.ResultMode.Server ? AGGREGATOR : address(0),
            minBond: MIN_BOND,
            asyncQuorum: async_ ? ASYNC_QUORUM : 0,
            maxStaleness: async_ ? MAX_STALENESS : 0,
            roundDuration: ROUND_DURATION,
            voteDuration: VOTE_DURATION,
            resultDuration: RESULT_DURATION,
            quorumBps: QUORUM_BPS,
            reputationWeightBps: WEIGHT_BPS,
            initialReputation: INITIAL_REPUTATION,
            scoreThreshold: 100_000,
            serverLearningRatePpm: 1_000_000
        });
    }

    function _deploy(FederationRegistry.Config memory c) internal returns (FederationRegistry) {
        vm.warp(START);
        reg = new FederationRegistry(GENESIS_CID, GENESIS_DIGEST, c);
        return reg;
    }

    function _deploy(FederationRegistry.ClosingRule rule, FederationRegistry.ResultMode mode)
        internal
        returns (FederationRegistry)
    {
        return _deploy(_config(rule, mode));
    }

    function _sync() internal pure returns (FederationRegistry.ClosingRule) {
        return FederationRegistry.ClosingRule.Synchronous;
    }

    function _async() internal pure returns (FederationRegistry.ClosingRule) {
        return FederationRegistry.ClosingRule.Asynchronous;
    }

    function _serverless() internal pure returns (FederationRegistry.ResultMode) {
        return FederationRegistry.ResultMode.Serverless;
    }

    function _server() internal pure returns (FederationRegistry.ResultMode) {
        return FederationRegistry.ResultMode.Server;
    }

    function _peer(uint256 i) internal pure returns (address) {
        return address(uint160(0x10000 + i));
    }

    function _join(address who) internal {
        vm.deal(who, who.balance + MIN_BOND);
        vm.prank(who);
        reg.join{value: MIN_BOND}();
    }

    function _joinPeers(uint256 n) internal returns (address[] memory peers) {
        peers = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            peers[i] = _peer(i);
            _join(peers[i]);
        }
    }

    function _digest(address who, uint32 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("update", who, round));
    }

    function _submit(address who, uint32 round) internal {
        _submitFrom(who, round, round);
    }

    function _submitFrom(address who, uint32 round, uint32 trainedFrom) internal {
        vm.prank(who);
        reg.submitUpdate(round, "bafkupdate", _digest(who, round), 100, trainedFrom);
    }

    function _vote(address who, uint32 round) internal {
        vm.prank(who);
        reg.commitVotes(round, "bafkvotes", keccak256(abi.encode("votes", who, round)));
    }

    function _attest(address who, uint32 round, bytes32 scoresRoot) internal {
        vm.prank(who);
        reg.attestResult(round, scoresRoot, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
    }

    function _post(uint32 round, bytes32 scoresRoot) internal {
        vm.prank(AGGREGATOR);
        reg.postResult(round, scoresRoot, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
    }

    function _status(uint256 round) internal view returns (FederationRegistry.RoundStatus) {
        return reg.roundInfo(round).status;
    }

    /// @dev Move past the end of voting of a closed round (without waiting for all votes).
    function _warpToResultWindow(uint256 round) internal {
        (, uint256 votingEndsAt,) = reg.roundDeadlines(round);
        vm.warp(votingEndsAt);
    }

    function _warpPastResultDeadline(uint256 round) internal {
        (,, uint256 resultDeadline) = reg.roundDeadlines(round);
        vm.warp(resultDeadline);
    }

    /// @dev Scores tree of a round where peer i scored `scores[i]`; peers with a zero score are
    /// marked not included.
    function _leaves(uint32 round, address[] memory peers, uint32[] memory scores)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](peers.length);
        for (uint256 i = 0; i < peers.length; ++i) {
            leaves[i] = ScoresTree.leaf(round, peers[i], scores[i], scores[i] != 0);
        }
    }

    /// @dev Leaves for one round where every listed peer scored `score`, included.
    function _flatLeaves(uint32 round, address[] memory peers, uint32 score)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](peers.length);
        for (uint256 i = 0; i < peers.length; ++i) {
            leaves[i] = ScoresTree.leaf(round, peers[i], score, true);
        }
    }

    /// @dev A full Serverless round for `peers` (all submit, all vote, all attest `root`).
    function _serverlessRound(address[] memory peers, uint32 round, bytes32 scoresRoot) internal {
        for (uint256 i = 0; i < peers.length; ++i) _submit(peers[i], round);
        if (_status(round) == FederationRegistry.RoundStatus.Open) {
            vm.warp(block.timestamp + ROUND_DURATION);
            reg.closeRound(round);
        }
        for (uint256 i = 0; i < peers.length; ++i) _vote(peers[i], round);
        for (uint256 i = 0; i < peers.length && _status(round) == FederationRegistry.RoundStatus.Closed; ++i) {
            _attest(peers[i], round, scoresRoot);
        }
    }

    function _settle(address who, uint32 round, uint32 score, bool included, bytes32[] memory leaves) internal {
        reg.settle(who, round, score, included, ScoresTree.proof(leaves, ScoresTree.leaf(round, who, score, included)));
    }
}
