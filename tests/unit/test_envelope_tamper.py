"""Every way a sealed record can be altered, moved or misread is refused with its own error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.envelope import (
    BadSignature,
    EnvelopeError,
    HeaderMismatch,
    MalformedEnvelope,
    Opener,
    SealContext,
    SealedRecord,
    Sealer,
    Tampered,
    UnknownKey,
    WrongJurisdiction,
    WrongPartition,
    WrongTopic,
    frame,
)
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner

pytestmark = pytest.mark.unit

CTX = SealContext(
    "evt-1", "crm.ingress", 0, 9, "crm.eu.contact", 2, "eu", "restricted", ("pii.name",), "Contact", "create", 3
)
PAYLOAD = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyring:
    return LocalKeyring.create(tmp_path_factory.mktemp("keys") / "keyring.json", ["eu", "us"])


@pytest.fixture(scope="module")
def keys(ring: LocalKeyring) -> JurisdictionKeys:
    provider = LocalKeyProvider(ring)
    return JurisdictionKeys({"eu": (provider, "eu"), "us": (provider, "us")})


@pytest.fixture(scope="module")
def sealer(ring: LocalKeyring, keys: JurisdictionKeys) -> Sealer:
    return Sealer(CachingDekManager(keys), LocalSigner(ring))


@pytest.fixture(scope="module")
def opener(ring: LocalKeyring, keys: JurisdictionKeys) -> Opener:
    return Opener(keys, LocalPublicKeys(ring))


@pytest.fixture(scope="module")
def record(sealer: Sealer) -> SealedRecord:
    return sealer.seal(PAYLOAD, CTX)


def _open(opener: Opener, value: bytes, headers: list[tuple[str, bytes]], **kw: object) -> bytes:
    args: dict[str, object] = {"topic": "crm.eu.contact", "partition": 2, "expected_jurisdiction": "eu", **kw}
    return opener.open(value, headers, **args).plaintext  # type: ignore[arg-type]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_a_flipped_bit_anywhere_is_rejected(opener: Opener, record: SealedRecord, data: st.DataObject) -> None:
    bit = data.draw(st.integers(min_value=0, max_value=len(record.value) * 8 - 1))
    value = bytearray(record.value)
    value[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((MalformedEnvelope, BadSignature, UnknownKey)):
        _open(opener, bytes(value), record.headers)


def test_a_flipped_bit_in_the_ciphertext_fails_the_signature(opener: Opener, record: SealedRecord) -> None:
    value = bytearray(record.value)
    value[-100] ^= 0x01
    with pytest.raises(BadSignature):
        _open(opener, bytes(value), record.headers)


def test_truncated_or_extended_records_are_malformed(opener: Opener, record: SealedRecord) -> None:
    for value in (record.value[:-1], record.value + b"\x00", b"", b"RRE\x03" + record.value[4:],
                  b"RRE\x00" + record.value[4:]):
        with pytest.raises(MalformedEnvelope):
            _open(opener, value, record.headers)


def test_an_edited_header_is_rejected(opener: Opener, record: SealedRecord) -> None:
    headers = [(k, b"public" if k == "rr-classification" else v) for k, v in record.headers]
    with pytest.raises(HeaderMismatch):
        _open(opener, record.value, headers)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda h: h[1:], id="missing"),
        pytest.param(lambda h: [*h, h[0]], id="repeated"),
        pytest.param(lambda h: [*h, ("rr-region", b"us")], id="unknown-rr-header"),
        pytest.param(lambda h: [(k, None) if k == "rr-entity" else (k, v) for k, v in h], id="null-value"),
    ],
)
def test_missing_repeated_or_foreign_envelope_headers_are_rejected(
    opener: Opener, record: SealedRecord, headers: object
) -> None:
    with pytest.raises(HeaderMismatch):
        _open(opener, record.value, headers(record.headers))  # type: ignore[operator]


def test_headers_outside_the_envelope_namespace_are_ignored(opener: Opener, record: SealedRecord) -> None:
    assert _open(opener, record.value, [("traceparent", b"00-ab"), *record.headers]) == PAYLOAD


def test_a_record_copied_to_another_topic_is_rejected(opener: Opener, record: SealedRecord) -> None:
    with pytest.raises(WrongTopic) as err:
        _open(opener, record.value, record.headers, topic="crm.eu.lead")
    assert err.value.topic == "crm.eu.lead"
    assert err.value.raw == record.value
    assert "crm.eu.contact" in str(err.value)


def test_a_record_copied_to_another_partition_is_rejected(opener: Opener, record: SealedRecord) -> None:
    with pytest.raises(WrongPartition):
        _open(opener, record.value, record.headers, partition=0)


def test_an_eu_record_read_by_a_us_reader_is_rejected(opener: Opener, record: SealedRecord) -> None:
    with pytest.raises(WrongJurisdiction):
        _open(opener, record.value, record.headers, expected_jurisdiction="us")


def test_an_eu_record_opened_with_only_the_us_key_is_rejected(ring: LocalKeyring, record: SealedRecord) -> None:
    us_only = Opener(JurisdictionKeys({"us": (LocalKeyProvider(ring), "us")}), LocalPublicKeys(ring))
    with pytest.raises(UnknownKey) as err:
        _open(us_only, record.value, record.headers)
    assert isinstance(err.value, KeyUnavailable)
    assert not err.value.retriable


def test_a_record_wrapped_under_another_jurisdictions_kek_is_rejected(ring: LocalKeyring, record: SealedRecord) -> None:
    provider = LocalKeyProvider(ring)
    swapped = Opener(JurisdictionKeys({"eu": (provider, "us")}), LocalPublicKeys(ring))
    with pytest.raises(WrongJurisdiction):
        _open(swapped, record.value, record.headers)


def test_an_unknown_kek_version_is_rejected(ring: LocalKeyring, record: SealedRecord) -> None:
    f = frame.decode(record.value)
    signer = LocalSigner(ring)
    header = frame.encode_header(f.ctx, type(f.kek)("eu", 99), f.wrapped_dek, f.signing_key)
    body = frame.encode_body(header, f.nonce, f.ciphertext)
    value = body + signer.sign(frame.SIGNING_DOMAIN + body)
    opener = Opener(JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")}), LocalPublicKeys(ring))
    with pytest.raises(UnknownKey) as err:
        _open(opener, value, record.headers)
    assert err.value.version == 99


def test_an_unknown_signing_key_version_is_rejected(opener: Opener, record: SealedRecord) -> None:
    f = frame.decode(record.value)
    header = frame.encode_header(f.ctx, f.kek, f.wrapped_dek, type(f.signing_key)(f.signing_key.key_id, 7))
    value = frame.encode_body(header, f.nonce, f.ciphertext) + f.signature
    with pytest.raises(UnknownKey):
        _open(opener, value, record.headers)


def test_swapping_wrapped_deks_between_records_is_rejected(sealer: Sealer, opener: Opener) -> None:
    a = sealer.seal(PAYLOAD, CTX)
    sealer._deks.invalidate()  # force a different DEK for b
    b = sealer.seal(PAYLOAD, CTX)
    fa, fb = frame.decode(a.value), frame.decode(b.value)
    assert fa.wrapped_dek != fb.wrapped_dek
    header = frame.encode_header(fa.ctx, fa.kek, fb.wrapped_dek, fa.signing_key)
    value = frame.encode_body(header, fa.nonce, fa.ciphertext) + fa.signature
    with pytest.raises(BadSignature):
        _open(opener, value, a.headers)


def test_aead_rejects_a_changed_context_even_under_a_valid_signature(
    ring: LocalKeyring, opener: Opener, record: SealedRecord
) -> None:
    # Only a holder of the signing key can do this; the AEAD still binds the context.
    f = frame.decode(record.value)
    import dataclasses

    ctx = dataclasses.replace(f.ctx, source_offset=f.ctx.source_offset + 1)
    header = frame.encode_header(ctx, f.kek, f.wrapped_dek, f.signing_key)
    body = frame.encode_body(header, f.nonce, f.ciphertext)
    value = body + LocalSigner(ring).sign(frame.SIGNING_DOMAIN + body)
    with pytest.raises(Tampered) as err:
        _open(opener, value, record.headers)
    assert not isinstance(err.value, HeaderMismatch)


def test_errors_never_carry_plaintext_in_their_message(opener: Opener, record: SealedRecord) -> None:
    with pytest.raises(EnvelopeError) as err:
        _open(opener, record.value, record.headers, topic="other")
    assert PAYLOAD.hex()[:32] not in str(err.value)
    assert "plaintext" not in vars(err.value)


def test_a_record_from_another_signer_is_rejected(tmp_path: Path, record: SealedRecord, keys: JurisdictionKeys) -> None:
    other = LocalKeyring.create(tmp_path / "other.json", ["eu"])
    with pytest.raises(BadSignature):
        _open(Opener(keys, LocalPublicKeys(other)), record.value, record.headers)
