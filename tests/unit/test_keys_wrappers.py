"""Retries and metrics wrap any provider; failures stay typed and never carry secrets."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from router.keys.errors import KeyUnavailable
from router.keys.protocol import DataKey, KeyRef
from router.keys.wrappers import InstrumentedProvider, RetryingProvider

pytestmark = pytest.mark.unit

SECRET = b"\x11" * 32


class Flaky:
    name = "flaky"

    def __init__(self, failures: list[KeyUnavailable]) -> None:
        self.failures = failures
        self.calls = 0

    def new_data_key(self, key_id: str) -> DataKey:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return DataKey(KeyRef(key_id, 1), b"wrapped", SECRET)

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        return self.new_data_key(kek.key_id).plaintext

    def digest_key(self, key_id: str) -> bytes:
        return self.new_data_key(key_id).plaintext


def _down() -> KeyUnavailable:
    return KeyUnavailable("down", retriable=True, key_id="eu")


def test_retriable_failures_are_retried_until_success() -> None:
    inner = Flaky([_down(), _down()])
    sleeps: list[float] = []
    assert RetryingProvider(inner, attempts=3, sleep=sleeps.append).new_data_key("eu").plaintext == SECRET
    assert inner.calls == 3
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] * 0.9


def test_retries_give_up_with_the_retriable_error() -> None:
    inner = Flaky([_down(), _down(), _down()])
    with pytest.raises(KeyUnavailable) as err:
        RetryingProvider(inner, attempts=2, sleep=lambda _s: None).unwrap(KeyRef("eu", 1), b"w")
    assert err.value.retriable
    assert inner.calls == 2


def test_non_retriable_failures_are_not_retried() -> None:
    inner = Flaky([KeyUnavailable("gone", retriable=False, key_id="eu")])
    with pytest.raises(KeyUnavailable):
        RetryingProvider(inner, attempts=5, sleep=lambda _s: None).new_data_key("eu")
    assert inner.calls == 1


def test_retries_stop_at_the_deadline() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    inner = Flaky([_down()] * 10)
    with pytest.raises(KeyUnavailable):
        RetryingProvider(
            inner,
            attempts=10,
            initial_backoff_s=1.0,
            max_backoff_s=1.0,
            deadline_s=2.0,
            sleep=sleep,
            clock=lambda: now[0],
        ).new_data_key("eu")
    assert inner.calls <= 4


def test_instrumented_provider_counts_calls_by_outcome_without_secrets() -> None:
    from opentelemetry import metrics

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    inner = Flaky([_down()])
    p = InstrumentedProvider(inner)
    with pytest.raises(KeyUnavailable):
        p.new_data_key("eu")
    p.new_data_key("eu")
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        (dict(pt.attributes or {}), getattr(pt, "value", None))
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "router.keys.provider.calls"
        for pt in m.data.data_points
    ]
    outcomes = {a["outcome"]: v for a, v in points}
    assert outcomes == {"retriable": 1, "ok": 1}
    assert SECRET.hex() not in repr(data.to_json())


def test_key_unavailable_message_names_key_and_retriability() -> None:
    err = KeyUnavailable("OpenBao unreachable", retriable=True, key_id="rr-eu", version=3)
    assert str(err) == "KEY_UNAVAILABLE key 'rr-eu' version 3 (retriable): OpenBao unreachable"
