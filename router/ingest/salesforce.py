"""Salesforce Change Data Capture events: the JSON form (CometD / Streaming API, many Kafka
connectors) and the Avro form the Pub/Sub API delivers, whose changedFields / nulledFields /
diffFields are hex bitmaps over the schema's field order.

Bitmap form (Salesforce "Event Deserialization Considerations"): the first element, ``0x...``, is a
bitmap over top-level field positions (bit i = the i-th field of the schema, ChangeEventHeader is
field 0); an element ``N-0x...`` is a bitmap over the fields of the compound field at top-level
position N (Name, BillingAddress, ...), yielding dotted names such as ``Name.LastName``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader

from router.errors import ReasonCode
from router.ingest.errors import DecodeError, parse_json
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.ingest.schema_store import SchemaStore, StoredSchema

_OPS = {
    "CREATE": Operation.CREATE,
    "UPDATE": Operation.UPDATE,
    "DELETE": Operation.DELETE,
    "UNDELETE": Operation.UNDELETE,
}
GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})
_AVRO_ERRORS = (
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
    AttributeError,
    AssertionError,
)


def _header_event(
    header: Mapping[str, Any],
    values: Mapping[str, Any],
    raw: RawRecord,
    *,
    changed: tuple[str, ...],
    nulled: tuple[str, ...],
    diff: tuple[str, ...],
    event_id: str | None,
    tenant: str | None,
    headers: Mapping[str, str],
) -> ChangeEvent:
    entity = header.get("entityName")
    change = header.get("changeType")
    if not isinstance(entity, str) or not entity:
        raise DecodeError(ReasonCode.MISSING_FIELD, "ChangeEventHeader.entityName is missing", raw.payload)
    if not isinstance(change, str):
        raise DecodeError(ReasonCode.MISSING_FIELD, "ChangeEventHeader.changeType is missing", raw.payload)
    ids = header.get("recordIds") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DecodeError(ReasonCode.DECODE_ERROR, "ChangeEventHeader.recordIds is not a list of strings", raw.payload)
    if change in GAP_TYPES:
        op, gap = Operation.GAP, change
    elif change in _OPS:
        op, gap = _OPS[change], None
    else:
        raise DecodeError(
            ReasonCode.DECODE_ERROR, "ChangeEventHeader.changeType is not a known change type", raw.payload
        )
    seq = header.get("sequenceNumber")
    ts = header.get("commitTimestamp")
    return ChangeEvent(
        source=SourceSystem.SALESFORCE,
        entity=entity,
        operation=op,
        record_ids=tuple(ids),
        raw=raw,
        values=values,
        changed_fields=changed,
        nulled_fields=nulled,
        diff_fields=diff,
        commit_timestamp_ms=ts if isinstance(ts, int) else None,
        transaction_key=header.get("transactionKey") if isinstance(header.get("transactionKey"), str) else None,
        sequence_number=seq if isinstance(seq, int) else None,
        tenant_id=tenant,
        connector_event_id=event_id,
        change_origin=header.get("changeOrigin") if isinstance(header.get("changeOrigin"), str) else None,
        wildcard_ids=any(i.endswith("*") for i in ids),
        gap_type=gap,
        headers=dict(headers),
    )


def _org_id(payload: Mapping[str, Any]) -> str | None:
    """The org id a payload carries (``OrgId``), never one from a Kafka header."""
    org = payload.get("OrgId")
    return org if isinstance(org, str) and org else None


def _names(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


class SalesforceJsonDecoder:
    """The JSON form: ``{"ChangeEventHeader": {...}, "<Field>": ...}``, or the CometD wrapper
    ``{"data": {"payload": {...}, "event": {"replayId": ...}}}``."""

    name = "salesforce-json"

    def __init__(self, max_bytes: int = 1_048_576) -> None:
        self.max_bytes = max_bytes

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        if value is None:
            raise DecodeError(ReasonCode.DECODE_ERROR, "a Salesforce change event cannot be empty (null value)", None)
        doc = parse_json(value, self.max_bytes)
        return self.from_document(doc, value, headers or {})

    def from_document(self, doc: Any, value: bytes, headers: Mapping[str, str]) -> ChangeEvent:
        replay: Any = None
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and isinstance(doc["data"].get("payload"), dict):
            event = doc["data"].get("event")
            replay = event.get("replayId") if isinstance(event, dict) else None
            doc = doc["data"]["payload"]
        if not isinstance(doc, dict) or not isinstance(doc.get("ChangeEventHeader"), dict):
            raise DecodeError(ReasonCode.MISSING_FIELD, "no ChangeEventHeader object in the payload", value)
        header = doc["ChangeEventHeader"]
        if replay is None:
            replay = doc.get("ReplayId")
        values = {
            k: v for k, v in doc.items() if k not in ("ChangeEventHeader", "EventUuid", "ReplayId") and v is not None
        }
        event_id = doc.get("EventUuid") or (f"replay:{replay}" if replay is not None else None)
        # The tenant comes from the payload only. A header (sf-org-id) is untrusted input that any
        # producer to the ingress topic can set: it stays in ``headers`` for the resolver to weigh.
        tenant = _org_id(doc)
        raw = RawRecord(value, "application/json")
        return _header_event(
            header,
            values,
            raw,
            changed=_names(header.get("changedFields")),
            nulled=_names(header.get("nulledFields")),
            diff=_names(header.get("diffFields")),
            event_id=str(event_id) if event_id else None,
            tenant=tenant,
            headers=headers,
        )


def _record_fields(avro_type: Any) -> list[str] | None:
    """Field names of a record type, or of the record branch of a ["null", record] union."""
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return [f["name"] for f in avro_type.get("fields", [])]
    if isinstance(avro_type, list):
        for branch in avro_type:
            names = _record_fields(branch)
            if names is not None:
                return names
    return None


class BitmapTable:
    """Top-level and nested field orders of one schema, for decoding field bitmaps."""

    def __init__(self, stored: StoredSchema) -> None:
        fields = stored.raw.get("fields", [])
        self.top = [f["name"] for f in fields]
        self.nested = {i: names for i, f in enumerate(fields) if (names := _record_fields(f["type"])) is not None}

    def decode(self, bitmaps: Any, raw: bytes) -> tuple[str, ...]:
        if not isinstance(bitmaps, list):
            return ()
        out: list[str] = []
        for item in bitmaps:
            if not isinstance(item, str):
                raise DecodeError(ReasonCode.DECODE_ERROR, "field bitmap entry is not a string", raw)
            parent: int | None = None
            text = item
            if "-" in item:
                left, _, text = item.partition("-")
                if not (left.isascii() and left.isdigit()) or len(left) > 6:
                    raise DecodeError(ReasonCode.DECODE_ERROR, "nested field bitmap has no field position", raw)
                parent = int(left)
            if not text.lower().startswith("0x") or len(text) > 2 + 2048:
                raise DecodeError(ReasonCode.DECODE_ERROR, "field bitmap is not a 0x hex string", raw)
            try:
                bits = int(text[2:], 16)
            except ValueError:
                raise DecodeError(ReasonCode.DECODE_ERROR, "field bitmap is not hexadecimal", raw) from None
            if bits < 0:
                raise DecodeError(ReasonCode.DECODE_ERROR, "field bitmap is negative", raw)
            names = self.top if parent is None else self.nested.get(parent)
            if names is None:
                raise DecodeError(ReasonCode.DECODE_ERROR, f"bitmap names field {parent}, which is not compound", raw)
            prefix = "" if parent is None else self.top[parent] + "."
            i = 0
            while bits:
                if bits & 1:
                    if i >= len(names):
                        raise DecodeError(ReasonCode.DECODE_ERROR, "field bitmap sets a bit beyond the schema", raw)
                    out.append(prefix + names[i])
                bits >>= 1
                i += 1
        return tuple(out)


class SalesforceAvroDecoder:
    """Avro binary as the Pub/Sub API delivers it, with its schema id (option or header)."""

    name = "salesforce-avro"

    def __init__(self, schema_store: SchemaStore, schema_id: int | None = None, max_bytes: int = 1_048_576) -> None:
        self.store = schema_store
        self.schema_id = schema_id
        self.max_bytes = max_bytes
        self._tables: dict[int, BitmapTable] = {}

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        headers = headers or {}
        sid = self.schema_id
        hid = headers.get("schema-id") or headers.get("sf-schema-id")
        if hid is not None:
            if not (hid.isascii() and hid.isdigit()) or len(hid) > 10:
                raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, "schema-id header is not a number", value)
            sid = int(hid)
        if sid is None:
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, "no schema id: set the decoder option or the schema-id header", value
            )
        if value is None:
            raise DecodeError(ReasonCode.DECODE_ERROR, "a Salesforce change event cannot be empty (null value)", None)
        return self.decode_body(value, value, sid, headers)

    def decode_body(
        self, body: bytes, raw: bytes, sid: int, headers: Mapping[str, str], content_type: str = "avro/binary"
    ) -> ChangeEvent:
        if len(raw) > self.max_bytes:
            raise DecodeError(ReasonCode.OVERSIZED, f"{len(raw)} bytes exceed {self.max_bytes}", raw)
        try:
            stored = self.store.get(sid)
        except DecodeError as err:
            raise DecodeError(err.reason, err.detail, raw) from None
        buf = io.BytesIO(body)
        try:
            rec = schemaless_reader(buf, stored.parsed, None)
        except _AVRO_ERRORS as err:
            raise DecodeError(
                ReasonCode.DECODE_ERROR, f"Avro body does not match schema {sid} ({type(err).__name__})", raw
            ) from None
        if buf.tell() != len(body):
            raise DecodeError(
                ReasonCode.DECODE_ERROR, f"{len(body) - buf.tell()} trailing bytes after the Avro record", raw
            )
        if not isinstance(rec, dict) or not isinstance(rec.get("ChangeEventHeader"), dict):
            raise DecodeError(ReasonCode.MISSING_FIELD, f"schema {sid} has no ChangeEventHeader", raw)
        table = self._tables.get(sid)
        if table is None:
            table = self._tables[sid] = BitmapTable(stored)
        header = rec["ChangeEventHeader"]
        values = {k: v for k, v in rec.items() if k != "ChangeEventHeader" and v is not None}
        event_id = headers.get("sf-event-uuid") or headers.get("replay-id")
        return _header_event(
            header,
            values,
            RawRecord(raw, content_type, sid),
            changed=table.decode(header.get("changedFields"), raw),
            nulled=table.decode(header.get("nulledFields"), raw),
            diff=table.decode(header.get("diffFields"), raw),
            event_id=event_id,
            tenant=_org_id(rec),
            headers=headers,
        )
