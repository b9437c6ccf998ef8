"""Debezium change events: before and after images, tombstones without value-derived ids, and
table-to-entity mapping (JSON and Confluent Avro)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from router.errors import ConfigError, ReasonCode
from router.ingest import ChangeEvent, DecodeError, Operation, RawRecord, SourceSystem, decoder_for
from router.ingest.schema_store import StoredSchema

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"

SOURCE = {
    "version": "2.7.0.Final",
    "connector": "postgresql",
    "name": "crm",
    "db": "crm",
    "schema": "public",
    "table": "contacts",
    "lsn": 24023128,
    "ts_ms": 1732780800000,
}
BEFORE = {"id": 42, "email": "anna@example.de", "country": "DE", "phone": None}
AFTER = {"id": 42, "email": "anna@example.com", "country": "US", "phone": None}


def _envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, **source: Any) -> bytes:
    doc = {"before": before, "after": after, "source": SOURCE | source, "op": op, "ts_ms": 1732780800123}
    return json.dumps(doc).encode()


# -- 1. before and after images -------------------------------------------------------------


def test_update_keeps_the_before_image_next_to_the_after_image() -> None:
    ev = decoder_for("debezium-json").decode(_envelope("u", BEFORE, AFTER), key=b'{"id": 42}')
    assert ev.operation is Operation.UPDATE
    assert ev.values == {"id": 42, "email": "anna@example.com", "country": "US"}
    assert ev.before == {"id": 42, "email": "anna@example.de", "country": "DE"}
    assert set(ev.changed_fields) == {"email", "country"}


def test_delete_carries_its_row_in_before_and_nothing_in_values() -> None:
    ev = decoder_for("debezium-json").decode(_envelope("d", BEFORE, None), key=b'{"id": 42}')
    assert ev.operation is Operation.DELETE
    assert ev.values == {}
    assert ev.before == {"id": 42, "email": "anna@example.de", "country": "DE"}
    assert ev.record_ids == ("42",)


def test_delete_without_a_key_takes_its_id_from_the_before_image() -> None:
    ev = decoder_for("debezium-json").decode(_envelope("d", BEFORE, None))
    assert ev.record_ids == ("42",)


def test_create_and_snapshot_read_have_no_before_image() -> None:
    for op in ("c", "r"):
        ev = decoder_for("debezium-json").decode(_envelope(op, None, AFTER))
        assert ev.before == {} and ev.values["country"] == "US"


def test_delete_fixture_with_the_schema_wrapper() -> None:
    key = (FIXTURES / "debezium_key_named.json").read_bytes()
    ev = decoder_for("auto").decode((FIXTURES / "debezium_delete_wrapped.json").read_bytes(), key=key)
    assert (ev.operation, ev.record_ids) == (Operation.DELETE, ("42",))
    assert ev.values == {}
    assert ev.before["email"] == "j.devries@example.nl"


class _EnvelopeStore:
    """A SchemaStore holding one Debezium envelope schema (id 200), as the Avro converter writes it."""

    RAW: dict[str, Any] = {  # noqa: RUF012 - test constant
        "type": "record",
        "name": "Envelope",
        "namespace": "crm.public.contacts",
        "fields": [
            {
                "name": "before",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Value",
                        "fields": [
                            {"name": "id", "type": "int"},
                            {"name": "email", "type": ["null", "string"]},
                            {"name": "country", "type": ["null", "string"]},
                        ],
                    },
                ],
                "default": None,
            },
            {"name": "after", "type": ["null", "Value"], "default": None},
            {
                "name": "source",
                "type": {
                    "type": "record",
                    "name": "Source",
                    "fields": [
                        {"name": "connector", "type": "string"},
                        {"name": "name", "type": "string"},
                        {"name": "db", "type": "string"},
                        {"name": "schema", "type": "string"},
                        {"name": "table", "type": "string"},
                        {"name": "lsn", "type": ["null", "long"]},
                    ],
                },
            },
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"]},
        ],
    }

    def __init__(self) -> None:
        self.stored = StoredSchema(200, parse_schema(json.loads(json.dumps(self.RAW))), self.RAW)

    def get(self, schema_id: int) -> StoredSchema:
        if schema_id != 200:
            raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} unknown", None)
        return self.stored

    def wire(self, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, table: str) -> bytes:
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", 200))
        source = {"connector": "postgresql", "name": "crm", "db": "crm", "schema": "public", "table": table, "lsn": 7}
        schemaless_writer(
            buf, self.stored.parsed, {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}
        )
        return buf.getvalue()


@pytest.mark.parametrize("name", ["confluent-avro", "auto"])
def test_confluent_avro_update_and_delete_images(name: str) -> None:
    store = _EnvelopeStore()
    dec = decoder_for(name, schema_store=store)
    before = {"id": 42, "email": "anna@example.de", "country": "DE"}
    after = {"id": 42, "email": "anna@example.com", "country": "US"}
    upd = dec.decode(store.wire("u", before, after, "contacts"))
    assert (upd.values, upd.before) == (after, before)
    dele = dec.decode(store.wire("d", before, None, "contacts"))
    assert dele.operation is Operation.DELETE
    assert (dele.values, dele.before) == ({}, before)
    assert dele.record_ids == ("42",)


# -- 2. nothing derived from field values in ids ---------------------------------------------


@pytest.mark.parametrize("name", ["debezium-json", "auto"])
def test_tombstone_has_no_event_id_built_from_its_key(name: str) -> None:
    ev = decoder_for(name).decode(None, key=b'{"email": "anna@example.de"}')
    assert ev.operation is Operation.DELETE
    assert ev.connector_event_id is None
    assert ev.event_id is None
    assert "anna@example.de" not in repr(ev.event_id)


def test_confluent_avro_tombstone_has_no_event_id() -> None:
    ev = decoder_for("confluent-avro", schema_store=_EnvelopeStore()).decode(None, key=b'"anna@example.de"')
    assert ev.event_id is None


def test_event_id_is_the_connector_id_or_none() -> None:
    raw = RawRecord(b"{}", "application/json")
    bare = ChangeEvent(SourceSystem.GENERIC, "Contact", Operation.UPDATE, ("anna@example.de",), raw,
                       commit_timestamp_ms=5, sequence_number=1)
    assert bare.event_id is None
    ided = ChangeEvent(SourceSystem.SALESFORCE, "Contact", Operation.UPDATE, ("003A",), raw,
                       connector_event_id="7b1f0c9e-2a44-4c55-9d1e-3f6a8b0c1d2e")
    assert ided.event_id == "7b1f0c9e-2a44-4c55-9d1e-3f6a8b0c1d2e"


def test_debezium_event_id_is_the_source_position() -> None:
    ev = decoder_for("debezium-json").decode(_envelope("u", BEFORE, AFTER), key=b'{"email": "anna@example.de"}')
    assert ev.event_id == "postgresql:crm:24023128"


def test_describe_counts_record_ids_and_never_prints_them() -> None:
    ev = decoder_for("debezium-json").decode(_envelope("d", BEFORE, None), key=b'{"email": "anna@example.de"}')
    text = ev.describe()
    assert "anna@example.de" not in text
    assert "1 record id" in text
    many = ChangeEvent(SourceSystem.SALESFORCE, "Account", Operation.UPDATE, ("001A", "001B", "001C"),
                       RawRecord(b"{}", "application/json"), values={"Name": "x"})
    assert "001A" not in many.describe() and "3 record ids" in many.describe()


# -- 5. tables map to entities ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "entity"),
    [
        ("contacts", "contact"),
        ("opportunities", "opportunity"),
        ("accounts", "account"),
        ("cases", "case"),
        ("leads", "lead"),
        ("account", "account"),
        ("CONTACTS", "contact"),
        ("addresses", "address"),
        ("boxes", "box"),
        ("status", "status"),
        ("business", "business"),
        ("customer_addresses", "customer_address"),
    ],
)
def test_default_entity_is_the_lower_case_singular_table_name(table: str, entity: str) -> None:
    from router.ingest.debezium import default_entity

    assert default_entity(table) == entity
    ev = decoder_for("debezium-json").decode(_envelope("c", None, AFTER, table=table))
    assert ev.entity == entity


def test_entities_option_maps_tables_by_table_schema_or_db_name() -> None:
    entities = {"public.contacts": "Contact", "crm.people": "Person", "tickets": "Case"}
    dec = decoder_for("debezium-json", entities=entities)
    assert dec.decode(_envelope("c", None, AFTER, table="contacts")).entity == "Contact"
    assert dec.decode(_envelope("c", None, AFTER, table="people")).entity == "Person"  # <db>.<table>
    assert dec.decode(_envelope("c", None, AFTER, table="tickets")).entity == "Case"
    assert dec.decode(_envelope("c", None, AFTER, table="accounts")).entity == "account"  # default
    other_schema = dec.decode(_envelope("c", None, AFTER, table="contacts", schema="staging", db="other"))
    assert other_schema.entity == "contact"  # "public.contacts" names another schema's table


def test_mysql_db_qualified_mapping() -> None:
    doc = {
        "before": None,
        "after": {"id": 1, "country": "FR"},
        "source": {"connector": "mysql", "name": "crm", "db": "sales", "table": "customers",
                   "file": "binlog.000003", "pos": 154, "row": 0},
        "op": "c",
    }
    dec = decoder_for("debezium-json", entities={"sales.customers": "Account"})
    ev = dec.decode(json.dumps(doc).encode())
    assert ev.entity == "Account"
    assert ev.event_id == "mysql:crm:binlog.000003:154:0"


def test_entity_option_names_every_unmapped_table() -> None:
    dec = decoder_for("debezium-json", entity="Contact", entities={"accounts": "Account"})
    assert dec.decode(_envelope("c", None, AFTER, table="people")).entity == "Contact"
    assert dec.decode(_envelope("c", None, AFTER, table="accounts")).entity == "Account"
    assert dec.decode(None, key=b'{"id": 1}').entity == "Contact"


@pytest.mark.parametrize("name", ["confluent-avro", "auto"])
def test_entities_option_in_the_avro_and_auto_decoders(name: str) -> None:
    store = _EnvelopeStore()
    dec = decoder_for(name, schema_store=store, entities={"public.contacts": "Contact"})
    assert dec.decode(store.wire("c", None, {"id": 1, "email": None, "country": "DE"}, "contacts")).entity == "Contact"
    assert dec.decode(store.wire("c", None, {"id": 1, "email": None, "country": "DE"}, "opportunities")).entity == (
        "opportunity"
    )


def test_auto_json_debezium_uses_the_entities_option() -> None:
    dec = decoder_for("auto", entities={"contacts": "Contact"})
    assert dec.decode(_envelope("u", BEFORE, AFTER)).entity == "Contact"


def test_tombstone_entity_comes_from_the_key_schema_name() -> None:
    key = (FIXTURES / "debezium_key_named.json").read_bytes()  # crm.public.customers.Key
    assert decoder_for("debezium-json").decode(None, key=key).entity == "customer"
    mapped = decoder_for("auto", entities={"public.customers": "Account"}).decode(None, key=key)
    assert mapped.entity == "Account"
    assert mapped.record_ids == ("42",) and mapped.event_id is None


@pytest.mark.parametrize(
    "entities", [{"contacts": ""}, {"": "Contact"}, {"contacts": 3}, ["contacts"], {"Contacts": "A", "contacts": "B"}]
)
def test_a_bad_entities_option_is_a_config_error(entities: Any) -> None:
    with pytest.raises(ConfigError, match="entities"):
        decoder_for("debezium-json", entities=entities)
