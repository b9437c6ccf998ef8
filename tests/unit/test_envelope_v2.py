"""Frame version 2: the record key is bound, version 1 still opens, strict headers and keys."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from router.envelope import (
    BadSignature,
    HeaderMismatch,
    MalformedEnvelope,
    Opener,
    RecordKeyMismatch,
    SealContext,
    Sealer,
    Tampered,
    WrongPartition,
    WrongTopic,
    frame,
)
from router.envelope.seal import is_small_order
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.protocol import KeyRef, StaticPublicKeys

pytestmark = pytest.mark.unit

KAFKA_KEY = b"9f" * 32  # the router's output keys are 64 hex characters
CTX = SealContext("eid:" + "ab" * 16, "crm.ingress", 3, 77, "crm.eu.contact", 2, "eu", "confidential",
                  ("pii.email",), "Contact", "update", 5, hashlib.sha256(KAFKA_KEY).digest())
PAYLOAD = b'{"Email":"ada@example.org"}'


@pytest.fixture(scope="module")
def ring() -> LocalKeyring:
    return LocalKeyring.from_keys({"eu": {1: os.urandom(32)}, "us": {1: os.urandom(32)}},
                                  {"router-signing": {1: os.urandom(32)}})


@pytest.fixture(scope="module")
def keys(ring: LocalKeyring) -> JurisdictionKeys:
    provider = LocalKeyProvider(ring)
    return JurisdictionKeys({"eu": (provider, "eu"), "us": (provider, "us")})


@pytest.fixture(scope="module")
def opener(ring: LocalKeyring, keys: JurisdictionKeys) -> Opener:
    return Opener(keys, LocalPublicKeys(ring))


def _sealer(ring: LocalKeyring, keys: JurisdictionKeys, version: int = frame.VERSION) -> Sealer:
    return Sealer(CachingDekManager(keys), LocalSigner(ring), version=version)


def _open(opener: Opener, value: bytes, headers: list[tuple[str, bytes]], **kw: object) -> object:
    args: dict[str, object] = {"topic": "crm.eu.contact", "partition": 2, "expected_jurisdiction": "eu", **kw}
    return opener.open(value, headers, **args)  # type: ignore[arg-type]


def test_the_router_writes_version_2_and_it_round_trips_with_its_key(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener
) -> None:
    sealer = Sealer(CachingDekManager(keys), LocalSigner(ring))
    per_record = sealer.seal(PAYLOAD, CTX)
    batch = sealer.seal_batch([(PAYLOAD, CTX), (PAYLOAD + b" ", dataclasses.replace(CTX, source_offset=78))])
    for rec in (per_record, *batch):
        assert rec.value[3] == 2
        opened = _open(opener, rec.value, rec.headers, key=KAFKA_KEY)
        assert opened.version == 2 and opened.replay_protected  # type: ignore[attr-defined]
        assert opened.ctx.record_key_digest == hashlib.sha256(KAFKA_KEY).digest()  # type: ignore[attr-defined]
    assert _open(opener, per_record.value, per_record.headers, key=KAFKA_KEY).plaintext == PAYLOAD  # type: ignore[attr-defined]
    assert _open(opener, per_record.value, per_record.headers, key=KAFKA_KEY).ctx == CTX  # type: ignore[attr-defined]


def test_version_2_puts_the_key_digest_right_after_dest_partition(ring: LocalKeyring, keys: JurisdictionKeys) -> None:
    v1 = frame.decode(_sealer(ring, keys, 1).seal(PAYLOAD, dataclasses.replace(CTX, record_key_digest=b"")).value)
    v2 = frame.decode(_sealer(ring, keys, 2).seal(PAYLOAD, CTX).value)
    # Everything up to dest_partition is the same but the version byte; then 0x20 and the digest.
    prefix = 3 + 2 + 2 + len(CTX.event_id) + 1 + len(CTX.source_topic) + 12 + 1 + len(CTX.dest_topic) + 4
    assert v1.header[:3] + v1.header[4:prefix] == v2.header[:3] + v2.header[4:prefix]
    assert (v1.header[3], v2.header[3]) == (1, 2)
    assert v2.header[prefix : prefix + 33] == b"\x20" + hashlib.sha256(KAFKA_KEY).digest()
    assert v1.header[prefix:-(len(v1.wrapped_dek) + 4)][:20] == v2.header[prefix + 33 :][:20]


def test_version_1_frames_still_open_and_are_not_replay_protected(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener
) -> None:
    ctx = dataclasses.replace(CTX, record_key_digest=b"")
    sealer = _sealer(ring, keys, 1)
    for rec in (sealer.seal(PAYLOAD, ctx), sealer.seal_batch([(PAYLOAD, ctx)])[0]):
        assert rec.value[3] == 1
        for key in (KAFKA_KEY, None, b"anything"):  # version 1 binds no key: nothing to compare
            opened = _open(opener, rec.value, rec.headers, key=key)
            assert (opened.plaintext, opened.version, opened.replay_protected) == (PAYLOAD, 1, False)  # type: ignore[attr-defined]


def test_version_1_cannot_carry_a_key_digest_and_version_2_takes_32_bytes_or_none(
    ring: LocalKeyring, keys: JurisdictionKeys
) -> None:
    with pytest.raises(MalformedEnvelope, match="record_key_digest"):
        _sealer(ring, keys, 1).seal(PAYLOAD, CTX)
    with pytest.raises(MalformedEnvelope, match="record_key_digest"):
        _sealer(ring, keys, 2).seal(PAYLOAD, dataclasses.replace(CTX, record_key_digest=b"12345"))
    with pytest.raises(MalformedEnvelope):
        _sealer(ring, keys, 3)


@pytest.mark.parametrize(
    ("sealed_with", "read_with"),
    [(KAFKA_KEY, b"8f" * 32), (KAFKA_KEY, None), (KAFKA_KEY, b""), (None, KAFKA_KEY), (b"", None)],
)
def test_a_record_key_other_than_the_sealed_one_is_refused(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener, sealed_with: bytes | None, read_with: bytes | None
) -> None:
    ctx = dataclasses.replace(CTX, record_key_digest=frame.key_digest(sealed_with))
    rec = _sealer(ring, keys).seal(PAYLOAD, ctx)
    with pytest.raises(RecordKeyMismatch) as err:
        _open(opener, rec.value, rec.headers, key=read_with)
    assert isinstance(err.value, Tampered)
    assert err.value.raw == rec.value and KAFKA_KEY.decode() not in str(err.value)
    assert _open(opener, rec.value, rec.headers, key=sealed_with).plaintext == PAYLOAD  # type: ignore[attr-defined]
    assert _open(opener, rec.value, rec.headers).plaintext == PAYLOAD  # type: ignore[attr-defined]  # key not passed


def test_a_version_2_record_moved_to_another_partition_or_topic_is_refused(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener
) -> None:
    rec = _sealer(ring, keys).seal(PAYLOAD, CTX)
    with pytest.raises(WrongPartition):
        _open(opener, rec.value, rec.headers, partition=3, key=KAFKA_KEY)
    with pytest.raises(WrongTopic):
        _open(opener, rec.value, rec.headers, topic="crm.eu.account", key=KAFKA_KEY)


def test_a_version_2_record_relabelled_version_1_is_refused(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener
) -> None:
    for rec in (_sealer(ring, keys).seal(PAYLOAD, CTX), _sealer(ring, keys).seal_batch([(PAYLOAD, CTX)])[0]):
        with pytest.raises((MalformedEnvelope, BadSignature)):
            _open(opener, rec.value[:3] + b"\x01" + rec.value[4:], rec.headers)


def test_rr_headers_in_another_letter_case_or_not_bytes_are_refused(
    ring: LocalKeyring, keys: JurisdictionKeys, opener: Opener
) -> None:
    rec = _sealer(ring, keys).seal(PAYLOAD, CTX)
    for extra in (("RR-Entity", b"Contact"), ("Rr-reason", b"x"), ("rR-event-id", CTX.event_id.encode())):
        with pytest.raises(HeaderMismatch):
            _open(opener, rec.value, [*rec.headers, extra])
    as_text = [(k, v.decode()) if k == "rr-entity" else (k, v) for k, v in rec.headers]
    with pytest.raises(HeaderMismatch):
        _open(opener, rec.value, as_text)  # type: ignore[arg-type]
    renamed = [("RR-ENTITY", v) if k == "rr-entity" else (k, v) for k, v in rec.headers]
    with pytest.raises(HeaderMismatch):
        _open(opener, rec.value, renamed)
    assert _open(opener, rec.value, [*rec.headers, ("traceparent", b"00-x")]).plaintext == PAYLOAD  # type: ignore[attr-defined]


# The eight points of order 1, 2, 4 and 8 (libsodium's blocklist, canonical encodings).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]


def _order_divides_8(encoding: bytes) -> bool:
    """8·P = identity, by doubling (x², y) three times on -x² + y² = 1 + d·x²·y² (no square root)."""
    p = 2**255 - 19
    d = -121665 * pow(121666, p - 2, p) % p
    y = (int.from_bytes(encoding, "little") & ((1 << 255) - 1)) % p
    xx = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    for _ in range(3):
        t = d * xx * y * y % p
        xx, y = 4 * xx * y * y * pow((1 + t) ** 2, p - 2, p) % p, (y * y + xx) * pow(1 - t, p - 2, p) % p
    return xx == 0 and y == 1


def test_small_order_keys_are_recognised_with_their_non_canonical_encodings() -> None:
    for h in SMALL_ORDER:
        raw = bytes.fromhex(h)
        assert _order_divides_8(raw) and is_small_order(raw), h
    # y = p and y = p + 1 encode y = 0 and y = 1 non-canonically.
    for y in (2**255 - 19, 2**255 - 18):
        raw = y.to_bytes(32, "little")
        assert _order_divides_8(raw) and is_small_order(raw)
    for _ in range(200):
        raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert not _order_divides_8(raw) and not is_small_order(raw)


def test_a_small_order_signing_key_is_refused_although_openssl_accepts_its_forgery(
    ring: LocalKeyring, keys: JurisdictionKeys
) -> None:
    identity = bytes.fromhex(SMALL_ORDER[0])
    forged_signature = identity + bytes(32)  # R = identity, S = 0
    evil = KeyRef("router-signing", 9)
    ctx = CTX
    header = frame.encode_header(ctx, KeyRef("eu", 1), b"w" * 60, evil)
    body = frame.encode_body(header, bytes(12), bytes(32))
    Ed25519PublicKey.from_public_bytes(identity).verify(forged_signature, frame.SIGNING_DOMAIN + body)  # accepted!
    opener = Opener(keys, StaticPublicKeys({evil: identity}))
    from router.envelope import clear_headers

    with pytest.raises(BadSignature, match="small order"):
        _open(opener, body + forged_signature, clear_headers(ctx))
    # A valid key does not verify that forgery either (sanity of the ground truth above).
    with pytest.raises(InvalidSignature):
        Ed25519PrivateKey.generate().public_key().verify(forged_signature, frame.SIGNING_DOMAIN + body)
