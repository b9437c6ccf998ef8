"""Debezium change events (JSON, with or without the ``schema``/``payload`` wrapper).

``op``: c create, r snapshot read, u update, d delete, t truncate, m message. ``values`` is the
after-image (empty for a delete) and ``before`` the before-image where the connector carries one
(an update under full replica identity, every delete). A tombstone (null value) is a delete marker
whose record ids come from the key; it has no event id (nothing but its key identifies it, and
keys hold values). Schema-change events (``ddl`` / ``tableChanges``, no ``op``) become
SCHEMA_CHANGE. Transaction metadata is kept.

Entities: a table maps to an entity through the ``entities`` option (keys ``<table>``,
``<schema>.<table>``, ``<db>.<table>`` or ``<db>.<schema>.<table>``, matched case-insensitively,
most specific first); an unmapped table takes the ``entity`` option when set (one entity for every
table), else :func:`default_entity` of its name (``contacts`` -> ``contact``), so that the routed
topics ``crm.<jurisdiction>.<entity>`` of the usual CRM tables exist. A tombstone has no ``source``:
its table comes from the key's schema name (``<prefix>.<schema>.<table>.Key``, JSON converter with
schemas) where the key carries one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from router.errors import ConfigError, ReasonCode
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


def _key_doc(key: bytes | None) -> Any:
    """The parsed JSON key (None when absent); a key that is not JSON is kept as text."""
    if not key:
        return None
    try:
        return orjson.loads(key)
    except orjson.JSONDecodeError:
        return key.decode("utf-8", "replace")


def _key_ids(key_doc: Any) -> tuple[str, ...]:
    doc = _unwrap(key_doc)
    if isinstance(doc, dict) and set(doc) == {"payload"} and isinstance(doc["payload"], dict):
        doc = doc["payload"]  # {"payload": {"id": 42}}: the schema-less converter's wrapper
    if isinstance(doc, dict):
        return tuple(str(v) for v in doc.values() if isinstance(v, (str, int)))
    if isinstance(doc, (str, int)):
        return (str(doc),)
    return ()


def _key_table(key_doc: Any) -> tuple[str, str | None, str | None] | None:
    """(table, db, schema) from a JSON key's schema name ``<prefix>[.<db>][.<schema>].<table>.Key``."""
    if not isinstance(key_doc, dict) or not isinstance(key_doc.get("schema"), dict):
        return None
    name = key_doc["schema"].get("name")
    if not isinstance(name, str) or not name.endswith(".Key"):
        return None
    parts = name.split(".")[1:-1]  # without the topic prefix and "Key"
    if not parts or not all(parts):
        return None
    quals = parts[:-1]
    if len(quals) >= 2:
        return parts[-1], quals[-2], quals[-1]
    if quals:  # one qualifier: the schema (PostgreSQL) or the database (MySQL); both lookups apply
        return parts[-1], quals[0], quals[0]
    return parts[-1], None, None


def default_entity(table: str) -> str:
    """The entity of a table without a mapping: its name lower-cased and made singular
    (``contacts`` -> ``contact``, ``opportunities`` -> ``opportunity``, ``addresses`` ->
    ``address``, ``cases`` -> ``case``); names ending in ``ss``, ``us`` or ``is`` stay as they are.
    Irregular plurals need the ``entities`` option."""
    name = table.lower()
    if name.endswith("ies") and len(name) > 4:
        return name[:-3] + "y"
    if name.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return name[:-2]
    if name.endswith("s") and not name.endswith(("ss", "us", "is")) and len(name) > 1:
        return name[:-1]
    return name


def entity_map(entities: Any) -> dict[str, str]:
    """The ``entities`` decoder option, validated, keyed by lower-cased table name."""
    if entities is None:
        return {}
    if not isinstance(entities, Mapping):
        raise ConfigError(
            "decoder option 'entities' must map '<table>', '<schema>.<table>' or '<db>.<table>' to an entity name"
        )
    out: dict[str, str] = {}
    for table, entity in entities.items():
        if not isinstance(table, str) or not table.strip() or not isinstance(entity, str) or not entity.strip():
            raise ConfigError(
                f"decoder option 'entities': {table!r} -> {entity!r}: table and entity must be non-empty strings"
            )
        low = table.strip().lower()
        if low in out:
            raise ConfigError(f"decoder option 'entities' names table {table!r} twice (keys are case-insensitive)")
        out[low] = entity.strip()
    return out


class DebeziumJsonDecoder:
    name = "debezium-json"

    def __init__(
        self, entity: str | None = None, max_bytes: int = 1_048_576, *, entities: Mapping[str, str] | None = None
    ) -> None:
        if entity is not None and (not isinstance(entity, str) or not entity.strip()):
            raise ConfigError("decoder option 'entity' must be a non-empty string")
        self.entity = entity
        self.entities = entity_map(entities)
        self.max_bytes = max_bytes

    def entity_of(self, table: Any, db: Any = None, schema: Any = None) -> str:
        """The entity of ``table`` (see the module docstring); ``unknown`` when there is no table
        and no ``entity`` option."""
        if not isinstance(table, str) or not table:
            return self.entity or "unknown"
        t = table.lower()
        d = db.lower() if isinstance(db, str) and db else None
        sc = schema.lower() if isinstance(schema, str) and schema else None
        candidates = [
            f"{d}.{sc}.{t}" if d and sc else None,
            f"{sc}.{t}" if sc else None,
            f"{d}.{t}" if d else None,
            t,
        ]
        for name in candidates:
            if name is not None and name in self.entities:
                return self.entities[name]
        return self.entity or default_entity(table)

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        headers = headers or {}
        if value is None:
            key_doc = _key_doc(key)
            located = _key_table(key_doc)
            return ChangeEvent(
                SourceSystem.DEBEZIUM,
                self.entity_of(*located) if located else self.entity or "unknown",
                Operation.DELETE,
                _key_ids(key_doc),
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
        entity = self.entity_of(source.get("table") or source.get("collection"), source.get("db"), source.get("schema"))
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
        ids = _key_ids(_key_doc(key)) or tuple(str(row[f]) for f in _ID_FIELDS if f in row)
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
