"""Debezium change events (JSON, with or without the ``schema``/``payload`` wrapper).

``op``: c create, r snapshot read, u update, d delete, t truncate, m message. ``values`` is the
after-image (empty for a delete) and ``before`` the before-image where the connector carries one
(an update under full replica identity, every delete). A tombstone (null value) is a delete marker
whose record ids come from the key; it has no event id (nothing but its key identifies it, and
keys hold values). Schema-change events (``ddl`` /
``tableChanges``, no ``op``) become SCHEMA_CHANGE. Transaction metadata is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from router.errors import ReasonCode
from router.ingest.errors import DecodeError, parse_json
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

_OPS = {
    "c": Operation.CREATE,
    "r": Operation.READ,
    "u": Operation.UPDATE,
    "d": Operation.DELETE,
    "t": Operation.TRUNCATE,
    "m": Operation.UPDATE,
}
_ID_FIELDS = ("id", "Id", "ID", "uuid")


def _unwrap(doc: Any) -> Any:
    if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
        return doc["payload"]
    return doc


def _key_ids(key: bytes | None) -> tuple[str, ...]:
    if not key:
        return ()
    try:
        doc = _unwrap(orjson.loads(key))
    except orjson.JSONDecodeError:
        return (key.decode("utf-8", "replace"),)
    if isinstance(doc, dict) and set(doc) == {"payload"} and isinstance(doc["payload"], dict):
        doc = doc["payload"]  # {"payload": {"id": 42}}: the schema-less converter's wrapper
    if isinstance(doc, dict):
        return tuple(str(v) for v in doc.values() if isinstance(v, (str, int)))
    if isinstance(doc, (str, int)):
        return (str(doc),)
    return ()


class DebeziumJsonDecoder:
    name = "debezium-json"

    def __init__(self, entity: str | None = None, max_bytes: int = 1_048_576) -> None:
        self.entity = entity
        self.max_bytes = max_bytes

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        headers = headers or {}
        if value is None:
            ids = _key_ids(key)
            return ChangeEvent(
                SourceSystem.DEBEZIUM,
                self.entity or "unknown",
                Operation.DELETE,
                ids,
                RawRecord(b"", "application/json"),
                headers=dict(headers),
                # No connector_event_id: the key is all a tombstone has, and keys hold values
                # (natural keys such as an email). The pipeline identifies it by its position.
            )
        doc = _unwrap(parse_json(value, self.max_bytes))
        return self.from_document(doc, value, key, headers, "application/json", None)

    def from_document(  # noqa: PLR0917 - decode()'s inputs plus the detected content type
        self,
        doc: Any,
        value: bytes,
        key: bytes | None,
        headers: Mapping[str, str],
        content_type: str,
        schema_id: int | None,
    ) -> ChangeEvent:
        if not isinstance(doc, dict):
            raise DecodeError(ReasonCode.DECODE_ERROR, "a Debezium event must be a JSON object", value)
        raw = RawRecord(value, content_type, schema_id)
        src = doc.get("source")
        source: dict[str, Any] = src if isinstance(src, dict) else {}
        table = source.get("table") or source.get("collection")
        entity = table if isinstance(table, str) and table else self.entity or "unknown"
        if "op" not in doc and ("ddl" in doc or "tableChanges" in doc):
            return ChangeEvent(
                SourceSystem.DEBEZIUM,
                entity,
                Operation.SCHEMA_CHANGE,
                (),
                raw,
                commit_timestamp_ms=_int(doc.get("ts_ms")),
                headers=dict(headers),
                connector_event_id=_position(source),
            )
        op = doc.get("op")
        if not isinstance(op, str) or op not in _OPS:
            raise DecodeError(ReasonCode.MISSING_FIELD, "Debezium 'op' is missing or not one of c/r/u/d/t/m", value)
        before = doc.get("before") if isinstance(doc.get("before"), dict) else None
        after = doc.get("after") if isinstance(doc.get("after"), dict) else None
        row = after if after is not None else (before or {})
        ids = _key_ids(key) or tuple(str(row[f]) for f in _ID_FIELDS if f in row)
        changed: tuple[str, ...] = ()
        if before is not None and after is not None:
            changed = tuple(k for k, v in after.items() if before.get(k) != v)
        tx = doc.get("transaction")
        txn: dict[str, Any] = tx if isinstance(tx, dict) else {}
        return ChangeEvent(
            source=SourceSystem.DEBEZIUM,
            entity=entity,
            operation=_OPS[op],
            record_ids=ids,
            raw=raw,
            values=_image(after),
            before=_image(before),
            changed_fields=changed,
            commit_timestamp_ms=_int(source.get("ts_ms")) or _int(doc.get("ts_ms")),
            transaction_key=str(txn["id"]) if txn.get("id") is not None else None,
            sequence_number=_int(txn.get("total_order")),
            tenant_id=str(source["db"]) if source.get("db") else None,
            connector_event_id=_position(source),
            change_origin="message" if op == "m" else None,
            headers=dict(headers),
        )


def _image(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row image without its null columns; ``{}`` when the event carries no such image."""
    return {k: v for k, v in row.items() if v is not None} if row else {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _position(source: Mapping[str, Any]) -> str | None:
    if not source:
        return None
    pos = source.get("lsn") or source.get("pos") or source.get("gtid") or source.get("change_lsn")
    parts = [str(source.get(k)) for k in ("connector", "name") if source.get(k)]
    if source.get("file"):
        parts.append(str(source["file"]))
    if pos is not None:
        parts.append(str(pos))
    if source.get("row") is not None:
        parts.append(str(source["row"]))
    return ":".join(parts) if pos is not None or source.get("file") else None
