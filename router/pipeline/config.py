"""The ``pipeline:`` config section: consumer group, transactions, batching, failure policies."""

from __future__ import annotations

from pydantic import Field

from router.config.models import StrictModel


class PipelineConfig(StrictModel):
    """How the router consumes, batches and commits."""

    group_id: str = Field(default="residency-router", min_length=1, description="consumer group of all instances")
    transactional_id_prefix: str = Field(
        default="residency-router", min_length=1,
        description="each instance uses '<prefix>-<instance id>' as its stable transactional.id",
    )
    batch_size: int = Field(default=500, ge=1, le=100_000, description="records per consume() call")
    commit_interval_ms: int = Field(default=100, ge=1, le=60_000, description="commit a transaction at least this often")
    commit_max_records: int = Field(default=5000, ge=1, description="commit once this many records are in a transaction")
    session_timeout_ms: int = Field(default=10_000, ge=6000, le=300_000)
    transaction_timeout_ms: int = Field(default=10_000, ge=1000, le=900_000)
    stall_backoff_max_s: float = Field(default=10.0, gt=0, le=300)
    max_record_bytes: int = Field(default=1_048_576, ge=1024, description="larger ingress records are quarantined OVERSIZED")
