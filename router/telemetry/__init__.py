"""OpenTelemetry instrumentation: one tracer and one meter for the whole router.

Only the API is used here; exporters are configured by the operator through the standard
OpenTelemetry SDK environment (``OTEL_*``) or by embedding code. Without an SDK the calls are
no-ops and cost next to nothing. Attributes never carry field values: only topics, partitions,
jurisdictions, reason codes and counts.
"""

from __future__ import annotations

from opentelemetry import metrics, trace
from opentelemetry.propagate import inject

tracer = trace.get_tracer("residency-router")
meter = metrics.get_meter("residency-router")

decisions = meter.create_counter(
    "router.decisions", unit="{event}", description="Events decided, by decision, reason and jurisdiction"
)
batches = meter.create_counter("router.batches", unit="{batch}", description="Transactions committed")
aborts = meter.create_counter(
    "router.transaction.aborts", unit="{transaction}", description="Transactions aborted, by cause"
)
poison = meter.create_counter(
    "router.records.failed",
    unit="{event}",
    description="Records the router failed on (quarantined PROCESSING_ERROR), by exception type",
)
stalls = meter.create_counter(
    "router.stalls", unit="{stall}", description="Back-offs because a dependency was unavailable"
)


def trace_headers() -> list[tuple[str, bytes]]:
    """W3C trace-context headers (``traceparent``, ``tracestate``) for the current span."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def configure(service_name: str = "residency-router") -> None:
    """Install the OpenTelemetry SDK tracer and meter providers unless the host already did.

    With them, every batch span has a real trace id, which travels in each output record's
    ``traceparent`` header and in its audit record. Exporters are the operator's choice: set
    ``OTEL_TRACES_EXPORTER=console`` / ``OTEL_METRICS_EXPORTER=console`` (or configure an OTLP
    exporter in embedding code); none is installed by default, so nothing leaves the process.
    """
    import os  # noqa: PLC0415

    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    resource = Resource.create({"service.name": service_name})
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=resource)
        if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor  # noqa: PLC0415

            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        readers = []
        if os.environ.get("OTEL_METRICS_EXPORTER") == "console":
            from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
                ConsoleMetricExporter,
                PeriodicExportingMetricReader,
            )

            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=5000))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
