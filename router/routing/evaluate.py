"""The one routing decision, shared by ``run`` and ``simulate``: bytes in, :class:`Evaluation` out.

decode (per ingress topic) -> classify -> resolve jurisdiction -> policy -> destination checks that
need no broker (the destination is a configured topic; envelope field limits). No Kafka import.

It never raises for bad input. Where a record's jurisdiction cannot be known (undecodable,
oversized, unresolved, a decoder or core failure) it is quarantined in the jurisdiction of the
ingress topic it came from (:class:`~router.residency.resolver.Origin`), where its raw bytes
already sit; never in a jurisdiction a header names. A bare tombstone (null value) carries no data
and is audited only. The only exceptions it lets out are outages of something outside the record
(:class:`router.ingest.errors.SchemaRegistryUnavailable`): the pipeline stalls on them.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from router.classify.model import Category
from router.envelope.frame import MAX_CATEGORIES
from router.errors import ReasonCode, RecordError
from router.ingest.errors import SchemaRegistryUnavailable
from router.ingest.event import ChangeEvent
from router.residency.engine import PolicyEngine
from router.residency.policy import Route
from router.residency.resolver import Origin

log = logging.getLogger("router.routing")

MAX_ENVELOPE_STR8 = 255
MAX_EVENT_ID_BYTES = 1024
"""Longer connector event ids are not ids but data: such a record is quarantined FIELD_TOO_LONG."""
MAX_TOPIC_NAME = 249
"""Kafka's limit on a topic name, whose characters are ``[A-Za-z0-9._-]``."""
_TEXT = {c: str(c) for c in Category}
_MAX_CACHED = 4096


def _only(text: str, punct: str) -> bool:
    """``text`` holds nothing but ASCII letters, digits and the characters of ``punct``."""
    rest = text
    for p in punct:
        rest = rest.replace(p, "")
    return text.isascii() and (rest.isalnum() or not rest)


def entity_problem(entity: str) -> str | None:
    """Why ``entity`` cannot be carried into a topic name as it is, value-free; None when it can.

    Only ASCII letters, digits, ``_`` and ``-`` are carried (lower-cased: ``Account`` and
    ``account`` are one entity). Anything else would have to be rewritten, and a rewritten name
    can equal another entity's (``Foo Bar`` and ``Foo_Bar``), putting two entities' records in
    one topic; ``.`` is a legal topic character, but Kafka treats it like ``_`` when it checks
    topic names against each other (``crm.eu.foo.bar`` collides with ``crm.eu.foo_bar``)."""
    if entity and _only(entity, "_-"):
        return None
    if not entity:
        return "the entity has no name: no topic can be named after it"
    odd = sum(1 for c in entity if not (c.isascii() and (c.isalnum() or c in "_-")))
    dots = entity.count(".")
    if dots == odd:
        return (f"the entity name holds {dots} '.', which Kafka treats like '_' in topic names: its topic "
                "would collide with another entity's")
    return (f"the entity name holds {odd} character(s) a Kafka topic name cannot hold as they are (only A-Z a-z "
            "0-9 _ -): rewritten, its records could share another entity's topic")


def topic_problem(topic: str) -> str | None:
    """Why Kafka would refuse ``topic`` as a name, value-free; None when it would not."""
    if len(topic) > MAX_TOPIC_NAME:
        return f"the destination topic name would have {len(topic)} characters, Kafka allows {MAX_TOPIC_NAME}"
    if not topic or topic in (".", "..") or not _only(topic, "._-"):
        return "the destination topic name would hold characters Kafka does not allow (only A-Z a-z 0-9 . _ -)"
    return None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the core decided about one record. Holds no field values."""

    route_topic: str | None
    """The destination topic when the policy routes the event; None when it quarantines it."""
    jurisdiction: str
    """The jurisdiction the output is bound to (for a quarantine: whose quarantine receives it)."""
    reason: ReasonCode
    detail: str = ""
    event_id: str | None = None
    entity: str = "unknown"
    operation: str = "unknown"
    schema_id: int | None = None
    level: str = "restricted"
    categories: tuple[str, ...] = ()
    field_names: tuple[str, ...] = ()
    jurisdictions: tuple[str, ...] = ()
    policy_version: str = ""
    erasure: bool = False
    """A routed delete: the pipeline writes a tombstone under the subject's record key."""
    audit_only: bool = False
    """Nothing is written but the audit record (a bare tombstone)."""
    keep_payload: bool = True
    """False when the original bytes must not be copied (OVERSIZED): metadata and a keyed digest only."""

    @property
    def quarantined(self) -> bool:
        return self.route_topic is None and not self.audit_only


class Decoder(Protocol):
    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent: ...


@dataclass(frozen=True, slots=True)
class Ingress:
    """One ingress topic: its decoder and where its raw data sits."""

    decoder: Decoder
    origin: Origin


def _too_long(event: ChangeEvent) -> str | None:
    """Which envelope field of ``event`` exceeds its limit, value-free; None when all fit."""
    # A character is at most 4 UTF-8 bytes: short texts are measured without encoding them.
    entity = event.entity
    if len(entity) * 4 > MAX_ENVELOPE_STR8 and len(entity.encode("utf-8", "surrogatepass")) > MAX_ENVELOPE_STR8:
        return f"entity name of {len(entity)} characters exceeds the envelope's {MAX_ENVELOPE_STR8} bytes"
    eid = event.event_id
    if eid is not None and len(eid) * 4 > MAX_EVENT_ID_BYTES and \
            len(eid.encode("utf-8", "surrogatepass")) > MAX_EVENT_ID_BYTES:
        return f"event id of {len(eid)} characters exceeds {MAX_EVENT_ID_BYTES} bytes"
    if len(event.operation.value) > MAX_ENVELOPE_STR8:
        return "operation name too long"
    return None


class CoreEvaluator:
    """Callable ``(topic, value, key, headers) -> Evaluation`` over ingress decoders and a policy engine.

    ``configured`` is the set of topics placement checks (``topics:``); a route to any other topic
    is quarantined DESTINATION_NOT_CONFIGURED in the data's jurisdiction. None skips that check
    (only for tools that decide without a deployment).
    """

    def __init__(
        self,
        ingress: Mapping[str, Ingress],
        engine: PolicyEngine,
        *,
        configured: set[str] | frozenset[str] | None = None,
        max_bytes: int = 900_000,
    ) -> None:
        self.ingress = dict(ingress)
        self.engine = engine
        self.configured = frozenset(configured) if configured is not None else None
        self.max_bytes = max_bytes
        self.version: str = engine.version
        pattern = engine.policy.config.topic
        self._entity_in_topic = "entity" in {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        """Whether entity names become part of topic names (``policy.topic`` has ``{entity}``)."""
        self._carried: set[str] = set()
        """Entity names :func:`entity_problem` found fit to carry into a topic name."""
        self._valid_topics: set[str] = set()
        """Destinations already routed to: names Kafka accepts."""

    def _quarantine(
        self, origin: Origin, reason: ReasonCode, detail: str, event: ChangeEvent | None = None, **extra: Any
    ) -> Evaluation:
        return Evaluation(
            route_topic=None,
            jurisdiction=origin.jurisdiction,
            reason=reason,
            detail=detail,
            event_id=event.event_id if event else None,
            entity=event.entity if event else "unknown",
            operation=event.operation.value if event else "unknown",
            schema_id=event.raw.schema_id if event else None,
            policy_version=self.version,
            **extra,
        )

    def origin(self, topic: str) -> Origin:
        spec = self.ingress.get(topic)
        if spec is None:
            raise RecordError(ReasonCode.UNSUPPORTED_FORMAT, f"topic {topic} is not a configured ingress topic")
        return spec.origin

    def __call__(  # noqa: PLR0911 - one return per kind of record that cannot be evaluated
        self, topic: str, value: bytes | None, key: bytes | None, headers: Mapping[str, str]
    ) -> Evaluation:
        spec = self.ingress.get(topic)
        if spec is None:
            raise RecordError(ReasonCode.UNSUPPORTED_FORMAT, f"topic {topic} is not a configured ingress topic")
        origin = spec.origin
        if value is None:
            return Evaluation(
                route_topic=None,
                jurisdiction=origin.jurisdiction,
                reason=ReasonCode.TOMBSTONE_AUDITED,
                detail="null value: nothing to route; a delete event carries the erasure",
                operation="delete",
                policy_version=self.version,
                audit_only=True,
            )
        if len(value) > self.max_bytes:
            return self._quarantine(
                origin,
                ReasonCode.OVERSIZED,
                f"record of {len(value)} bytes exceeds pipeline.max_record_bytes ({self.max_bytes}); "
                "payload not copied, it stays in the ingress topic",
                keep_payload=False,
            )
        try:
            event = spec.decoder.decode(value, key=key, headers=headers)
        except RecordError as err:
            return self._quarantine(origin, err.reason, err.detail)
        except SchemaRegistryUnavailable:
            raise  # not this record's fault: the pipeline stalls and retries
        except Exception as err:
            log.error("decoder %s failed on %s: %s", type(spec.decoder).__name__, topic, type(err).__name__)
            return self._quarantine(origin, ReasonCode.PROCESSING_ERROR, f"decoder failed: {type(err).__name__}")
        problem = _too_long(event)
        if problem is not None:
            return self._quarantine(origin, ReasonCode.FIELD_TOO_LONG, problem)
        if self._entity_in_topic and event.entity not in self._carried:
            problem = entity_problem(event.entity)
            if problem is not None:
                return self._quarantine(origin, ReasonCode.INVALID_TOPIC_NAME, problem, event)
            if len(self._carried) >= _MAX_CACHED:
                self._carried.clear()  # entity names come from input: keep the set bounded
            self._carried.add(event.entity)
        try:
            return self._evaluate(event, origin)
        except SchemaRegistryUnavailable:
            raise
        except Exception as err:
            log.error("core failed on %s: %s", event.describe(), type(err).__name__)
            return self._quarantine(origin, ReasonCode.PROCESSING_ERROR, f"internal error {type(err).__name__}", event)

    def _evaluate(self, event: ChangeEvent, origin: Origin) -> Evaluation:
        outcome = self.engine.evaluate(event, origin)
        decision = outcome.decision
        cls = outcome.classification
        findings = cls.findings
        if findings:
            categories = tuple(sorted({_TEXT.get(f.category) or str(f.category) for f in findings}))
            fields = tuple(sorted({f.field for f in findings}))
            if len(categories) > MAX_CATEGORIES:  # pragma: no cover - there are fewer categories than that
                categories = categories[:MAX_CATEGORIES]
        else:
            categories = fields = ()
        bound = outcome.resolution.jurisdictions
        reason, detail, route_topic, erasure = ReasonCode.ROUTED, "", None, False
        if isinstance(decision, Route):
            invalid = None if decision.topic in self._valid_topics else topic_problem(decision.topic)
            if invalid is not None:  # where the record sits, as for an entity name no topic can carry
                jurisdiction, reason, detail = origin.jurisdiction, ReasonCode.INVALID_TOPIC_NAME, invalid
            elif self.configured is not None and decision.topic not in self.configured:
                jurisdiction = self.engine.policy.quarantine_jurisdiction(bound, origin.jurisdiction)
                reason = ReasonCode.DESTINATION_NOT_CONFIGURED
                detail = f"destination {decision.topic} is not listed under 'topics'"
            else:
                route_topic, jurisdiction, erasure = decision.topic, decision.jurisdiction, decision.erasure
                if len(self._valid_topics) >= _MAX_CACHED:
                    self._valid_topics.clear()
                self._valid_topics.add(route_topic)
        else:
            jurisdiction, reason, detail = decision.jurisdiction, ReasonCode(decision.reason), decision.detail
        return Evaluation(
            route_topic=route_topic,
            jurisdiction=jurisdiction,
            reason=reason,
            detail=detail,
            event_id=event.event_id,
            entity=event.entity,
            operation=event.operation.value,
            schema_id=event.raw.schema_id,
            level=str(cls.level),
            categories=categories,
            field_names=fields,
            jurisdictions=tuple(bound),
            policy_version=outcome.policy_version,
            erasure=erasure,
        )
