"""Reading committed records for the command-line readers (audit trail, quarantine): a
``read_committed`` consumer that is assigned partitions and never joins a group or commits, and the
partitions of a topic with an error that names the setting to check.

``confluent_kafka`` is imported inside the functions, so modules whose pure part must load without
a Kafka client can use these."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any


def committed_reader(consumer_config: Mapping[str, Any], *, group_prefix: str, group_id: str | None = None) -> Any:
    """A consumer reading committed records only, from the earliest offset, with end-of-partition
    events. ``group_id`` (default: a fresh ``<group_prefix>-<uuid>``) is used only to read that
    group's committed offsets: the consumer is assigned partitions, it never joins nor commits."""
    from confluent_kafka import Consumer  # noqa: PLC0415

    conf: dict[str, Any] = {"group.id": f"{group_prefix}-{uuid.uuid4().hex}", **consumer_config}
    if group_id is not None:
        conf["group.id"] = group_id
    conf.update({
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    return Consumer(conf)


def partitions_of(consumer: Any, topic: str, timeout: float, *, what: str, hint: str,
                  error: Callable[[str], Exception]) -> list[int]:
    """The sorted partition ids of ``topic``. Raises ``error(message)`` when the cluster cannot be
    read or the topic does not exist; the message names ``what`` the topic is and ends with
    ``hint`` (the setting to check)."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as err:
        raise error(f"could not read metadata of {what} {topic!r}: {err}") from None
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        why = t.error.str() if t is not None and t.error is not None else "it does not exist"
        raise error(f"{what} {topic!r} cannot be read: {why} ({hint})")
    return sorted(t.partitions)
