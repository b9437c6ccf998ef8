"""Plain JSON webhook events with a configurable mapping of where entity, id, operation,
timestamp and tenant live (dotted paths)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router.errors import ReasonCode
from router.ingest.errors import DecodeError, parse_json
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

_OPS = {o.value: o for o in Operation} | {
    "insert": Operation.CREATE,
    "created": Operation.CREATE,
    "updated": Operation.UPDATE,
    "deleted": Operation.DELETE,
}


def _get(doc: Any, path: str | None) -> Any:
    if not path:
        return None
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


class GenericJsonDecoder:
    name = "generic-json"

    def __init__(
        self,
        *,
        entity_field: str | None = "entity",
        id_field: str = "id",
        operation_field: str | None = "operation",
        timestamp_field: str | None = "timestamp",
        tenant_field: str | None = None,
        entity: str | None = None,
        values_field: str | None = None,
        event_id_field: str | None = None,
        max_bytes: int = 1_048_576,
    ) -> None:
        self.entity_field, self.id_field, self.op_field = entity_field, id_field, operation_field
        self.ts_field, self.tenant_field, self.entity, self.values_field = (
            timestamp_field,
            tenant_field,
            entity,
            values_field,
        )
        self.event_id_field = event_id_field
        self.max_bytes = max_bytes

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        if value is None:
            raise DecodeError(ReasonCode.DECODE_ERROR, "empty (null) value", None)
        doc = parse_json(value, self.max_bytes)
        if not isinstance(doc, dict):
            raise DecodeError(ReasonCode.DECODE_ERROR, "the event must be a JSON object", value)
        entity = self.entity or _get(doc, self.entity_field)
        if not isinstance(entity, str) or not entity:
            raise DecodeError(ReasonCode.MISSING_FIELD, f"entity field {self.entity_field!r} is missing", value)
        rid = _get(doc, self.id_field)
        if not isinstance(rid, (str, int)):
            raise DecodeError(ReasonCode.MISSING_FIELD, f"id field {self.id_field!r} is missing", value)
        op_text = _get(doc, self.op_field) if self.op_field else "update"
        op = _OPS.get(str(op_text).lower()) if op_text is not None else None
        if op is None:
            raise DecodeError(
                ReasonCode.MISSING_FIELD, f"operation field {self.op_field!r} is missing or unknown", value
            )
        values = _get(doc, self.values_field) if self.values_field else doc
        ts = _get(doc, self.ts_field)
        tenant = _get(doc, self.tenant_field)
        eid = _get(doc, self.event_id_field)
        return ChangeEvent(
            SourceSystem.GENERIC,
            entity,
            op,
            (str(rid),),
            RawRecord(value, "application/json"),
            values=values if isinstance(values, dict) else {},
            commit_timestamp_ms=ts if isinstance(ts, int) else None,
            tenant_id=str(tenant) if tenant is not None else None,
            connector_event_id=str(eid) if eid is not None else None,
            headers=dict(headers or {}),
        )
