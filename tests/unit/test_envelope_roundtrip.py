"""Sealing and opening with the development keyring: round trips, DEK bounds, KEK rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.envelope import MalformedEnvelope, Opener, SealContext, Sealer
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner

pytestmark = pytest.mark.unit

CTX = SealContext(
    event_id="salesforce:Account:001xx:1700000000000:1",
    source_topic="crm.ingress",
    source_partition=2,
    source_offset=41,
    dest_topic="crm.eu.account",
    dest_partition=1,
    jurisdiction="eu",
    classification_level="confidential",
    categories=("pii.email", "pii.phone"),
    entity="Account",
    operation="update",
    schema_id=7,
)
PAYLOAD = b'{"Name":"Ada","Email":"ada@example.org"}' * 25


class Stack:
    def __init__(self, ring: LocalKeyring, policy: DekPolicy | None = None) -> None:
        self.ring = ring
        self.provider = LocalKeyProvider(ring)
        self.keys = JurisdictionKeys({j: (self.provider, j) for j in ring.keks})
        self.deks = CachingDekManager(self.keys, policy)
        self.sealer = Sealer(self.deks, LocalSigner(ring))
        self.opener = Opener(self.keys, LocalPublicKeys(ring))

    def open(self, value: bytes, headers: list[tuple[str, bytes]], ctx: SealContext = CTX) -> bytes:
        return self.opener.open(
            value, headers, topic=ctx.dest_topic, partition=ctx.dest_partition, expected_jurisdiction=ctx.jurisdiction
        ).plaintext


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "keyring.json", ["eu", "us"])


def test_sealed_record_opens_to_the_same_payload_and_context(ring: LocalKeyring) -> None:
    s = Stack(ring)
    rec = s.sealer.seal(PAYLOAD, CTX)
    opened = s.opener.open(rec.value, rec.headers, topic="crm.eu.account", partition=1, expected_jurisdiction="eu")
    assert opened.plaintext == PAYLOAD
    assert opened.ctx == CTX
    assert opened.kek.key_id == "eu"


def test_context_without_schema_or_categories_round_trips(ring: LocalKeyring) -> None:
    s = Stack(ring)
    ctx = SealContext("e", "in", 0, 0, "crm.eu.x", 0, "eu", "public", (), "Lead", "create", None)
    rec = s.sealer.seal(b"", ctx)
    opened = s.opener.open(rec.value, rec.headers, topic="crm.eu.x", partition=0, expected_jurisdiction="eu")
    assert (opened.plaintext, opened.ctx) == (b"", ctx)


def test_ciphertext_does_not_contain_the_plaintext(ring: LocalKeyring) -> None:
    rec = Stack(ring).sealer.seal(PAYLOAD, CTX)
    assert b"ada@example.org" not in rec.value
    assert all(b"ada" not in v for _, v in rec.headers)


def test_clear_headers_carry_only_filter_metadata(ring: LocalKeyring) -> None:
    rec = Stack(ring).sealer.seal(PAYLOAD, CTX)
    assert dict(rec.headers) == {
        "rr-event-id": CTX.event_id.encode(),
        "rr-entity": b"Account",
        "rr-operation": b"update",
        "rr-jurisdiction": b"eu",
        "rr-classification": b"confidential",
    }


def test_each_record_gets_a_fresh_nonce(ring: LocalKeyring) -> None:
    s = Stack(ring)
    a, b = s.sealer.seal(PAYLOAD, CTX).value, s.sealer.seal(PAYLOAD, CTX).value
    assert a != b


def test_dek_is_reused_up_to_max_records_then_replaced(ring: LocalKeyring) -> None:
    s = Stack(ring, DekPolicy(max_records=3, max_age_s=3600))
    wrapped = [s.deks.acquire("eu").wrapped for _ in range(7)]
    assert len(set(wrapped[:3])) == 1
    assert len(set(wrapped[3:6])) == 1
    assert len(set(wrapped)) == 3


def test_dek_is_replaced_after_max_age(ring: LocalKeyring) -> None:
    now = [0.0]
    keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
    deks = CachingDekManager(keys, DekPolicy(max_records=1000, max_age_s=10), clock=lambda: now[0])
    first = deks.acquire("eu").wrapped
    now[0] = 9.9
    assert deks.acquire("eu").wrapped == first
    now[0] = 10.0
    assert deks.acquire("eu").wrapped != first


def test_dek_policy_refuses_bounds_near_the_nonce_limit() -> None:
    with pytest.raises(ValueError):
        DekPolicy(max_records=2**32)


def test_records_sealed_before_kek_rotation_still_open_after_it(ring: LocalKeyring) -> None:
    s = Stack(ring)
    in_flight = [s.sealer.seal(PAYLOAD + bytes([i]), CTX) for i in range(3)]
    assert ring.rotate_kek("eu") == 2
    ring.save()
    s.deks.invalidate()  # the next DEK is wrapped by v2
    after = s.sealer.seal(PAYLOAD, CTX)
    reloaded = Stack(LocalKeyring.load(ring.path))  # a reader that loaded the rotated keyring
    assert reloaded.open(after.value, after.headers) == PAYLOAD
    for i, rec in enumerate(in_flight):
        assert reloaded.open(rec.value, rec.headers) == PAYLOAD + bytes([i])
    assert (
        reloaded.opener.open(
            after.value, after.headers, topic=CTX.dest_topic, partition=1, expected_jurisdiction="eu"
        ).kek.version
        == 2
    )


def test_records_signed_before_signing_key_rotation_still_verify(ring: LocalKeyring) -> None:
    old = Stack(ring).sealer.seal(PAYLOAD, CTX)
    ring.rotate_signing()
    ring.save()
    s = Stack(LocalKeyring.load(ring.path))
    new = s.sealer.seal(PAYLOAD, CTX)
    assert s.open(old.value, old.headers) == s.open(new.value, new.headers) == PAYLOAD


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": ""},
        {"dest_partition": -1},
        {"source_offset": -1},
        {"schema_id": 2**31},
        {"entity": "x" * 256},
        {"categories": tuple(f"c{i}" for i in range(256))},
    ],
)
def test_invalid_context_is_refused_before_sealing(ring: LocalKeyring, change: dict[str, object]) -> None:
    import dataclasses

    with pytest.raises(MalformedEnvelope):
        Stack(ring).sealer.seal(PAYLOAD, dataclasses.replace(CTX, **change))  # type: ignore[arg-type]


def test_reprs_of_key_holding_objects_show_no_key_material(ring: LocalKeyring) -> None:
    s = Stack(ring)
    rec = s.sealer.seal(PAYLOAD, CTX)
    opened = s.opener.open(rec.value, rec.headers, topic=CTX.dest_topic, partition=1, expected_jurisdiction="eu")
    dek = s.provider.new_data_key("eu")
    secrets = [v for e in ring.keks.values() for v in e.versions.values()]
    secrets += [v for e in ring.signing.values() for v in e.versions.values()]
    secrets.append(dek.plaintext)
    texts = [repr(x) for x in (ring, s.provider, s.keys, s.deks, s.sealer, s.opener, dek, opened, s.deks.acquire("eu"))]
    for text in texts:
        assert "Ada" not in text
        for secret in secrets:
            assert secret.hex() not in text
            assert repr(secret) not in text
