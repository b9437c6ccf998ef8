"""Install the OpenTelemetry SDK for ``run``: a Prometheus reader behind ``/metrics`` and OTLP/HTTP
exporters for traces and metrics, as ``telemetry:`` asks.

The router's instruments (:mod:`router.telemetry`, :mod:`router.keys.wrappers`) are created from
the global OpenTelemetry API at import time; :func:`install` sets the global providers they bind
to. The Prometheus reader writes into a :class:`prometheus_client.CollectorRegistry` of its own
(with the process collector: CPU, memory, open files), not the library's global one, so the text
``/metrics`` serves holds the router's metrics and nothing an embedding program registered.
``OTEL_TRACES_EXPORTER=console`` / ``OTEL_METRICS_EXPORTER=console`` still print to stdout, as
:func:`router.telemetry.configure` documents.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

from router.telemetry.config import TelemetryConfig

log = logging.getLogger("router.telemetry")


@dataclass
class Telemetry:
    """What :func:`build` made: the providers, and the registry ``/metrics`` renders."""

    meter_provider: Any
    tracer_provider: Any
    registry: Any | None
    """A ``prometheus_client.CollectorRegistry``, or None when no metrics address is set."""
    installed: bool = False
    """True once :func:`install` made them the global providers."""
    _closed: bool = field(default=False, repr=False)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of the registry and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        if self.registry is None:
            return b"", CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def shutdown(self) -> None:
        """Flush the exporters (the last spans and metrics reach the collector) and stop them."""
        if self._closed:
            return
        self._closed = True
        for provider in (self.tracer_provider, self.meter_provider):
            try:
                provider.shutdown()
            except Exception as err:
                log.warning("telemetry shutdown: %s", type(err).__name__)


def _otlp_url(base: str, signal: str) -> str:
    return f"{base}/v1/{signal}"


def build(cfg: TelemetryConfig | None, *, instance_id: str | None = None) -> Telemetry:
    """Providers for ``cfg`` (not installed): a Prometheus reader when ``metrics_address`` is set,
    OTLP/HTTP span and metric exporters when ``otlp_endpoint`` is set."""
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    cfg = cfg or TelemetryConfig()
    attrs = {"service.name": cfg.service_name}
    if instance_id:
        attrs["service.instance.id"] = instance_id
    resource = Resource.create(attrs)
    readers: list[MetricReader] = []
    registry = None
    if cfg.metrics_address is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
        from prometheus_client import CollectorRegistry, ProcessCollector  # noqa: PLC0415

        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        readers.append(PrometheusMetricReader(registry=registry))
    if cfg.otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: PLC0415

        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=_otlp_url(cfg.otlp_endpoint, "metrics")),
                export_interval_millis=cfg.otlp_interval_s * 1000,
            )
        )
    if os.environ.get("OTEL_METRICS_EXPORTER") == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter  # noqa: PLC0415

        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=5000))
    tracer_provider = TracerProvider(resource=resource)
    if cfg.otlp_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_otlp_url(cfg.otlp_endpoint,
                                                                                                  "traces"))))
    if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor  # noqa: PLC0415

        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return Telemetry(MeterProvider(resource=resource, metric_readers=readers), tracer_provider, registry)


def install(cfg: TelemetryConfig | None, *, instance_id: str | None = None) -> Telemetry:
    """:func:`build`, then make its providers the global ones. The OpenTelemetry API lets a process
    set each global provider once: when an embedding program already did, its providers stay, a
    warning says so, and ``/metrics`` shows only the process metrics."""
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    built = build(cfg, instance_id=instance_id)
    taken = []
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        taken.append("TracerProvider")
    else:
        trace.set_tracer_provider(built.tracer_provider)
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        taken.append("MeterProvider")
    else:
        metrics.set_meter_provider(built.meter_provider)
    if taken:
        log.warning(
            "an OpenTelemetry %s was already installed in this process; the router's telemetry settings "
            "do not apply to it", " and ".join(taken),
        )
    built.installed = not taken
    return built
