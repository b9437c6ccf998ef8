"""Salesforce Change Data Capture events: the JSON form (CometD / Streaming API, many Kafka
connectors; every shape they deliver, see :func:`find_payload`) and the Avro form the Pub/Sub API
delivers, whose changedFields / nulledFields / diffFields are hex bitmaps over the schema's field
order.

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
    if not isinstance(ids, list) or (
        (len(ids) != 1 or type(ids[0]) is not str) and not all(isinstance(i, str) for i in ids)
    ):
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
    tx = header.get("transactionKey")
    origin = header.get("changeOrigin")
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
        transaction_key=tx if isinstance(tx, str) else None,
        sequence_number=seq if isinstance(seq, int) else None,
        tenant_id=tenant,
        connector_event_id=event_id,
        change_origin=origin if isinstance(origin, str) else None,
        wildcard_ids=ids[0].endswith("*") if len(ids) == 1 else any(i.endswith("*") for i in ids),
        gap_type=gap,
        headers=dict(headers),
    )


def _org_id(payload: Mapping[str, Any]) -> str | None:
    """The org id a payload carries (``OrgId``), never one from a Kafka header."""
    org = payload.get("OrgId")
    return org if isinstance(org, str) and org else None


def _names(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


_NOT_VALUES = frozenset({"ChangeEventHeader", "EventUuid", "ReplayId", "_ObjectType", "_EventType"})
"""Payload keys that are event metadata, not record fields: the header, the event ids, and the
Confluent Salesforce connectors' ``_ObjectType`` / ``_EventType``."""


def _id(value: Any) -> str | None:
    """An event id (EventUuid, replay id) as text; anything but a non-empty string or an integer is none."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def find_payload(doc: Any, value: bytes) -> tuple[dict[str, Any], Any, Any]:
    """The change event's payload in any shape Salesforce and its connectors deliver, with the
    replay id and EventUuid its envelope carries (None where it has none):

    * the payload itself, ``{"ChangeEventHeader": {...}, "<Field>": ..., ["ReplayId": ...]}``
      (Apex, a decoded Pub/Sub event, the Confluent Salesforce CDC connector's JSON);
    * the CometD event object a Streaming API client hands its listener,
      ``{"schema": "<id>", "payload": {...}, "event": {"replayId": ...}}``; Kafka Connect's
      JsonConverter envelope ``{"schema": {<struct>}, "payload": {...}}`` has the same form;
    * the full CometD message ``{"channel": "/data/...", "data": <event object>}``.

    Refused: a JSON array (a Bayeux batch of messages, not one event), CometD protocol messages
    (``/meta/...``) and messages without data. Raises DecodeError; its detail names no value.
    """
    if isinstance(doc, list):
        raise DecodeError(
            ReasonCode.UNSUPPORTED_FORMAT,
            f"a JSON array of {len(doc)} elements is a batch (for example of CometD/Bayeux messages), "
            "not one change event: the connector must write one event per record",
            value,
        )
    if not isinstance(doc, dict):
        raise DecodeError(ReasonCode.DECODE_ERROR, "a Salesforce change event must be a JSON object", value)
    if "ChangeEventHeader" in doc:
        return doc, None, None
    envelope = doc
    if isinstance(doc.get("data"), dict):
        envelope = doc["data"]
    elif isinstance(doc.get("channel"), str):
        kind = "a CometD protocol message (/meta/...)" if doc["channel"].startswith("/meta/") else "a CometD message"
        raise DecodeError(ReasonCode.UNSUPPORTED_FORMAT, f"{kind} without data, not a change event", value)
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise DecodeError(ReasonCode.MISSING_FIELD, "no ChangeEventHeader object in the payload", value)
    event = envelope.get("event")
    if not isinstance(event, dict):
        return payload, None, None
    return payload, event.get("replayId"), event.get("EventUuid")


def is_salesforce_json(doc: Any) -> bool:
    """Whether a parsed JSON document is a Salesforce change event in one of the delivered shapes
    (see :func:`find_payload`), or a CometD message (which the Salesforce decoder refuses clearly)."""
    if not isinstance(doc, dict):
        return False
    if "ChangeEventHeader" in doc or isinstance(doc.get("channel"), str):
        return True
    envelope = doc["data"] if isinstance(doc.get("data"), dict) else doc
    payload = envelope.get("payload")
    return isinstance(payload, dict) and "ChangeEventHeader" in payload


class SalesforceJsonDecoder:
    """The JSON form in every shape the Streaming API and connectors deliver (see
    :func:`find_payload`): the payload ``{"ChangeEventHeader": {...}, "<Field>": ...}``, the
    CometD event object ``{"schema", "payload", "event": {"replayId"}}`` and the CometD message
    ``{"channel", "data": <event object>}``."""

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
        payload, replay, uuid = find_payload(doc, value)
        if not isinstance(payload.get("ChangeEventHeader"), dict):
            raise DecodeError(ReasonCode.MISSING_FIELD, "no ChangeEventHeader object in the payload", value)
        header = payload["ChangeEventHeader"]
        uuid_text = _id(uuid) or _id(payload.get("EventUuid"))
        replay_text = _id(replay) or _id(payload.get("ReplayId"))
        event_id = uuid_text or (f"replay:{replay_text}" if replay_text else None)
        values = {k: v for k, v in payload.items() if k not in _NOT_VALUES and v is not None}
        # The tenant comes from the payload only. A header (sf-org-id) is untrusted input that any
        # producer to the ingress topic can set: it stays in ``headers`` for the resolver to weigh.
        tenant = _org_id(payload)
        raw = RawRecord(value, "application/json")
        return _header_event(
            header,
            values,
            raw,
            changed=_names(header.get("changedFields")),
            nulled=_names(header.get("nulledFields")),
            diff=_names(header.get("diffFields")),
            event_id=event_id,
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
