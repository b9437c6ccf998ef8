"""The audit record: Avro round trip, the hash's fixed position and its definition, the chain
placement, and format-1 records written before chains were kept per source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from router import __version__
from router.audit.record import (
    HASH_OFFSET,
    HASH_SIZE,
    ZERO_HASH,
    AuditDecodeError,
    AuditFields,
    ChainId,
    canonical_bytes,
    chain_key,
    chain_partition,
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


def test_encoding_starts_with_format_version_two() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    assert data[0] == 0x04  # zig-zag 2
    assert decode_audit(data).format_version == 2


def test_round_trip_keeps_the_partition_count_the_chain_is_placed_over() -> None:
    data, _ = encode_audit(4, b"\x07" * 32, fields(), 300)
    rec = decode_audit(data)
    assert (rec.audit_partitions, rec.seq) == (300, 4)


def test_chain_partition_is_the_documented_stable_hash() -> None:
    # SHA-256("A:0") starts bc5d0fcc48719e93, SHA-256("B:0") 2ec2665a3183f538 (sha256sum of the
    # bytes); the placement is those 8 bytes, big-endian, modulo the partition count.
    assert chain_key("A", 0) == b"A:0"
    assert [chain_partition("A", 0, n) for n in (1, 2, 3, 4, 12)] == [0x0BC5D0FCC48719E93 % n for n in (1, 2, 3, 4, 12)]
    assert [chain_partition("B", 0, n) for n in (1, 2, 3, 4)] == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="audit_partitions"):
        chain_partition("A", 0, 0)


def test_partition_count_out_of_range_is_refused() -> None:
    for bad in (0, -1, 2**31):
        with pytest.raises(ValueError, match="audit_partitions"):
            encode_audit(0, ZERO_HASH, fields(), bad)


FORMAT_1 = Path(__file__).parent / "fixtures" / "audit" / "format1_chains.jsonl"
"""Records written by the format-1 encoder (one chain per audit partition; partition 0 chains the
records of ingress A[0] and B[0] of one instance), before format 2 existed."""


def format1_records() -> list[tuple[int, int, bytes]]:
    rows = [json.loads(line) for line in FORMAT_1.read_text(encoding="utf-8").splitlines()]
    return [(r["partition"], r["offset"], bytes.fromhex(r["value"])) for r in rows]


def test_format_1_records_still_decode() -> None:
    records = format1_records()
    assert [data[0] for _, _, data in records] == [0x02] * 7
    recs = [decode_audit(data) for _, _, data in records]
    assert {(r.format_version, r.audit_partitions) for r in recs} == {(1, None)}
    assert [(r.seq, r.fields.source_topic, r.fields.source_partition) for r in recs] == [
        (0, "A", 0), (1, "B", 0), (2, "A", 0), (0, "A", 1), (3, "B", 0), (1, "A", 1), (4, "A", 0)]
    assert recs[0].chain(0) == ChainId(None, 0)
    assert recs[0].placed_in() is None


def test_seq_zero_needs_a_zero_prev_hash() -> None:
    with pytest.raises(ValueError, match="seq 0"):
        encode_audit(0, b"\x01" * 32, fields())


def test_prev_hash_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_audit(1, b"\x01" * 31, fields())


def test_other_format_version_is_rejected() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    with pytest.raises(AuditDecodeError, match="format version"):
        decode_audit(b"\x0a" + data[1:])  # format 5: none yet
    with pytest.raises(AuditDecodeError):  # format 2 bytes labelled format 1 do not parse as format 1
        decode_audit(b"\x02" + data[1:])
    with pytest.raises(AuditDecodeError):  # nor as format 3 (a replay record: they lack its link)
        decode_audit(b"\x06" + data[1:])


def test_truncated_record_is_rejected() -> None:
    data, _ = encode_audit(0, ZERO_HASH, fields())
    with pytest.raises(AuditDecodeError):
        decode_audit(data[:-3])


def test_a_record_placed_over_no_partitions_is_refused_when_read() -> None:
    import io

    from fastavro import schemaless_writer

    from router.audit.record import _SCHEMA, _to_avro

    out = io.BytesIO()
    schemaless_writer(out, _SCHEMA, _to_avro(0, ZERO_HASH, fields(), 0))
    with pytest.raises(AuditDecodeError, match="audit_partitions is 0"):
        decode_audit(out.getvalue())
