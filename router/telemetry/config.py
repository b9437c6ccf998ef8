"""The ``telemetry:`` section of the router config (optional; everything off when absent).

- ``metrics_address``: ``host:port`` where ``run`` serves ``/metrics`` (Prometheus text),
  ``/healthz`` and ``/readyz``; absent means no HTTP server. Port 0 picks a free port.
- ``otlp_endpoint``: the base ``http(s)://`` URL of an OTLP/HTTP collector (as
  ``OTEL_EXPORTER_OTLP_ENDPOINT``: ``/v1/traces`` and ``/v1/metrics`` are appended); absent means
  nothing leaves the process.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from router.config.base import StrictModel


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); ValueError naming the problem."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port from 0 to 65535 (e.g. 127.0.0.1:9464)")
    return host, int(port)


class TelemetryConfig(StrictModel):
    """Where the router exposes metrics and health, and where it exports traces and metrics."""

    metrics_address: str | None = Field(
        default=None, description="host:port for /metrics, /healthz and /readyz; absent: no HTTP server"
    )
    otlp_endpoint: str | None = Field(
        default=None, description="base http(s) URL of an OTLP/HTTP collector; absent: no export"
    )
    service_name: str = Field(default="residency-router", min_length=1, max_length=128)
    lag_interval_s: float = Field(
        default=5.0, ge=0.5, le=300, description="seconds between consumer-lag readings (librdkafka statistics)"
    )
    otlp_interval_s: float = Field(default=30.0, ge=1, le=3600, description="seconds between OTLP metric exports")

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None:
            split_address(v)
        return v

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL (e.g. http://127.0.0.1:4318)")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL without query or fragment")
        return v.rstrip("/")
