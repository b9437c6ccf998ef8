"""Salesforce change events: headers never bind a tenant, and every shape the Streaming (CometD)
and Pub/Sub APIs, and the Kafka connectors built on them, deliver decodes to the same event."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import schemaless_writer

from router.ingest import decoder_for
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
