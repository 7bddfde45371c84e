"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification. No I/O.

The tree over leaves d[0..n) is the one of RFC 6962 §2.1:

    MTH({})       = SHA-256()
    MTH({d0})     = SHA-256(0x00 || d0)
    MTH(D[0:n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k: largest power of 2 < n

Interior hashes are read through a `NodeReader`: anything that returns the hash
of a *perfect* subtree (2**level leaves starting at leaf index << level). An
in-memory list of leaves is one; the store's leaf and node tables are another,
which is how inclusion and consistency proofs cost O(log n) reads instead of the
whole log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof does not verify, or its arguments are impossible."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def reduce_level(hashes: Sequence[bytes]) -> list[bytes]:
    """The next level up of perfect subtrees: pairs hashed, an odd last one dropped."""
    sha = _sha256
    pairs = iter(hashes)
    return [sha(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]


def perfect_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect subtree hash over `leaves`, level by level (level 0 = the leaves).

    `levels[L][j]` is the subtree of 2**L leaves starting at leaf j * 2**L (relative
    to the start of `leaves`, which must be aligned for the result to be tree nodes).
    """
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        levels.append(reduce_level(levels[-1]))
    return levels


def aligned_pieces(begin: int, end: int) -> list[tuple[int, int]]:
    """[begin, end) as maximal aligned perfect subtrees, left to right: (level, index)."""
    pieces: list[tuple[int, int]] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while (1 << level) > end - begin:
            level -= 1
        pieces.append((level, begin >> level))
        begin += 1 << level
    return pieces


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (reference implementation, straight from the RFC)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = largest_power_of_two_below(n)
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


# --- a growing tree's right edge ------------------------------------------------------


@dataclass
class CompactRange:
    """The hashes of the perfect subtrees covering [0, size): enough to append and to root.

    `frontier[i]` is the subtree for the i-th set bit of `size`, highest first.
    """

    size: int = 0
    frontier: list[bytes] = field(default_factory=list)

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.frontier))

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the subtrees it completed as (level, index, hash)."""
        return self.append_subtree(0, leaf)

    def append_subtree(self, level: int, subtree: bytes) -> list[tuple[int, int, bytes]]:
        """Add a perfect subtree of 2**level leaves; `size` must be a multiple of it.

        Returns the larger subtrees this completed, as (level, index, hash).
        """
        if self.size & ((1 << level) - 1):
            raise ValueError(f"subtree of level {level} not aligned at size {self.size}")
        new_size = self.size + (1 << level)
        completed: list[tuple[int, int, bytes]] = []
        carry = subtree
        bits = self.size >> level
        while bits & 1:  # node_hash, inline: this runs for every sealed event
            carry = _sha256(b"\x01" + self.frontier.pop() + carry).digest()
            level += 1
            bits >>= 1
            completed.append((level, (new_size >> level) - 1, carry))
        self.frontier.append(carry)
        self.size = new_size
        return completed

    def extend(self, leaves: Sequence[bytes], every: int = 1) -> list[tuple[int, int, bytes]]:
        """Add many leaf hashes, as `append` of each in turn would, hashing level by level.

        Returns the subtrees they completed as (level, index, hash), only those whose
        level is a multiple of `every`: the same set `append` would give, perhaps in
        another order.
        """
        if len(leaves) == 1:  # one leaf: `append`, without the level-by-level work
            return [c for c in self.append_subtree(0, leaves[0]) if c[0] % every == 0]
        completed: list[tuple[int, int, bytes]] = []
        at = 0
        for level, index in aligned_pieces(self.size, self.size + len(leaves)):
            width = 1 << level
            levels = perfect_levels(leaves[at:at + width])
            for up in range(every, level + 1, every):
                first = index << (level - up)
                completed.extend((up, first + k, node) for k, node in enumerate(levels[up]))
            completed.extend(c for c in self.append_subtree(level, levels[level][0])
                             if c[0] % every == 0)
            at += width
        return completed

    def root(self) -> bytes:
        if not self.frontier:
            return EMPTY_ROOT
        result = self.frontier[-1]
        for h in reversed(self.frontier[:-1]):  # node_hash, inline, as in append_subtree
            result = _sha256(b"\x01" + h + result).digest()
        return result

    def encode(self) -> bytes:
        return b"".join(self.frontier)

    @classmethod
    def decode(cls, size: int, data: bytes) -> CompactRange:
        count = size.bit_count()
        if len(data) != count * HASH_SIZE:
            raise ValueError(f"compact range of size {size} needs {count} hashes")
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])


# --- proofs over a node source --------------------------------------------------------


class NodeReader(Protocol):
    def perfect(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree of 2**level leaves starting at index << level."""
        ...


class MemoryTree:
    """A NodeReader over leaf hashes held in memory (tests, small trees)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels = perfect_levels(leaves) if leaves else [[]]

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def range_hash(reader: NodeReader, begin: int, end: int) -> bytes:
    """MTH(D[begin:end]) for a range of the RFC's recursion (begin aligned to its split)."""
    n = end - begin
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and begin % n == 0:
        level = n.bit_length() - 1
        return reader.perfect(level, begin >> level)
    k = largest_power_of_two_below(n)
    return node_hash(range_hash(reader, begin, begin + k), range_hash(reader, begin + k, end))


def tree_root(reader: NodeReader, size: int) -> bytes:
    return range_hash(reader, 0, size)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), leaf to root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    begin, end, m = 0, size, index
    # Walk down, collecting siblings root-first; reversed at the end.
    while end - begin > 1:
        k = largest_power_of_two_below(end - begin)
        if m < k:
            proof.append(range_hash(reader, begin + k, end))
            end = begin + k
        else:
            proof.append(range_hash(reader, begin, begin + k))
            begin += k
            m -= k
    proof.reverse()
    return proof


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(m, D[n]), bottom-up."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    begin, end, m, complete = 0, new_size, old_size, True
    while m != end - begin:
        k = largest_power_of_two_below(end - begin)
        if m <= k:
            proof.append(range_hash(reader, begin + k, end))
            end = begin + k
        else:
            proof.append(range_hash(reader, begin, begin + k))
            begin += k
            m -= k
            complete = False
    if not complete:
        proof.append(range_hash(reader, begin, end))
    proof.reverse()
    return proof


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -----------------------------------


def _check_hashes(*hashes: bytes) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"a hash must be {HASH_SIZE} bytes, not {len(h)}")


def _climb(fn: int, sn: int, proof: Sequence[bytes], what: str
           ) -> Iterator[tuple[bytes, bool]]:
    """Each proof hash with whether it is the left sibling, walking up from node `fn` of
    a tree whose last node is `sn`: the loop RFC 9162 §2.1.3.2 and §2.1.4.2 share.

    ProofError (naming `what` proof) when the proof is longer or shorter than the walk.
    """
    for p in proof:
        if sn == 0:
            raise ProofError(f"{what} proof is too long")
        is_left = bool(fn & 1) or fn == sn
        yield p, is_left
        if is_left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"{what} proof is too short")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    _check_hashes(leaf, *proof)
    r = leaf
    for p, is_left in _climb(index, size - 1, proof, "inclusion"):
        r = node_hash(p, r) if is_left else node_hash(r, p)
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raises ProofError unless `leaf` is leaf `index` of the tree of `size` with `root`."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(  # noqa: PLR0912 - RFC 9162 §2.1.4.2, step by step
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raises ProofError unless tree (old_size, old_root) is a prefix of (new_size, new_root)."""
    if old_size > new_size:
        raise ProofError(f"size {old_size} is larger than {new_size}: the log shrank")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hashes(old_root, new_root, *proof)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c, is_left in _climb(fn, sn, path[1:], "consistency"):
        if is_left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")

