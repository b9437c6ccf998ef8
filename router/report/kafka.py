"""The Kafka shell of the evidence report: the audit trail and the retention of the topics written.

The trail is read with :func:`router.audit.kafka.read_audit` (``read_committed``, from the beginning
to the end each partition had when the read started), the reader ``audit verify`` uses. Topic
retention comes from the cluster, never from the config: ``retention.ms`` and ``cleanup.policy``
through the admin client's ``describe_configs`` (:func:`router.topic_configs.describe_topic_configs`,
which ``run``'s ingress retention check reads too). A topic whose config cannot be read is reported
with the error (e.g. a missing DESCRIBE_CONFIGS grant), not left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from router.report.model import TopicRetention
from router.topic_configs import describe_topic_configs


def _retention_ms(value: str | None) -> int | None:
    """``retention.ms``; None for ``-1`` (unlimited) or a value that is not an integer."""
    try:
        ms = int(value) if value is not None else -1
    except ValueError:
        return None
    return None if ms < 0 else ms


def topic_retention(props: Mapping[str, Any], topics: Iterable[str], *, timeout: float = 30.0,
                    admin: Any = None) -> dict[str, TopicRetention]:
    """``retention.ms`` and ``cleanup.policy`` of each of ``topics`` as the cluster reports them."""
    from router.kafka_read import admin_client  # noqa: PLC0415

    wanted = sorted(set(topics))
    if not wanted:
        return {}
    client = admin if admin is not None else admin_client(props)
    out: dict[str, TopicRetention] = {}
    for topic, read in describe_topic_configs(client, wanted, ("retention.ms", "cleanup.policy"),
                                              timeout=timeout).items():
        if read.error is not None:
            out[topic] = TopicRetention(topic, None, None, f"config not readable: {read.error}")
            continue
        out[topic] = TopicRetention(topic, _retention_ms(read.values.get("retention.ms")),
                                    read.values.get("cleanup.policy"))
    return out
