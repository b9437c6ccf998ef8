"""The normalized, immutable view of one CRM change, whatever connector produced it.

Decoders build :class:`ChangeEvent`; classification, residency and the pipeline read it. It holds
field values, so it must never be logged or put into an exception message whole: use
:meth:`ChangeEvent.describe` for a value-free description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNDELETE = "undelete"
    READ = "read"  # snapshot read (Debezium op "r")
    TRUNCATE = "truncate"
    GAP = "gap"  # Salesforce GAP_* and GAP_OVERFLOW: a change happened, no field data carried
    SCHEMA_CHANGE = "schema_change"  # Debezium schema-change / DDL events


class SourceSystem(StrEnum):
    SALESFORCE = "salesforce"
    DEBEZIUM = "debezium"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The original bytes as they arrived, kept for sealing and quarantine."""

    payload: bytes
    content_type: str  # e.g. "application/json", "avro/binary", "application/vnd.confluent.avro"
    schema_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One normalized change. Immutable; ``values`` is a read-only mapping."""

    source: SourceSystem
    entity: str
    operation: Operation
    record_ids: tuple[str, ...]
    raw: RawRecord
    values: Mapping[str, Any] = field(default_factory=dict)
    """The record's fields after the change (for a delete: empty; see ``before``)."""
    before: Mapping[str, Any] = field(default_factory=dict)
    """The record's fields before the change, where the connector carries them (Debezium's
    ``before`` of an update or delete). Classification and residency count both images: data in
    either is data of the event."""
    changed_fields: tuple[str, ...] = ()
    nulled_fields: tuple[str, ...] = ()
    diff_fields: tuple[str, ...] = ()
    commit_timestamp_ms: int | None = None
    transaction_key: str | None = None
    sequence_number: int | None = None
    tenant_id: str | None = None
    connector_event_id: str | None = None
    change_origin: str | None = None
    wildcard_ids: bool = False
    """True when a record id is a wildcard (Salesforce ``001*``): the change covers many rows."""
    gap_type: str | None = None
    """The Salesforce change type for gap events (GAP_CREATE, ..., GAP_OVERFLOW), else None."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Connector-provided hints (e.g. a region header). Untrusted unless config says otherwise."""

    @property
    def event_id(self) -> str | None:
        """The connector's own id for this change, or None when it has none.

        That is a Salesforce EventUuid or replay id, or a Debezium source position (connector,
        server name, binlog file / LSN / position, row). It is never built from record ids or other
        field values: a Debezium tombstone, whose only content is its key, has no event id. Callers
        fall back to the record's position in its source topic (``topic:partition:offset``).
        """
        return self.connector_event_id

    def describe(self) -> str:
        """A description safe for logs: source, entity, operation, how many record ids (never the
        ids themselves, which can be natural keys such as an email) and field names."""
        n = len(self.record_ids)
        return (
            f"{self.source.value} {self.entity} {self.operation.value} "
            f"{n} record id{'' if n == 1 else 's'} fields={sorted(self.values)} before={sorted(self.before)}"
        )
