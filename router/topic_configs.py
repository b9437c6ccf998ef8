"""Topic configuration as the cluster reports it: the Admin API's ``describe_configs``.

What the cluster reports is the *effective* value of each setting: the topic's own override, else
the broker's default (``retention.ms`` falls back to ``log.retention.ms``/``hours``), so a reader
never has to guess defaults. A topic whose configuration cannot be read (the principal lacks
DESCRIBE_CONFIGS on it, the topic does not exist, a time-out) is returned with the error and its
Kafka error name, never raised, so each caller decides: the evidence report shows the error
(:mod:`router.report.kafka`), ``run`` refuses to start (:mod:`router.pipeline.ingress_retention`).

``confluent_kafka`` is imported inside the function, so pure modules may import the result type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TopicConfigs:
    """The requested settings of one topic, or why they could not be read."""

    topic: str
    values: Mapping[str, str | None] = field(default_factory=dict)
    """Setting name -> its effective value; a setting the answer did not include is absent."""
    error: str | None = None
    """``<exception type>: <message>`` when the topic's configuration could not be read."""
    error_name: str | None = None
    """The Kafka error's name (``TOPIC_AUTHORIZATION_FAILED``, ``UNKNOWN_TOPIC_OR_PART``, ...), when
    the failure was a Kafka error."""


def _kafka_error_name(err: BaseException) -> str | None:
    first = err.args[0] if err.args else None
    name = getattr(first, "name", None)
    if callable(name):  # a confluent_kafka KafkaError
        value = name()
        return value if isinstance(value, str) else None
    return None


def describe_topic_configs(admin: Any, topics: Iterable[str], names: Iterable[str], *,
                           timeout: float = 30.0) -> dict[str, TopicConfigs]:
    """The settings ``names`` of each of ``topics`` as the cluster reports them, one
    :class:`TopicConfigs` per topic (one ``describe_configs`` request for all of them)."""
    from confluent_kafka.admin import ConfigResource, ResourceType  # noqa: PLC0415

    wanted = sorted(set(topics))
    keep = tuple(names)
    if not wanted:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in wanted],
                                     request_timeout=timeout)
    out: dict[str, TopicConfigs] = {}
    for resource, future in futures.items():
        topic = resource.name
        try:
            entries = future.result(timeout=timeout)
        except Exception as err:  # any failure is reported for its topic, never raised
            out[topic] = TopicConfigs(topic, error=f"{type(err).__name__}: {err}", error_name=_kafka_error_name(err))
            continue
        values: dict[str, str | None] = {}
        for name in keep:
            entry = entries.get(name)
            if entry is not None:
                values[name] = None if entry.value is None else str(entry.value)
        out[topic] = TopicConfigs(topic, values)
    return out
