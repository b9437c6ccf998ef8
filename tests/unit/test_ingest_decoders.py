"""Each connector format decodes into one normalized ChangeEvent; bad input raises DecodeError."""

from __future__ import annotations

import io
import json
import struct

import orjson
import pytest
from fastavro import schemaless_writer

from router.errors import ReasonCode
from router.ingest import DecodeError, Operation, SourceSystem, decoder_for
from router.ingest.samples import default_schema_store, generate

pytestmark = pytest.mark.unit

STORE = default_schema_store()


def _header(entity: str, change: str = "UPDATE", **extra: object) -> dict[str, object]:
    return {
        "entityName": entity,
        "recordIds": ["003XX0000001AAA"],
        "changeType": change,
        "changeOrigin": "com/salesforce/api/soap/61.0",
        "transactionKey": "t-1",
        "sequenceNumber": 2,
        "commitTimestamp": 1_700_000_000_000,
        "commitNumber": 7,
        "commitUser": "005XX",
        "nulledFields": [],
        "diffFields": [],
        "changedFields": [],
        **extra,
    }


def _wire(entity: str, record: dict[str, object]) -> bytes:
    sid = STORE.id_of(f"{entity}ChangeEvent")
    stored = STORE.get(sid)
    full = dict.fromkeys(stored.field_names) | record
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    schemaless_writer(buf, stored.parsed, full)
    return buf.getvalue()


def test_salesforce_json_change_event() -> None:
    doc = {
        "ChangeEventHeader": _header("Contact", changedFields=["Email", "LastModifiedDate"]),
        "Email": "x@example.org",
        "EventUuid": "uuid-1",
    }
    ev = decoder_for("salesforce-json").decode(orjson.dumps(doc))
    assert (ev.source, ev.entity, ev.operation) == (SourceSystem.SALESFORCE, "Contact", Operation.UPDATE)
    assert ev.record_ids == ("003XX0000001AAA",)
    assert ev.changed_fields == ("Email", "LastModifiedDate")
    assert ev.connector_event_id == "uuid-1"
    assert ev.transaction_key == "t-1" and ev.sequence_number == 2
    assert ev.raw.payload == orjson.dumps(doc)


def test_salesforce_cometd_wrapper_uses_the_replay_id() -> None:
    doc = {"data": {"payload": {"ChangeEventHeader": _header("Lead")}, "event": {"replayId": 42}}}
    ev = decoder_for("salesforce-json").decode(orjson.dumps(doc))
    assert ev.entity == "Lead" and ev.connector_event_id == "replay:42"


def test_wildcard_record_ids_are_kept_and_flagged() -> None:
    doc = {"ChangeEventHeader": _header("Account", recordIds=["001*"])}
    ev = decoder_for("salesforce-json").decode(orjson.dumps(doc))
    assert ev.record_ids == ("001*",) and ev.wildcard_ids


def test_gap_overflow_decodes_as_a_gap_event() -> None:
    doc = {"ChangeEventHeader": _header("Account", "GAP_OVERFLOW", recordIds=["001*"])}
    ev = decoder_for("salesforce-json").decode(orjson.dumps(doc))
    assert ev.operation is Operation.GAP and ev.gap_type == "GAP_OVERFLOW"


def test_avro_bitmap_beyond_32_fields_names_the_right_fields() -> None:
    names = STORE.get(STORE.id_of("AccountChangeEvent")).field_names
    assert len(names) > 33
    hi = len(names) - 1  # Prompt__c, far beyond bit 31
    bitmap = f"0x{(1 << hi) | (1 << 1):X}"
    record = {
        "ChangeEventHeader": _header("Account", changedFields=[bitmap]),
        "Name": "Acme GmbH",
        "Prompt__c": "You are ...",
    }
    ev = decoder_for("confluent-avro", schema_store=STORE).decode(_wire("Account", record))
    assert ev.changed_fields == ("Name", names[hi])
    assert names[hi] == "Prompt__c"


def test_nested_bitmap_names_compound_subfields() -> None:
    names = STORE.get(STORE.id_of("AccountChangeEvent")).field_names
    pos = names.index("BillingAddress")
    # top-level bitmap marks BillingAddress; "pos-0x10" marks its fifth sub-field (Country)
    record = {
        "ChangeEventHeader": _header("Account", changedFields=[f"0x{1 << pos:X}", f"{pos}-0x10"]),
        "BillingAddress": {
            "Street": None,
            "City": "Lyon",
            "State": None,
            "PostalCode": None,
            "Country": "FR",
            "StateCode": None,
            "CountryCode": None,
            "Latitude": None,
            "Longitude": None,
        },
    }
    ev = decoder_for("confluent-avro", schema_store=STORE).decode(_wire("Account", record))
    assert ev.changed_fields == ("BillingAddress", "BillingAddress.Country")
    assert ev.values["BillingAddress"]["Country"] == "FR"


def test_compound_name_field_is_a_nested_value() -> None:
    record = {
        "ChangeEventHeader": _header("Contact"),
        "Name": {"Salutation": None, "FirstName": "Ada", "LastName": "Lovelace"},
    }
    ev = decoder_for("confluent-avro", schema_store=STORE).decode(_wire("Contact", record))
    assert ev.values["Name"]["LastName"] == "Lovelace"
    assert ev.raw.schema_id == STORE.id_of("ContactChangeEvent")


def test_salesforce_avro_with_schema_id_header() -> None:
    sid = STORE.id_of("LeadChangeEvent")
    body = _wire("Lead", {"ChangeEventHeader": _header("Lead", "CREATE")})[5:]
    ev = decoder_for("salesforce-avro", schema_store=STORE).decode(body, headers={"schema-id": str(sid)})
    assert ev.entity == "Lead" and ev.operation is Operation.CREATE


def test_unknown_schema_id_is_reported() -> None:
    with pytest.raises(DecodeError) as err:
        decoder_for("confluent-avro", schema_store=STORE).decode(b"\x00\x00\x00\x03\xe7abc")
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
    assert err.value.raw == b"\x00\x00\x00\x03\xe7abc"


@pytest.mark.parametrize("wrapped", [False, True])
def test_debezium_update_with_and_without_the_schema_wrapper(wrapped: bool) -> None:
    env = {
        "before": {"id": 7, "email": "a@x"},
        "after": {"id": 7, "email": "b@x"},
        "source": {"connector": "postgresql", "name": "crm", "db": "crm", "table": "contact", "lsn": 99, "ts_ms": 5},
        "op": "u",
        "ts_ms": 6,
        "transaction": {"id": "tx9", "total_order": 3, "data_collection_order": 1},
    }
    doc = {"schema": {}, "payload": env} if wrapped else env
    ev = decoder_for("debezium-json").decode(json.dumps(doc).encode(), key=b'{"id": 7}')
    assert (ev.source, ev.entity, ev.operation) == (SourceSystem.DEBEZIUM, "contact", Operation.UPDATE)
    assert ev.record_ids == ("7",) and ev.changed_fields == ("email",)
    assert ev.transaction_key == "tx9" and ev.sequence_number == 3
    assert ev.connector_event_id == "postgresql:crm:99"


def test_debezium_tombstone_is_a_delete_marker() -> None:
    ev = decoder_for("debezium-json", entity="contact").decode(None, key=b'{"id": 7}')
    assert ev.operation is Operation.DELETE and ev.record_ids == ("7",) and ev.entity == "contact"


def test_debezium_schema_change_event() -> None:
    doc = {
        "source": {"connector": "mysql", "name": "crm", "file": "bin.0001", "pos": 4, "table": "contact"},
        "ddl": "ALTER TABLE contact ADD COLUMN x INT",
        "tableChanges": [],
    }
    ev = decoder_for("debezium-json").decode(json.dumps(doc).encode())
    assert ev.operation is Operation.SCHEMA_CHANGE


def test_generic_json_mapping() -> None:
    dec = decoder_for(
        "generic-json",
        entity_field="object.type",
        id_field="object.id",
        operation_field="action",
        timestamp_field="at",
        tenant_field="tenant",
        values_field="object.fields",
    )
    doc = {
        "object": {"type": "Ticket", "id": 5, "fields": {"Email": "x@y"}},
        "action": "created",
        "at": 9,
        "tenant": "acme",
    }
    ev = dec.decode(json.dumps(doc).encode())
    assert (ev.entity, ev.record_ids, ev.operation, ev.tenant_id) == ("Ticket", ("5",), Operation.CREATE, "acme")
    with pytest.raises(DecodeError, match="operation field 'action'"):
        dec.decode(json.dumps({**doc, "action": "exploded"}).encode())


def test_auto_detects_each_sample_format() -> None:
    dec = decoder_for("auto", schema_store=STORE)
    seen = set()
    for rec in generate(90, seed=3):
        ev = dec.decode(rec.value, key=rec.key, headers=rec.headers)
        seen.add((rec.format, ev.source))
    assert {f for f, _ in seen} == {"salesforce-json", "confluent-avro", "debezium-json"}


def test_oversized_records_are_refused_before_parsing() -> None:
    with pytest.raises(DecodeError) as err:
        decoder_for("auto", max_bytes=1024).decode(b"{" + b" " * 2000 + b"}")
    assert err.value.reason is ReasonCode.OVERSIZED


def test_unknown_decoder_name_is_named() -> None:
    with pytest.raises(DecodeError, match="no decoder named 'xml'"):
        decoder_for("xml")


def test_sample_generator_is_deterministic_and_decodable() -> None:
    a, b = list(generate(60, seed=5)), list(generate(60, seed=5))
    assert a == b
    assert a != list(generate(60, seed=6))
    for rec in a:
        decoder_for(rec.format, **({"schema_store": STORE} if rec.format == "confluent-avro" else {})).decode(
            rec.value, key=rec.key, headers=rec.headers
        )


def test_samples_carry_valid_identifiers() -> None:
    from stdnum import iban

    values = b"".join(r.value or b"" for r in generate(300, seed=2))
    import re

    found = {m.decode() for m in re.findall(rb"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", values)}
    valid = [x for x in found if iban.is_valid(x)]
    invalid = [x for x in found if not iban.is_valid(x)]
    assert valid and invalid  # realistic ones plus a share with a wrong check digit


def test_schema_registry_over_http_serves_confluent_records() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from router.ingest.schema_store import HttpSchemaRegistry

    contact = STORE.get(STORE.id_of("ContactChangeEvent")).raw
    calls: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.path)
            if self.path == "/schemas/ids/77":
                body = json.dumps({"schema": json.dumps(contact)}).encode()
                self.send_response(200)
            else:
                body = b'{"error_code": 40403}'
                self.send_response(404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry = HttpSchemaRegistry(f"http://127.0.0.1:{server.server_port}", timeout=2)
        stored = STORE.get(STORE.id_of("ContactChangeEvent"))
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", 77))
        schemaless_writer(
            buf, stored.parsed, dict.fromkeys(stored.field_names) | {"ChangeEventHeader": _header("Contact")}
        )
        dec = decoder_for("confluent-avro", schema_store=registry)
        assert dec.decode(buf.getvalue()).entity == "Contact"
        assert dec.decode(buf.getvalue()).entity == "Contact"
        assert calls == ["/schemas/ids/77"]  # cached after the first lookup
        with pytest.raises(DecodeError) as err:
            dec.decode(b"\x00\x00\x00\x00\x05x")
        assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
    finally:
        server.shutdown()


def test_auto_detects_unframed_avro_by_its_schema_id_header() -> None:
    store = default_schema_store()
    rec = next(r for r in generate(30, seed=3) if r.format == "confluent-avro" and r.value is not None)
    assert rec.value is not None
    sid = str(int.from_bytes(rec.value[1:5], "big"))
    event = decoder_for("auto", schema_store=store).decode(rec.value[5:], key=rec.key, headers={"schema-id": sid})
    framed = decoder_for("confluent-avro", schema_store=store).decode(rec.value, key=rec.key, headers={})
    assert (event.entity, event.record_ids, event.changed_fields) == (
        framed.entity, framed.record_ids, framed.changed_fields,
    )
