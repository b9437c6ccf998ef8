"""The HTTP schema registry client: an outage is a stall (SchemaRegistryUnavailable), an unknown id
is UNKNOWN_SCHEMA, cached negatively for a while. Runs against a local http.server on a free
loopback port."""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastavro import schemaless_writer

from router.errors import ReasonCode, RecordError, RouterError
from router.ingest import DecodeError, decoder_for
from router.ingest.samples import default_schema_store
from router.ingest.schema_store import HttpSchemaRegistry

pytestmark = pytest.mark.unit

STORE = default_schema_store()
CONTACT = STORE.get(STORE.id_of("ContactChangeEvent"))

Reply = tuple[int, bytes]


class _Registry:
    """A fake Confluent Schema Registry: ``answer(path) -> (status, body)``; records each path asked."""

    def __init__(self, answer: Callable[[str], Reply]) -> None:
        self.calls: list[str] = []
        self.auth: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.calls.append(self.path)
                registry.auth.append(self.headers.get("Authorization", ""))
                status, body = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Callable[[Callable[[str], Reply]], _Registry]]:
    started: list[_Registry] = []

    def start(answer: Callable[[str], Reply]) -> _Registry:
        started.append(_Registry(answer))
        return started[-1]

    yield start
    for r in started:
        r.close()


def _schema_reply(raw: dict[str, Any]) -> Reply:
    return 200, json.dumps({"schema": json.dumps(raw)}).encode()


NOT_FOUND: Reply = (404, b'{"error_code": 40403, "message": "Schema 77 not found"}')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def _contact_wire(sid: int) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    header = {
        "entityName": "Contact", "recordIds": ["003XX0000001AAA"], "changeType": "UPDATE", "changeOrigin": "",
        "transactionKey": "t", "sequenceNumber": 1, "commitTimestamp": 1, "commitNumber": 1, "commitUser": "005",
        "nulledFields": [], "diffFields": [], "changedFields": [],
    }
    schemaless_writer(buf, CONTACT.parsed, dict.fromkeys(CONTACT.field_names) | {"ChangeEventHeader": header})
    return buf.getvalue()


# -- outages -----------------------------------------------------------------------------------


def test_an_unreachable_registry_is_an_outage_not_a_record_error() -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SchemaRegistryUnavailable) as err:
        HttpSchemaRegistry(url, timeout=2).get(77)
    assert isinstance(err.value, RouterError) and not isinstance(err.value, RecordError)
    assert url in str(err.value)
    assert "ConnectionRefusedError" in str(err.value)
    assert err.value.url == url


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_5xx_and_429_are_outages_and_are_not_cached(registry: Any, status: int) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    reg = registry(lambda _path: (status, b'{"error_code": 50001, "message": "boom"}'))
    client = HttpSchemaRegistry(reg.url, timeout=2)
    for _ in range(2):
        with pytest.raises(SchemaRegistryUnavailable, match=f"HTTP {status}"):
            client.get(77)
    assert reg.calls == ["/schemas/ids/77"] * 2  # each lookup asks again: the outage may be over


def test_a_timeout_is_an_outage(registry: Any) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    release = threading.Event()
    answered: list[bool] = []

    def slow(_path: str) -> Reply:
        # The server answers only once the test has its result: the client must give up first.
        release.wait(10)
        answered.append(True)
        return _schema_reply(CONTACT.raw)

    reg = registry(slow)
    try:
        with pytest.raises(SchemaRegistryUnavailable, match="timed out|Timeout"):
            HttpSchemaRegistry(reg.url, timeout=0.2).get(77)
        assert not answered, "the client gave up before the registry answered"
    finally:
        release.set()


def test_an_answer_that_is_not_a_registry_response_is_an_outage(registry: Any) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    reg = registry(lambda _path: (200, b"<html>proxy login</html>"))
    with pytest.raises(SchemaRegistryUnavailable, match="not a schema registry response"):
        HttpSchemaRegistry(reg.url, timeout=2).get(77)


def test_credentials_in_the_url_are_sent_but_never_printed(registry: Any) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    reg = registry(lambda _path: (503, b"{}"))
    url = reg.url.replace("http://", "http://svc-router:s3cr%40t@") + "/?token=abc"
    client = HttpSchemaRegistry(url, timeout=2)
    with pytest.raises(SchemaRegistryUnavailable) as err:
        client.get(77)
    text = str(err.value) + repr(client.url) + str(err.value.url)
    assert "s3cr" not in text and "svc-router" not in text and "token" not in text
    assert reg.url in str(err.value)
    import base64

    assert reg.auth == ["Basic " + base64.b64encode(b"svc-router:s3cr@t").decode()]
    assert reg.calls == ["/schemas/ids/77"]


@pytest.mark.parametrize("name", ["confluent-avro", "auto", "salesforce-avro"])
def test_decoders_let_the_outage_propagate(name: str) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    client = HttpSchemaRegistry(f"http://127.0.0.1:{_free_port()}", timeout=2)
    dec = decoder_for(name, schema_store=client)
    wire = _contact_wire(77)
    value, headers = (wire[5:], {"schema-id": "77"}) if name == "salesforce-avro" else (wire, {})
    with pytest.raises(SchemaRegistryUnavailable):
        dec.decode(value, headers=headers)


def test_a_lookup_after_the_outage_succeeds_and_is_cached(registry: Any) -> None:
    from router.ingest.errors import SchemaRegistryUnavailable

    replies = iter([(503, b"{}"), _schema_reply(CONTACT.raw)])
    reg = registry(lambda _path: next(replies))
    dec = decoder_for("confluent-avro", schema_store=HttpSchemaRegistry(reg.url, timeout=2))
    with pytest.raises(SchemaRegistryUnavailable):
        dec.decode(_contact_wire(77))
    assert dec.decode(_contact_wire(77)).entity == "Contact"
    assert dec.decode(_contact_wire(77)).entity == "Contact"
    assert len(reg.calls) == 2


# -- unknown ids -------------------------------------------------------------------------------


def test_404_is_unknown_schema_and_is_cached_negatively(registry: Any) -> None:
    reg = registry(lambda _path: NOT_FOUND)
    now = [1000.0]
    client = HttpSchemaRegistry(reg.url, timeout=2, negative_ttl=60, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(DecodeError) as err:
            client.get(77)
        assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
        assert "77" in err.value.detail
    assert reg.calls == ["/schemas/ids/77"]  # the second and third lookups came from the negative cache
    now[0] += 61
    with pytest.raises(DecodeError):
        client.get(77)
    assert len(reg.calls) == 2  # asked again once the entry expired


def test_404_through_a_decoder_is_an_unknown_schema_quarantine_with_the_bytes(registry: Any) -> None:
    reg = registry(lambda _path: NOT_FOUND)
    wire = _contact_wire(77)
    with pytest.raises(DecodeError) as err:
        decoder_for("auto", schema_store=HttpSchemaRegistry(reg.url, timeout=2)).decode(wire)
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA and err.value.raw == wire


def test_many_unknown_ids_keep_a_bounded_negative_cache(registry: Any) -> None:
    reg = registry(lambda _path: NOT_FOUND)
    client = HttpSchemaRegistry(reg.url, timeout=2, negative_cache_size=8)
    for sid in range(20):
        with pytest.raises(DecodeError):
            client.get(sid)
    assert len(client._missing) <= 8  # the bound is the point of this test


def test_a_schema_that_is_not_avro_is_unknown_schema(registry: Any) -> None:
    proto = json.dumps({"schemaType": "PROTOBUF", "schema": 'syntax = "proto3"; message M {}'}).encode()
    reg = registry(lambda _path: (200, proto))
    with pytest.raises(DecodeError, match="not an Avro schema") as err:
        HttpSchemaRegistry(reg.url, timeout=2).get(77)
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA


def test_an_invalid_avro_schema_is_unknown_schema(registry: Any) -> None:
    reg = registry(lambda _path: _schema_reply({"type": "record", "name": "X", "fields": [{"name": "a"}]}))
    with pytest.raises(DecodeError, match="not a valid Avro schema") as err:
        HttpSchemaRegistry(reg.url, timeout=2).get(77)
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA


# -- schemas that cannot be read safely (appendix A6, and recursion) ------------------------------

HEADER_FIELD = {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
    {"name": "entityName", "type": "string"}, {"name": "changeType", "type": "string"},
    {"name": "recordIds", "type": {"type": "array", "items": "string"}}]}}
ZERO_ITEMS = [
    {"type": "array", "items": "null"},
    {"type": "map", "values": "null"},
    {"type": "array", "items": {"type": "record", "name": "Empty", "fields": []}},
    {"type": "array", "items": {"type": "record", "name": "Nulls", "fields": [
        {"name": "a", "type": "null"}, {"name": "b", "type": {"type": "record", "name": "Inner", "fields": []}}]}},
    {"type": "array", "items": {"type": "fixed", "name": "Nothing", "size": 0}},
    {"type": "array", "items": {"type": "array", "items": "null"}},
    {"type": "record", "name": "Outer", "fields": [
        {"name": "z", "type": {"type": "record", "name": "Z", "namespace": "x.y", "fields": []}},
        {"name": "zs", "type": {"type": "map", "values": "x.y.Z"}}]},
]
SAFE_ITEMS = [
    {"type": "array", "items": "string"},
    {"type": "array", "items": ["null", "string"]},  # a union's branch index takes a byte
    {"type": "array", "items": {"type": "enum", "name": "E", "symbols": ["A"]}},
    {"type": "array", "items": {"type": "fixed", "name": "One", "size": 1}},
    {"type": "array", "items": {"type": "array", "items": "int"}},  # an empty inner array is one byte
    {"type": "map", "values": {"type": "record", "name": "R", "fields": [{"name": "n", "type": "null"},
                                                                        {"name": "i", "type": "int"}]}},
]
RECURSIVE = [
    {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    {"type": "record", "name": "Tree", "fields": [{"name": "kids", "type": {"type": "array", "items": "Tree"}}]},
    {"type": "record", "name": "A", "namespace": "n", "fields": [{"name": "b", "type": {
        "type": "record", "name": "B", "fields": [{"name": "a", "type": ["null", "n.A"]}]}}]},
]


def _record(extra_type: Any) -> dict[str, Any]:
    """A Salesforce-looking record whose first field has ``extra_type``, so that the A6 bytes are
    read as that field's block count."""
    return {"type": "record", "name": "BombChangeEvent", "fields": [{"name": "xs", "type": extra_type}, HEADER_FIELD]}


@pytest.mark.parametrize("schema", ZERO_ITEMS)
def test_a_schema_with_zero_byte_array_or_map_items_is_refused_when_loaded(schema: dict[str, Any]) -> None:
    from router.ingest.schema_store import StoredSchema, load_schema

    for raw in (schema, _record(schema)):
        with pytest.raises(DecodeError, match="schema 9 has an array/map of zero-byte items") as err:
            load_schema(9, json.loads(json.dumps(raw)))
        assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
    from fastavro import parse_schema

    with pytest.raises(DecodeError, match="zero-byte items"):
        StoredSchema(9, parse_schema(json.loads(json.dumps(schema))), schema)


@pytest.mark.parametrize("schema", SAFE_ITEMS)
def test_arrays_and_maps_of_items_that_take_bytes_are_accepted(schema: dict[str, Any]) -> None:
    from router.ingest.schema_store import load_schema

    assert load_schema(9, _record(schema)).schema_id == 9


@pytest.mark.parametrize("schema", RECURSIVE)
def test_a_recursive_schema_is_refused_when_loaded(schema: dict[str, Any]) -> None:
    """fastavro 1.13 reads a recursive schema recursively in C: about 10 KB of nesting bytes
    overflow the stack and kill the process (SIGSEGV), so no input can be read safely with it."""
    from router.ingest.schema_store import load_schema

    with pytest.raises(DecodeError, match="schema 9 is recursive") as err:
        load_schema(9, json.loads(json.dumps(schema)))
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA


def _directory(tmp_path: Any, schemas: dict[int, dict[str, Any]]) -> Any:
    from router.ingest.schema_store import DirectorySchemaStore

    for sid, raw in schemas.items():
        (tmp_path / f"s{sid}.avsc").write_text(json.dumps(raw))
    (tmp_path / "registry.json").write_text(json.dumps({str(sid): f"s{sid}.avsc" for sid in schemas}))
    return DirectorySchemaStore(tmp_path)


A6_BYTES = bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x40]) + b"\x00"  # zigzag(2**40), then zigzag(0): 7 bytes


def test_a6_the_seven_byte_bomb_is_refused_quickly_from_a_schema_directory(tmp_path: Any) -> None:
    assert len(A6_BYTES) == 7
    bomb = {"type": "array", "items": "null"}
    store = _directory(tmp_path, {9: bomb, 10: _record(bomb)})
    # Loading refuses the schemas: nothing below ever decodes with them.
    for sid in (9, 10):
        with pytest.raises(DecodeError, match="zero-byte items"):
            store.get(sid)
    started = time.monotonic()
    with pytest.raises(DecodeError) as err:
        decoder_for("salesforce-avro", schema_store=store).decode(A6_BYTES, headers={"schema-id": "9"})
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA and err.value.raw == A6_BYTES
    wire = b"\x00" + struct.pack(">I", 10) + A6_BYTES
    for name in ("confluent-avro", "auto"):
        with pytest.raises(DecodeError) as err:
            decoder_for(name, schema_store=store).decode(wire)
        assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA and err.value.raw == wire
    assert time.monotonic() - started < 1.0


def test_a6_from_the_http_registry_is_refused_and_cached_negatively(registry: Any) -> None:
    reg = registry(lambda _path: _schema_reply(_record({"type": "array", "items": "null"})))
    client = HttpSchemaRegistry(reg.url, timeout=2)
    with pytest.raises(DecodeError, match="schema 77 has an array/map of zero-byte items"):
        client.get(77)
    wire = b"\x00" + struct.pack(">I", 77) + A6_BYTES
    with pytest.raises(DecodeError) as err:
        decoder_for("confluent-avro", schema_store=client).decode(wire)
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA
    assert reg.calls == ["/schemas/ids/77"]


def test_a_recursive_schema_in_a_directory_is_refused_before_any_decode(tmp_path: Any) -> None:
    store = _directory(tmp_path, {9: RECURSIVE[0]})
    with pytest.raises(DecodeError, match="recursive"):
        store.get(9)
    deep = b"\x02" * 20_000 + b"\x00"  # would overflow fastavro's C stack with the schema loaded
    with pytest.raises(DecodeError) as err:
        decoder_for("salesforce-avro", schema_store=store).decode(deep, headers={"schema-id": "9"})
    assert err.value.reason is ReasonCode.UNKNOWN_SCHEMA


def test_the_shipped_schemas_pass_the_load_checks() -> None:
    fresh = default_schema_store()
    assert fresh.ids()
    for sid in fresh.ids():
        assert fresh.get(sid).schema_id == sid
