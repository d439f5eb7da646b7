// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @dev The subset of forge's cheatcodes the tests use (forge-std is not on the npm registry in
/// a current version, so the tests declare what they need).
interface Vm {
    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function deal(address, uint256) external;
    function warp(uint256) external;
    function expectRevert(bytes calldata) external;
    function expectRevert(bytes4) external;
    function expectEmit(bool, bool, bool, bool) external;
    function assume(bool) external;
    function addr(uint256) external returns (address);
    function label(address, string calldata) external;
}

/// @dev Minimal test base: cheatcodes, assertions, `bound`, invariant target selection.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public IS_TEST = true;
    address[] private _targets;

    function targetContract(address target) internal {
        _targets.push(target);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        return min + (x % size);
    }

    function assertTrue(bool cond, string memory what) internal pure {
        require(cond, what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(a), " != ", _str(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(address a, address b, string memory what) internal pure {
        require(a == b, what);
    }

    function _str(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = bytes.concat(bytes1(uint8(48 + (v % 10))), b);
            v /= 10;
        }
        return string(b);
    }
}
