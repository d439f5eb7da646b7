// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @dev The subset of forge's cheatcodes the tests use (forge-std is not on the npm registry in
/// a current version, so the tests declare what they need). Hardhat 3 and forge both serve them.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function deal(address, uint256) external;
    function warp(uint256) external;
    function expectRevert() external;
    function expectRevert(bytes calldata) external;
    function expectRevert(bytes4) external;
    function expectEmit(bool, bool, bool, bool) external;
    function expectEmit(bool, bool, bool, bool, address) external;
    function assume(bool) external;
    function addr(uint256) external returns (address);
    function label(address, string calldata) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
}

/// @dev Minimal test base: cheatcodes, assertions, `bound`, invariant target selection.
abstract contract TestBase {
    /// @dev Shape the invariant runners read from {targetSelectors}.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public IS_TEST = true;
    address[] private _targets;
    FuzzSelector[] private _selectors;

    function targetContract(address target) internal {
        _targets.push(target);
    }

    /// @dev Restrict the invariant fuzzer to these functions of `target` (keeps it off views).
    function targetSelector(address target, bytes4[] memory selectors) internal {
        _selectors.push(FuzzSelector(target, selectors));
    }

    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _selectors;
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        if (size == 0) return x; // the whole uint256 range
        return min + (x % size);
    }

    function assertTrue(bool cond, string memory what) internal pure {
        require(cond, what);
    }

    function assertFalse(bool cond, string memory what) internal pure {
        require(!cond, what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(a), " != ", _str(b)));
    }

    function assertEq(bool a, bool b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(address a, address b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertLe(uint256 a, uint256 b, string memory what) internal pure {
        if (a > b) revert(string.concat(what, ": ", _str(a), " > ", _str(b)));
    }

    function assertLt(uint256 a, uint256 b, string memory what) internal pure {
        if (a >= b) revert(string.concat(what, ": ", _str(a), " >= ", _str(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory what) internal pure {
        if (a < b) revert(string.concat(what, ": ", _str(a), " < ", _str(b)));
    }

    function _str(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = bytes.concat(bytes1(uint8(48 + (v % 10))), b);
            v /= 10;
        }
        return string(b);
    }
}
