"""Audit and quarantine records written field by field are fastavro's bytes, for many records.

The fixed-layout encoders (:func:`router.audit.record.encode_audit`,
:func:`router.quarantine.record.encode_quarantine`) skip fastavro's per-record schema
interpretation; these tests compare their bytes with fastavro's over random records covering
nulls, unicode, empty and long arrays, multi-byte varints and negative numbers, and read them back.
"""

from __future__ import annotations

import random

import pytest

from router.audit.record import (
    ZERO_HASH,
    AuditFields,
    avro_long,
    decode_audit,
    encode_audit,
    encode_audit_fastavro,
)
from router.quarantine.record import (
    QuarantineRecord,
    decode_quarantine,
    encode_quarantine,
    encode_quarantine_fastavro,
)

pytestmark = pytest.mark.unit

_TEXT = ["", "a", "Email", "crm.eu.account", "naïve", "日本語フィールド", "emoji 🚀", "x" * 63, "y" * 64,
         "z" * 200, "ü" * 300, "tab\tnew\nline", "\x00nul"]
_INTS = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 2**31 - 1, -(2**31), 2**40, 2**63 - 1, -(2**63)]


def _text(rng: random.Random) -> str:
    return rng.choice(_TEXT) + (str(rng.randrange(10**6)) if rng.random() < 0.5 else "")


def _names(rng: random.Random) -> tuple[str, ...]:
    return tuple(_text(rng) for _ in range(rng.choice([0, 0, 1, 2, 5, 70])))


def _int(rng: random.Random, lo: int = -(2**63), hi: int = 2**63 - 1) -> int:
    n = rng.choice(_INTS) if rng.random() < 0.5 else rng.randrange(-(2**40), 2**40)
    return min(max(n, lo), hi)


def _opt(rng: random.Random, value: object) -> object:
    return None if rng.random() < 0.3 else value


def _audit(rng: random.Random) -> AuditFields:
    return AuditFields(
        decision=rng.choice(["route", "quarantine", "audit_only"]),
        reason=rng.choice(["ROUTED", "PII_QUARANTINED", _text(rng)]),
        classification_level=_text(rng),
        categories=_names(rng),
        field_names=_names(rng),
        jurisdictions=_names(rng),
        destination_topic=_text(rng),
        destination_partition=_opt(rng, _int(rng, -(2**31), 2**31 - 1)),  # type: ignore[arg-type]
        placement_verdict=_text(rng),
        payload_sha256=_text(rng),
        sealed_sha256=_text(rng),
        source_topic=_text(rng),
        source_partition=_int(rng, -(2**31), 2**31 - 1),
        source_offset=_int(rng),
        source_timestamp_ms=_opt(rng, _int(rng)),  # type: ignore[arg-type]
        event_id=_opt(rng, _text(rng)),  # type: ignore[arg-type]
        policy_version=_text(rng),
        router_version=_text(rng),
        instance_id=_text(rng),
        processed_at_ms=_int(rng),
        trace_id=_opt(rng, _text(rng)),  # type: ignore[arg-type]
    )


def test_varints_match_fastavro_around_every_byte_boundary() -> None:
    import io

    from fastavro import schemaless_writer

    for k in range(64):
        for n in (2**k - 1, 2**k, -(2**k), -(2**k) - 1):
            if -(2**63) <= n < 2**63:
                out = io.BytesIO()
                schemaless_writer(out, "long", n)
                assert avro_long(n) == out.getvalue(), n


def test_audit_records_are_fastavros_bytes() -> None:
    rng = random.Random(11)
    prev = ZERO_HASH
    for seq in range(3000):
        f = _audit(rng)
        parts = _int(rng, 1, 2**31 - 1)  # audit_partitions, format 2
        fast = encode_audit(seq, prev, f, parts)
        assert fast == encode_audit_fastavro(seq, prev, f, parts), f
        rec = decode_audit(fast[0])
        assert (rec.seq, rec.prev_hash, rec.hash, rec.fields, rec.audit_partitions) == (seq, prev, fast[1], f, parts)
        prev = fast[1]


def test_quarantine_records_are_fastavros_bytes() -> None:
    rng = random.Random(12)
    for _ in range(3000):
        rec = QuarantineRecord(
            reason=_text(rng),
            detail=_text(rng),
            classification_level=_text(rng),
            categories=_names(rng),
            field_names=_names(rng),
            jurisdictions=_names(rng),
            source_topic=_text(rng),
            source_partition=_int(rng, -(2**31), 2**31 - 1),
            source_offset=_int(rng),
            source_timestamp_ms=_opt(rng, _int(rng)),  # type: ignore[arg-type]
            event_id=_opt(rng, _text(rng)),  # type: ignore[arg-type]
            payload_sha256=_text(rng),
            router_version=_text(rng),
            policy_version=_text(rng),
            trace_id=_opt(rng, _text(rng)),  # type: ignore[arg-type]
            quarantined_at_ms=_int(rng),
            sealed_payload=rng.randbytes(rng.choice([0, 1, 63, 64, 200, 5000])),
            envelope_headers=tuple((_text(rng), rng.randbytes(rng.randrange(40)))
                                   for _ in range(rng.choice([0, 1, 5, 70]))),
            key_id=_opt(rng, _text(rng)),  # type: ignore[arg-type]
        )
        data = encode_quarantine(rec)
        assert data == encode_quarantine_fastavro(rec), rec
        assert decode_quarantine(data) == rec


def test_an_unknown_decision_is_refused_like_fastavro_refuses_it() -> None:
    f = _audit(random.Random(1))
    bad = f._replace(decision="maybe")
    with pytest.raises(ValueError):
        encode_audit_fastavro(0, ZERO_HASH, bad)
    with pytest.raises(ValueError):
        encode_audit(0, ZERO_HASH, bad)


def test_cached_runs_and_unhashable_arrays_encode_as_fastavro_does() -> None:
    rng = random.Random(14)
    base = _audit(rng)
    values = base._asdict()
    for i in range(300):
        row = AuditFields(**{**values, "source_offset": i, "decision": ("route", "quarantine")[i % 2]})
        assert encode_audit(i + 1, b"\x02" * 32, row) == encode_audit_fastavro(i + 1, b"\x02" * 32, row)  # type: ignore[arg-type]
    listed = AuditFields(**{**values, "categories": ["PII", "SECRET"], "field_names": []})  # type: ignore[arg-type]
    assert encode_audit(1, b"\x03" * 32, listed) == encode_audit_fastavro(1, b"\x03" * 32, listed)  # type: ignore[arg-type]
