"""Salesforce change events: headers never bind a tenant, and every shape the Streaming (CometD)
and Pub/Sub APIs, and the Kafka connectors built on them, deliver decodes to the same event."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import schemaless_writer

from router.errors import ReasonCode
from router.ingest import ChangeEvent, DecodeError, Operation, SourceSystem, decoder_for
from router.ingest.samples import default_schema_store

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
STORE = default_schema_store()
ORG_HEADER = {"sf-org-id": "00DUS0000000001"}


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _header(entity: str = "Contact", change: str = "UPDATE", **extra: Any) -> dict[str, Any]:
    return {
        "entityName": entity,
        "recordIds": ["0035e00000ABCDEAA1"],
        "changeType": change,
        "changeOrigin": "com/salesforce/api/soap/61.0;client=Astro",
        "transactionKey": "0002a4c4-7d1e-4a6f-9e0b-5d1c3e8f0a11",
        "sequenceNumber": 1,
        "commitTimestamp": 1732780800000,
        "commitNumber": 11645582840345,
        "commitUser": "0055e000001AbCdAAK",
        "nulledFields": [],
        "diffFields": [],
        "changedFields": ["Email", "LastModifiedDate"],
        **extra,
    }


def _avro_body(entity: str = "Contact", **fields: Any) -> tuple[int, bytes]:
    sid = STORE.id_of(f"{entity}ChangeEvent")
    stored = STORE.get(sid)
    record = dict.fromkeys(stored.field_names) | {"ChangeEventHeader": _header(entity, changedFields=[])} | fields
    buf = io.BytesIO()
    schemaless_writer(buf, stored.parsed, record)
    return sid, buf.getvalue()


# -- 3. headers never bind a tenant ----------------------------------------------------------


def test_sf_org_id_header_does_not_bind_the_tenant_of_a_json_event() -> None:
    doc = {"ChangeEventHeader": _header(), "Email": "anna@example.de"}
    ev = decoder_for("salesforce-json").decode(orjson.dumps(doc), headers=ORG_HEADER)
    assert ev.tenant_id is None
    assert ev.headers == ORG_HEADER  # still visible to the resolver, which decides whether it may bind


def test_sf_org_id_header_does_not_bind_the_tenant_of_a_cometd_message() -> None:
    for name in ("salesforce-json", "auto"):
        ev = decoder_for(name).decode(_fixture("salesforce_cometd_create.json"), headers=ORG_HEADER)
        assert ev.tenant_id is None
        assert ev.headers["sf-org-id"] == "00DUS0000000001"


@pytest.mark.parametrize("framing", ["pubsub", "confluent", "auto-unframed"])
def test_sf_org_id_header_does_not_bind_the_tenant_of_an_avro_event(framing: str) -> None:
    sid, body = _avro_body("Contact", Email="anna@example.de")
    if framing == "pubsub":
        headers = {"schema-id": str(sid)} | ORG_HEADER
        ev = decoder_for("salesforce-avro", schema_store=STORE).decode(body, headers=headers)
    elif framing == "confluent":
        wire = b"\x00" + struct.pack(">I", sid) + body
        ev = decoder_for("confluent-avro", schema_store=STORE).decode(wire, headers=ORG_HEADER)
    else:
        ev = decoder_for("auto", schema_store=STORE).decode(body, headers={"sf-schema-id": str(sid)} | ORG_HEADER)
    assert ev.entity == "Contact"
    assert ev.tenant_id is None
    assert ev.headers["sf-org-id"] == "00DUS0000000001"


def test_org_id_in_the_payload_binds_the_tenant_whatever_the_header_says() -> None:
    ev = decoder_for("salesforce-json").decode(_fixture("salesforce_contact_update.json"), headers=ORG_HEADER)
    assert ev.tenant_id == "00D5e000000XyZaEAK"


def test_a_non_string_org_id_is_no_tenant() -> None:
    doc = {"ChangeEventHeader": _header(), "OrgId": {"id": "00D"}}
    assert decoder_for("salesforce-json").decode(orjson.dumps(doc)).tenant_id is None


# -- 4. every delivered shape ----------------------------------------------------------------


def _same_event(a: ChangeEvent, b: ChangeEvent) -> None:
    assert (a.source, a.entity, a.operation, a.record_ids) == (b.source, b.entity, b.operation, b.record_ids)
    assert (a.changed_fields, a.nulled_fields, a.values) == (b.changed_fields, b.nulled_fields, b.values)
    assert (a.commit_timestamp_ms, a.transaction_key, a.sequence_number) == (
        b.commit_timestamp_ms, b.transaction_key, b.sequence_number,
    )


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_cometd_event_object_without_its_outer_message(name: str) -> None:
    """``{"schema", "payload", "event": {"replayId"}}``: what a CometD client hands its listener."""
    value = _fixture("salesforce_cometd_event.json")
    ev = decoder_for(name).decode(value)
    assert ev.source is SourceSystem.SALESFORCE
    assert (ev.entity, ev.operation, ev.record_ids) == ("Contact", Operation.UPDATE, ("0035e00000ABCDEAA1",))
    assert ev.changed_fields == ("Email", "MailingAddress.City", "LastModifiedDate")
    assert ev.values["MailingAddress"] == {"City": "Hamburg", "Country": "Germany"}
    assert ev.connector_event_id == "replay:23781564"
    assert ev.raw.payload == value
    # the same change as a full CometD message decodes identically
    message = orjson.dumps({"channel": "/data/ContactChangeEvent", "data": json.loads(value)})
    _same_event(decoder_for(name).decode(message), ev)


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_cometd_event_uuid_in_the_event_object_is_preferred_to_the_replay_id(name: str) -> None:
    doc = json.loads(_fixture("salesforce_cometd_event.json"))
    doc["event"]["EventUuid"] = "5b3a4c1e-0d2f-4e6a-9b8c-7d6e5f4a3b2c"
    assert decoder_for(name).decode(orjson.dumps(doc)).event_id == "5b3a4c1e-0d2f-4e6a-9b8c-7d6e5f4a3b2c"


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_confluent_connector_record(name: str) -> None:
    """The Confluent Salesforce CDC connector's schemaless JSON: ReplayId (a string) next to the
    fields, plus its _ObjectType / _EventType metadata, which are not record data."""
    ev = decoder_for(name).decode(_fixture("salesforce_cdc_connector.json"))
    assert (ev.entity, ev.operation, ev.record_ids) == ("Account", Operation.CREATE, ("0015e00000XyZ12AAB",))
    assert ev.connector_event_id == "replay:9004013"
    assert "ReplayId" not in ev.values and "_ObjectType" not in ev.values and "_EventType" not in ev.values
    assert ev.values["BillingAddress"]["Country"] == "France"


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_kafka_connect_json_with_its_schema_envelope(name: str) -> None:
    """JsonConverter with schemas.enable=true wraps the record as {"schema": {struct}, "payload": {...}}:
    a Salesforce payload in it must not be mistaken for Debezium's wrapper."""
    wrapped = _fixture("salesforce_cdc_connector.schema_envelope.json")
    ev = decoder_for(name).decode(wrapped)
    _same_event(ev, decoder_for(name).decode(_fixture("salesforce_cdc_connector.json")))
    assert ev.raw.payload == wrapped


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_a_json_array_of_cometd_messages_is_refused(name: str) -> None:
    value = _fixture("salesforce_bayeux_batch.json")
    with pytest.raises(DecodeError) as err:
        decoder_for(name).decode(value)
    assert err.value.reason is ReasonCode.UNSUPPORTED_FORMAT
    assert "array" in err.value.detail and "one event per record" in err.value.detail
    assert err.value.raw == value
    assert "example.fr" not in str(err.value) and "Chlo" not in str(err.value)


@pytest.mark.parametrize("name", ["salesforce-json", "auto"])
def test_a_cometd_meta_message_is_refused(name: str) -> None:
    value = orjson.dumps({"channel": "/meta/connect", "successful": True, "advice": {"interval": 0}, "id": "7"})
    with pytest.raises(DecodeError) as err:
        decoder_for(name).decode(value)
    assert err.value.reason is ReasonCode.UNSUPPORTED_FORMAT
    assert "CometD" in err.value.detail


def test_a_cometd_message_that_is_not_a_change_event_is_refused() -> None:
    data = {"schema": "x", "payload": {"CreatedDate": "2024-11-28T08:00:00Z"}, "event": {"replayId": 1}}
    platform_event = {"channel": "/event/Order_Placed__e", "data": data}
    with pytest.raises(DecodeError) as err:
        decoder_for("salesforce-json").decode(orjson.dumps(platform_event))
    assert err.value.reason is ReasonCode.MISSING_FIELD


def test_auto_still_reads_debezium_schema_payload_wrappers() -> None:
    ev = decoder_for("auto").decode(_fixture("debezium_update_wrapped.json"))
    assert ev.source is SourceSystem.DEBEZIUM and ev.operation is Operation.UPDATE


def test_replay_id_at_the_top_of_a_bare_payload() -> None:
    doc = json.loads(_fixture("salesforce_gap_overflow.json"))
    doc["ReplayId"] = 99
    ev = decoder_for("salesforce-json").decode(json.dumps(doc).encode())
    assert ev.connector_event_id == "replay:99"
    assert "ReplayId" not in ev.values
