"""``/metrics``, ``/healthz`` and ``/readyz`` served on a free port over a fake engine snapshot:
counters that are driven move in the scraped text, readiness flips with each of its causes and
comes back when the cause clears, and a busy address is a ConfigError naming the setting."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router import telemetry
from router.errors import ConfigError
from router.keys.errors import KeyUnavailable
from router.pipeline.engine import EngineHealth, EngineStats
from router.telemetry import setup
from router.telemetry.config import TelemetryConfig
from router.telemetry.health import ConsumerLag, RouterHealth, activate, deactivate
from router.telemetry.keys import JurisdictionProvider, ProviderOutcome, ProviderStatus
from router.telemetry.runtime import RouterTelemetry
from router.telemetry.server import MetricsServer
from tests.unit.telemetry_util import prometheus_bound

pytestmark = pytest.mark.unit


@pytest.fixture
def prometheus() -> Iterator[setup.Telemetry]:
    """The router's instruments bound to a fresh MeterProvider whose Prometheus reader feeds a
    registry of this test's own (bound back afterwards)."""
    with prometheus_bound() as built:
        yield built


@dataclass
class FakeEngine:
    """The engine's health snapshot, set by the test."""

    assigned: frozenset[tuple[str, int]] = frozenset()
    stall_cause: str | None = None
    stall_detail: str | None = None
    stats: EngineStats = field(default_factory=EngineStats)

    def health(self) -> EngineHealth:
        return EngineHealth(self.assigned, self.stall_cause, self.stall_detail, 1.5, EngineStats(**vars(self.stats)))


@dataclass
class Report:
    taken_at: float
    ok: bool = True
    failures: tuple[Any, ...] = ()


@dataclass
class FakeWatch:
    """What PlacementWatch answers: a report taken at ``taken_at`` on the test's clock."""

    report: Report | None = None
    expired: bool = False
    reason: str | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served(prometheus: setup.Telemetry) -> Iterator[tuple[str, RouterHealth, FakeEngine, FakeWatch, ProviderStatus]]:
    engine, watch, keys, clock = FakeEngine(), FakeWatch(), ProviderStatus(), Clock()
    health = RouterHealth(engine, watch, keys, ConsumerLag(), clock=clock)
    activate(health)
    server = MetricsServer("127.0.0.1:0", health, prometheus.render).start()
    host, port = server.address
    try:
        yield f"http://{host}:{port}", health, engine, watch, keys
    finally:
        server.stop()
        deactivate(health)


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def _samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics as (name, labels without the otel scope labels) -> value."""
    status, body, ctype = _get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope"))
            out[(s.name, labels)] = s.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _ready(base: str) -> tuple[int, dict[str, Any]]:
    status, body, ctype = _get(base + "/readyz")
    assert ctype == "application/json"
    return status, json.loads(body)


def _make_ready(engine: FakeEngine, watch: FakeWatch) -> None:
    engine.assigned = frozenset({("crm.ingress", 0), ("crm.ingress", 1)})
    watch.report = Report(taken_at=990.0)


def test_healthz_answers_while_the_process_serves(served: Any) -> None:
    base, *_ = served
    status, body, _ = _get(base + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "alive"
    assert _get(base + "/nope")[0] == 404


def test_driven_counters_move_in_the_scraped_text(served: Any) -> None:
    base, _health, engine, *_ = served
    before = _samples(base)
    labels = {"decision": "quarantine", "reason": "POLICY_DENIED", "jurisdiction": "eu"}
    telemetry.decisions.add(3, labels)
    telemetry.batches.add(2)
    telemetry.aborts.add(1, {"cause": "stall"})
    engine.stats.consumed, engine.stats.produced, engine.stats.producer_restarts = 40, 120, 2
    after = _samples(base)

    assert _value(after, "router_decisions_total", **labels) - _value(before, "router_decisions_total", **labels) == 3
    assert _value(after, "router_batches_total") - _value(before, "router_batches_total") == 2
    aborts = ("router_transaction_aborts_total", {"cause": "stall"})
    assert _value(after, aborts[0], **aborts[1]) - _value(before, aborts[0], **aborts[1]) == 1
    assert _value(after, "router_records_consumed_total") == 40
    assert _value(after, "router_records_produced_total") == 120
    assert _value(after, "router_producer_recreations_total") == 2


def test_lag_stall_and_verdict_age_gauges_read_the_snapshot(served: Any) -> None:
    base, health, engine, watch, _ = served
    _make_ready(engine, watch)
    # librdkafka statistics for partitions 0, 1 (assigned) and 2 (not ours): only ours are exported
    health.lag.on_stats(json.dumps({"topics": {"crm.ingress": {"partitions": {
        "0": {"partition": 0, "ls_offset": 100, "hi_offset": 100, "app_offset": 60, "committed_offset": 50},
        "1": {"partition": 1, "ls_offset": 10, "hi_offset": 12, "app_offset": -1001, "committed_offset": 10},
        "2": {"partition": 2, "ls_offset": 500, "hi_offset": 500, "app_offset": 0},
        "-1": {"partition": -1, "ls_offset": -1, "hi_offset": -1},
    }}}}))
    engine.stall_cause, engine.stall_detail = "StallError", "key unavailable: eu"
    s = _samples(base)
    assert _value(s, "router_consumer_lag", topic="crm.ingress", partition="0") == 40
    assert _value(s, "router_consumer_lag", topic="crm.ingress", partition="1") == 0
    assert ("router_consumer_lag", frozenset({("topic", "crm.ingress"), ("partition", "2")})) not in s
    assert _value(s, "router_stalled", cause="StallError") == 1
    assert _value(s, "router_partitions_assigned") == 2
    assert _value(s, "router_placement_verdict_age_seconds") == 10.0
    assert _value(s, "router_ready") == 0

    engine.stall_cause = engine.stall_detail = None
    s = _samples(base)
    assert _value(s, "router_stalled", cause="none") == 0
    assert _value(s, "router_ready") == 1


def test_readyz_flips_with_each_cause_and_comes_back(served: Any) -> None:
    base, _health, engine, watch, keys = served
    status, body = _ready(base)
    assert status == 503 and not body["ready"]
    assert any("no partitions assigned" in r for r in body["reasons"])
    assert any("placement verdict not fresh" in r for r in body["reasons"])

    _make_ready(engine, watch)
    status, body = _ready(base)
    assert (status, body["ready"], body["reasons"]) == (200, True, [])
    assert body["partitions"] == ["crm.ingress[0]", "crm.ingress[1]"]

    engine.stall_cause, engine.stall_detail = "transactions_failing", "10 transactions in a row failed; last: x"
    status, body = _ready(base)
    assert status == 503 and body["stalled"] == "transactions_failing"
    engine.stall_cause = engine.stall_detail = None
    assert _ready(base)[0] == 200

    watch.expired, watch.reason = True, "the last successful placement check is 31.0 s old"
    status, body = _ready(base)
    assert status == 503 and body["reasons"] == [
        "placement verdict not fresh: the last successful placement check is 31.0 s old"
    ]
    watch.expired, watch.reason = False, None
    assert _ready(base)[0] == 200

    keys.record(ProviderOutcome("bao", "eu", "KeyUnavailable"))
    keys.record(ProviderOutcome("bao", "us", None))
    status, body = _ready(base)
    assert status == 503 and body["keys"]["failing"] == ["bao/eu: KeyUnavailable"]
    keys.record(ProviderOutcome("bao", "eu", None))
    assert _ready(base)[0] == 200


def test_a_busy_address_is_a_config_error_naming_the_setting(prometheus: setup.Telemetry) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(ConfigError, match=r"telemetry\.metrics_address '127\.0\.0\.1:\d+': cannot listen"):
            MetricsServer(address, RouterHealth(), prometheus.render).start()


def test_the_demo_runs_on_without_the_endpoints_when_the_address_is_busy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    installed: list[TelemetryConfig | None] = []

    def fake_install(cfg: TelemetryConfig | None, **_: Any) -> setup.Telemetry:
        installed.append(cfg)
        return setup.Telemetry(None, None, None)

    monkeypatch.setattr("router.telemetry.runtime.install", fake_install)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        optional = RouterTelemetry(TelemetryConfig(metrics_address=address), required=False)
        with caplog.at_level(logging.WARNING, logger="router.telemetry"):
            optional.start()
        assert optional.server is None
        assert any(address in r.getMessage() and "running without" in r.getMessage() for r in caplog.records)
        optional.stop()
        required = RouterTelemetry(TelemetryConfig(metrics_address=address))
        with pytest.raises(ConfigError, match="telemetry.metrics_address"):
            required.start()
    assert len(installed) == 2


def test_telemetry_off_adds_no_consumer_statistics() -> None:
    assert RouterTelemetry(None).consumer_overrides() == {}
    on = RouterTelemetry(TelemetryConfig(lag_interval_s=2))
    overrides = on.consumer_overrides()
    assert overrides["statistics.interval.ms"] == 2000
    assert overrides["stats_cb"] == on.lag.on_stats


class FlakyProvider:
    """A key provider that fails while ``down`` is set."""

    name = "bao"

    def __init__(self) -> None:
        self.down = False

    def digest_key(self, key_id: str) -> bytes:
        if self.down:
            raise KeyUnavailable("OpenBao unreachable", retriable=True, key_id=key_id)
        return b"k" * 32


def test_key_provider_latency_and_errors_by_jurisdiction_and_its_last_outcome(served: Any) -> None:
    base, _health, engine, watch, keys = served
    _make_ready(engine, watch)
    inner = FlakyProvider()
    provider = JurisdictionProvider(inner, "eu", keys)  # type: ignore[arg-type]
    labels = {"provider": "bao", "jurisdiction": "eu", "op": "digest_key"}
    before = _samples(base)
    provider.digest_key("rr-eu")
    inner.down = True
    with pytest.raises(KeyUnavailable):
        provider.digest_key("rr-eu")
    after = _samples(base)
    count = "router_keys_duration_seconds_count"
    assert _value(after, count, **labels) - _value(before, count, **labels) == 2
    errors = ("router_keys_errors_total", {**labels, "error": "KeyUnavailable"})
    assert _value(after, errors[0], **errors[1]) - _value(before, errors[0], **errors[1]) == 1
    assert _value(after, "router_keys_duration_seconds_bucket", **labels, le="1") - _value(
        before, "router_keys_duration_seconds_bucket", **labels, le="1") == 2  # buckets are in seconds
    assert not any("rr-eu" in str(k) for k in after)  # the key id is not a label
    status, body = _ready(base)
    assert status == 503 and body["keys"]["failing"] == ["bao/eu: KeyUnavailable"]
    inner.down = False
    provider.digest_key("rr-eu")
    assert _ready(base)[0] == 200
