"""Decoders by name, the Confluent wire format, and auto-detection."""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

import orjson
from fastavro import schemaless_reader

from router.errors import ReasonCode
from router.ingest.debezium import DebeziumJsonDecoder
from router.ingest.errors import DecodeError, check_size
from router.ingest.event import ChangeEvent
from router.ingest.generic import GenericJsonDecoder
from router.ingest.protocol import Decoder
from router.ingest.salesforce import _AVRO_ERRORS, SalesforceAvroDecoder, SalesforceJsonDecoder, is_salesforce_json
from router.ingest.schema_store import SchemaStore

MAGIC = 0


class ConfluentAvroDecoder:
    """Magic byte 0, a 4-byte big-endian schema id, then the Avro body. Salesforce change events
    (a ChangeEventHeader field) and Debezium envelopes (before/after/source/op) are recognised by
    their schema."""

    name = "confluent-avro"

    def __init__(
        self,
        schema_store: SchemaStore,
        max_bytes: int = 1_048_576,
        *,
        entity: str | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> None:
        self.store = schema_store
        self.max_bytes = max_bytes
        self._sf = SalesforceAvroDecoder(schema_store, max_bytes=max_bytes)
        self._dbz = DebeziumJsonDecoder(entity, max_bytes, entities=entities)

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        headers = headers or {}
        if value is None:
            return self._dbz.decode(None, key=key, headers=headers)
        check_size(value, self.max_bytes)
        if len(value) < 5 or value[0] != MAGIC:
            raise DecodeError(
                ReasonCode.UNSUPPORTED_FORMAT, "not Confluent wire format (magic byte 0 + schema id)", value
            )
        (sid,) = struct.unpack_from(">I", value, 1)
        try:
            stored = self.store.get(sid)
        except DecodeError as err:
            raise DecodeError(err.reason, err.detail, value) from None
        names = set(stored.field_names)
        if "ChangeEventHeader" in names:
            return self._sf.decode_body(value[5:], value, sid, headers, "application/vnd.confluent.avro")
        if {"op", "source"} <= names:
            buf = io.BytesIO(value[5:])
            try:
                doc = schemaless_reader(buf, stored.parsed, None)
            except _AVRO_ERRORS as err:
                raise DecodeError(
                    ReasonCode.DECODE_ERROR, f"Avro body does not match schema {sid} ({type(err).__name__})", value
                ) from None
            return self._dbz.from_document(doc, value, key, headers, "application/vnd.confluent.avro", sid)
        raise DecodeError(
            ReasonCode.UNSUPPORTED_FORMAT,
            f"schema {sid} is neither a Salesforce change event nor a Debezium envelope",
            value,
        )


class AutoDecoder:
    """Detects the format where it is unambiguous; otherwise UNSUPPORTED_FORMAT."""

    name = "auto"

    def __init__(
        self,
        schema_store: SchemaStore | None = None,
        max_bytes: int = 1_048_576,
        *,
        entity: str | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> None:
        """``entity`` and ``entities`` apply to Debezium events (JSON and Avro), as in
        :class:`DebeziumJsonDecoder`."""
        self.max_bytes = max_bytes
        self._confluent = (
            ConfluentAvroDecoder(schema_store, max_bytes, entity=entity, entities=entities)
            if schema_store is not None
            else None
        )
        self._sf_avro = SalesforceAvroDecoder(schema_store, None, max_bytes) if schema_store is not None else None
        self._sf = SalesforceJsonDecoder(max_bytes)
        self._dbz = DebeziumJsonDecoder(entity, max_bytes, entities=entities)

    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent:
        headers = headers or {}
        if value is None:
            return self._dbz.decode(None, key=key, headers=headers)
        check_size(value, self.max_bytes)
        if value[:1] == b"\x00":
            if self._confluent is None:
                raise DecodeError(
                    ReasonCode.UNSUPPORTED_FORMAT, "Confluent wire format but no schema store configured", value
                )
            return self._confluent.decode(value, key=key, headers=headers)
        if (
            self._sf_avro is not None
            and value[:1] not in (b"{", b"[")
            and ("schema-id" in headers or "sf-schema-id" in headers)
        ):
            # Unframed Avro with a schema-id header: the Salesforce Pub/Sub API form.
            return self._sf_avro.decode(value, key=key, headers=headers)
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise DecodeError(ReasonCode.UNSUPPORTED_FORMAT, "neither Confluent Avro nor JSON", value) from None
        if isinstance(doc, list) or is_salesforce_json(doc):
            # Salesforce in any delivered shape, a CometD message, or a JSON array (a batch, which
            # the Salesforce decoder refuses with a clear reason). Checked before Debezium: the
            # CometD event object and Kafka Connect's JSON envelope are {"schema", "payload"} too.
            return self._sf.from_document(doc, value, headers)
        if isinstance(doc, dict):
            body = doc["payload"] if "payload" in doc and "schema" in doc else doc
            if isinstance(body, dict) and ("op" in body or "ddl" in body or "tableChanges" in body):
                return self._dbz.from_document(body, value, key, headers, "application/json", None)
        raise DecodeError(ReasonCode.UNSUPPORTED_FORMAT, "JSON that is neither Salesforce CDC nor Debezium", value)


def decoder_for(name: str, **options: Any) -> Decoder:
    """A decoder by name: salesforce-json, salesforce-avro, confluent-avro, debezium-json, generic-json, auto.

    Avro decoders need ``schema_store``; options are passed to the decoder's constructor.
    Debezium events (debezium-json, confluent-avro, auto) take ``entity`` (one entity for every
    table) and ``entities`` (``{"<table>" | "<schema>.<table>" | "<db>.<table>": "<Entity>"}``).
    """
    if name == "salesforce-json":
        return SalesforceJsonDecoder(**options)
    if name == "salesforce-avro":
        return SalesforceAvroDecoder(**options)
    if name == "confluent-avro":
        return ConfluentAvroDecoder(**options)
    if name == "debezium-json":
        return DebeziumJsonDecoder(**options)
    if name == "generic-json":
        return GenericJsonDecoder(**options)
    if name == "auto":
        return AutoDecoder(**options)
    raise DecodeError(
        ReasonCode.UNSUPPORTED_FORMAT,
        f"no decoder named {name!r} (salesforce-json, salesforce-avro, "
        "confluent-avro, debezium-json, generic-json, auto)",
        None,
    )
