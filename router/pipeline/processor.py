"""The router's batch processor: decision → placement check → seal → routed/quarantine + audit.

Runs inside the engine's open transaction. For each ingress record it produces exactly one
routed-or-quarantine record and exactly one audit record; the engine commits them together with
the consumed offset.

- The decision comes from the pure core (:class:`Evaluator`): decode, classify, resolve, policy.
- A routed destination is used only while :class:`router.placement.kafka.PlacementWatch` says its
  replicas all sit in the decision's jurisdiction; otherwise the event is quarantined with
  PLACEMENT_VIOLATION (``placement.on_violation: quarantine``) or the batch stalls (``stall``).
- The quarantine topic of a jurisdiction is placement-checked too. If it is not usable, nothing
  can be written safely: the batch stalls (offsets stay, nothing leaks).
- Everything that leaves the router is sealed: routed records carry the envelope of the original
  bytes; quarantine records carry the envelope inside a value-free metadata record.
- One Ed25519 signature per batch (``seal_batch``); each record still opens alone.
- Audit records are chained per ingress partition: audit partition = ingress partition, so a chain
  has exactly one writer (the instance that owns that ingress partition).
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Message, TopicPartition

from router import __version__, telemetry
from router.audit.chain import AuditChain
from router.audit.record import AuditFields
from router.envelope import SealContext, Sealer
from router.envelope.merkle import MAX_LEAVES
from router.errors import ReasonCode, RouterError
from router.keys.errors import KeyUnavailable
from router.pipeline.engine import OutRecord, StallError
from router.quarantine.record import QuarantineRecord, encode_quarantine

log = logging.getLogger("router.pipeline")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the pure core decided about one record. Holds no field values."""

    route_topic: str | None
    """The destination topic when the policy routes the event; None when it quarantines it."""
    jurisdiction: str
    """The jurisdiction the event is bound to (for a quarantine: whose quarantine receives it)."""
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


Evaluator = Callable[[str, bytes | None, bytes | None, Mapping[str, str]], Evaluation]
"""(ingress topic, value, key, headers) -> Evaluation. Must not raise for bad input."""


class Placement(Protocol):
    """What the processor needs from placement: is a topic usable for a jurisdiction, and its size."""

    def permitted(self, topic: str, jurisdiction: str) -> bool: ...

    def partitions(self, topic: str) -> int: ...

    def verdict(self) -> str: ...

    def configured(self, topic: str) -> bool: ...


@dataclass
class RouterSettings:
    quarantine_topic: Callable[[str], str]
    """Jurisdiction -> its quarantine topic."""
    audit_topic: str
    instance_id: str
    stall_on_placement_violation: bool = False


@dataclass
class _Pending:
    msg: Message
    ev: Evaluation
    dest_topic: str
    dest_partition: int
    quarantined: bool
    reason: ReasonCode
    detail: str
    payload: bytes
    payload_sha: str
    source_topic: str
    source_partition: int
    source_offset: int
    ctx: SealContext | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _source(m: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record.

    The engine hands over data messages only (error events are filtered out), and those always
    carry all three; the client's types allow None because error events may lack them.
    """
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    if topic is None or partition is None or offset is None:
        raise RouterError(f"consumed message without a source position: {topic!r}/{partition!r}@{offset!r}")
    return topic, partition, offset


def _header_text(v: str | bytes | None) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else v.decode("utf-8", "replace")


def _partition_for(key: bytes | None, event_id: str | None, partitions: int) -> int:
    basis = key if key else (event_id or "").encode()
    return zlib.crc32(basis) % partitions if partitions > 0 else 0


class RouterProcessor:
    """Implements :class:`router.pipeline.engine.BatchProcessor` for the router."""

    def __init__(
        self,
        evaluate: Evaluator,
        placement: Placement,
        sealer: Sealer,
        chain: AuditChain,
        settings: RouterSettings,
        *,
        chain_tail: Callable[[int], object] | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.placement = placement
        self.sealer = sealer
        self.chain = chain
        self.s = settings
        self._chain_tail = chain_tail

    # -- BatchProcessor --------------------------------------------------------------------
    def checkpoint(self) -> object:
        return self.chain.checkpoint()

    def rollback(self, state: object) -> None:
        self.chain.rollback(state)  # type: ignore[arg-type]

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Resume each assigned partition's audit chain from its last committed record."""
        if self._chain_tail is None:
            return
        for tp in partitions:
            self.chain.set_tail(tp.partition, self._chain_tail(tp.partition))  # type: ignore[arg-type]

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        with telemetry.tracer.start_as_current_span("router.batch") as span:
            span.set_attribute("router.records", len(msgs))
            pending = [self._decide(m) for m in msgs]
            sealed = self._seal(pending)
            trace = telemetry.trace_headers()
            return self._outputs(pending, sealed, trace)

    # -- steps -----------------------------------------------------------------------------
    def _decide(self, m: Message) -> _Pending:
        raw = m.value()
        payload = raw if raw is not None else b""
        raw_headers = m.headers() or []
        header_items = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        headers = {k: _header_text(v) for k, v in header_items}
        src_topic, src_partition, src_offset = _source(m)
        ev = self.evaluate(src_topic, raw, m.key(), headers)
        reason, detail = ev.reason, ev.detail
        quarantined = ev.route_topic is None
        dest = ev.route_topic or self.s.quarantine_topic(ev.jurisdiction)
        if not quarantined and not self.placement.configured(dest):
            reason = ReasonCode.DESTINATION_NOT_CONFIGURED
            detail = f"destination {dest} is not listed under 'topics'"
            quarantined = True
            dest = self.s.quarantine_topic(ev.jurisdiction)
        elif not quarantined and not self.placement.permitted(dest, ev.jurisdiction):
            if self.s.stall_on_placement_violation:
                raise StallError(
                    f"destination {dest} is not placed in {ev.jurisdiction} (placement.on_violation: stall)"
                )
            reason = ReasonCode.PLACEMENT_VIOLATION
            detail = f"destination {dest} has a replica outside {ev.jurisdiction}"
            quarantined = True
            dest = self.s.quarantine_topic(ev.jurisdiction)
        if quarantined and not self.placement.permitted(dest, ev.jurisdiction):
            raise StallError(
                f"quarantine topic {dest} is not placed in {ev.jurisdiction}: nothing can be written safely"
            )
        part = _partition_for(m.key(), ev.event_id, self.placement.partitions(dest))
        sha = hashlib.sha256(payload).hexdigest()
        p = _Pending(m, ev, dest, part, quarantined, reason, detail, payload, sha, src_topic, src_partition, src_offset)
        p.ctx = SealContext(
            event_id=ev.event_id or f"{src_topic}:{src_partition}:{src_offset}",
            source_topic=src_topic,
            source_partition=src_partition,
            source_offset=src_offset,
            dest_topic=dest,
            dest_partition=part,
            jurisdiction=ev.jurisdiction,
            classification_level=ev.level,
            categories=ev.categories,
            entity=ev.entity,
            operation=ev.operation,
            schema_id=ev.schema_id,
        )
        return p

    def _seal(self, pending: list[_Pending]) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
        out: list[tuple[bytes, list[tuple[str, bytes]]]] = []
        try:
            for i in range(0, len(pending), MAX_LEAVES):
                chunk = pending[i : i + MAX_LEAVES]
                sealed = self.sealer.seal_batch([(p.payload, p.ctx) for p in chunk])  # type: ignore[misc]
                out.extend((s.value, s.headers) for s in sealed)
        except KeyUnavailable as err:
            # Whatever keys.on_unavailable says, a record whose own jurisdiction's key is down
            # cannot be sealed anywhere it may go: stall rather than write it unsealed.
            raise StallError(f"key unavailable: {err}") from err
        return out

    def _outputs(
        self,
        pending: list[_Pending],
        sealed: list[tuple[bytes, list[tuple[str, bytes]]]],
        trace: list[tuple[str, bytes]],
    ) -> list[OutRecord]:
        now_ms = int(time.time() * 1000)
        verdict = self.placement.verdict()
        trace_id = next((v.decode() for k, v in trace if k == "traceparent"), None)
        outs: list[OutRecord] = []
        for p, (value, headers) in zip(pending, sealed, strict=True):
            m, ev = p.msg, p.ev
            ts_type, ts = m.timestamp()
            source_ts = ts if ts_type != 0 else None
            if p.quarantined:
                record = QuarantineRecord(
                    reason=p.reason.value,
                    detail=p.detail,
                    classification_level=ev.level,
                    categories=ev.categories,
                    field_names=ev.field_names,
                    jurisdictions=ev.jurisdictions,
                    source_topic=p.source_topic,
                    source_partition=p.source_partition,
                    source_offset=p.source_offset,
                    source_timestamp_ms=source_ts,
                    event_id=ev.event_id,
                    payload_sha256=p.payload_sha,
                    router_version=__version__,
                    policy_version=ev.policy_version,
                    trace_id=trace_id,
                    quarantined_at_ms=now_ms,
                    sealed_payload=value,
                    envelope_headers=tuple(headers),
                )
                out_value = encode_quarantine(record)
                out_headers = [*headers, ("rr-reason", p.reason.value.encode()), *trace]
            else:
                out_value = value
                out_headers = [*headers, *trace]
            outs.append(OutRecord(p.dest_topic, out_value, m.key(), p.dest_partition, out_headers))
            audit_value = self.chain.append(
                p.source_partition,
                AuditFields(
                    decision="quarantine" if p.quarantined else "route",
                    reason=p.reason.value,
                    classification_level=ev.level,
                    categories=ev.categories,
                    field_names=ev.field_names,
                    jurisdictions=ev.jurisdictions,
                    destination_topic=p.dest_topic,
                    destination_partition=p.dest_partition,
                    placement_verdict=verdict,
                    payload_sha256=p.payload_sha,
                    sealed_sha256=hashlib.sha256(out_value).hexdigest(),
                    source_topic=p.source_topic,
                    source_partition=p.source_partition,
                    source_offset=p.source_offset,
                    source_timestamp_ms=source_ts,
                    event_id=ev.event_id,
                    policy_version=ev.policy_version,
                    router_version=__version__,
                    instance_id=self.s.instance_id,
                    processed_at_ms=now_ms,
                    trace_id=trace_id,
                ),
            )
            outs.append(OutRecord(self.s.audit_topic, audit_value, None, p.source_partition, trace or None))
            telemetry.decisions.add(
                1,
                {
                    "decision": "quarantine" if p.quarantined else "route",
                    "reason": p.reason.value,
                    "jurisdiction": ev.jurisdiction,
                },
            )
        return outs
