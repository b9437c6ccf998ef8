"""Bounded plaintext on the ingress topics: how long each may keep a record, checked before ``run``.

An ingress topic is the one place where raw CDC (LLM prompts included) sits in clear, so the time
the cluster keeps it is part of the residency promise. ``pipeline.ingress[].max_retention`` is the
bound; the topic's *effective* settings, read from the cluster (:mod:`router.topic_configs`), must
keep within it:

- ``retention.ms`` at most the bound, and not ``-1`` (unlimited);
- ``cleanup.policy`` without ``compact``: compaction keeps the last record of each key whatever
  ``retention.ms`` says (``compact`` alone: forever), and with ``compact,delete`` it merges segments,
  so a record can outlive ``retention.ms``;
- ``segment.ms`` at most the bound: Kafka deletes whole segments, once the newest record of a
  segment is older than ``retention.ms``, and a segment keeps taking records until it is ``segment.ms``
  old (or full), so a record can stay ``retention.ms + segment.ms``. Kafka's default ``segment.ms``
  is 7 days, which would make a 6-hour ``retention.ms`` a week on a quiet topic.

:func:`retention_problem` is the decision, a pure function of what the cluster reported;
:func:`check_startup` is the shell ``run`` calls (after the placement check, before anything is
consumed) and raises one :class:`~router.errors.ConfigError` naming each topic, its values, the
bound and the setting to change. :func:`ingress_topic_settings` is what ``topics create`` gives a
new ingress topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.errors import ConfigError
from router.pipeline.config import PipelineConfig
from router.topic_configs import TopicConfigs, describe_topic_configs

SETTINGS = ("retention.ms", "cleanup.policy", "segment.ms")
"""The topic settings the check reads."""
SEGMENT_FRACTION = 10
"""``topics create`` gives a new ingress topic segments of a tenth of its bound (at least a minute,
at most the bound), so that a record stays at most about 1.1 times the bound."""


@dataclass(frozen=True, slots=True)
class IngressBound:
    """The retention bound of one ingress topic and the setting that gives it."""

    topic: str
    bound_ms: int
    setting: str
    """``pipeline.ingress[<i>].max_retention``."""


def bounds_of(pipeline: PipelineConfig | None) -> dict[str, IngressBound]:
    """``topic -> bound`` for every ingress topic; a topic listed twice gets the smaller bound."""
    out: dict[str, IngressBound] = {}
    for i, ingress in enumerate(pipeline.ingress if pipeline is not None else ()):
        bound = IngressBound(ingress.topic, ingress.max_retention_ms, f"pipeline.ingress[{i}].max_retention")
        if ingress.topic not in out or bound.bound_ms < out[ingress.topic].bound_ms:
            out[ingress.topic] = bound
    return out


def segment_ms_for(bound_ms: int) -> int:
    """The ``segment.ms`` ``topics create`` sets on a new ingress topic (see :data:`SEGMENT_FRACTION`)."""
    return min(bound_ms, max(60_000, bound_ms // SEGMENT_FRACTION))


def ingress_topic_settings(bound_ms: int) -> dict[str, str]:
    """The topic config a new ingress topic is created with: within its bound by construction."""
    return {"retention.ms": str(bound_ms), "cleanup.policy": "delete", "segment.ms": str(segment_ms_for(bound_ms))}


def format_ms(ms: int) -> str:
    """A duration in ms as a person reads it: ``6h``, ``7d``, ``1h30m``, ``1500ms``."""
    if ms < 1000 or ms % 1000:
        return f"{ms}ms"
    out, rest = [], ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def _ms(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _not_a_number(name: str, raw: str | None) -> str:
    return f"the cluster reported no {name}" if raw is None else f"{name} is {raw!r}, not a number"


def _unreadable(read: TopicConfigs, bound: IngressBound) -> str:
    head = f"cannot read the config of ingress topic {read.topic} to check {bound.setting}"
    if read.error_name == "TOPIC_AUTHORIZATION_FAILED":
        return (f"{head}: the router's principal lacks DESCRIBE_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED); "
                "grant it (the ACL plan of an access section does: residency-router acls apply)")
    return f"{head}: {read.error or 'the cluster did not answer for it'}"


def retention_problem(read: TopicConfigs, bound: IngressBound) -> str | None:
    """Why the topic may keep records longer than its bound, or None when it keeps within it.

    ``read`` is what the cluster reported for the topic; a setting it did not report, or a value
    that is not a number, fails closed like a value beyond the bound. The reason names the topic,
    the values, the bound and the settings to change; it holds topic settings only, no data.
    """
    if read.error is not None:
        return _unreadable(read, bound)
    found: list[str] = []
    fixes: dict[str, str] = {}
    bound_text = f"{bound.bound_ms} ms ({format_ms(bound.bound_ms)})"
    raisable = True  # raising the bound would help (False for unlimited, compacted or unknown values)

    raw = read.values.get("retention.ms")
    retention = _ms(raw)
    if raw is None or retention is None:
        found.append(_not_a_number("retention.ms", raw))
        fixes["retention.ms"] = str(bound.bound_ms)
        raisable = False
    elif retention < 0:
        found.append(f"retention.ms is {retention} (unlimited)")
        fixes["retention.ms"] = str(bound.bound_ms)
        raisable = False
    elif retention > bound.bound_ms:
        found.append(f"retention.ms is {retention} ({format_ms(retention)})")
        fixes["retention.ms"] = str(bound.bound_ms)

    raw = read.values.get("segment.ms")
    segment = _ms(raw)
    if raw is None or segment is None:
        found.append(_not_a_number("segment.ms", raw))
        fixes["segment.ms"] = str(segment_ms_for(bound.bound_ms))
        raisable = False
    elif segment > bound.bound_ms:
        found.append(f"segment.ms is {segment} ({format_ms(segment)}; whole segments are deleted, so a record "
                     "can stay retention.ms + segment.ms)")
        fixes["segment.ms"] = str(segment_ms_for(bound.bound_ms))

    cleanup = read.values.get("cleanup.policy")
    policies = {p.strip() for p in cleanup.split(",")} if cleanup is not None else set()
    if cleanup is None:
        found.append("the cluster reported no cleanup.policy")
        fixes["cleanup.policy"] = "delete"
        raisable = False
    elif "compact" in policies:
        kept = "the last record of each key forever" if "delete" not in policies else "records past retention.ms"
        found.append(f"cleanup.policy is {cleanup} (compaction keeps {kept})")
        fixes["cleanup.policy"] = "delete"
        raisable = False

    if not found:
        return None
    add_config = ",".join(f"{k}={v}" for k, v in fixes.items())
    needed = max(v for v in (retention, segment) if v is not None) if raisable else 0
    raise_it = f", or raise {bound.setting} to at least {format_ms(needed)}" if raisable else ""
    return (f"ingress topic {read.topic} may keep raw records in clear longer than {bound.setting} = {bound_text}: "
            f"{'; '.join(found)}. Change the topic (kafka-configs --bootstrap-server <brokers> --alter --entity-type "
            f"topics --entity-name {read.topic} --add-config {add_config}){raise_it}")


def problems(reads: Mapping[str, TopicConfigs], bounds: Iterable[IngressBound]) -> list[str]:
    """The reason of every ingress topic outside its bound (a topic the cluster did not answer for
    is unreadable), in the order of ``bounds``."""
    out = []
    for bound in bounds:
        read = reads.get(bound.topic) or TopicConfigs(bound.topic, error="the cluster did not answer for it")
        if (reason := retention_problem(read, bound)) is not None:
            out.append(reason)
    return out


def check_startup(pipeline: PipelineConfig | None, admin: Any, *, timeout: float = 30.0) -> None:
    """Raise :class:`ConfigError` (one line, every offending ingress topic) unless each ingress topic
    keeps records within its ``max_retention``. Reads the topics' config with ``describe_configs``,
    which needs DESCRIBE_CONFIGS on each ingress topic."""
    bounds = bounds_of(pipeline)
    if not bounds:
        return
    reads = describe_topic_configs(admin, bounds, SETTINGS, timeout=timeout)
    found = problems(reads, bounds.values())
    if found:
        raise ConfigError("; ".join(found))
