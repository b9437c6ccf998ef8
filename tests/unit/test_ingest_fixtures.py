"""Recorded connector payloads (tests/unit/fixtures/ingest) decode to the expected ChangeEvent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from router.errors import ReasonCode
from router.ingest import DecodeError, Operation, SourceSystem, decoder_for
from router.ingest.samples import SampleRecord, default_schema_store, generate, read_jsonl, write_jsonl

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
STORE = default_schema_store()


def _bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_salesforce_json_fixture() -> None:
    ev = decoder_for("salesforce-json").decode(_bytes("salesforce_contact_update.json"))
    assert ev.source is SourceSystem.SALESFORCE
    assert (ev.entity, ev.operation, ev.record_ids) == ("Contact", Operation.UPDATE, ("0035e00000ABCDEAA1",))
    assert ev.changed_fields == ("Email", "MailingAddress.City", "LastModifiedDate")
    assert ev.nulled_fields == ("Phone",)
    assert ev.values["MailingAddress"] == {"City": "Hamburg", "Country": "Germany"}
    assert ev.tenant_id == "00D5e000000XyZaEAK"
    assert ev.connector_event_id == "7b1f0c9e-2a44-4c55-9d1e-3f6a8b0c1d2e"
    assert ev.commit_timestamp_ms == 1732780800000
    assert ev.transaction_key is not None
    assert ev.sequence_number == 1


def test_salesforce_json_org_id_header_binds_no_tenant_and_top_level_replay_id() -> None:
    doc = json.loads(_bytes("salesforce_gap_overflow.json"))
    doc["ReplayId"] = 99
    ev = decoder_for("salesforce-json").decode(json.dumps(doc).encode(), headers={"sf-org-id": "00DORG"})
    assert ev.tenant_id is None  # a header never binds a tenant; it stays in ev.headers
    assert ev.headers == {"sf-org-id": "00DORG"}
    assert ev.connector_event_id == "replay:99"
    assert "ReplayId" not in ev.values


def test_salesforce_cometd_fixture() -> None:
    ev = decoder_for("salesforce-json").decode(_bytes("salesforce_cometd_create.json"))
    assert (ev.entity, ev.operation) == ("Lead", Operation.CREATE)
    assert ev.connector_event_id == "replay:48213"
    assert ev.values["Name"] == {"FirstName": "Chloé", "LastName": "Martin"}


def test_gap_overflow_fixture() -> None:
    ev = decoder_for("auto").decode(_bytes("salesforce_gap_overflow.json"))
    assert ev.operation is Operation.GAP
    assert ev.gap_type == "GAP_OVERFLOW"
    assert ev.wildcard_ids
    assert ev.record_ids == ("001*",)


@pytest.mark.parametrize("name", ["confluent-avro", "auto"])
def test_account_avro_fixture_bitmaps_beyond_bit_31_and_nested(name: str) -> None:
    ev = decoder_for(name, schema_store=STORE).decode(_bytes("salesforce_account_update.confluent.bin"))
    assert (ev.entity, ev.operation) == ("Account", Operation.UPDATE)
    assert ev.raw.schema_id == 1
    # 0x600010002: bits 1 (Name), 16 (Description), 33 (VatId__c), 34 (Iban__c); 4-0x10: BillingAddress field 4.
    assert ev.changed_fields == ("Name", "Description", "VatId__c", "Iban__c", "BillingAddress.Country")
    assert ev.nulled_fields == ("Phone",)
    assert ev.values["BillingAddress"]["City"] == "Stuttgart"
    assert ev.values["VatId__c"] == "DE136695976"


def test_salesforce_avro_fixture_without_framing() -> None:
    body = _bytes("salesforce_account_update.confluent.bin")[5:]
    ev = decoder_for("salesforce-avro", schema_store=STORE).decode(body, headers={"schema-id": "1"})
    assert ev.changed_fields[-1] == "BillingAddress.Country"
    ev2 = decoder_for("salesforce-avro", schema_store=STORE, schema_id=1).decode(body)
    assert ev2.changed_fields == ev.changed_fields


def test_schema_store_get_unpacks_as_parsed_and_raw() -> None:
    parsed, raw = STORE.get(1)
    assert raw["name"] == "AccountChangeEvent"
    assert len(raw["fields"]) > 32
    assert parsed is not None
    with pytest.raises(DecodeError) as err:
        STORE.get(99)
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA


def test_debezium_fixture_with_key() -> None:
    ev = decoder_for("debezium-json").decode(_bytes("debezium_update_wrapped.json"), key=_bytes("debezium_key_42.json"))
    assert ev.source is SourceSystem.DEBEZIUM
    assert (ev.entity, ev.operation, ev.record_ids) == ("customer", Operation.UPDATE, ("42",))  # table customers
    assert ev.values["iban"] == "NL91ABNA0417164300"
    assert ev.connector_event_id is not None
    assert "24023128" in ev.connector_event_id


def test_debezium_tombstone_uses_the_key_and_entity_option() -> None:
    ev = decoder_for("debezium-json", entity="customers").decode(None, key=_bytes("debezium_key_42.json"))
    assert (ev.entity, ev.operation, ev.record_ids) == ("customers", Operation.DELETE, ("42",))
    ev2 = decoder_for("auto").decode(None, key=b'{"id": 7}')
    assert (ev2.entity, ev2.operation, ev2.record_ids) == ("unknown", Operation.DELETE, ("7",))


def test_debezium_schema_change_fixture() -> None:
    for name in ("debezium-json", "auto"):
        ev = decoder_for(name).decode(_bytes("debezium_schema_change.json"))
        assert ev.operation is Operation.SCHEMA_CHANGE


def test_generic_json_fixture() -> None:
    dec = decoder_for(
        "generic-json",
        entity_field="meta.table",
        id_field="row.order_id",
        operation_field="meta.action",
        timestamp_field="meta.ts",
        tenant_field="meta.tenant",
        values_field="row",
    )
    ev = dec.decode(_bytes("generic_order.json"))
    assert (ev.entity, ev.operation, ev.record_ids) == ("orders", Operation.UPDATE, ("A-1001",))
    assert ev.tenant_id == "acme-eu"
    assert ev.commit_timestamp_ms == 1732780800000
    assert ev.values["country"] == "SE"


def test_auto_refuses_unknown_json() -> None:
    with pytest.raises(DecodeError) as err:
        decoder_for("auto").decode(_bytes("generic_order.json"))
    assert err.value.reason is ReasonCode.UNSUPPORTED_FORMAT
    assert b"order_id" not in str(err.value).encode()


def test_decode_errors_never_carry_values_in_their_message() -> None:
    secret = b'{"ChangeEventHeader": {"entityName": "Contact", "changeType": "NOPE"}, "Email": "x@secret.example"}'
    with pytest.raises(DecodeError) as err:
        decoder_for("salesforce-json").decode(secret)
    assert "secret" not in str(err.value)
    assert err.value.raw == secret


def test_events_file_round_trip(tmp_path: Path) -> None:
    records = list(generate(30, seed=3))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(path, records) == 30
    line = json.loads(path.read_text().splitlines()[0])
    assert set(line) == {"format", "key_b64", "value_b64", "headers"}
    back = list(read_jsonl(path))
    assert all(isinstance(r, SampleRecord) for r in back)
    assert [(r.key, r.value, r.format, r.headers) for r in back if isinstance(r, SampleRecord)] == [
        (r.key, r.value, r.format, r.headers) for r in records
    ]


def test_events_file_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"format": "debezium-json", "key_b64": None, "value_b64": base64.b64encode(b"{}").decode(), "headers": {}}
    path.write_text(
        "\n".join(
            ["not json", json.dumps({"value_b64": None}), json.dumps(good | {"value_b64": "!!"}), json.dumps(good)]
        )
        + "\n"
    )
    out = list(read_jsonl(path))
    assert [o[0] for o in out if isinstance(o, tuple)] == [1, 2, 3]
    assert isinstance(out[-1], SampleRecord)
    assert out[-1].value == b"{}"


class _MemoryStore:
    """A SchemaStore holding one Debezium envelope schema under id 200."""

    RAW = {  # noqa: RUF012 - test constant
        "type": "record",
        "name": "Envelope",
        "namespace": "crm.public.customers",
        "fields": [
            {
                "name": "before",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Value",
                        "fields": [{"name": "id", "type": "int"}, {"name": "email", "type": ["null", "string"]}],
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
        from fastavro import parse_schema

        from router.ingest.schema_store import StoredSchema

        self.stored = StoredSchema(200, parse_schema(dict(self.RAW)), self.RAW)

    def get(self, schema_id: int):  # type: ignore[no-untyped-def]
        if schema_id != 200:
            raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} unknown", None)
        return self.stored


def test_confluent_avro_debezium_envelope() -> None:
    import io
    import struct

    from fastavro import schemaless_writer

    store = _MemoryStore()
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", 200))
    schemaless_writer(
        buf,
        store.stored.parsed,
        {
            "before": None,
            "after": {"id": 42, "email": "a@example.ie"},
            "source": {"connector": "postgresql", "name": "crm", "table": "customers", "lsn": 77},
            "op": "c",
            "ts_ms": 1,
        },
    )
    for name in ("confluent-avro", "auto"):
        ev = decoder_for(name, schema_store=store).decode(buf.getvalue())
        assert ev.source is SourceSystem.DEBEZIUM
        assert (ev.entity, ev.operation, ev.record_ids) == ("customer", Operation.CREATE, ("42",))
        assert ev.raw.schema_id == 200
    with pytest.raises(DecodeError) as err:
        decoder_for("confluent-avro", schema_store=store).decode(b"\x00\x00\x00\x00\x05\x02")
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
