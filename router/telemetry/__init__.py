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
stalls = meter.create_counter(
    "router.stalls", unit="{stall}", description="Back-offs because a dependency was unavailable"
)


def trace_headers() -> list[tuple[str, bytes]]:
    """W3C trace-context headers (``traceparent``, ``tracestate``) for the current span."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]
