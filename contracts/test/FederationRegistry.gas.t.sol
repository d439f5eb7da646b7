// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../FederationRegistry.sol";
import {RegistryFixture} from "./utils/RegistryFixture.sol";
import {ScoresTree} from "./utils/ScoresTree.sol";

/// @dev A scaling test, not a benchmark: the same round played on a registry with 4 joined
/// peers and on one with 64 must cost each per-peer action (nearly) the same gas, because
/// every action touches a constant number of storage slots and nothing loops over peers.
/// Four peers submit in both, so scores trees (and proofs) have the same size; only the
/// number of joined peers differs. `bcfl bench gas` reports the absolute figures.
contract GasScalingTest is RegistryFixture {
    uint256 internal constant SUBMITTERS = 4;
    FederationRegistry internal small;
    FederationRegistry internal large;

    struct Costs {
        uint256 join;
        uint256 submit;
        uint256 closeRound;
        uint256 vote;
        uint256 attest;
        uint256 attestFinalising;
        uint256 settle;
        uint256 leave;
        uint256 withdraw;
    }

    function setUp() public {
        small = _deployWith(4);
        large = _deployWith(64);
    }

    function _deployWith(uint256 n) internal returns (FederationRegistry r) {
        r = _deploy(_sync(), _serverless());
        _joinPeers(n);
    }

    function _measure(FederationRegistry r) internal returns (Costs memory c) {
        reg = r;
        uint256 g;
        address newcomer = _peer(1000);
        vm.deal(newcomer, MIN_BOND);
        vm.prank(newcomer);
        g = gasleft();
        reg.join{value: MIN_BOND}();
        c.join = g - gasleft();

        for (uint256 i = 0; i < SUBMITTERS; ++i) {
            bytes32 digest = _digest(_peer(i), 1);
            vm.prank(_peer(i));
            g = gasleft();
            reg.submitUpdate(1, "bafkupdate", digest, 100, 1);
            if (i == 1) c.submit = g - gasleft();
        }
        (uint256 submitDeadline,,) = reg.roundDeadlines(1);
        vm.warp(submitDeadline);
        g = gasleft();
        reg.closeRound(1);
        c.closeRound = g - gasleft();

        for (uint256 i = 0; i < SUBMITTERS; ++i) {
            bytes32 digest = keccak256(abi.encode("votes", i));
            vm.prank(_peer(i));
            g = gasleft();
            reg.commitVotes(1, "bafkvotes", digest);
            if (i == 1) c.vote = g - gasleft();
        }

        address[] memory submitters = new address[](SUBMITTERS);
        for (uint256 i = 0; i < SUBMITTERS; ++i) submitters[i] = _peer(i);
        bytes32[] memory leaves = _flatLeaves(1, submitters, 800_000);
        bytes32 root = ScoresTree.root(leaves);
        // Measured attesters have the same history in both registries within this one test
        // transaction (a slot already written here is cheaper to write again): peers 0 and 1,
        // then non-submitters up to quorum - 1, then peer 2 finalises.
        uint256 q = reg.quorum();
        assertGe(q, 3, "quorum");
        for (uint256 i = 0; i < q; ++i) {
            address attester = i < 2 ? _peer(i) : (i == q - 1 ? _peer(2) : _peer(SUBMITTERS + i - 2));
            vm.prank(attester);
            g = gasleft();
            reg.attestResult(1, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST);
            if (i == 1) c.attest = g - gasleft();
            if (i == q - 1) c.attestFinalising = g - gasleft();
        }
        assertTrue(reg.roundInfo(1).status == FederationRegistry.RoundStatus.Finalised, "round finalised");

        bytes32[] memory proof = ScoresTree.proof(leaves, ScoresTree.leaf(1, _peer(1), 800_000, true));
        g = gasleft();
        reg.settle(_peer(1), 1, 800_000, true, proof);
        c.settle = g - gasleft();

        vm.prank(_peer(2));
        g = gasleft();
        reg.leaveFederation();
        c.leave = g - gasleft();
        // A peer pays its own gas, so its account is never empty (paying an empty account
        // costs 25,000 more, which would compare account states rather than the contract).
        vm.deal(_peer(2), 1 ether);
        vm.prank(_peer(2));
        g = gasleft();
        reg.withdraw();
        c.withdraw = g - gasleft();
    }

    /// @dev |a - b| < 5% of the smaller.
    function _assertClose(uint256 a, uint256 b, string memory what) internal pure {
        uint256 lo = a < b ? a : b;
        uint256 diff = a > b ? a - b : b - a;
        assertTrue(lo > 0, string.concat(what, ": not measured"));
        assertLt(diff * 100, lo * 5, string.concat(what, ": gas differs by 5% or more between 4 and 64 peers"));
    }

    function test_PerPeerActionGasIndependentOfPeerCount() public {
        Costs memory a = _measure(small);
        Costs memory b = _measure(large);
        assertEq(large.activePeers(), 64, "large registry: 65 joined, one left");
        _assertClose(a.join, b.join, "join");
        _assertClose(a.submit, b.submit, "submitUpdate");
        _assertClose(a.closeRound, b.closeRound, "closeRound");
        _assertClose(a.vote, b.vote, "commitVotes");
        _assertClose(a.attest, b.attest, "attestResult");
        _assertClose(a.attestFinalising, b.attestFinalising, "attestResult (finalising)");
        _assertClose(a.settle, b.settle, "settle");
        _assertClose(a.leave, b.leave, "leaveFederation");
        _assertClose(a.withdraw, b.withdraw, "withdraw");
    }

    /// @dev The comparison can fail: an action whose cost grows with the peer count (here, a
    /// loop over the peer list the way a naive contract would settle everyone) is caught.
    function test_ScalingCheckDetectsLinearCost() public {
        uint256 g = gasleft();
        small.peerPage(0, 4);
        uint256 few = g - gasleft();
        g = gasleft();
        large.peerPage(0, 64);
        uint256 many = g - gasleft();
        assertTrue(many * 100 >= few * 105, "a paginated read of 64 entries costs visibly more than of 4");
    }
}
