"""The audit record: Avro round trip, the hash's fixed position and its definition."""

from __future__ import annotations

import hashlib

import pytest

from router import __version__
from router.audit.record import (
    HASH_OFFSET,
    HASH_SIZE,
    ZERO_HASH,
    AuditDecodeError,
    AuditFields,
    canonical_bytes,
    decode_audit,
    encode_audit,
)
from router.errors import ReasonCode

pytestmark = pytest.mark.unit


def fields(i: int = 0, **overrides: object) -> AuditFields:
    """Value-free sample fields, like real ones; ``i`` varies positions and ids.

    Shared with the chain and verify tests.
    """
    f = AuditFields(
        decision="route",
        reason=ReasonCode.ROUTED,
        classification_level="confidential",
        categories=("PII",),
        field_names=("Email", "MailingCountry"),
        jurisdictions=("eu",),
        destination_topic="crm.eu.contact",
        destination_partition=i % 3,
        placement_verdict="ok@1764000000000",
        payload_sha256="ab" * 32,
        sealed_sha256="cd" * 32,
        source_topic="crm.ingress",
        source_partition=0,
        source_offset=1000 + i,
        source_timestamp_ms=1_764_000_000_000 + i,
        event_id=f"sf:evt-{i}",
        policy_version="policy-7",
        router_version=__version__,
        instance_id="router-a",
        processed_at_ms=1_764_000_000_500 + i,
        trace_id=None,
    )
    return f._replace(**overrides)


def test_round_trip_keeps_every_field() -> None:
    f = fields(7)
    data, digest = encode_audit(0, ZERO_HASH, f)
    rec = decode_audit(data)
    assert (rec.seq, rec.prev_hash, rec.hash, rec.fields) == (0, ZERO_HASH, digest, f)


def test_round_trip_of_a_quarantine_decision_with_nulls() -> None:
    f = fields(1, decision="quarantine", reason=ReasonCode.PLACEMENT_VIOLATION, destination_topic="quarantine.eu",
               destination_partition=None, placement_verdict="crm.eu.contact: replica on broker 3 (us-east-1a, us)",
               source_timestamp_ms=None, event_id=None, trace_id="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
               categories=(), field_names=(), jurisdictions=())
    prev = hashlib.sha256(b"x").digest()
    data, _ = encode_audit(5, prev, f)
    rec = decode_audit(data)
    assert (rec.seq, rec.prev_hash, rec.fields) == (5, prev, f)


def test_hash_is_sha256_of_prev_hash_and_the_encoding_with_a_zero_hash() -> None:
    prev = hashlib.sha256(b"previous").digest()
    data, digest = encode_audit(3, prev, fields())
    assert data[HASH_OFFSET : HASH_OFFSET + HASH_SIZE] == digest
    zeroed = data[:HASH_OFFSET] + bytes(HASH_SIZE) + data[HASH_OFFSET + HASH_SIZE :]
    assert canonical_bytes(data) == zeroed
    assert digest == hashlib.sha256(prev + zeroed).digest()


def test_encoding_starts_with_format_version_one() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    assert data[0] == 0x02


def test_seq_zero_needs_a_zero_prev_hash() -> None:
    with pytest.raises(ValueError, match="seq 0"):
        encode_audit(0, b"\x01" * 32, fields())


def test_prev_hash_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_audit(1, b"\x01" * 31, fields())


def test_other_format_version_is_rejected() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    with pytest.raises(AuditDecodeError, match="format version"):
        decode_audit(b"\x04" + data[1:])


def test_truncated_record_is_rejected() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    with pytest.raises(AuditDecodeError):
        decode_audit(data[:-3])
