"""The ``audit:`` section of the router config: where the hash-chained audit trail is written.

Example::

    audit:
      topic: audit
      jurisdiction: eu     # every replica of the audit topic sits there

Audit records hold names, positions and hashes, never field values; the topic is still placed in
one jurisdiction so that the trail itself stays where the operator's records live.

There is no partition setting: an event's audit record goes to the audit partition numbered like
its ingress partition (one chain, and one writer, per ingress partition), and ``run`` checks at
start-up that the audit topic, as created under ``topics:``, has at least as many partitions as
every ingress topic.
"""

from __future__ import annotations

from pydantic import Field

from router.config.base import JurisdictionName, StrictModel


class AuditConfig(StrictModel):
    """Where audit records go (the partition count is the topic's own, checked at start-up)."""

    topic: str = Field(default="audit", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    jurisdiction: JurisdictionName = Field(description="the jurisdiction whose brokers hold the audit topic")
