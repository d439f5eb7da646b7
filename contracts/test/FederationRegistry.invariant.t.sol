// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../FederationRegistry.sol";
import {RegistryHandler} from "./handlers/RegistryHandler.sol";
import {RegistryFixture} from "./utils/RegistryFixture.sol";

/// @dev The protocol's invariants, checked after every call of random action sequences driven
/// through {RegistryHandler}. Each concrete suite below picks one deployment configuration.
abstract contract RegistryInvariants is RegistryFixture {
    RegistryHandler internal handler;

    function _configure() internal pure virtual returns (FederationRegistry.Config memory);

    function setUp() public {
        _deploy(_configure());
        handler = new RegistryHandler(reg);
        // Repeats weight the draw towards actions that move rounds forward.
        bytes4[16] memory weighted = [
            RegistryHandler.join.selector,
            RegistryHandler.join.selector,
            RegistryHandler.leaveFederation.selector,
            RegistryHandler.withdraw.selector,
            RegistryHandler.submit.selector,
            RegistryHandler.submit.selector,
            RegistryHandler.submit.selector,
            RegistryHandler.closeRound.selector,
            RegistryHandler.vote.selector,
            RegistryHandler.vote.selector,
            RegistryHandler.attest.selector,
            RegistryHandler.attest.selector,
            RegistryHandler.attest.selector,
            RegistryHandler.expireRound.selector,
            RegistryHandler.settle.selector,
            RegistryHandler.warp.selector
        ];
        bytes4[] memory selectors = new bytes4[](weighted.length);
        for (uint256 i = 0; i < weighted.length; ++i) selectors[i] = weighted[i];
        targetContract(address(handler));
        targetSelector(address(handler), selectors);
    }

    /// @dev All properties below, checked after every handler call. One invariant function
    /// per suite, not one per property: each invariant function gets its own fuzzing campaign,
    /// so one function buys campaigns seven times longer for the same run time. A failure
    /// names its property in the message.
    function invariant_protocol() public view {
        _callsMatchModel();
        _roundEndsAtMostOnce();
        _oneSubmissionPerPeerPerRound();
        _onlyJoinedPeersAreActive();
        _balanceEqualsBondsHeld();
        _quorumOnlyFromPeers();
        _roundOnlyIncreasesAndReputationBounded();
    }

    /// @dev Every call did what the handler's model predicted, down to the exact custom error.
    function _callsMatchModel() internal view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }

    /// @dev Each round finalises or expires at most once; every round before the current one
    /// did exactly one of the two, and its stored status agrees with the event it emitted.
    function _roundEndsAtMostOnce() internal view {
        uint256 current = reg.currentRound();
        for (uint256 r = 1; r <= current; ++r) {
            uint256 ends = handler.ghostFinalisedEvents(r) + handler.ghostExpiredEvents(r);
            assertLe(ends, 1, "a round ended twice");
            assertEq(ends, r < current ? 1 : 0, "rounds before the current one ended once; the current one not");
            FederationRegistry.RoundStatus s = reg.roundInfo(r).status;
            if (handler.ghostFinalisedEvents(r) == 1) {
                assertTrue(s == FederationRegistry.RoundStatus.Finalised, "finalised event, other status");
            }
            if (handler.ghostExpiredEvents(r) == 1) {
                assertTrue(s == FederationRegistry.RoundStatus.Expired, "expired event, other status");
            }
            assertEq(handler.statusSeen(r), uint256(s), "status seen after the last call");
        }
    }

    /// @dev No (round, peer) pair ever has two submissions, and the count stored per round
    /// equals the submissions announced.
    function _oneSubmissionPerPeerPerRound() internal view {
        assertLe(handler.ghostMaxSubmissionsPerPeerRound(), 1, "a peer submitted twice in a round");
        uint256 current = reg.currentRound();
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actorAt(i);
            assertLe(handler.ghostSubmissions(current, a), 1, "twice in the current round");
        }
    }

    /// @dev Only joined peers are active: outsiders never, and the contract's peer count matches
    /// the handler's model of who joined and left.
    function _onlyJoinedPeersAreActive() internal view {
        uint256 active;
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actorAt(i);
            bool isActive = reg.peerInfo(a).active;
            if (handler.isOutsider(i)) assertFalse(isActive, "an outsider is active");
            assertEq(isActive, handler.modelActive(a), "active flag differs from the model");
            if (isActive) active += 1;
        }
        assertEq(reg.activePeers(), active, "activePeers");
    }

    /// @dev balance == totalBonded == sum of active bonds + withdrawable == deposits - payouts.
    function _balanceEqualsBondsHeld() internal view {
        uint256 held;
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actorAt(i);
            FederationRegistry.Peer memory p = reg.peerInfo(a);
            if (!p.active) assertEq(p.bond, 0, "an inactive peer holds a bond");
            held += p.bond + reg.withdrawable(a);
            assertEq(p.bond, handler.modelBond(a), "bond differs from the model");
            assertEq(reg.withdrawable(a), handler.modelWithdrawable(a), "withdrawable differs from the model");
        }
        assertEq(address(reg).balance, reg.totalBonded(), "balance == totalBonded");
        assertEq(reg.totalBonded(), held, "totalBonded == active bonds + withdrawable");
        assertEq(held, handler.ghostDeposited() - handler.ghostWithdrawn(), "== deposits - payouts");
    }

    /// @dev A round finalised only with at least a quorum of attestations by addresses that
    /// were active peers when they attested (attestations by anyone else are violations).
    function _quorumOnlyFromPeers() internal view {
        uint256 current = reg.currentRound();
        for (uint256 r = 1; r < current; ++r) {
            if (handler.ghostFinalisedEvents(r) == 0) continue;
            assertGe(handler.ghostQuorumAtFinal(r), 1, "quorum at least one");
            assertGe(handler.ghostAttestationsAtFinal(r), handler.ghostQuorumAtFinal(r), "finalised below quorum");
        }
    }

    /// @dev The current round never decreases; reputations stay within parts per million.
    function _roundOnlyIncreasesAndReputationBounded() internal view {
        assertEq(reg.currentRound(), handler.ghostMaxRound(), "current round is the highest seen");
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address a = handler.actorAt(i);
            uint32 rep = reg.peerInfo(a).reputation;
            assertLe(rep, 1_000_000, "reputation above 1e6");
            assertEq(rep, handler.modelReputation(a), "reputation differs from the EMA model");
        }
    }
}

/// forge-config: default.invariant.runs = 16
/// forge-config: default.invariant.depth = 200
/// forge-config: default.invariant.fail-on-revert = true
contract AsyncServerlessInvariantTest is RegistryInvariants {
    function _configure() internal pure override returns (FederationRegistry.Config memory) {
        return _config(_async(), _serverless());
    }
}

/// forge-config: default.invariant.runs = 16
/// forge-config: default.invariant.depth = 200
/// forge-config: default.invariant.fail-on-revert = true
contract SyncServerlessInvariantTest is RegistryInvariants {
    function _configure() internal pure override returns (FederationRegistry.Config memory) {
        return _config(_sync(), _serverless());
    }
}

/// forge-config: default.invariant.runs = 16
/// forge-config: default.invariant.depth = 200
/// forge-config: default.invariant.fail-on-revert = true
contract SyncServerInvariantTest is RegistryInvariants {
    function _configure() internal pure override returns (FederationRegistry.Config memory) {
        return _config(_sync(), _server());
    }
}
