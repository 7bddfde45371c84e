"""RFC 6962 hashing and proofs against the published CT / transparency-dev vectors.

Vectors: transparency-dev/merkle testonly/constants.go (leaf inputs, node hashes,
roots for sizes 0-8) and proof/verify_test.go (inclusion and consistency proofs),
the same ones certificate-transparency's merkle tests use.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    ProofError,
    aligned_pieces,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_levels,
    root_from_leaves,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    h(x)
    for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]
NODE_HASHES = [
    [h(x) for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]],
    [h(x) for x in [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ]],
    [h(x) for x in [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
ROOTS = [EMPTY_ROOT] + [
    h(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# (leaf index, tree size, proof): verify_test.go's inclusionProofs (1-based leaf there).
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]


def test_leaf_hashes_match_the_vectors() -> None:
    assert NODE_HASHES[0] == LEAVES


def test_every_perfect_subtree_matches_the_vectors() -> None:
    assert perfect_levels(LEAVES) == NODE_HASHES


@pytest.mark.parametrize("size", range(9))
def test_roots_of_every_size_match_the_vectors(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]) == ROOTS[size]
    assert tree_root(MemoryTree(LEAVES[:size]), size) == ROOTS[size]
    compact = CompactRange()
    for leaf in LEAVES[:size]:
        compact.append(leaf)
    assert compact.root() == ROOTS[size]


def test_compact_range_reports_every_subtree_it_completes() -> None:
    compact = CompactRange()
    completed = [node for leaf in LEAVES for node in compact.append(leaf)]
    expected = [
        (level, index, NODE_HASHES[level][index])
        for level in range(1, 4)
        for index in range(len(NODE_HASHES[level]))
    ]
    assert sorted(completed) == sorted(expected)


@settings(max_examples=150, deadline=None)
@given(before=st.integers(0, 300), added=st.integers(0, 300), every=st.sampled_from([1, 2, 4]))
def test_extending_by_many_leaves_is_appending_each_in_turn(before: int, added: int,
                                                            every: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(before + added)]
    one_by_one, at_once = CompactRange(), CompactRange()
    for leaf in leaves[:before]:
        one_by_one.append(leaf)
        at_once.append(leaf)
    expected = [node for leaf in leaves[before:] for node in one_by_one.append(leaf)
                if node[0] % every == 0]
    completed = at_once.extend(leaves[before:], every=every)
    assert sorted(completed) == sorted(expected)
    assert len(completed) == len(expected)
    assert (at_once.size, at_once.frontier, at_once.root()) == (
        one_by_one.size, one_by_one.frontier, one_by_one.root())


def test_compact_range_survives_encoding() -> None:
    compact = CompactRange()
    for leaf in LEAVES[:7]:
        compact.append(leaf)
    again = CompactRange.decode(7, compact.encode())
    assert again.root() == ROOTS[7]
    again.append(LEAVES[7])
    assert again.root() == ROOTS[8]
    with pytest.raises(ValueError, match="needs 3 hashes"):
        CompactRange.decode(7, compact.encode()[:64])


def test_a_misaligned_subtree_is_refused() -> None:
    compact = CompactRange()
    compact.append(LEAVES[0])
    with pytest.raises(ValueError, match="not aligned"):
        compact.append_subtree(1, NODE_HASHES[1][1])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_vectors(index: int, size: int, proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert inclusion_proof(MemoryTree(LEAVES[:size]), index, size) == expected
    verify_inclusion(index, size, LEAVES[index], expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_vectors(old: int, new: int, proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert consistency_proof(MemoryTree(LEAVES[:new]), old, new) == expected
    verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


def _inclusion_probes(index: int, size: int, proof: list[bytes]) -> list[tuple[int, int, bytes,
                                                                           list[bytes], bytes]]:
    """verify_test.go's corruptInclusionProof: each one must fail."""
    root, leaf = ROOTS[size], LEAVES[index]
    some = h("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index - 1, size, leaf, proof, root), (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root), (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root), (index, size, b"WrongLeaf" + bytes(23), proof, root),
        (index, size, leaf, proof, EMPTY_ROOT), (index, size, leaf, proof, some),
        (index, size, leaf, [*proof, root], root), (index, size, leaf, [root, *proof], root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, leaf, bad, root))
    if proof:
        probes.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], some, *proof[1:]], root))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    for probe in _inclusion_probes(index, size, [h(p) for p in proof]):
        i, n, leaf, path, root = probe
        if i == index and n == size and leaf == LEAVES[index] and path == [h(p) for p in proof] \
                and root == ROOTS[size]:
            continue
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaf, path, root)


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    path = [h(p) for p in proof]
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        (old - 1, new, r1, r2, path), (old + 1, new, r1, r2, path), (old ^ 2, new, r1, r2, path),
        (old, new * 2, r1, r2, path), (old, new // 2, r1, r2, path),
        (old, new, bytes(32), r2, path), (old, new, r1, bytes(32), path),
        (old, new, r2, r1, path), (old, new, r1, r2, []), (old, new, r1, r2, [*path, r1]),
        (old, new, r1, r2, [*path, r2]), (old, new, r1, r2, [r1, *path]),
        (old, new, r1, r2, [r2, *path]), (old, new, r1, r2, [path[0], *path]),
        (old, new, r1, r2, path[:-1]),
    ]
    for i in range(len(path)):
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    for m, n, a, b, p in probes:
        if (m, n, a, b, p) == (old, new, r1, r2, path):
            continue
        with pytest.raises(ProofError):
            verify_consistency(m, n, a, b, p)


def test_consistency_edge_cases_follow_the_reference_verifier() -> None:
    r1, r2 = b"1" * 32, b"2" * 32
    verify_consistency(0, 0, r1, r1, [])
    verify_consistency(0, 1, r1, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for args in [(0, 0, r1, r2, []), (1, 1, r1, r2, []), (1, 0, r1, r2, []),
                 (2, 1, r1, r2, []), (1, 2, r1, r2, []),
                 (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
                 (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])]:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_inclusion_edge_cases() -> None:
    for index, size in [(0, 0), (1, 0), (2, 1)]:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, LEAVES[0], [], ROOTS[1])
    with pytest.raises(ProofError):
        inclusion_proof(MemoryTree(LEAVES), 8, 8)


def test_random_trees_prove_every_leaf_and_every_prefix() -> None:
    rng = random.Random(6962)
    for size in [*range(1, 40), 64, 65, 100, 255, 256, 257, 1000]:
        leaves = [leaf_hash(rng.randbytes(rng.randint(0, 20))) for _ in range(size)]
        tree = MemoryTree(leaves)
        root = root_from_leaves(leaves)
        assert tree_root(tree, size) == root
        for index in {0, size - 1, rng.randrange(size)}:
            verify_inclusion(index, size, leaves[index], inclusion_proof(tree, index, size), root)
        for old in {1, max(1, size // 2), rng.randint(1, size), size}:
            proof = consistency_proof(tree, old, size)
            verify_consistency(old, size, root_from_leaves(leaves[:old]), root, proof)
            if old < size:
                with pytest.raises(ProofError):
                    verify_consistency(old, size, leaf_hash(b"x"), root, proof)


def test_aligned_pieces_cover_a_range_exactly() -> None:
    for begin in range(70):
        for end in range(begin, 70):
            pieces = aligned_pieces(begin, end)
            covered: list[int] = []
            for level, index in pieces:
                start = index << level
                covered.extend(range(start, start + (1 << level)))
            assert covered == list(range(begin, end))
    assert aligned_pieces(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert aligned_pieces(5, 16) == [(0, 5), (1, 3), (3, 1)]


def test_node_hash_is_prefixed_and_ordered() -> None:
    a, b = LEAVES[0], LEAVES[1]
    assert node_hash(a, b) == NODE_HASHES[1][0]
    assert node_hash(b, a) != node_hash(a, b)
    assert leaf_hash(a + b) != node_hash(a, b)
