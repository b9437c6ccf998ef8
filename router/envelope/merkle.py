"""Merkle tree over a transaction's records (RFC 6962/9162 shape, SHA-256, domain-separated).

``leaf = SHA-256(0x00 || record body)``, ``node = SHA-256(0x01 || left || right)``; the tree over
n leaves splits at the largest power of two below n. One Ed25519 signature over the root then
authenticates every record that carries its inclusion proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32
MAX_LEAVES = 1 << 20


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def build(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root and, per leaf, its inclusion proof (sibling hashes from the leaf upwards)."""
    if not 1 <= len(leaves) <= MAX_LEAVES:
        raise ValueError(f"a manifest holds 1..{MAX_LEAVES} records")
    proofs: list[list[bytes]] = [[] for _ in leaves]

    def rec(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaves[lo]
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two below hi - lo
        left, right = rec(lo, lo + k), rec(lo + k, hi)
        for i in range(lo, lo + k):
            proofs[i].append(right)
        for i in range(lo + k, hi):
            proofs[i].append(left)
        return _node(left, right)

    return rec(0, len(leaves)), proofs


def root_from_proof(index: int, count: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), or None if it is ill-formed."""
    if not 0 <= index < count:
        return None
    fn, sn, r = index, count - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
