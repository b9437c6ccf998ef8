"""The quarantine record: Avro round trip, version check, no plaintext in repr."""

from __future__ import annotations

import pytest

from router import __version__
from router.errors import ReasonCode
from router.quarantine import (
    QuarantineDecodeError,
    QuarantineRecord,
    decode_quarantine,
    encode_quarantine,
    payload_sha256,
)

pytestmark = pytest.mark.unit

ORIGINAL = b'{"Email":"alice@example.com"}'


def _record(**overrides: object) -> QuarantineRecord:
    fields: dict[str, object] = {
        "reason": ReasonCode.CONFLICTING_JURISDICTION,
        "detail": "fields BillingCountry and MailingCountry resolve to eu and us",
        "classification_level": "confidential",
        "categories": ("PII",),
        "field_names": ("Email", "BillingCountry", "MailingCountry"),
        "jurisdictions": ("eu", "us"),
        "source_topic": "crm.ingress",
        "source_partition": 2,
        "source_offset": 12345678901,
        "source_timestamp_ms": 1_764_000_000_000,
        "event_id": "sf:evt-1",
        "payload_sha256": payload_sha256(ORIGINAL),
        "router_version": __version__,
        "policy_version": "policy-7",
        "trace_id": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "quarantined_at_ms": 1_764_000_000_123,
        "sealed_payload": b"\x01sealed-envelope-bytes",
        "envelope_headers": (("rr-jurisdiction", b"eu"), ("rr-event-id", b"sf:evt-1")),
        "key_id": "rr-eu/3",
    }
    fields.update(overrides)
    return QuarantineRecord(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    rec = _record()
    assert decode_quarantine(encode_quarantine(rec)) == rec


def test_round_trip_with_nulls_and_empty_lists() -> None:
    rec = _record(reason=ReasonCode.DECODE_ERROR, categories=(), field_names=(), jurisdictions=(),
                  source_timestamp_ms=None, event_id=None, trace_id=None, envelope_headers=(), key_id=None,
                  classification_level="unknown")
    assert decode_quarantine(encode_quarantine(rec)) == rec


def test_decoded_reason_compares_equal_to_the_enum() -> None:
    assert decode_quarantine(encode_quarantine(_record())).reason == ReasonCode.CONFLICTING_JURISDICTION


def test_payload_hash_is_hex_sha256_of_the_original_bytes() -> None:
    assert payload_sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_encoding_holds_no_plaintext_of_the_original() -> None:
    data = encode_quarantine(_record())
    assert b"alice@example.com" not in data


def test_repr_hides_the_sealed_payload() -> None:
    assert "sealed-envelope" not in repr(_record())


def test_record_is_frozen() -> None:
    rec = _record()
    with pytest.raises(AttributeError):
        rec.detail = "x"  # type: ignore[misc]


def test_other_format_version_is_rejected() -> None:
    data = encode_quarantine(_record())
    with pytest.raises(QuarantineDecodeError, match="format version"):
        decode_quarantine(b"\x04" + data[1:])


@pytest.mark.parametrize("cut", [1, 10, -1])
def test_truncated_bytes_are_rejected(cut: int) -> None:
    data = encode_quarantine(_record())
    with pytest.raises(QuarantineDecodeError):
        decode_quarantine(data[:cut])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(QuarantineDecodeError, match="trailing"):
        decode_quarantine(encode_quarantine(_record()) + b"\x00")
