"""The quarantine record: why an ingress event was not routed, and its original bytes, sealed.

Pure: no Kafka import. The pipeline builds a :class:`QuarantineRecord` after sealing the original
bytes with :mod:`router.envelope` (under the quarantine jurisdiction's key) and produces
:func:`encode_quarantine` of it to ``quarantine.<J>`` in the same transaction as the audit record.

Guarantees:

- The record never holds plaintext event data: ``sealed_payload`` is an envelope, and every clear
  field is metadata (reason, names, jurisdictions, positions, hashes, versions). ``detail`` must be
  value-free text; callers build it from names and counts, never from field values.
- The encoding is the schemaless Avro binary of ``schemas/quarantine.avsc`` (no container, no
  schema id); its first field ``format_version`` is checked on decode.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema, schemaless_writer

from router.audit.record import avro_bytes, avro_long, avro_name, avro_names, avro_opt_long, avro_opt_str, avro_str
from router.avrorecord import read_versioned
from router.errors import RouterError
from router.resources import schema_file

FORMAT_VERSION = 1
SCHEMA_PATH = schema_file("quarantine.avsc")

Header = tuple[str, bytes]


class QuarantineDecodeError(RouterError):
    """Bytes that are not a quarantine record of a supported format version."""


def _load_schema() -> Any:
    return parse_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


_SCHEMA = _load_schema()


def payload_sha256(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``: how both quarantine and audit records name a payload."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One quarantined event. Immutable; ``sealed_payload`` is hidden from ``repr``."""

    reason: str
    """A :class:`router.errors.ReasonCode` value (the enum itself may be passed)."""
    detail: str
    """Value-free explanation: names, counts, positions."""
    classification_level: str
    categories: tuple[str, ...]
    field_names: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    event_id: str | None
    payload_sha256: str
    """Hex SHA-256 of the original bytes (see :func:`payload_sha256`)."""
    router_version: str
    policy_version: str
    trace_id: str | None
    quarantined_at_ms: int
    sealed_payload: bytes = field(repr=False)
    envelope_headers: tuple[Header, ...] = ()
    key_id: str | None = None


_HEAD = avro_long(FORMAT_VERSION)


def encode_quarantine(rec: QuarantineRecord) -> bytes:
    """The schemaless Avro encoding of ``rec`` (``schemas/quarantine.avsc``), written field by
    field in schema order (the bytes fastavro writes; see :func:`encode_quarantine_fastavro`)."""
    headers = rec.envelope_headers
    parts = [
        _HEAD,
        avro_name(str(rec.reason)),
        avro_str(rec.detail),
        avro_name(rec.classification_level),
        avro_names(rec.categories),
        avro_names(rec.field_names),
        avro_names(rec.jurisdictions),
        avro_name(rec.source_topic),
        avro_long(rec.source_partition),
        avro_long(rec.source_offset),
        avro_opt_long(rec.source_timestamp_ms),
        avro_opt_str(rec.event_id),
        avro_str(rec.payload_sha256),
        avro_name(rec.router_version),
        avro_name(rec.policy_version),
        avro_opt_str(rec.trace_id),
        avro_long(rec.quarantined_at_ms),
        avro_bytes(rec.sealed_payload),
    ]
    if headers:
        parts.append(avro_long(len(headers)))
        for k, v in headers:
            parts.append(avro_name(k))
            parts.append(avro_bytes(v))
    parts.append(b"\x00")
    parts.append(avro_opt_str(rec.key_id))
    return b"".join(parts)


def encode_quarantine_fastavro(rec: QuarantineRecord) -> bytes:
    """:func:`encode_quarantine` through fastavro's schema interpretation (the reference encoding)."""
    out = io.BytesIO()
    schemaless_writer(
        out,
        _SCHEMA,
        {
            "format_version": FORMAT_VERSION,
            "reason": str(rec.reason),
            "detail": rec.detail,
            "classification_level": rec.classification_level,
            "categories": rec.categories,
            "field_names": rec.field_names,
            "jurisdictions": rec.jurisdictions,
            "source_topic": rec.source_topic,
            "source_partition": rec.source_partition,
            "source_offset": rec.source_offset,
            "source_timestamp_ms": rec.source_timestamp_ms,
            "event_id": rec.event_id,
            "payload_sha256": rec.payload_sha256,
            "router_version": rec.router_version,
            "policy_version": rec.policy_version,
            "trace_id": rec.trace_id,
            "quarantined_at_ms": rec.quarantined_at_ms,
            "sealed_payload": rec.sealed_payload,
            "envelope_headers": [{"key": k, "value": v} for k, v in rec.envelope_headers],
            "key_id": rec.key_id,
        },
    )
    return out.getvalue()


def decode_quarantine(data: bytes) -> QuarantineRecord:
    """Parse bytes written by :func:`encode_quarantine`.

    Raises :class:`QuarantineDecodeError` for another format version, truncated or trailing bytes.
    """
    d = read_versioned(data, _SCHEMA, FORMAT_VERSION, "quarantine record", QuarantineDecodeError)
    return QuarantineRecord(
        reason=d["reason"],
        detail=d["detail"],
        classification_level=d["classification_level"],
        categories=tuple(d["categories"]),
        field_names=tuple(d["field_names"]),
        jurisdictions=tuple(d["jurisdictions"]),
        source_topic=d["source_topic"],
        source_partition=d["source_partition"],
        source_offset=d["source_offset"],
        source_timestamp_ms=d["source_timestamp_ms"],
        event_id=d["event_id"],
        payload_sha256=d["payload_sha256"],
        router_version=d["router_version"],
        policy_version=d["policy_version"],
        trace_id=d["trace_id"],
        quarantined_at_ms=d["quarantined_at_ms"],
        sealed_payload=d["sealed_payload"],
        envelope_headers=tuple((h["key"], h["value"]) for h in d["envelope_headers"]),
        key_id=d["key_id"],
    )
