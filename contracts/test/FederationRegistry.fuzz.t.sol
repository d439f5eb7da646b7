// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../FederationRegistry.sol";
import {RegistryFixture} from "./utils/RegistryFixture.sol";
import {ScoresTree} from "./utils/ScoresTree.sol";

/// @dev Fuzzed bonds: any amounts, any order of leaving; the contract's balance always equals
/// its bond total, and every peer gets back exactly what it put in.
contract BondsFuzzTest is RegistryFixture {
    function setUp() public {
        _deploy(_sync(), _serverless());
    }

    function _checkBalance() internal view {
        assertEq(address(reg).balance, reg.totalBonded(), "balance == totalBonded");
    }

    function testFuzz_JoinLeaveWithdraw(uint256[6] memory amounts, uint8 leaveMask, uint8 withdrawMask) public {
        for (uint256 i = 0; i < 6; ++i) {
            amounts[i] = bound(amounts[i], MIN_BOND, 1_000 ether);
            vm.deal(_peer(i), amounts[i]);
            vm.prank(_peer(i));
            reg.join{value: amounts[i]}();
            _checkBalance();
        }
        uint256 held;
        for (uint256 i = 0; i < 6; ++i) {
            bool leaves = (leaveMask >> i) & 1 == 1;
            if (leaves) {
                vm.prank(_peer(i));
                reg.leaveFederation();
                assertEq(reg.withdrawable(_peer(i)), amounts[i], "released bond");
                if ((withdrawMask >> i) & 1 == 1) {
                    vm.prank(_peer(i));
                    reg.withdraw();
                    assertEq(_peer(i).balance, amounts[i], "paid back exactly");
                } else {
                    held += amounts[i];
                }
            } else {
                held += amounts[i];
                assertEq(reg.peerInfo(_peer(i)).bond, amounts[i], "bond locked");
            }
            _checkBalance();
        }
        assertEq(reg.totalBonded(), held, "total of bonds still held");
    }

    function testFuzz_BondBelowMinimumReverts(uint256 value) public {
        value = bound(value, 0, MIN_BOND - 1);
        vm.deal(_peer(1), value);
        vm.prank(_peer(1));
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationBondTooLow.selector, value, MIN_BOND));
        reg.join{value: value}();
    }

    function testFuzz_BondAboveFieldReverts(uint256 value) public {
        value = bound(value, uint256(type(uint80).max) + 1, type(uint128).max);
        vm.deal(_peer(1), value);
        vm.prank(_peer(1));
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationBondTooHigh.selector, value));
        reg.join{value: value}();
    }

    function test_BondAtFieldMaximum() public {
        uint256 value = type(uint80).max;
        vm.deal(_peer(1), value);
        vm.prank(_peer(1));
        reg.join{value: value}();
        assertEq(reg.peerInfo(_peer(1)).bond, value, "largest bond fits");
    }
}

/// @dev Fuzzed staleness window of the Asynchronous rule.
contract StalenessFuzzTest is RegistryFixture {
    address internal filler = _peer(0);
    address internal peer = _peer(1);

    /// @dev Deploys with `maxStaleness` and expires rounds until `round` is open.
    function _setUpAt(uint32 maxStaleness, uint32 round) internal {
        FederationRegistry.Config memory c = _config(_async(), _serverless());
        c.maxStaleness = maxStaleness;
        _deploy(c);
        _join(filler);
        _join(peer);
        for (uint32 r = 1; r < round; ++r) {
            _submit(filler, r);
            vm.warp(block.timestamp + ROUND_DURATION);
            reg.closeRound(r);
            _warpPastResultDeadline(r);
            reg.expireRound(r);
        }
    }

    function testFuzz_Staleness(uint32 maxStaleness, uint32 round, uint32 trainedFrom) public {
        maxStaleness = uint32(bound(maxStaleness, 0, 4));
        round = uint32(bound(round, 1, 7));
        trainedFrom = uint32(bound(trainedFrom, 0, round + 2));
        _setUpAt(maxStaleness, round);
        bool fresh = trainedFrom <= round && round - trainedFrom <= maxStaleness;
        if (!fresh) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    FederationRegistry.FederationUpdateTooStale.selector, trainedFrom, round, maxStaleness
                )
            );
        }
        _submitFrom(peer, round, trainedFrom);
        assertEq(reg.peerInfo(peer).lastSubmitted, fresh ? round : 0, "accepted exactly when fresh");
    }

    function test_StalenessBoundary() public {
        _setUpAt(2, 5);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationUpdateTooStale.selector, 2, 5, 2));
        _submitFrom(peer, 5, 2);
        _submitFrom(peer, 5, 3);
    }
}

/// @dev `quorum()` arithmetic, and that exactly that many identical attestations finalise.
contract QuorumFuzzTest is RegistryFixture {
    bytes32 internal root = keccak256("root");

    function _expectedQuorum(uint256 n, uint256 bps) internal pure returns (uint256 q) {
        q = (n * bps) / 10_000;
        if (q * 10_000 < n * bps) q += 1; // ceiling
        if (q == 0) q = 1;
    }

    function _setUp(uint16 bps, uint256 n) internal returns (address[] memory peers) {
        FederationRegistry.Config memory c = _config(_sync(), _serverless());
        c.quorumBps = bps;
        _deploy(c);
        peers = _joinPeers(n);
    }

    function testFuzz_QuorumFormula(uint16 bps, uint256 n) public {
        bps = uint16(bound(bps, 1, 10_000));
        n = bound(n, 0, 40);
        _setUp(bps, n);
        assertEq(reg.quorum(), _expectedQuorum(n, bps), "ceil(n * bps / 1e4), at least 1");
        assertLe(reg.quorum(), n == 0 ? 1 : n, "never above the peer count");
    }

    function testFuzz_ExactlyQuorumFinalises(uint16 bps, uint256 n) public {
        bps = uint16(bound(bps, 1, 10_000));
        n = bound(n, 1, 16);
        address[] memory peers = _setUp(bps, n);
        for (uint256 i = 0; i < n; ++i) _submit(peers[i], 1);
        _warpToResultWindow(1);
        uint256 q = reg.quorum();
        for (uint256 i = 0; i + 1 < q; ++i) _attest(peers[i], 1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Closed), "quorum - 1: not final");
        _attest(peers[q - 1], 1, root);
        assertEq(uint256(_status(1)), uint256(FederationRegistry.RoundStatus.Finalised), "quorum: final");
    }

    function test_QuorumConcreteCases() public {
        uint256[2][6] memory cases = [[uint256(4), 6000], [uint256(3), 6667], [uint256(1), 1], [uint256(10), 10_000], [uint256(0), 5000], [uint256(7), 5000]];
        uint256[6] memory expected = [uint256(3), 3, 1, 10, 1, 4];
        for (uint256 k = 0; k < cases.length; ++k) {
            _setUp(uint16(cases[k][1]), cases[k][0]);
            assertEq(reg.quorum(), expected[k], "concrete quorum");
        }
    }
}

/// @dev Reputation EMA over several settled rounds: matches the formula, never above 1e6.
contract ReputationFuzzTest is RegistryFixture {
    address internal peer = _peer(1);

    function _setUp(uint32 initial, uint16 weight) internal {
        FederationRegistry.Config memory c = _config(_sync(), _server());
        c.initialReputation = initial;
        c.reputationWeightBps = weight;
        _deploy(c);
        _join(peer);
    }

    /// @dev One round for the single peer with `score`, posted by the aggregator and settled.
    function _roundWithScore(uint32 round, uint32 score) internal {
        _submit(peer, round); // one active peer: closes at once
        _vote(AGGREGATOR, round);
        bytes32[] memory leaves = new bytes32[](2);
        leaves[0] = ScoresTree.leaf(round, peer, score, score != 0);
        leaves[1] = ScoresTree.leaf(round, _peer(2), 0, false); // a second leaf gives a real proof
        _post(round, ScoresTree.root(leaves));
        _settle(peer, round, score, score != 0, leaves);
    }

    function _ema(uint256 old, uint256 score, uint256 weight) internal pure returns (uint256) {
        return (old * (10_000 - weight) + score * weight) / 10_000;
    }

    function testFuzz_EmaMatchesFormula(uint32 initial, uint16 weight, uint32[5] memory scores) public {
        initial = uint32(bound(initial, 0, 1_000_000));
        weight = uint16(bound(weight, 0, 10_000));
        _setUp(initial, weight);
        uint256 expected = initial;
        for (uint32 r = 1; r <= 5; ++r) {
            uint32 score = uint32(bound(scores[r - 1], 0, 1_000_000));
            _roundWithScore(r, score);
            expected = _ema(expected, score, weight);
            uint256 rep = reg.peerInfo(peer).reputation;
            assertEq(rep, expected, "EMA");
            assertLe(rep, 1_000_000, "reputation within PPM");
        }
    }

    function testFuzz_ScoreAbovePpmRejected(uint32 score) public {
        score = uint32(bound(score, 1_000_001, type(uint32).max));
        _setUp(INITIAL_REPUTATION, WEIGHT_BPS);
        _submit(peer, 1);
        _vote(AGGREGATOR, 1);
        _post(1, keccak256("any root"));
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationScoreOutOfRange.selector, score));
        reg.settle(peer, 1, score, true, new bytes32[](0));
    }

    function testFuzz_ForgedScoreRejected(uint32 score, uint32 forged) public {
        score = uint32(bound(score, 0, 1_000_000));
        forged = uint32(bound(forged, 0, 1_000_000));
        vm.assume(forged != score);
        _setUp(INITIAL_REPUTATION, WEIGHT_BPS);
        _submit(peer, 1);
        _vote(AGGREGATOR, 1);
        bytes32[] memory leaves = new bytes32[](3);
        leaves[0] = ScoresTree.leaf(1, peer, score, true);
        leaves[1] = ScoresTree.leaf(1, _peer(2), 1, true);
        leaves[2] = ScoresTree.leaf(1, _peer(3), 2, true);
        _post(1, ScoresTree.root(leaves));
        bytes32[] memory proof = ScoresTree.proof(leaves, leaves[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationRegistry.FederationInvalidScoreProof.selector, peer, 1));
        reg.settle(peer, 1, forged, true, proof);
        reg.settle(peer, 1, score, true, proof);
    }

    function test_EmaConcreteCases() public {
        _setUp(500_000, 3000);
        _roundWithScore(1, 1_000_000);
        assertEq(reg.peerInfo(peer).reputation, 650_000, "0.7 * 500k + 0.3 * 1M");
        _roundWithScore(2, 0);
        assertEq(reg.peerInfo(peer).reputation, 455_000, "0.7 * 650k");

        _setUp(1_000_000, 10_000);
        _roundWithScore(1, 123_456);
        assertEq(reg.peerInfo(peer).reputation, 123_456, "full weight: the score");

        _setUp(777_777, 0);
        _roundWithScore(1, 0);
        assertEq(reg.peerInfo(peer).reputation, 777_777, "zero weight: unchanged");

        _setUp(1_000_000, 5_000);
        _roundWithScore(1, 1_000_000);
        assertEq(reg.peerInfo(peer).reputation, 1_000_000, "stays at the top");
    }
}
