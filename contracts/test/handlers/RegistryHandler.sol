// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {FederationRegistry} from "../../FederationRegistry.sol";
import {Vm} from "../Vm.sol";
import {ScoresTree} from "../utils/ScoresTree.sol";

/// @dev Drives the registry for the invariant suites. Each action picks an actor (six
/// candidates that may join, three outsiders that never do), predicts from its own model
/// whether the call must succeed or revert with which exact error, makes the call, and records
/// any disagreement as a violation. Ghost totals are built from the events the contract emits,
/// so the invariants compare the contract's storage against what it announced.
contract RegistryHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant CANDIDATES = 6;
    uint256 internal constant OUTSIDERS = 3;
    string internal constant AGGREGATE_CID = "bafkaggregate";
    bytes32 internal constant AGGREGATE_DIGEST = keccak256("aggregate");
    bytes32 internal constant INCLUDED_HASH = keccak256("included");

    bytes32 internal constant SIG_SUBMITTED =
        keccak256("UpdateSubmitted(uint256,address,string,bytes32,uint64,uint32,uint32)");
    bytes32 internal constant SIG_VOTES = keccak256("VotesCommitted(uint256,address,string,bytes32,uint32,uint256)");
    bytes32 internal constant SIG_ATTESTED =
        keccak256("ResultAttested(uint256,address,bytes32,bytes32,bytes32,string,bytes32)");
    bytes32 internal constant SIG_FINALISED = keccak256("RoundFinalised(uint256,bytes32)");
    bytes32 internal constant SIG_EXPIRED = keccak256("RoundExpired(uint256)");

    FederationRegistry public immutable reg;
    bool internal immutable serverless;
    bool internal immutable asynchronous;
    address internal immutable aggregatorAddr;
    uint256 internal immutable minBond;
    uint32 internal immutable maxStaleness;

    enum Act {
        Any,
        Submit,
        Vote,
        Attest
    }

    address[] internal actors; // candidates first, then outsiders

    // ---- model: what the handler believes the contract's state is ----
    mapping(address => bool) public modelActive;
    mapping(address => bool) internal modelRegistered;
    mapping(address => uint256) public modelBond;
    mapping(address => uint256) public modelWithdrawable;
    mapping(address => uint32) public modelReputation;
    mapping(address => uint32) internal modelLastSubmitted;
    mapping(address => uint32) internal modelLastSettled;
    mapping(uint256 => mapping(address => bool)) internal modelVoted;
    mapping(uint256 => mapping(address => bool)) internal modelAttested;
    uint256 public modelActiveCount;

    // ---- ghosts: built from the contract's events ----
    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    mapping(uint256 => mapping(address => uint256)) public ghostSubmissions; // per (round, peer)
    uint256 public ghostMaxSubmissionsPerPeerRound;
    mapping(uint256 => address[]) internal ghostSubmitters;
    mapping(uint256 => uint256) public ghostVotes;
    mapping(bytes32 => uint256) public ghostPeerAttestations; // per proposal, by active peers only
    mapping(uint256 => uint256) public ghostFinalisedEvents;
    mapping(uint256 => uint256) public ghostExpiredEvents;
    mapping(uint256 => bytes32) public ghostFinalProposal;
    mapping(uint256 => uint256) public ghostQuorumAtFinal;
    mapping(uint256 => uint256) public ghostAttestationsAtFinal;
    mapping(uint256 => uint8) internal ghostStatusSeen;
    uint256 public ghostMaxRound;
    uint256 public ghostFinalised;
    uint256 public ghostExpired;
    uint256 public ghostSettled;
    uint256 public ghostRejectedOutsiders;

    uint256 public violations;
    string public lastViolation;

    // Snapshot taken before each call, read while scanning its events.
    uint256 internal quorumBefore;

    constructor(FederationRegistry reg_) {
        reg = reg_;
        serverless = reg_.resultMode() == FederationRegistry.ResultMode.Serverless;
        asynchronous = reg_.closingRule() == FederationRegistry.ClosingRule.Asynchronous;
        aggregatorAddr = reg_.aggregator();
        minBond = reg_.minBond();
        maxStaleness = reg_.maxStaleness();
        for (uint256 i = 0; i < CANDIDATES; ++i) actors.push(address(uint160(0xC0DE00 + i)));
        for (uint256 i = 0; i < OUTSIDERS; ++i) actors.push(address(uint160(0xBAD000 + i)));
        ghostMaxRound = reg_.currentRound();
        ghostStatusSeen[1] = uint8(FederationRegistry.RoundStatus.Open);
    }

    // ------------------------------------------------------------------------------------------
    // Actions (the fuzzer's targets)
    // ------------------------------------------------------------------------------------------

    function join(uint256 seed, uint256 amount) external {
        address a = actors[seed % CANDIDATES];
        amount = _bound(amount, minBond, minBond + 5 ether);
        vm.deal(a, amount);
        bytes memory err = modelActive[a] ? _e1(FederationRegistry.FederationAlreadyPeer.selector, a) : bytes("");
        (bool ok, bytes memory ret) = _call(a, amount, abi.encodeCall(FederationRegistry.join, ()));
        _check(ok, ret, err, "join");
        if (ok) {
            if (!modelRegistered[a]) {
                modelRegistered[a] = true;
                modelReputation[a] = reg.initialReputation();
            }
            modelActive[a] = true;
            modelActiveCount += 1;
            modelBond[a] = amount;
            ghostDeposited += amount;
        }
    }

    function leaveFederation(uint256 seed) external {
        address a = _pick(seed, Act.Any, 0);
        bytes memory err = modelActive[a] ? bytes("") : _e1(FederationRegistry.FederationNotPeer.selector, a);
        (bool ok, bytes memory ret) = _call(a, 0, abi.encodeCall(FederationRegistry.leaveFederation, ()));
        _check(ok, ret, err, "leave");
        if (ok) {
            modelActive[a] = false;
            modelActiveCount -= 1;
            modelWithdrawable[a] += modelBond[a];
            modelBond[a] = 0;
        }
    }

    function withdraw(uint256 seed) external {
        address a = _actor(seed);
        uint256 amount = modelWithdrawable[a];
        bytes memory err =
            amount == 0 ? _e1(FederationRegistry.FederationNothingToWithdraw.selector, a) : bytes("");
        uint256 balanceBefore = a.balance;
        (bool ok, bytes memory ret) = _call(a, 0, abi.encodeCall(FederationRegistry.withdraw, ()));
        _check(ok, ret, err, "withdraw");
        if (ok) {
            if (a.balance != balanceBefore + amount) _violation("withdraw paid a different amount");
            modelWithdrawable[a] = 0;
            ghostWithdrawn += amount;
        }
    }

    function submit(uint256 seed, uint256 lagSeed) external {
        uint32 round = reg.currentRound();
        address a = _pick(seed, Act.Submit, round);
        uint32 lag = uint32(_bound(lagSeed, 0, maxStaleness + 1));
        uint32 trainedFrom = round > lag ? round - lag : 0;
        uint32 previous = modelLastSubmitted[a];
        // Most of the time settle first, so rounds make progress; sometimes try without.
        if (modelActive[a] && _unsettled(a) && lagSeed % 4 != 0) _settle(a);

        bytes memory err;
        FederationRegistry.RoundStatus status = _statusOf(round);
        if (!modelActive[a]) {
            err = _e1(FederationRegistry.FederationNotPeer.selector, a);
        } else if (status != FederationRegistry.RoundStatus.Open) {
            err = abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector, round, FederationRegistry.RoundStatus.Open, status
            );
        } else if (previous == round) {
            err = abi.encodeWithSelector(FederationRegistry.FederationAlreadySubmitted.selector, a, round);
        } else if (round - trainedFrom > maxStaleness) {
            err = abi.encodeWithSelector(
                FederationRegistry.FederationUpdateTooStale.selector, trainedFrom, round, maxStaleness
            );
        } else if (_unsettled(a)) {
            err = abi.encodeWithSelector(FederationRegistry.FederationReputationUnsettled.selector, a, previous);
        }
        (bool ok, bytes memory ret) = _call(
            a,
            0,
            abi.encodeCall(
                FederationRegistry.submitUpdate, (round, "bafkupdate", keccak256(abi.encode(a, round)), 10, trainedFrom)
            )
        );
        _check(ok, ret, err, "submit");
        if (ok) {
            modelLastSubmitted[a] = round;
            uint256 target = asynchronous ? reg.asyncQuorum() : (modelActiveCount == 0 ? 1 : modelActiveCount);
            bool shouldClose = ghostSubmitters[round].length >= target;
            if (shouldClose != (_statusOf(round) == FederationRegistry.RoundStatus.Closed)) {
                _violation("closing rule: closed state differs from the submission target");
            }
        }
    }

    function closeRound(uint256 dt) external {
        uint32 round = reg.currentRound();
        if (_statusOf(round) == FederationRegistry.RoundStatus.Open) {
            vm.warp(block.timestamp + _bound(dt, 0, reg.roundDuration()));
        }
        FederationRegistry.RoundStatus status = _statusOf(round);
        uint256 subs = ghostSubmitters[round].length;
        uint256 deadline = uint256(reg.roundInfo(round).openedAt) + reg.roundDuration();
        uint256 target = asynchronous ? reg.asyncQuorum() : (modelActiveCount == 0 ? 1 : modelActiveCount);
        bytes memory err;
        if (status != FederationRegistry.RoundStatus.Open) {
            err = abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector, round, FederationRegistry.RoundStatus.Open, status
            );
        } else if (subs == 0) {
            err = abi.encodeWithSelector(FederationRegistry.FederationNoSubmissions.selector, round);
        } else if (block.timestamp < deadline && subs < target) {
            err = abi.encodeWithSelector(FederationRegistry.FederationRoundNotClosable.selector, round, subs, deadline);
        }
        (bool ok, bytes memory ret) = _call(address(this), 0, abi.encodeCall(FederationRegistry.closeRound, (round)));
        _check(ok, ret, err, "closeRound");
    }

    function vote(uint256 seed) external {
        uint32 round = reg.currentRound();
        address a = serverless || seed % 3 == 0 ? _pick(seed, Act.Vote, round) : aggregatorAddr;
        bytes memory err = _windowError(round, false);
        if (err.length == 0) {
            if (!serverless) {
                if (a != aggregatorAddr) err = _e1(FederationRegistry.FederationNotAggregator.selector, a);
            } else if (!modelActive[a]) {
                err = _e1(FederationRegistry.FederationNotPeer.selector, a);
            } else if (modelVoted[round][a]) {
                err = abi.encodeWithSelector(FederationRegistry.FederationAlreadyVoted.selector, a, round);
            }
        }
        (bool ok, bytes memory ret) = _call(
            a, 0, abi.encodeCall(FederationRegistry.commitVotes, (round, "bafkvotes", keccak256(abi.encode(a, round))))
        );
        _check(ok, ret, err, "vote");
        if (ok) modelVoted[round][a] = true;
    }

    /// @dev Serverless: a peer attests the canonical result, or (one time in four) a split
    /// alternative. Server: the aggregator posts; peers that try are refused.
    function attest(uint256 seed, uint256 proposalSeed) external {
        uint32 round = reg.currentRound();
        uint8 variant = proposalSeed % 4 == 0 ? 1 : 0;
        bytes32 root = _root(round, variant);
        if (!serverless) return _post(seed, round, root);

        address a = _pick(seed, Act.Attest, round);
        bytes memory err;
        if (!modelActive[a]) err = _e1(FederationRegistry.FederationNotPeer.selector, a);
        else err = _windowError(round, true);
        if (err.length == 0 && modelAttested[round][a]) {
            err = abi.encodeWithSelector(FederationRegistry.FederationAlreadyAttested.selector, a, round);
        }
        (bool ok, bytes memory ret) = _call(
            a,
            0,
            abi.encodeCall(
                FederationRegistry.attestResult, (round, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST)
            )
        );
        _check(ok, ret, err, "attest");
        if (ok) modelAttested[round][a] = true;
    }

    function expireRound(uint256 dt) external {
        uint32 round = reg.currentRound();
        // One time in three jump far enough to end the whole result window, so some rounds
        // expire while most still get the chance to finalise.
        if (_statusOf(round) == FederationRegistry.RoundStatus.Closed && dt % 3 == 0) {
            vm.warp(block.timestamp + _bound(dt / 3, 0, reg.voteDuration() + reg.resultDuration()));
        }
        FederationRegistry.RoundStatus status = _statusOf(round);
        bytes memory err;
        if (status != FederationRegistry.RoundStatus.Closed) {
            err = abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector, round, FederationRegistry.RoundStatus.Closed, status
            );
        } else {
            (,, uint256 deadline) = reg.roundDeadlines(round);
            if (block.timestamp < deadline) {
                err = abi.encodeWithSelector(FederationRegistry.FederationResultWindowOpen.selector, round, deadline);
            }
        }
        (bool ok, bytes memory ret) = _call(address(this), 0, abi.encodeCall(FederationRegistry.expireRound, (round)));
        _check(ok, ret, err, "expireRound");
    }

    function settle(uint256 seed) external {
        address a = actors[seed % CANDIDATES];
        uint32 round = modelLastSubmitted[a];
        if (round == 0 || modelLastSettled[a] == round) {
            (bool ok, bytes memory ret) = _call(
                address(this), 0, abi.encodeCall(FederationRegistry.settle, (a, round, 0, false, new bytes32[](0)))
            );
            _check(ok, ret, abi.encodeWithSelector(FederationRegistry.FederationNothingToSettle.selector, a, round), "settle");
            return;
        }
        FederationRegistry.RoundStatus status = _statusOf(round);
        if (status != FederationRegistry.RoundStatus.Finalised) {
            (bool ok, bytes memory ret) = _call(
                address(this), 0, abi.encodeCall(FederationRegistry.settle, (a, round, 0, false, new bytes32[](0)))
            );
            _check(
                ok,
                ret,
                abi.encodeWithSelector(
                    FederationRegistry.FederationWrongRoundStatus.selector,
                    round,
                    FederationRegistry.RoundStatus.Finalised,
                    status
                ),
                "settle"
            );
            return;
        }
        _settle(a);
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + _bound(dt, 1, reg.resultDuration() / 2));
    }

    // ------------------------------------------------------------------------------------------
    // Views for the invariants
    // ------------------------------------------------------------------------------------------

    function actorCount() external pure returns (uint256) {
        return CANDIDATES + OUTSIDERS;
    }

    function actorAt(uint256 i) external view returns (address) {
        return actors[i];
    }

    function isOutsider(uint256 i) external pure returns (bool) {
        return i >= CANDIDATES;
    }

    function statusSeen(uint256 round) external view returns (uint8) {
        return ghostStatusSeen[round];
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _post(uint256 seed, uint32 round, bytes32 root) internal {
        address a = seed % 5 == 0 ? _actor(seed) : aggregatorAddr;
        // Peers who try the Serverless entry point in Server mode are refused by mode first.
        if (seed % 7 == 0) {
            (bool ok2, bytes memory ret2) = _call(
                a,
                0,
                abi.encodeCall(
                    FederationRegistry.attestResult, (round, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST)
                )
            );
            _check(
                ok2,
                ret2,
                abi.encodeWithSelector(FederationRegistry.FederationWrongMode.selector, FederationRegistry.ResultMode.Server),
                "attest in server mode"
            );
            return;
        }
        bytes memory err;
        if (a != aggregatorAddr) err = _e1(FederationRegistry.FederationNotAggregator.selector, a);
        else err = _windowError(round, true);
        (bool ok, bytes memory ret) = _call(
            a,
            0,
            abi.encodeCall(FederationRegistry.postResult, (round, root, INCLUDED_HASH, AGGREGATE_CID, AGGREGATE_DIGEST))
        );
        _check(ok, ret, err, "post");
        if (ok && _statusOf(round) != FederationRegistry.RoundStatus.Finalised) _violation("post did not finalise");
    }

    /// @dev The error a vote (`forResult` false) or a result (`forResult` true) meets from the
    /// round's status and clock, if any.
    function _windowError(uint32 round, bool forResult) internal view returns (bytes memory) {
        FederationRegistry.RoundStatus status = _statusOf(round);
        if (status != FederationRegistry.RoundStatus.Closed) {
            return abi.encodeWithSelector(
                FederationRegistry.FederationWrongRoundStatus.selector, round, FederationRegistry.RoundStatus.Closed, status
            );
        }
        (, uint256 votingEndsAt, uint256 resultDeadline) = reg.roundDeadlines(round);
        uint256 expectedVotes = serverless ? ghostSubmitters[round].length : 1;
        bool votingOver = block.timestamp >= votingEndsAt || ghostVotes[round] >= expectedVotes;
        if (!forResult) {
            if (votingOver) {
                return abi.encodeWithSelector(FederationRegistry.FederationVotingClosed.selector, round, votingEndsAt);
            }
            return "";
        }
        if (!votingOver) return abi.encodeWithSelector(FederationRegistry.FederationVotingOpen.selector, round, votingEndsAt);
        if (block.timestamp >= resultDeadline) {
            return abi.encodeWithSelector(FederationRegistry.FederationResultWindowClosed.selector, round, resultDeadline);
        }
        return "";
    }

    function _unsettled(address a) internal view returns (bool) {
        uint32 previous = modelLastSubmitted[a];
        return previous != 0 && modelLastSettled[a] != previous
            && _statusOf(previous) != FederationRegistry.RoundStatus.Expired && previous != reg.currentRound();
    }

    /// @dev Settle `a`'s last round with a proof from the tree that finalised.
    function _settle(address a) internal {
        uint32 round = modelLastSubmitted[a];
        if (_statusOf(round) != FederationRegistry.RoundStatus.Finalised) return;
        bytes32 posted = reg.scoresRootOf(round);
        uint8 variant = posted == _root(round, 0) ? 0 : 1;
        if (posted != _root(round, variant)) return _violation("finalised root is neither proposal");
        uint32 score = _score(round, a, variant);
        bytes32[] memory leaves = _leaves(round, variant);
        bytes32[] memory proof = ScoresTree.proof(leaves, ScoresTree.leaf(round, a, score, true));
        (bool ok, bytes memory ret) =
            _call(address(this), 0, abi.encodeCall(FederationRegistry.settle, (a, round, score, true, proof)));
        _check(ok, ret, "", "settle");
        if (!ok) return;
        uint16 w = reg.reputationWeightBps();
        modelReputation[a] = uint32((uint256(modelReputation[a]) * (10_000 - w) + uint256(score) * w) / 10_000);
        modelLastSettled[a] = round;
        ghostSettled += 1;
        if (reg.peerInfo(a).reputation != modelReputation[a]) _violation("reputation differs from the EMA");
    }

    function _score(uint32 round, address a, uint8 variant) internal pure returns (uint32) {
        return uint32(uint256(keccak256(abi.encode(round, a, variant))) % 1_000_001);
    }

    function _leaves(uint32 round, uint8 variant) internal view returns (bytes32[] memory leaves) {
        address[] storage subs = ghostSubmitters[round];
        leaves = new bytes32[](subs.length);
        for (uint256 i = 0; i < subs.length; ++i) {
            leaves[i] = ScoresTree.leaf(round, subs[i], _score(round, subs[i], variant), true);
        }
    }

    function _root(uint32 round, uint8 variant) internal view returns (bytes32) {
        if (ghostSubmitters[round].length == 0) return keccak256(abi.encode("empty", variant));
        return ScoresTree.root(_leaves(round, variant));
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    /// @dev Four times in five an active candidate that has not yet done `act` in `round` (so
    /// rounds progress), else any actor: outsiders, former peers and repeats included.
    function _pick(uint256 seed, Act act, uint32 round) internal view returns (address) {
        if (seed % 5 != 0) {
            for (uint256 k = 0; k < CANDIDATES; ++k) {
                address a = actors[(seed / 5 + k) % CANDIDATES];
                if (!modelActive[a]) continue;
                if (act == Act.Submit && modelLastSubmitted[a] == round) continue;
                if (act == Act.Vote && modelVoted[round][a]) continue;
                if (act == Act.Attest && modelAttested[round][a]) continue;
                return a;
            }
        }
        return _actor(seed / 5);
    }

    function _statusOf(uint256 round) internal view returns (FederationRegistry.RoundStatus) {
        return reg.roundInfo(round).status;
    }

    /// @dev Makes one call as `from`, then folds the events it emitted into the ghosts and
    /// checks that round statuses only moved forward and the current round only grew.
    function _call(address from, uint256 value, bytes memory data) internal returns (bool ok, bytes memory ret) {
        quorumBefore = _modelQuorum();
        uint256 roundBefore = reg.currentRound();
        vm.recordLogs();
        vm.prank(from);
        (ok, ret) = address(reg).call{value: value}(data);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(reg)) _fold(logs[i]);
        }
        uint256 roundAfter = reg.currentRound();
        if (roundAfter < ghostMaxRound) _violation("currentRound decreased");
        if (roundAfter > ghostMaxRound) ghostMaxRound = roundAfter;
        for (uint256 r = roundBefore; r <= roundAfter; ++r) {
            uint8 seen = uint8(_statusOf(r));
            if (seen < ghostStatusSeen[r]) _violation("a round status went back");
            ghostStatusSeen[r] = seen;
        }
    }

    function _fold(Vm.Log memory log) internal {
        bytes32 sig = log.topics[0];
        if (sig == SIG_SUBMITTED) {
            uint256 round = uint256(log.topics[1]);
            address peer = address(uint160(uint256(log.topics[2])));
            if (!modelActive[peer]) _violation("an address that is not a peer submitted");
            uint256 n = ++ghostSubmissions[round][peer];
            if (n > ghostMaxSubmissionsPerPeerRound) ghostMaxSubmissionsPerPeerRound = n;
            ghostSubmitters[round].push(peer);
        } else if (sig == SIG_VOTES) {
            address voter = address(uint160(uint256(log.topics[2])));
            if (serverless ? !modelActive[voter] : voter != aggregatorAddr) _violation("vote by a non-voter");
            ghostVotes[uint256(log.topics[1])] += 1;
        } else if (sig == SIG_ATTESTED) {
            address attester = address(uint160(uint256(log.topics[2])));
            if (serverless ? !modelActive[attester] : attester != aggregatorAddr) {
                _violation("result attested by a non-peer");
            } else {
                ghostPeerAttestations[log.topics[3]] += 1;
            }
        } else if (sig == SIG_FINALISED) {
            uint256 round = uint256(log.topics[1]);
            bytes32 proposal = log.topics[2];
            ghostFinalisedEvents[round] += 1;
            ghostFinalised += 1;
            ghostFinalProposal[round] = proposal;
            ghostQuorumAtFinal[round] = serverless ? quorumBefore : 1;
            ghostAttestationsAtFinal[round] = ghostPeerAttestations[proposal];
        } else if (sig == SIG_EXPIRED) {
            ghostExpiredEvents[uint256(log.topics[1])] += 1;
            ghostExpired += 1;
        }
    }

    /// @dev `ceil(active * quorumBps / 1e4)`, at least one, from the handler's own peer count.
    function _modelQuorum() internal view returns (uint256 q) {
        uint256 num = modelActiveCount * reg.quorumBps();
        q = (num + 9_999) / 10_000;
        if (q == 0) q = 1;
    }

    function _check(bool ok, bytes memory ret, bytes memory expected, string memory what) internal {
        if (expected.length == 0) {
            if (!ok) _violation(string.concat(what, ": unexpected revert"));
            return;
        }
        if (ok) {
            _violation(string.concat(what, ": succeeded but should have reverted"));
        } else if (keccak256(ret) != keccak256(expected)) {
            _violation(string.concat(what, ": reverted with a different error"));
        } else if (bytes4(expected) == FederationRegistry.FederationNotPeer.selector) {
            ghostRejectedOutsiders += 1;
        }
    }

    function _violation(string memory what) internal {
        violations += 1;
        lastViolation = what;
    }

    function _e1(bytes4 selector, address a) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, a);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + (x % (hi - lo + 1));
    }
}
