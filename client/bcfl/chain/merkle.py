"""The scores Merkle tree: leaves are (round, peer, score, included), pairs hashed sorted.

Matches the contract's `leafHash` and `_verify`: leaf = keccak(keccak(abi.encode(uint32 round,
address peer, uint32 score, bool included))); parent = keccak(min(a, b) || max(a, b)). Leaves
are ordered by hash; an odd node at a level is carried up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.crypto import keccak

EMPTY_ROOT = b"\x00" * 32


@dataclass(frozen=True)
class ScoreLeaf:
    round: int
    peer: str
    score: int  # parts per million
    included: bool


def leaf_hash(leaf: ScoreLeaf) -> bytes:
    inner = keccak(
        encode(["uint32", "address", "uint32", "bool"], [leaf.round, leaf.peer, leaf.score, leaf.included])
    )
    return bytes(keccak(inner))


def _parent(a: bytes, b: bytes) -> bytes:
    return bytes(keccak(a + b if a < b else b + a))


def _levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    level = sorted(hashes)
    levels = [level]
    while len(level) > 1:
        nxt = [_parent(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(leaves: Sequence[ScoreLeaf]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return _levels([leaf_hash(x) for x in leaves])[-1][0]


def merkle_proof(leaves: Sequence[ScoreLeaf], target: ScoreLeaf) -> list[bytes]:
    """The sibling hashes from `target`'s leaf up to the root."""
    levels = _levels([leaf_hash(x) for x in leaves])
    node = leaf_hash(target)
    index = levels[0].index(node)
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify(proof: Sequence[bytes], root: bytes, leaf: ScoreLeaf) -> bool:
    node = leaf_hash(leaf)
    for sibling in proof:
        node = _parent(node, sibling)
    return node == root


def included_hash(included: Sequence[tuple[str, str]]) -> bytes:
    """Commitment to the ordered included submissions, as (peer, cid) pairs."""
    return bytes(
        keccak(encode(["address[]", "string[]"], [[p for p, _ in included], [c for _, c in included]]))
    )
