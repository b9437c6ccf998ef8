"""The router's metrics read through a Prometheus reader of the test's own (unit tests of metrics,
endpoints and the canary run)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.metrics import _internal as metrics_api

from router import telemetry
from router.telemetry import setup
from router.telemetry.config import TelemetryConfig


@contextlib.contextmanager
def prometheus_bound() -> Iterator[setup.Telemetry]:
    """The router's instruments bound to a fresh MeterProvider whose Prometheus reader feeds a
    registry of this test's own.

    The OpenTelemetry API sets its global provider once per process (another test may have); the
    router's instruments are the API's proxies, created at import, so they are re-bound here the
    way the API binds them when a provider is first set, and bound back afterwards."""
    assert isinstance(telemetry.meter, metrics_api._ProxyMeter), "router.telemetry imported after a provider was set"
    built = setup.build(TelemetryConfig(metrics_address="127.0.0.1:0"))
    previous = metrics_api._METER_PROVIDER
    metrics_api._PROXY_METER_PROVIDER.on_set_meter_provider(built.meter_provider)
    try:
        yield built
    finally:
        if previous is not None:
            metrics_api._PROXY_METER_PROVIDER.on_set_meter_provider(previous)
        built.meter_provider.shutdown()
