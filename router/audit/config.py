"""The ``audit:`` section of the router config: where the hash-chained audit trail is written.

Example::

    audit:
      topic: audit
      jurisdiction: eu     # every replica of the audit topic sits there

Audit records hold names, positions and hashes, never field values; the topic is still placed in
one jurisdiction so that the trail itself stays where the operator's records live.

There is no partition setting. Each ingress partition has its own chain (one writer: the instance
that owns the ingress partition); its records go to the audit partition a stable hash of the
ingress topic and partition picks, modulo the audit topic's partition count (the count the trail
already records, if the topic has grown since; see :func:`router.audit.record.chain_partition`).
Several chains may share an audit partition, so any partition count works, and ingress partitions
or topics added later need no change here. More audit partitions spread the chains (and the
reading of their tails after a rebalance) wider. See docs/audit.md.
"""

from __future__ import annotations

from pydantic import Field

from router.config.base import JurisdictionName, StrictModel


class AuditConfig(StrictModel):
    """Where audit records go (the partition count is the topic's own; chains are hashed over it)."""

    topic: str = Field(default="audit", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    jurisdiction: JurisdictionName = Field(description="the jurisdiction whose brokers hold the audit topic")
