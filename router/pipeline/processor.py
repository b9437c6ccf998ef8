"""The router's batch processor: decision → placement check → seal → routed/quarantine + audit.

Runs inside the engine's open transaction. For each ingress record it produces exactly one
routed-or-quarantine record and exactly one audit record; the engine commits them together with
the consumed offset.

- The decision comes from the pure core (:class:`router.routing.CoreEvaluator`): decode, classify,
  resolve, policy, configured destination. A record whose decision fails here is quarantined
  PROCESSING_ERROR in its ingress topic's jurisdiction; the loop goes on.
- A routed destination is used only while :class:`router.placement.kafka.PlacementWatch` says its
  replicas all sit in the decision's jurisdiction; otherwise the event is quarantined with
  PLACEMENT_VIOLATION (``placement.on_violation: quarantine``) or the batch stalls (``stall``).
- The quarantine topic of a jurisdiction is placement-checked too. If it is not usable, nothing
  can be written safely: the batch stalls (offsets stay, nothing leaks).
- Everything that leaves the router is sealed: routed records carry the envelope of the original
  bytes; quarantine records carry the envelope inside a value-free metadata record (or no payload
  at all when it would not fit the producer's limit: OVERSIZED). A routed delete is a tombstone.
- Output keys, event ids and payload digests written in clear are keyed digests per jurisdiction
  (:class:`router.keys.digest.DigestKeys`): never the ingress key, a connector id or a plain hash.
- The audit topic's placement is checked before every batch: a misplaced audit topic stalls.
- One Ed25519 signature per batch (``seal_batch``); each record still opens alone.
- Audit records are chained per source (ingress topic, partition), so a chain has exactly one
  writer: the instance that owns that ingress partition. The chain's records go to the audit
  partition :func:`router.audit.record.chain_partition` places it in (a stable hash of the source
  over the audit partition count fixed at start-up); several chains may share an audit partition.
  Tails are read back from the audit topic on every assignment and after a producer restart.
- Placement snapshots in the trail (audit format 4): when the placement offers one
  (``snapshot()``), the first record a batch writes to a chain whose last placement record (since
  its tail was read back) holds another snapshot is preceded by a placement record of the current
  one, and every audit record references it (``placement_snapshot``), so `audit verify` can prove
  from the trail that each output's replicas sat in its jurisdiction. The snapshot is taken when
  the batch starts; if it has changed once the batch is decided, the batch is decided again under
  the new one (each record's reference matches the verdict it was decided under).
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import chain
from typing import Protocol

from confluent_kafka import Message, TopicPartition

from router import __version__, telemetry
from router.audit.chain import AuditChain, ChainTail
from router.audit.record import AuditFields, PlacementSnapshot, chain_key, chain_partition
from router.envelope import SealContext, Sealer
from router.envelope.errors import MalformedEnvelope
from router.envelope.frame import encode_context, key_digest
from router.envelope.merkle import MAX_LEAVES
from router.errors import ReasonCode, RouterError
from router.ingest.errors import SchemaRegistryUnavailable
from router.keys.digest import DigestKeys
from router.keys.errors import KeyUnavailable
from router.pipeline.engine import OutRecord, StallError
from router.quarantine.record import QuarantineRecord, encode_quarantine
from router.routing.evaluate import Evaluation

log = logging.getLogger("router.pipeline")


Evaluator = Callable[[str, bytes | None, bytes | None, Mapping[str, str]], Evaluation]
"""(ingress topic, value, key, headers) -> Evaluation. Must not raise for bad input."""


class Placement(Protocol):
    """What the processor needs from placement: is a topic usable for a jurisdiction, and its size."""

    def permitted(self, topic: str, jurisdiction: str) -> bool: ...

    def partitions(self, topic: str) -> int: ...

    def verdict(self) -> str: ...


class SnapshotPlacement(Protocol):
    """A placement that also offers the snapshot its verdict rests on (``_WatchPlacement``); None
    while there is no unexpired verdict. Placements without it write no placement records."""

    def snapshot(self) -> PlacementSnapshot | None: ...


@dataclass
class RouterSettings:
    quarantine_topic: Callable[[str], str]
    """Jurisdiction -> its quarantine topic."""
    audit_topic: str
    instance_id: str
    origin_jurisdiction: Callable[[str], str]
    """Ingress topic -> the jurisdiction its raw data sits in (``pipeline.ingress[].jurisdiction``)."""
    audit_jurisdiction: str | None = None
    """Where the audit topic must sit; checked before every batch is written (None: not checked)."""
    stall_on_placement_violation: bool = False
    max_output_bytes: int = 1_000_000 - 16_384
    """Largest record (value + key + headers) the producer may send: the producer's
    ``message.max.bytes`` less room for the batch framing. Larger outputs are quarantined
    OVERSIZED without their payload instead of failing the transaction."""
    audit_partitions: int | None = None
    """The partition count audit chains are placed over, fixed for the processor's life (the
    audit topic's count, or the one its trail already records; see ``app.py``). None: the audit
    topic's partition count from placement when the processor is built."""


ChainTailsReader = Callable[[int, Sequence[tuple[str, int]]], Mapping[tuple[str | None, int], ChainTail | None]]
"""(audit partition, sources placed in it) -> each source's committed chain tail (None: no record);
e.g. :func:`router.audit.kafka.read_chain_tails`."""


SNAPSHOT_ATTEMPTS = 3
"""Times a batch is decided when the placement snapshot changes while it is (then it stalls)."""

ENVELOPE_MARGIN = 16_384
"""Upper bound of what sealing and the quarantine wrapper add to a payload (header, proofs,
clear headers, metadata), for deciding before sealing that a payload cannot fit."""


@dataclass(slots=True)
class _Pending:
    msg: Message
    ev: Evaluation
    source_topic: str
    source_partition: int
    source_offset: int
    kind: str
    """route, erasure (tombstone), quarantine, audit_only."""
    dest_topic: str
    dest_partition: int
    out_key: bytes | None
    reason: ReasonCode
    detail: str
    payload: bytes
    payload_digest: str
    event_id: str | None
    """The connector's event id as written in clear: a keyed digest (:meth:`DigestKeys.event_id`)."""
    ctx: SealContext | None = None
    context: bytes = b""
    """``encode_context(ctx)``: encoded once, to validate the record alone and then to seal it."""


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


def _partition_for(basis: bytes, partitions: int) -> int:
    return zlib.crc32(basis) % partitions if partitions > 0 else 0


def _headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(map(len, chain.from_iterable(headers)))


class RouterProcessor:
    """Implements :class:`router.pipeline.engine.BatchProcessor` for the router.

    Per record, whatever the input: exactly one routed, tombstone or quarantine record (none for an
    audited bare tombstone) and one audit record. Nothing in clear carries a value: output keys
    are keyed digests of the ingress key under the output's jurisdiction (the same subject keeps
    one key per jurisdiction, so ordering and compaction hold), payload digests are keyed too.
    A failure on one record is that record's PROCESSING_ERROR quarantine; only causes outside a
    record (keys, schema registry, placement of quarantine or audit topics) stall the batch.
    """

    def __init__(  # noqa: PLR0917 - the processor's six collaborators, wired once in app.py
        self,
        evaluate: Evaluator,
        placement: Placement,
        sealer: Sealer,
        chain: AuditChain,
        settings: RouterSettings,
        digests: DigestKeys,
        *,
        chain_tails: ChainTailsReader | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.placement = placement
        self.sealer = sealer
        self.chain = chain
        self.s = settings
        self.digests = digests
        self._chain_tails = chain_tails
        self.audit_partitions = settings.audit_partitions or max(1, placement.partitions(settings.audit_topic))
        chain.audit_partitions = self.audit_partitions
        self._audit_slot: dict[tuple[str, int], tuple[int, bytes]] = {}
        """Source -> (its chain's audit partition, the records' Kafka key); computed once each."""
        snapshot = getattr(placement, "snapshot", None)
        self._snapshot_of: Callable[[], PlacementSnapshot | None] | None = snapshot if callable(snapshot) else None
        self._batch_snapshot: PlacementSnapshot | None = None

    # -- BatchProcessor --------------------------------------------------------------------
    def checkpoint(self) -> object:
        return self.chain.checkpoint()

    def rollback(self, state: object) -> None:
        self.chain.rollback(state)  # type: ignore[arg-type]

    def lower_output_limit(self, topic: str, refused_size: int) -> int | None:
        """The engine's hook for a record the broker refused as too large (``MSG_SIZE_TOO_LARGE``):
        from now on outputs of ``refused_size`` bytes or more are quarantined OVERSIZED without their
        payload, so the re-processed batch fits. Returns the new limit; None when that cannot help
        (an audit record, or a record the limit already allowed for: the engine backs off)."""
        if topic == self.s.audit_topic or refused_size > self.s.max_output_bytes:
            return None
        self.s.max_output_bytes = refused_size - 1
        return self.s.max_output_bytes

    def audit_slot(self, source_topic: str, source_partition: int) -> tuple[int, bytes]:
        """The audit partition of a source's chain, and the Kafka key of its audit records."""
        source = (source_topic, source_partition)
        slot = self._audit_slot.get(source)
        if slot is None:
            slot = (chain_partition(source_topic, source_partition, self.audit_partitions),
                    chain_key(source_topic, source_partition))
            self._audit_slot[source] = slot
        return slot

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Resume the audit chain of each assigned ingress partition from its last committed
        record, read back from the audit topic (never trusted from memory: an ambiguous commit may
        have succeeded, another instance may have extended the chain meanwhile). Sources are
        grouped by audit partition; the audit partitions are read concurrently (each read is a
        broker round trip of its own), so an assignment costs about one read, not one per
        partition."""
        read = self._chain_tails
        if read is None:
            return
        by_audit: dict[int, list[tuple[str, int]]] = {}
        for tp in partitions:
            source = (tp.topic, tp.partition)
            by_audit.setdefault(self.audit_slot(*source)[0], []).append(source)
        wanted = sorted(by_audit)
        groups = [sorted(set(by_audit[p])) for p in wanted]
        if len(wanted) <= 1:
            tails = [read(p, g) for p, g in zip(wanted, groups, strict=True)]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(wanted)), thread_name_prefix="audit-tail") as pool:
                tails = list(pool.map(read, wanted, groups))
        for group, found in zip(groups, tails, strict=True):
            for source in group:
                self.chain.set_tail(source, found.get(source))

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        with telemetry.tracer.start_as_current_span("router.batch") as span:
            span.set_attribute("router.records", len(msgs))
            for _attempt in range(SNAPSHOT_ATTEMPTS):
                self._batch_snapshot = self._snapshot_of() if self._snapshot_of is not None else None
                pending, sealed = self._decide_batch(msgs)
                if self._snapshot_of is None or self._snapshot_of() == self._batch_snapshot:
                    break
                log.info("placement verdict changed while a batch was decided; deciding it again")
            else:
                raise StallError("the placement verdict kept changing while the batch was decided")
            trace = telemetry.trace_headers()
            return self._outputs(pending, sealed, trace)

    def _decide_batch(
        self, msgs: Sequence[Message]
    ) -> tuple[list[_Pending], list[tuple[bytes, list[tuple[str, bytes]]] | None]]:
        """Placement of the audit and ingress topics, then each record's decision, sealed. Touches
        no chain: the batch can be decided again."""
        if self.s.audit_jurisdiction is not None and not self.placement.permitted(
            self.s.audit_topic, self.s.audit_jurisdiction
        ):
            raise StallError(
                f"audit topic {self.s.audit_topic} is not placed in {self.s.audit_jurisdiction}: "
                "no decision can be recorded safely"
            )
        for topic in {m.topic() for m in msgs}:
            where = self.s.origin_jurisdiction(topic) if topic is not None else None
            if topic is not None and where is not None and not self.placement.permitted(topic, where):
                raise StallError(
                    f"ingress topic {topic} has a replica outside {where} (pipeline.ingress[].jurisdiction): "
                    "its raw data must sit there; move the replica back"
                )
        try:
            pending = [self._pending(m) for m in msgs]
            sealed = self._seal(pending)
        except KeyUnavailable as err:
            # A record whose jurisdiction's key is down cannot be sealed anywhere it may go, and
            # its keyed digests cannot be computed: stall rather than write anything unsealed.
            raise StallError(f"key unavailable: {err}") from err
        return pending, sealed

    # -- steps -----------------------------------------------------------------------------
    def _pending(self, m: Message) -> _Pending:
        """The decision for one record; a failure on it becomes its PROCESSING_ERROR quarantine."""
        src_topic, src_partition, src_offset = _source(m)
        try:
            return self._decide(m, src_topic, src_partition, src_offset)
        except (StallError, KeyUnavailable):
            raise
        except MalformedEnvelope as err:
            # A field the envelope cannot carry (the core checks the known ones first).
            j = self.s.origin_jurisdiction(src_topic)
            ev = Evaluation(None, j, ReasonCode.FIELD_TOO_LONG, f"envelope field out of range: {type(err).__name__}",
                            keep_payload=False)
            return self._place(m, ev, src_topic, src_partition, src_offset)
        except SchemaRegistryUnavailable as err:
            raise StallError(f"{type(err).__name__}: {err}") from err
        except Exception as err:
            log.error("record %s[%d]@%d failed: %s", src_topic, src_partition, src_offset, type(err).__name__)
            telemetry.poison.add(1, {"error": type(err).__name__})
            j = self.s.origin_jurisdiction(src_topic)
            ev = Evaluation(None, j, ReasonCode.PROCESSING_ERROR, f"internal error {type(err).__name__}")
            return self._place(m, ev, src_topic, src_partition, src_offset)

    def _decide(self, m: Message, src_topic: str, src_partition: int, src_offset: int) -> _Pending:
        raw_headers = m.headers() or []
        header_items = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        headers = {k: _header_text(v) for k, v in header_items}
        raw = m.value()
        ev = self.evaluate(src_topic, raw, m.key(), headers)
        if raw is not None and ev.keep_payload and len(raw) + ENVELOPE_MARGIN > self.s.max_output_bytes:
            ev = replace(ev, route_topic=None, reason=ReasonCode.OVERSIZED, erasure=False,
                         detail=f"record of {len(raw)} bytes cannot be sealed within the producer's limit "
                                f"({self.s.max_output_bytes} bytes); payload not copied, it stays in the ingress topic",
                         keep_payload=False)
        return self._place(m, ev, src_topic, src_partition, src_offset)

    def _place(self, m: Message, ev: Evaluation, src_topic: str, src_partition: int, src_offset: int) -> _Pending:
        """Choose the destination, check its placement, build keys, digests and the seal context."""
        raw = m.value()
        payload = raw if raw is not None and ev.keep_payload else b""
        reason, detail = ev.reason, ev.detail
        j = ev.jurisdiction
        if ev.audit_only:
            kind, dest = "audit_only", ""
        elif ev.route_topic is not None:
            kind, dest = ("erasure" if ev.erasure and m.key() is not None else "route"), ev.route_topic
            if not self.placement.permitted(dest, j):
                if self.s.stall_on_placement_violation:
                    raise StallError(f"destination {dest} is not placed in {j} (placement.on_violation: stall)")
                reason = ReasonCode.PLACEMENT_VIOLATION
                detail = f"destination {dest} has a replica outside {j}"
                kind, dest = "quarantine", self.s.quarantine_topic(j)
        else:
            kind, dest = "quarantine", self.s.quarantine_topic(j)
        if kind == "quarantine" and not self.placement.permitted(dest, j):
            raise StallError(f"quarantine topic {dest} is not placed in {j}: nothing can be written safely")
        key = m.key()
        out_key = self.digests.record_key(j, key) if key is not None and kind != "audit_only" else None
        position = f"{src_topic}:{src_partition}:{src_offset}"
        basis = out_key or (ev.event_id or position).encode("utf-8", "surrogatepass")
        part = _partition_for(basis, self.placement.partitions(dest)) if dest else 0
        digest = self.digests.payload_digest(j, raw if raw is not None else b"")
        event_id = self.digests.event_id(j, ev.event_id) if ev.event_id else None
        p = _Pending(m, ev, src_topic, src_partition, src_offset, kind, dest, part, out_key, reason, detail,
                     payload, digest, event_id)
        if kind in ("route", "quarantine") and (kind == "route" or ev.keep_payload):
            # event_id, source topic/partition/offset, dest topic/partition, jurisdiction, level,
            # categories, entity, operation, schema id, digest of the output record key (bound by
            # frame version 2; positional: this runs once per record).
            ctx = SealContext(event_id or position, src_topic, src_partition, src_offset, dest, part, j, ev.level,
                              ev.categories, ev.entity, ev.operation, ev.schema_id, key_digest(out_key))
            # Encoded once: an out-of-range field fails this record here, not the batch's seal, and
            # the seal reuses the bytes.
            p.context = encode_context(ctx)
            p.ctx = ctx
        return p

    def _seal(self, pending: list[_Pending]) -> list[tuple[bytes, list[tuple[str, bytes]]] | None]:
        out: list[tuple[bytes, list[tuple[str, bytes]]] | None] = [None] * len(pending)
        todo = [i for i, p in enumerate(pending) if p.ctx is not None]
        for start in range(0, len(todo), MAX_LEAVES):
            chunk = todo[start : start + MAX_LEAVES]
            sealed = self.sealer.seal_batch(
                [(pending[i].payload, pending[i].ctx, pending[i].context) for i in chunk]  # type: ignore[misc]
            )
            for i, s in zip(chunk, sealed, strict=True):
                out[i] = (s.value, s.headers)
        return out

    def _quarantine_value(
        self, p: _Pending, sealed: tuple[bytes, list[tuple[str, bytes]]] | None, now_ms: int, trace_id: str | None
    ) -> bytes:
        ev = p.ev
        value, headers = sealed if sealed is not None else (b"", [])
        return encode_quarantine(
            QuarantineRecord(
                reason=_REASON_TEXT[p.reason],
                detail=p.detail,
                classification_level=ev.level,
                categories=ev.categories,
                field_names=ev.field_names,
                jurisdictions=ev.jurisdictions,
                source_topic=p.source_topic,
                source_partition=p.source_partition,
                source_offset=p.source_offset,
                source_timestamp_ms=_timestamp(p.msg),
                event_id=p.event_id,
                payload_sha256=p.payload_digest,
                router_version=__version__,
                policy_version=ev.policy_version,
                trace_id=trace_id,
                quarantined_at_ms=now_ms,
                sealed_payload=value,
                envelope_headers=tuple(headers),
            )
        )

    def _output(
        self, p: _Pending, sealed: tuple[bytes, list[tuple[str, bytes]]] | None, trace: list[tuple[str, bytes]],
        now_ms: int, trace_id: str | None,
    ) -> OutRecord | None:
        if p.kind == "audit_only":
            return None
        if p.kind == "erasure":
            return OutRecord(p.dest_topic, None, p.out_key, p.dest_partition, list(trace))
        if p.kind == "route":
            assert sealed is not None
            out = OutRecord(p.dest_topic, sealed[0], p.out_key, p.dest_partition, [*sealed[1], *trace])
        else:
            value = self._quarantine_value(p, sealed, now_ms, trace_id)
            headers = [*(sealed[1] if sealed else []), ("rr-reason", _REASON_BYTES[p.reason]), *trace]
            out = OutRecord(p.dest_topic, value, p.out_key, p.dest_partition, headers)
        size = len(out.value or b"") + len(out.key or b"") + _headers_size(out.headers or [])
        if size <= self.s.max_output_bytes:
            return out
        # Sealed output beyond the producer's limit: keep the decision, drop the payload.
        j = p.ev.jurisdiction
        dest = self.s.quarantine_topic(j)
        if not self.placement.permitted(dest, j):
            raise StallError(f"quarantine topic {dest} is not placed in {j}: nothing can be written safely")
        p.kind, p.dest_topic, p.reason = "quarantine", dest, ReasonCode.OVERSIZED
        p.dest_partition = _partition_for(p.out_key or p.payload_digest.encode(), self.placement.partitions(dest))
        p.detail = f"sealed output of {size} bytes exceeds the producer's limit ({self.s.max_output_bytes}); " \
                   "payload not copied, it stays in the ingress topic"
        p.ev = replace(p.ev, field_names=p.ev.field_names[:64])
        value = self._quarantine_value(p, None, now_ms, trace_id)
        return OutRecord(dest, value, p.out_key, p.dest_partition, [("rr-reason", _REASON_BYTES[p.reason]), *trace])

    def _outputs(
        self,
        pending: list[_Pending],
        sealed: list[tuple[bytes, list[tuple[str, bytes]]] | None],
        trace: list[tuple[str, bytes]],
    ) -> list[OutRecord]:
        now_ms = int(time.time() * 1000)
        verdict = self.placement.verdict()
        snap = self._batch_snapshot
        snap_ref = snap.sha256 if snap is not None else None
        snapshot_of = self.chain.snapshot_of
        trace_id = next((v.decode() for k, v in trace if k == "traceparent"), None)
        outs: list[OutRecord] = []
        counts: dict[tuple[str, str, str], int] = {}
        append = self.chain.append_decision
        instance_id = self.s.instance_id
        audit_topic = self.s.audit_topic
        audit_headers = trace or None
        sha256 = hashlib.sha256
        for p, s in zip(pending, sealed, strict=True):
            out = self._output(p, s, trace, now_ms, trace_id)
            if out is not None:
                outs.append(out)
            ev = p.ev
            decision = _DECISION.get(p.kind, "quarantine")
            ts_type, ts = p.msg.timestamp()
            audit_partition, audit_key = self.audit_slot(p.source_topic, p.source_partition)
            source = (p.source_topic, p.source_partition)
            if snap is not None and snapshot_of(source) != snap_ref:
                outs.append(OutRecord(audit_topic, self.chain.append_placement(
                    source, snap, router_version=__version__, instance_id=instance_id, written_at_ms=now_ms,
                ), audit_key, audit_partition, audit_headers))
            audit_value = append(
                source,
                AuditFields(
                    decision=decision,  # type: ignore[arg-type]
                    reason=_REASON_TEXT[p.reason],
                    classification_level=ev.level,
                    categories=ev.categories,
                    field_names=ev.field_names,
                    jurisdictions=ev.jurisdictions,
                    destination_topic=out.topic if out is not None else "",
                    destination_partition=out.partition if out is not None else None,
                    placement_verdict=verdict,
                    payload_sha256=p.payload_digest,
                    sealed_sha256=sha256(out.value or b"" if out is not None else b"").hexdigest(),
                    source_topic=p.source_topic,
                    source_partition=p.source_partition,
                    source_offset=p.source_offset,
                    source_timestamp_ms=ts if ts_type != 0 else None,
                    event_id=p.event_id,
                    policy_version=ev.policy_version,
                    router_version=__version__,
                    instance_id=instance_id,
                    processed_at_ms=now_ms,
                    trace_id=trace_id,
                    destination_jurisdiction=ev.jurisdiction if out is not None else None,
                    placement_snapshot=snap_ref,
                ),
            )
            outs.append(OutRecord(audit_topic, audit_value, audit_key, audit_partition, audit_headers))
            key = (decision, _REASON_TEXT[p.reason], ev.jurisdiction)
            counts[key] = counts.get(key, 0) + 1
        # Counted per batch: one counter call per distinct (decision, reason, jurisdiction).
        for (decision, reason, jurisdiction), n in counts.items():
            telemetry.decisions.add(n, {"decision": decision, "reason": reason, "jurisdiction": jurisdiction})
        return outs


_REASON_TEXT = {r: r.value for r in ReasonCode}
_REASON_BYTES = {r: r.value.encode() for r in ReasonCode}
_DECISION = {"route": "route", "erasure": "route", "audit_only": "audit_only"}
"""Audit decision by output kind (anything else: quarantine)."""


def _timestamp(m: Message) -> int | None:
    ts_type, ts = m.timestamp()
    return ts if ts_type != 0 else None
