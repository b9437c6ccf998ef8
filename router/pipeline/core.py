"""The pure core as the pipeline calls it: bytes in, :class:`Evaluation` out. No Kafka import.

decode (per ingress topic) → classify → resolve jurisdiction → policy decision. It never raises
for bad input: an undecodable or oversized record becomes a quarantine decision with its reason
code, bound to the policy's home jurisdiction (its data's jurisdiction cannot be known). An
unexpected exception inside the core is a bug, but it must not crash-loop the router either: the
record is quarantined with PROCESSING_ERROR and the exception type (never its message, which could
hold a value) is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from router.errors import ReasonCode, RecordError
from router.ingest.event import ChangeEvent
from router.pipeline.processor import Evaluation
from router.residency.policy import Route

log = logging.getLogger("router.core")


class _Decoder(Protocol):
    def decode(
        self, value: bytes | None, *, key: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ChangeEvent: ...


class CoreEvaluator:
    """Callable ``(topic, value, key, headers) -> Evaluation`` over decoders and a policy engine."""

    def __init__(self, decoders: Mapping[str, _Decoder], engine: Any, *, max_bytes: int = 1_048_576) -> None:
        self.decoders = dict(decoders)
        self.engine = engine
        self.max_bytes = max_bytes
        self.home: str = engine.home
        self.version: str = engine.version

    def _quarantine(self, reason: ReasonCode, detail: str, event: ChangeEvent | None = None) -> Evaluation:
        return Evaluation(
            route_topic=None,
            jurisdiction=self.home,
            reason=reason,
            detail=detail,
            event_id=event.event_id if event else None,
            entity=event.entity if event else "unknown",
            operation=event.operation.value if event else "unknown",
            schema_id=event.raw.schema_id if event else None,
            policy_version=self.version,
        )

    def __call__(self, topic: str, value: bytes | None, key: bytes | None, headers: Mapping[str, str]) -> Evaluation:
        if value is not None and len(value) > self.max_bytes:
            return self._quarantine(
                ReasonCode.OVERSIZED, f"record of {len(value)} bytes exceeds pipeline.max_record_bytes"
            )
        decoder = self.decoders.get(topic)
        if decoder is None:
            return self._quarantine(ReasonCode.UNSUPPORTED_FORMAT, f"no decoder configured for topic {topic}")
        try:
            event = decoder.decode(value, key=key, headers=headers)
        except RecordError as err:
            return self._quarantine(err.reason, err.detail)
        except Exception as err:
            log.error("decoder %s failed on %s[...]: %s", type(decoder).__name__, topic, type(err).__name__)
            return self._quarantine(ReasonCode.PROCESSING_ERROR, f"decoder failed: {type(err).__name__}")
        try:
            return self._evaluate(event)
        except Exception as err:
            log.error("core failed on %s: %s", event.describe(), type(err).__name__)
            return self._quarantine(ReasonCode.PROCESSING_ERROR, f"internal error {type(err).__name__}", event)

    def _evaluate(self, event: ChangeEvent) -> Evaluation:
        outcome = self.engine.evaluate(event)
        decision = outcome.decision
        cls = outcome.classification
        categories = tuple(sorted(str(c) for c in cls.categories))
        fields = tuple(sorted({f for c in cls.categories for f in cls.fields(c)}))
        common: dict[str, Any] = {
            "event_id": event.event_id,
            "entity": event.entity,
            "operation": event.operation.value,
            "schema_id": event.raw.schema_id,
            "level": str(cls.level),
            "categories": categories,
            "field_names": fields,
            "jurisdictions": tuple(outcome.resolution.jurisdictions),
            "policy_version": outcome.policy_version,
        }
        if isinstance(decision, Route):
            return Evaluation(
                route_topic=decision.topic, jurisdiction=decision.jurisdiction, reason=ReasonCode.ROUTED, **common
            )
        return Evaluation(
            route_topic=None,
            jurisdiction=decision.jurisdiction,
            reason=ReasonCode(decision.reason),
            detail=decision.detail,
            **common,
        )
