"""Canary: events whose every field value, key, id and header holds a distinctive value go through
the real classification and routing (examples/router.yaml) and the router processor; none of those
values appears in the scraped ``/metrics`` text, in the JSON log lines, or in any span captured by an
in-memory span exporter (names, attributes, events)."""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.audit.chain import AuditChain
from router.config.loader import parse_config
from router.envelope import Sealer
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.digest import DigestKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalSigner
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.routing.build import evaluator_for
from router.telemetry import setup
from router.telemetry.health import ConsumerLag, RouterHealth, activate, deactivate
from router.telemetry.keys import ProviderStatus, observe_keys
from router.telemetry.logs import JsonFormatter
from router.telemetry.server import MetricsServer
from tests.unit.fake_kafka import FakeMessage
from tests.unit.telemetry_util import prometheus_bound

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
INGRESS = "crm.ingress"
CANARY = "Zq7Canary"
"""Every planted value contains this; it occurs nowhere in the router's code."""


def _events() -> list[bytes | None]:
    def sf(entity: str, change: str = "UPDATE", **fields: Any) -> bytes:
        header = {"entityName": entity, "changeType": change, "recordIds": [f"003{CANARY}01"],
                  "changedFields": list(fields), "commitUser": f"005{CANARY}"}
        return json.dumps({"ChangeEventHeader": header, "EventUuid": f"{CANARY}-uuid", **fields}).encode()

    return [
        sf("Contact", Email=f"{CANARY}.anna@example.de", LastName=f"{CANARY}Last", MailingCountry="DE",
           Description=f"{CANARY} prefers calls; card 4111 1111 1111 1111"),
        sf("Contact", Email=f"{CANARY}@example.com", MailingCountry="US", Phone="+1 202 555 0143"),
        sf("Lead", Company=f"{CANARY}Co", Country="GB", Description=f"password={CANARY}Secret123!"),
        sf("Contact", Email=f"{CANARY}@nowhere.example"),  # no jurisdiction: quarantined
        sf(f"{CANARY} Entity", MailingCountry="DE"),  # an entity that cannot be a topic name
        sf("Contact", "DELETE"),
        f'{{"not json {CANARY}'.encode(),  # undecodable
        json.dumps({"op": "u", "after": {"email": f"{CANARY}@example.fr", "country": "FR"},
                    "source": {"table": "contacts", "db": f"{CANARY}db"}}).encode(),
        f"raising {CANARY}".encode(),  # the evaluator fails on it, quoting the value (a buggy decoder)
        None,
    ]


@pytest.fixture
def prometheus() -> Iterator[setup.Telemetry]:
    """The router's proxy instruments bound to a provider whose
    Prometheus reader this test reads, and bound back afterwards."""
    with prometheus_bound() as built:
        yield built


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test. The global TracerProvider is set once per process: an SDK
    one already installed gets this exporter added (and shut down after, so it takes no more)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        exporter.shutdown()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _processor(status: ProviderStatus) -> RouterProcessor:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["pipeline"]["ingress"] = [{"topic": INGRESS, "jurisdiction": "eu", "decoder": "auto"}]
    config = parse_config(doc)
    real = evaluator_for(config, EXAMPLE.parent)

    def evaluate(topic: str, value: bytes | None, key: bytes | None, headers: Any) -> Any:
        if value is not None and value.startswith(b"raising "):
            raise ValueError(f"cannot decode {value.decode()}")
        return real(topic, value, key, headers)

    placed = {t.name: t.jurisdiction for t in config.topics} | {INGRESS: "eu"}

    class Placement:
        def permitted(self, topic: str, jurisdiction: str) -> bool:
            return placed.get(topic) == jurisdiction

        def partitions(self, topic: str) -> int:
            return 3

        def verdict(self) -> str:
            return "ok@1"

    jurisdictions = list(config.jurisdictions)
    ring = LocalKeyring.from_keys({j: {1: os.urandom(32)} for j in jurisdictions},
                                  {"router-signing": {1: os.urandom(32)}})
    provider = LocalKeyProvider(ring)
    keys = observe_keys(JurisdictionKeys({j: (provider, j) for j in jurisdictions}), status)
    sealer = Sealer(CachingDekManager(keys, DekPolicy(1000, 60)), LocalSigner(ring, "router-signing"))
    settings = RouterSettings(
        quarantine_topic=lambda j: f"quarantine.{j}",
        audit_topic="audit",
        instance_id="canary",
        origin_jurisdiction=lambda _t: "eu",
        audit_jurisdiction="eu",
    )
    return RouterProcessor(evaluate, Placement(), sealer, AuditChain(), settings, DigestKeys(keys))


def test_no_canary_value_reaches_metrics_logs_or_spans(
    prometheus: setup.Telemetry, spans: InMemorySpanExporter, json_logs: io.StringIO
) -> None:
    status = ProviderStatus()
    proc = _processor(status)
    msgs = [
        FakeMessage(INGRESS, i % 3, i, value, f"{CANARY}-key-{i}".encode(), [("x-trace-note", CANARY.encode())])
        for i, value in enumerate(_events())
    ]
    outs = proc.process(msgs)  # type: ignore[arg-type]
    assert len([o for o in outs if o.topic == "audit"]) == len(msgs)  # one audit record per input

    health = RouterHealth(keys=status, lag=ConsumerLag())
    activate(health)
    server = MetricsServer("127.0.0.1:0", health, prometheus.render).start()
    try:
        host, port = server.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
            metrics_text = resp.read().decode()
    finally:
        server.stop()
        deactivate(health)

    span_dump = json.dumps([json.loads(s.to_json()) for s in spans.get_finished_spans()])
    logs = json_logs.getvalue()
    # each channel saw this batch (the checks below are not vacuous) ...
    assert 'router_decisions_total{decision="route"' in metrics_text
    assert 'reason="PROCESSING_ERROR"' in metrics_text and 'reason="UNRESOLVED_JURISDICTION"' in metrics_text
    assert "router_keys_duration_seconds_count" in metrics_text
    assert any(s.name == "router.batch" for s in spans.get_finished_spans())
    assert all(json.loads(line)["message"] for line in logs.splitlines())
    assert "failed: ValueError" in logs  # the processor's line for the record the evaluator failed on
    # ... and none of them holds a planted value
    for name, text in (("metrics", metrics_text), ("spans", span_dump), ("logs", logs)):
        assert CANARY.lower() not in text.lower(), f"a canary value reached the {name}"
