"""The ``pipeline:`` config section: consumer group, transactions, batching, failure policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from router.config.models import StrictModel


class IngressConfig(StrictModel):
    """One ingress topic and the decoder for its records."""

    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    decoder: str = Field(
        default="auto",
        description="salesforce-json, salesforce-avro, confluent-avro, debezium-json, generic-json or auto",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="decoder options (e.g. generic-json mapping)")


class PipelineConfig(StrictModel):
    """How the router consumes, batches and commits."""

    ingress: list[IngressConfig] = Field(min_length=1, description="the topics the router consumes")
    schema_dir: Path | None = Field(
        default=None,
        description="directory of .avsc files with registry.json (default: the schemas shipped with the router)",
    )
    schema_registry_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="a Confluent-compatible Schema Registry instead of schema_dir",
    )

    group_id: str = Field(default="residency-router", min_length=1, description="consumer group of all instances")
    transactional_id_prefix: str = Field(
        default="residency-router",
        min_length=1,
        description="each instance uses '<prefix>-<instance id>' as its stable transactional.id",
    )
    batch_size: int = Field(default=500, ge=1, le=100_000, description="records per consume() call")
    commit_interval_ms: int = Field(
        default=100, ge=1, le=60_000, description="commit a transaction at least this often"
    )
    commit_max_records: int = Field(
        default=5000, ge=1, description="commit once this many records are in a transaction"
    )
    session_timeout_ms: int = Field(default=10_000, ge=6000, le=300_000)
    transaction_timeout_ms: int = Field(default=10_000, ge=1000, le=900_000)
    stall_backoff_max_s: float = Field(default=10.0, gt=0, le=300)
    max_record_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger ingress records are quarantined OVERSIZED"
    )
