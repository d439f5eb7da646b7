// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @dev The scores Merkle tree, built independently of the contract: a leaf is
/// keccak256(keccak256(abi.encode(round, peer, score, included))); leaves are ordered by hash,
/// pairs are hashed sorted, and an odd node at a level is carried up unchanged (the layout the
/// Python client builds, so proofs from either side verify on-chain).
library ScoresTree {
    function leaf(uint32 round, address peer, uint32 score, bool included) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(round, peer, score, included))));
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        require(leaves.length != 0, "ScoresTree: no leaves");
        bytes32[] memory level = _sorted(leaves);
        uint256 n = level.length;
        while (n > 1) n = _up(level, n);
        return level[0];
    }

    /// @dev The sibling hashes from `target`'s leaf up to the root.
    function proof(bytes32[] memory leaves, bytes32 target) internal pure returns (bytes32[] memory path) {
        bytes32[] memory level = _sorted(leaves);
        uint256 n = level.length;
        uint256 index = type(uint256).max;
        for (uint256 i = 0; i < n; ++i) {
            if (level[i] == target) index = i;
        }
        require(index != type(uint256).max, "ScoresTree: leaf not in tree");
        path = new bytes32[](256);
        uint256 len;
        while (n > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < n) path[len++] = level[sibling];
            n = _up(level, n);
            index /= 2;
        }
        assembly {
            mstore(path, len)
        }
    }

    /// @dev Replace the first `n` nodes of `level` by their parents in place; returns the count.
    function _up(bytes32[] memory level, uint256 n) private pure returns (uint256 m) {
        m = (n + 1) / 2;
        for (uint256 i = 0; i < n / 2; ++i) {
            level[i] = _parent(level[2 * i], level[2 * i + 1]);
        }
        if (n % 2 == 1) level[m - 1] = level[n - 1];
    }

    function _parent(bytes32 a, bytes32 b) private pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    function _sorted(bytes32[] memory xs) private pure returns (bytes32[] memory out) {
        out = new bytes32[](xs.length);
        for (uint256 i = 0; i < xs.length; ++i) {
            bytes32 x = xs[i];
            uint256 j = i;
            while (j > 0 && out[j - 1] > x) {
                out[j] = out[j - 1];
                --j;
            }
            out[j] = x;
        }
    }
}
