"""The ``audit:`` section of the router config: where the hash-chained audit trail is written.

Example::

    audit:
      topic: audit
      partitions: 3
      jurisdiction: eu     # the home jurisdiction: every replica of the audit topic sits there

Audit records hold names, positions and hashes, never field values; the topic is still placed in
one jurisdiction so that the trail itself stays where the operator's records live.
"""

from __future__ import annotations

from pydantic import Field

from router.config.models import JurisdictionName, StrictModel


class AuditConfig(StrictModel):
    """Where audit records go. Audit partition of an event = ingress partition % ``partitions``."""

    topic: str = Field(default="audit", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=3, ge=1, description="must match the audit topic's partition count")
    jurisdiction: JurisdictionName = Field(description="the jurisdiction whose brokers hold the audit topic")
