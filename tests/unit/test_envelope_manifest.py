"""Manifest mode: one Ed25519 signature over a Merkle root serves a batch of records."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.envelope import (
    BadSignature,
    MalformedEnvelope,
    Opener,
    SealContext,
    SealedRecord,
    Sealer,
    UnknownKey,
    WrongPartition,
    WrongTopic,
    frame,
    merkle,
)
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.protocol import KeyRef

pytestmark = pytest.mark.unit

CTX = SealContext("evt", "crm.ingress", 0, 0, "crm.eu.lead", 3, "eu", "internal", ("pii.email",), "Lead", "create", 5)


def _ctx(i: int) -> SealContext:
    return dataclasses.replace(CTX, event_id=f"evt-{i}", source_offset=i)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyring:
    return LocalKeyring.create(tmp_path_factory.mktemp("keys") / "keyring.json", ["eu"])


@pytest.fixture(scope="module")
def keys(ring: LocalKeyring) -> JurisdictionKeys:
    return JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})


@pytest.fixture(scope="module")
def sealer(ring: LocalKeyring, keys: JurisdictionKeys) -> Sealer:
    return Sealer(CachingDekManager(keys), LocalSigner(ring))


@pytest.fixture(scope="module")
def opener(ring: LocalKeyring, keys: JurisdictionKeys) -> Opener:
    return Opener(keys, LocalPublicKeys(ring))


@pytest.fixture(scope="module")
def batch(sealer: Sealer) -> list[SealedRecord]:
    return sealer.seal_batch([(f"payload {i}".encode() * 30, _ctx(i)) for i in range(7)])


def _open(
    opener: Opener, rec: SealedRecord | bytes, headers: list[tuple[str, bytes]] | None = None, **kw: object
) -> bytes:
    value = rec.value if isinstance(rec, SealedRecord) else rec
    hdrs = rec.headers if isinstance(rec, SealedRecord) else headers
    args: dict[str, object] = {"topic": "crm.eu.lead", "partition": 3, "expected_jurisdiction": "eu", **kw}
    return opener.open(value, hdrs, **args).plaintext  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_proof_of_every_tree_size_leads_to_the_root(n: int) -> None:
    leaves = [merkle.leaf_hash(os.urandom(8)) for _ in range(n)]
    root, proofs = merkle.build(leaves)
    for i, leaf in enumerate(leaves):
        assert merkle.root_from_proof(i, n, leaf, proofs[i]) == root
        if n > 1:  # the proof is bound to its position (the count is bound by the signature)
            assert merkle.root_from_proof((i + 1) % n, n, leaf, proofs[i]) != root


def test_every_record_of_a_batch_opens_alone(opener: Opener, batch: list[SealedRecord]) -> None:
    for i, rec in enumerate(batch):
        assert _open(opener, rec) == f"payload {i}".encode() * 30
        assert frame.decode(rec.value).flags == frame.FLAG_MANIFEST


def test_a_batch_of_one_is_a_valid_manifest(sealer: Sealer, opener: Opener) -> None:
    (rec,) = sealer.seal_batch([(b"only", CTX)])
    assert _open(opener, rec) == b"only"


def test_the_manifest_signature_is_verified_once_per_batch(
    ring: LocalKeyring, keys: JurisdictionKeys, batch: list[SealedRecord]
) -> None:
    calls: list[int] = []

    class Counting:
        def __init__(self, inner: Ed25519PublicKey) -> None:
            self.inner = inner

        def verify(self, signature: bytes, data: bytes) -> None:
            calls.append(1)
            self.inner.verify(signature, data)

        def public_bytes(self, *args: object) -> bytes:
            return self.inner.public_bytes(*args)  # type: ignore[arg-type]

    class CountingKeys:
        def public_key(self, key: KeyRef) -> Ed25519PublicKey:
            return Counting(LocalPublicKeys(ring).public_key(key))  # type: ignore[return-value]

    opener = Opener(keys, CountingKeys())
    for rec in batch:
        _open(opener, rec)
    assert len(calls) == 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_a_flipped_bit_anywhere_in_a_manifest_record_is_rejected(
    ring: LocalKeyring, keys: JurisdictionKeys, batch: list[SealedRecord], data: st.DataObject
) -> None:
    rec = batch[data.draw(st.integers(0, len(batch) - 1))]
    bit = data.draw(st.integers(min_value=0, max_value=len(rec.value) * 8 - 1))
    value = bytearray(rec.value)
    value[bit // 8] ^= 1 << (bit % 8)
    fresh = Opener(keys, LocalPublicKeys(ring))  # no cached roots
    with pytest.raises((MalformedEnvelope, BadSignature, UnknownKey)):
        _open(fresh, bytes(value), rec.headers)


def test_a_proof_taken_from_another_record_is_rejected(opener: Opener, batch: list[SealedRecord]) -> None:
    a, b = frame.decode(batch[1].value), frame.decode(batch[2].value)
    value = a.body + batch[2].value[len(b.body) :]
    with pytest.raises(BadSignature):
        _open(opener, value, batch[1].headers)


def test_a_record_spliced_into_another_batch_is_rejected(
    sealer: Sealer, opener: Opener, batch: list[SealedRecord]
) -> None:
    other = sealer.seal_batch([(b"x", _ctx(i)) for i in range(7)])
    a, b = frame.decode(batch[4].value), frame.decode(other[4].value)
    value = a.body + other[4].value[len(b.body) :]
    with pytest.raises(BadSignature):
        _open(opener, value, batch[4].headers)


def test_a_changed_leaf_count_is_rejected(opener: Opener, batch: list[SealedRecord]) -> None:
    f = frame.decode(batch[0].value)
    tail = frame.encode_manifest_tail(f.leaf_index, f.leaf_count + 1, list(f.proof), f.signature)
    with pytest.raises(BadSignature):
        _open(opener, f.body + tail, batch[0].headers)


def test_a_manifest_record_copied_elsewhere_is_rejected(opener: Opener, batch: list[SealedRecord]) -> None:
    with pytest.raises(WrongTopic):
        _open(opener, batch[0], topic="crm.eu.account")
    with pytest.raises(WrongPartition):
        _open(opener, batch[0], partition=0)


def test_a_manifest_record_relabelled_as_per_record_is_rejected(opener: Opener, batch: list[SealedRecord]) -> None:
    f = frame.decode(batch[0].value)
    value = bytearray(f.body + f.signature)
    value[4] = 0  # flags: per-record signature
    with pytest.raises(BadSignature):
        _open(opener, bytes(value), batch[0].headers)


def test_batch_size_is_bounded(sealer: Sealer) -> None:
    with pytest.raises(MalformedEnvelope):
        sealer.seal_batch([])


def test_a_record_signed_by_another_router_is_rejected(
    tmp_path: Path, keys: JurisdictionKeys, batch: list[SealedRecord]
) -> None:
    other = LocalKeyring.create(tmp_path / "other.json", ["eu"])
    with pytest.raises(BadSignature):
        _open(Opener(keys, LocalPublicKeys(other)), batch[0])
