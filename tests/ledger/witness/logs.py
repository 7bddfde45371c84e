"""A small in-memory log that signs checkpoints, and published keys and notes to test with."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.merkle import consistency_proof, leaf_hash, node_hash, tree_root
from ledger.audit.note import Checkpoint, Signer

# transparency-dev/witness witness/witness_test.go: a log ("monkeys"), a witness key
# (a plain Ed25519 note key, which cosignature/v1 reads as its 0x04 form), two
# checkpoints signed by the log and the RFC 6962 consistency proof between them.
GO_LOG_KEY = "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT"
GO_WITNESS_PRIVATE = "PRIVATE+KEY+witness+f13a86db+AaLa/dfyBhyo/m0Z7WCi98ENVZWtrP8pxgRNrx7tIWiA"
GO_WITNESS_KEY = "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN"
GO_INIT = (
    "monkeys\n5\n41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=\n\n\u2014 monkeys "
    "202fftzGl3LVoqjXfwCFZZXs8I+5G22+Ek2K0AOyBuSJ/8/CZawNF+6fNlTKOCd622pbzJNkkJFWuw9DbicZCkEx9AY=\n"
)
GO_NEXT = (
    "monkeys\n8\nV8K9aklZ4EPB+RMOk1/8VsJUdFZR77GDtZUQq84vSbo=\n\n\u2014 monkeys "
    "202ffoUEboiQYpHzICeaFmoy3RNviHTpAxYrq/eO4QQVQMvu9UebKBMX2MJC76NLthZaKsnKbCA8GxrjePZhvDCH7Ag=\n"
)
GO_PROOF_5_TO_8 = [bytes.fromhex(h) for h in (
    "b9e1d62618f7fee8034e4c5010f727ab24d8e4705cb296c374bf2025a87a10d2",
    "aac66cd7a79ce4012d80762fe8eec3a77f22d1ca4145c3f4cee022e7efcd599d",
    "89d0f753f66a290c483b39cd5e9eafb12021293395fad3d4a2ad053cfbcfdc9e",
    "29e40bb79c966f4c6fe96aff6f30acfce5f3e8d84c02215175d6e018a5dee833",
)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class MemoryLog:
    """Leaves in memory, checkpoints signed with its own key (deterministic from `seed`)."""

    def __init__(self, origin: str = "example.org/log", seed: bytes = b"log") -> None:
        key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        self.signer = Signer(origin, key)
        self.levels: list[list[bytes]] = [[]]  # every perfect subtree, kept as it grows

    @property
    def leaves(self) -> list[bytes]:
        return self.levels[0]

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            if level + 1 == len(self.levels):
                self.levels.append([])
            pair = self.levels[level][-2:]
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    @property
    def vkey(self) -> str:
        return self.signer.verifier.vkey

    def grow(self, count: int, tag: bytes = b"") -> None:
        start = len(self.leaves)
        for i in range(count):
            self.append(leaf_hash(tag + str(start + i).encode()))

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return tree_root(self, size)

    def checkpoint(self, size: int | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return self.signer.sign(Checkpoint(self.signer.name, size, self.root(size)).text())

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return consistency_proof(self, old, new)
