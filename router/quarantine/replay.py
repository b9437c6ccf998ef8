"""``quarantine replay``: feed quarantined records back through the router's decision after a fix.

Each selected record of ``quarantine.<J>`` is opened with J's key, decided again by the router's
own per-record path (:class:`router.pipeline.processor.RouterProcessor`, with the current config:
the ingress topic's decoder, trust and jurisdiction, classification, residency, policy, placement)
and, if it is now routed, written to its destination sealed exactly as ``run`` would have written
it, with a format-3 audit record (:class:`router.audit.record.ReplayLink`) naming the quarantine
record, the policy version it was quarantined under and the original ingress position. A record
that is still not routable stays where it is: nothing is written for it; the summary says why.

Exactly once. The replay consumes the quarantine topic in a consumer group of its own
(``<pipeline.group_id>.replay.<J>``) inside transactions of its own (``transactional.id``
``<pipeline.transactional_id_prefix>-replay-<J>``) with the engine ``run`` uses
(:class:`router.pipeline.engine.TransactionalEngine`): a routed record, its audit record and the
consumed offset commit together. On top of the offsets, every replayed record's link is in the
audit trail, and the replay reads the links of the partitions it is assigned before it processes
anything: a record whose link exists is never routed again, even after ``--from-beginning``, an
expired consumer group or a kill between transactions.

One writer per chain. Replay audit records form chains of their own, one per quarantine
topic-partition (their ``source_*`` is the quarantine record's position), placed in the audit topic
like the router's chains (:func:`router.audit.record.chain_partition`). The router's chains are
never written to. They are written in audit format 4, the replay link included: like ``run``, the
replay puts a placement record of the placement snapshot its decisions rely on into the replay chain
before the first decision that references it (after each assignment, and when it changes). Two
replays of one jurisdiction share the transactional id: the second fences the first.

The replay ends when its positions reach the end offsets the quarantine partitions had when it
started (records quarantined later are left for the next replay), at a point where everything it
processed is committed. ``--dry-run`` reads the same records and decides them the same way, but
has no producer and commits no offset.

What the quarantine record does not keep: the ingress record's Kafka key and its producer headers.
The key is kept only as the keyed digest under J (the quarantine record's own Kafka key), which is
exactly the key ``run`` gives an output in J; a record now routed to another jurisdiction whose
ingress record had a key is therefore not replayed (``KEY_NOT_KEPT``). Records of a ``trusted``
ingress topic, where producer headers may bind a jurisdiction or tenant, are not replayed when the
config names such headers (``HEADERS_NOT_KEPT``). Elsewhere the payload alone decides: an untrusted
header hint the original carried is not re-checked (docs/operations.md, "Replay").
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from confluent_kafka import KafkaException, Message, TopicPartition

from router.audit.chain import AuditChain, ChainState, ChainTail, checked_tail
from router.audit.record import (
    AuditDecodeError,
    AuditEntry,
    AuditFields,
    PlacementRecord,
    PlacementSnapshot,
    ReplayLink,
    chain_key,
    chain_partition,
    decode_entry,
)
from router.errors import ConfigError, RouterError
from router.keys.digest import DigestKeys
from router.keys.errors import KeyUnavailable
from router.pipeline.engine import OutRecord, StallError
from router.pipeline.processor import Evaluator, Placement, RouterProcessor, RouterSettings
from router.quarantine.reader import parse_reason
from router.quarantine.record import QuarantineDecodeError, QuarantineRecord, decode_quarantine
from router.quarantine.sealed import CannotOpen, PayloadNotKept, open_payload

log = logging.getLogger("router.quarantine.replay")

# Why a record stays quarantined when the router's decision cannot be the reason (value-free).
UNDECODABLE = "UNDECODABLE"
"""The bytes in the quarantine topic are not a quarantine record."""
NO_PAYLOAD_COPY = "NO_PAYLOAD_COPY"
"""The record holds no copy of the original (OVERSIZED): re-emit it from the source."""
CANNOT_OPEN = "CANNOT_OPEN"
"""J's configured key cannot open the sealed copy (wrong key, tampered record)."""
INGRESS_NOT_CONFIGURED = "INGRESS_NOT_CONFIGURED"
"""The record's ingress topic is no longer under ``pipeline.ingress``: no decoder, trust or jurisdiction."""
HEADERS_NOT_KEPT = "HEADERS_NOT_KEPT"
"""A trusted ingress topic's producer headers may bind a jurisdiction, and they are not kept."""
KEY_NOT_KEPT = "KEY_NOT_KEPT"
"""Now routed to another jurisdiction than its quarantine's, and its ingress key (kept only as a
digest under the quarantine's jurisdiction) cannot be keyed for the destination."""

REPLAYED = "replayed"
QUARANTINED = "still_quarantined"
NOT_SELECTED = "not_selected"
ALREADY_REPLAYED = "already_replayed"

OutcomeKey = tuple[str, str, str]
"""(reason it was quarantined with, outcome, target): target is the destination topic of a
replayed record, the reason a record is still quarantined, else empty."""


class ReplayError(RouterError):
    """The replay cannot start or go on; the message names the setting or what to check."""


# -- the replay chains: tails and links, read back from the audit topic --------------------------


@dataclass(frozen=True, slots=True)
class ReplayChain:
    """What the audit topic holds of one quarantine partition's replay chain."""

    tail: ChainTail | None
    """Its last committed record (None: no record)."""
    linked: frozenset[int] = frozenset()
    """The quarantine offsets its records link to: replayed already, never to be routed again."""
    complete: bool = True
    """False when the chain's first record (seq 0) was not found: retention removed the head, and
    links older than the oldest record read are unknown."""


ReplayChainsReader = Callable[[int, Sequence[tuple[str, int]]], Mapping[tuple[str, int], ReplayChain]]
"""(audit partition, quarantine partitions whose chains sit there) -> each one's :class:`ReplayChain`."""

WINDOW = 1000
"""Offsets read back from an audit partition's end at first; x4 each further window."""


def replay_chains_from(records: Iterable[tuple[int, AuditEntry, bytes]],
                       sources: Sequence[tuple[str, int]]) -> dict[tuple[str, int], ReplayChain]:
    """The replay chains of ``sources`` in ``records`` = ``(offset, decoded, bytes)`` of one audit
    partition, any order. A found tail's own hash is checked (never extend a damaged chain)."""
    wanted = set(sources)
    found: dict[tuple[str, int], list[tuple[int, AuditEntry, bytes]]] = {}
    for offset, rec, data in records:
        of = rec.chain(0)
        source = (of.source_topic or "", of.partition)
        # a replay chain holds replayed decisions (with their link) and its placement records
        if (rec.replay is not None or isinstance(rec, PlacementRecord)) and source in wanted:
            found.setdefault(source, []).append((offset, rec, data))
    out: dict[tuple[str, int], ReplayChain] = {}
    for source in sources:
        chain = sorted(found.get(source, []), key=lambda r: r[0])
        if not chain:
            out[source] = ReplayChain(None)
            continue
        _offset, last, data = chain[-1]
        linked = frozenset(r.replay.quarantine_offset for _o, r, _d in chain if r.replay is not None)
        out[source] = ReplayChain(checked_tail(last, data), linked, any(r.seq == 0 for _o, r, _d in chain))
    return out


def _window(consumer: Any, topic: str, partition: int, *, start: int, stop: int, deadline: float) -> Iterable[Any]:
    """The committed records of ``topic[partition]`` with ``start <= offset < stop``, in order."""
    from confluent_kafka import KafkaError  # noqa: PLC0415

    consumer.assign([TopicPartition(topic, partition, start)])
    try:
        while True:
            if time.monotonic() > deadline:
                raise ReplayError(f"timed out reading the replay chains in audit topic {topic}[{partition}]; "
                                  "check that the cluster is reachable")
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                problem = m.error()
                if problem is not None and problem.code() != KafkaError._PARTITION_EOF:
                    raise ReplayError(f"reading audit topic {topic}[{partition}]: {problem.str()}")
                if problem is not None or m.offset() >= stop:
                    return
                yield m
    finally:
        consumer.unassign()


def read_replay_chains(
    consumer_config: Mapping[str, Any], audit_topic: str, audit_partition: int, sources: Sequence[tuple[str, int]],
    *, timeout: float = 300.0,
) -> dict[tuple[str, int], ReplayChain]:
    """The replay chains of ``sources`` (quarantine topic-partitions) in ``audit_topic[audit_partition]``,
    read ``read_committed`` back from the partition's end in widening windows until every chain's
    first record (seq 0) is found or the partition's start is reached; records keyed for other chains
    are skipped undecoded. Raises :class:`ReplayError` when the partition cannot be read in time or
    a replay chain's record does not decode or its last record fails its own hash."""
    from router.kafka_read import committed_reader  # noqa: PLC0415

    keys = {chain_key(t, p) for t, p in sources}
    where = f"audit topic {audit_topic}[{audit_partition}]"
    deadline = time.monotonic() + timeout
    consumer = committed_reader(consumer_config, group_prefix="residency-router-replay-audit")
    collected: list[tuple[int, AuditEntry, bytes]] = []
    started: set[tuple[str, int]] = set()
    try:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(audit_topic, audit_partition),
                                                       timeout=timeout, cached=False)
        except KafkaException as exc:
            raise ReplayError(f"could not read the offsets of {where}: {exc}") from None
        stop, window = int(high), WINDOW
        while stop > low and not started >= set(sources):
            start = max(int(low), stop - window)
            for m in _window(consumer, audit_topic, audit_partition, start=start, stop=stop, deadline=deadline):
                if m.key() not in keys:
                    continue
                data = m.value() or b""
                rec = decode_entry(data)
                collected.append((m.offset(), rec, data))
                if rec.seq == 0:
                    chain = rec.chain(audit_partition)
                    started.add((chain.source_topic or "", chain.partition))
            stop, window = start, window * 4
        return replay_chains_from(collected, sources)
    except AuditDecodeError as exc:
        raise ReplayError(f"{where}: a replay chain's record does not decode or its last record fails its own "
                          f"hash ({exc}); run `audit verify`") from None
    finally:
        consumer.close()


# -- the processor -----------------------------------------------------------------------------------


class _Ingress:
    """The ingress record as the router saw it, rebuilt from a quarantine record and its opened
    copy (what :class:`RouterProcessor` reads of a consumed message). The key is the quarantine
    record's Kafka key: the ingress key's keyed digest under the quarantine's jurisdiction."""

    __slots__ = ("_key", "_rec", "_value")

    def __init__(self, rec: QuarantineRecord, value: bytes, key: bytes | None) -> None:
        self._rec, self._value, self._key = rec, value, key

    def topic(self) -> str:
        return self._rec.source_topic

    def partition(self) -> int:
        return self._rec.source_partition

    def offset(self) -> int:
        return self._rec.source_offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]]:
        return []  # not kept by the quarantine record

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        ts = self._rec.source_timestamp_ms
        return (0, 0) if ts is None else (1, ts)


class _KeptKeyDigests(DigestKeys):
    """The router's keyed digests, except that the record key of an output in the quarantine's
    jurisdiction is the quarantine record's own key, which *is* that digest (the ingress key itself
    is not kept). Under another jurisdiction the digest cannot be derived; such routes are refused
    before anything is written (:data:`KEY_NOT_KEPT`)."""

    def __init__(self, digests: DigestKeys, jurisdiction: str) -> None:  # delegates; no keys of its own
        self._digests = digests
        self._jurisdiction = jurisdiction

    def __repr__(self) -> str:
        return f"_KeptKeyDigests({self._digests!r}, {self._jurisdiction!r})"

    def record_key(self, jurisdiction: str, key: bytes) -> bytes:
        return key if jurisdiction == self._jurisdiction else self._digests.record_key(jurisdiction, key)

    def event_id(self, jurisdiction: str, event_id: str) -> str:
        return self._digests.event_id(jurisdiction, event_id)

    def payload_digest(self, jurisdiction: str, payload: bytes) -> str:
        return self._digests.payload_digest(jurisdiction, payload)


_PLACEMENT_MARK = b"placement"
"""What :class:`_Decisions` returns for the router processor's placement record (not produced)."""


class _Decisions(AuditChain):
    """Takes the router processor's audit fields instead of chaining them: a replay records its
    decisions in chains of its own, never in the router's. The placement snapshot the router
    processor would record is kept (:attr:`snapshot`) for the replay chain's own placement record."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[AuditFields] = []
        self.snapshot: PlacementSnapshot | None = None

    def append(self, chain: object, fields: AuditFields, replay: ReplayLink | None = None) -> bytes:
        self.fields.append(fields)
        return b""

    def append_decision(self, chain: object, fields: AuditFields, replay: ReplayLink | None = None) -> bytes:
        return self.append(chain, fields, replay)

    def append_placement(self, chain: tuple[str, int], snapshot: PlacementSnapshot, *, router_version: str,
                         instance_id: str, written_at_ms: int) -> bytes:
        self.snapshot = snapshot
        return _PLACEMENT_MARK

    def snapshot_of(self, chain: object) -> bytes | None:
        return self.snapshot.sha256 if self.snapshot is not None else None


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    topic: str
    """The quarantine topic replayed, ``quarantine.<J>``."""
    jurisdiction: str
    audit_topic: str
    audit_partitions: int
    instance_id: str
    """Written as the audit records' ``instance_id``."""
    reasons: frozenset[str] | None = None
    """Only records quarantined with these reason codes (None: every record)."""
    ingress_topics: frozenset[str] = frozenset()
    """The configured ingress topics (a record from any other cannot be decided again)."""
    header_bound_topics: frozenset[str] = frozenset()
    """Trusted ingress topics whose producer headers may bind (the config names such headers)."""
    topic_jurisdiction: Mapping[str, str] = field(default_factory=dict)
    """Configured topic -> jurisdiction (the destination's, to tell a route out of J)."""


class ReplayProcessor:
    """Implements :class:`router.pipeline.engine.BatchProcessor` for ``quarantine replay``.

    Per quarantine record: at most one routed record (exactly what ``run`` writes for it now) and
    one format-3 audit record in the chain of the quarantine partition; nothing for a record that
    stays quarantined. Outcomes are counted per (reason quarantined, outcome, target) and rolled
    back with the transaction; :meth:`committed` is what the last commit covered.
    """

    def __init__(  # noqa: PLR0917 - the router's collaborators plus the replay's own
        self,
        settings: ReplaySettings,
        evaluate: Evaluator,
        placement: Placement,
        sealer: Any,
        digests: DigestKeys,
        router_settings: RouterSettings,
        opener: Any,
        *,
        chains: ReplayChainsReader | None = None,
    ) -> None:
        self.s = settings
        self._decisions = _Decisions()

        def decide(topic: str, value: bytes | None, _key: bytes | None, _headers: Mapping[str, str]) -> Any:
            return evaluate(topic, value, None, {})  # the ingress key and headers are not kept

        router_settings.audit_partitions = settings.audit_partitions
        self.router = RouterProcessor(decide, placement, sealer, self._decisions, router_settings,
                                      _KeptKeyDigests(digests, settings.jurisdiction))
        self.opener = opener
        self.chain = AuditChain(audit_partitions=settings.audit_partitions)
        self._chains = chains
        self._linked: dict[int, set[int]] = {}
        self._new_links: set[tuple[int, int]] = set()
        self.counts: Counter[OutcomeKey] = Counter()
        self._committed: Counter[OutcomeKey] = Counter()
        self.settled = True
        """True at a commit point (nothing processed since the last checkpoint)."""
        self.incomplete_chains: set[int] = set()
        """Quarantine partitions whose replay chain's head is gone (retention): older links unknown."""

    # -- BatchProcessor --------------------------------------------------------------------
    def checkpoint(self) -> object:
        for partition, offset in self._new_links:
            self._linked.setdefault(partition, set()).add(offset)
        self._new_links.clear()
        self._committed = Counter(self.counts)
        self.settled = True
        return (self.chain.checkpoint(), self._committed)

    def rollback(self, state: object) -> None:
        chain_state, counts = cast("tuple[ChainState, Counter[OutcomeKey]]", state)
        self._new_links.clear()
        self.chain.rollback(chain_state)
        self.counts = Counter(counts)

    def lower_output_limit(self, topic: str, refused_size: int) -> int | None:
        return self.router.lower_output_limit(topic, refused_size)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read back the replay chain of every assigned quarantine partition: its tail (to extend it)
        and its links (records already replayed, never routed again)."""
        read = self._chains
        if read is None:
            return
        by_audit: dict[int, list[tuple[str, int]]] = {}
        for tp in partitions:
            if tp.topic == self.s.topic:
                by_audit.setdefault(chain_partition(tp.topic, tp.partition, self.s.audit_partitions), []).append(
                    (tp.topic, tp.partition))
        for audit_partition, sources in sorted(by_audit.items()):
            for source, found in read(audit_partition, sorted(sources)).items():
                self.chain.set_tail(source, found.tail)
                self._linked[source[1]] = set(found.linked)
                if not found.complete and source[1] not in self.incomplete_chains:
                    self.incomplete_chains.add(source[1])
                    log.warning("the replay chain of %s[%d] has lost its first records (audit retention): a record "
                                "replayed before them could be routed again", source[0], source[1])

    def committed(self) -> Counter[OutcomeKey]:
        """The outcomes the last committed transaction (or dry-run batch) covered."""
        return Counter(self._committed)

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        self.settled = False
        todo: list[tuple[Any, QuarantineRecord, _Ingress]] = []
        for m in msgs:
            rec = self._select(m)
            if rec is None:
                continue
            try:
                value = open_payload(self.opener, rec, topic=self.s.topic, partition=m.partition() or 0,
                                     offset=m.offset() or 0, jurisdiction=self.s.jurisdiction)
            except PayloadNotKept:
                self.counts[(rec.reason, QUARANTINED, NO_PAYLOAD_COPY)] += 1
                continue
            except CannotOpen as err:
                log.warning("%s[%d]@%d: the %s key cannot open the record (%s); it stays", self.s.topic,
                            m.partition(), m.offset(), self.s.jurisdiction, err.error)
                self.counts[(rec.reason, QUARANTINED, CANNOT_OPEN)] += 1
                continue
            except KeyUnavailable as err:
                raise StallError(f"key unavailable: {err}") from err
            todo.append((m, rec, _Ingress(rec, value, m.key())))
        if not todo:
            return []
        self._decisions.fields.clear()
        outs = self.router.process([ingress for _m, _r, ingress in todo])  # type: ignore[misc]
        decided = self._pair(outs)
        out: list[OutRecord] = []
        for (m, rec, _ingress), (routed, fields) in zip(todo, decided, strict=True):
            out.extend(self._outcome(m, rec, routed, fields))
        return out

    # -- steps -----------------------------------------------------------------------------
    def _select(self, m: Message) -> QuarantineRecord | None:
        """The quarantine record to decide again, or None (counted) when it is not."""
        partition, offset = m.partition(), m.offset()
        try:
            rec = decode_quarantine(m.value() or b"")
        except QuarantineDecodeError:
            self.counts[(UNDECODABLE, QUARANTINED, UNDECODABLE)] += 1
            return None
        if self.s.reasons is not None and rec.reason not in self.s.reasons:
            self.counts[(rec.reason, NOT_SELECTED, "")] += 1
            return None
        if partition is not None and offset is not None and (
            offset in self._linked.get(partition, ()) or (partition, offset) in self._new_links
        ):
            self.counts[(rec.reason, ALREADY_REPLAYED, "")] += 1
            return None
        if rec.source_topic not in self.s.ingress_topics:
            self.counts[(rec.reason, QUARANTINED, INGRESS_NOT_CONFIGURED)] += 1
            return None
        if rec.source_topic in self.s.header_bound_topics:
            self.counts[(rec.reason, QUARANTINED, HEADERS_NOT_KEPT)] += 1
            return None
        return rec

    def _pair(self, outs: list[OutRecord]) -> list[tuple[OutRecord | None, AuditFields]]:
        """The router processor's outputs per input: (its output or None, its audit fields). It
        emits each input's output (if any) right before that input's audit record."""
        decided: list[tuple[OutRecord | None, AuditFields]] = []
        pending: OutRecord | None = None
        fields = iter(self._decisions.fields)
        for o in outs:
            if o.topic == self.s.audit_topic and o.value == _PLACEMENT_MARK:
                continue  # the snapshot is in self._decisions.snapshot
            if o.topic == self.s.audit_topic:
                decided.append((pending, next(fields)))
                pending = None
            else:
                pending = o
        return decided

    def _outcome(self, m: Any, rec: QuarantineRecord, routed: OutRecord | None,
                 fields: AuditFields) -> list[OutRecord]:
        if fields.decision != "route" or routed is None:
            self.counts[(rec.reason, QUARANTINED, fields.reason)] += 1
            return []
        dest_j = self.s.topic_jurisdiction.get(routed.topic)
        if m.key() is not None and dest_j != self.s.jurisdiction:
            self.counts[(rec.reason, QUARANTINED, KEY_NOT_KEPT)] += 1
            return []
        partition, offset = m.partition(), m.offset()
        ts_type, ts = m.timestamp()
        source = (self.s.topic, partition)
        link = ReplayLink(self.s.topic, partition, offset, rec.reason, rec.policy_version, rec.quarantined_at_ms,
                          rec.source_topic, rec.source_partition, rec.source_offset)
        key, audit_partition = chain_key(*source), chain_partition(self.s.topic, partition, self.s.audit_partitions)
        out = [routed]
        snap = self._decisions.snapshot
        if fields.placement_snapshot is not None and snap is not None and snap.sha256 == fields.placement_snapshot \
                and self.chain.snapshot_of(source) != snap.sha256:
            out.append(OutRecord(self.s.audit_topic, self.chain.append_placement(
                source, snap, router_version=fields.router_version, instance_id=self.s.instance_id,
                written_at_ms=fields.processed_at_ms), key, audit_partition))
        elif fields.placement_snapshot is not None and self.chain.snapshot_of(source) != fields.placement_snapshot:
            raise StallError("the placement snapshot of a replayed decision is not known; deciding it again")
        audit = self.chain.append_decision(source, fields._replace(
            source_topic=self.s.topic, source_partition=partition, source_offset=offset,
            source_timestamp_ms=ts if ts_type != 0 else None, instance_id=self.s.instance_id,
        ), link)
        self._new_links.add((partition, offset))
        self.counts[(rec.reason, REPLAYED, routed.topic)] += 1
        out.append(OutRecord(self.s.audit_topic, audit, key, audit_partition))
        return out


# -- the summary ---------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    topic: str
    jurisdiction: str
    policy_version: str
    dry_run: bool
    complete: bool
    """The replay reached the end offsets it saw at start (with everything it did committed)."""
    ends: dict[int, int]
    starts: dict[int, int]
    outcomes: Counter[OutcomeKey]
    group: str = ""
    transactional_id: str = ""
    incomplete_chains: list[int] = field(default_factory=list)

    def _by(self, outcome: str) -> dict[str, int]:
        c: Counter[str] = Counter()
        for (_reason, o, target), n in self.outcomes.items():
            if o == outcome:
                c[target] += n
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def _by_reason(self, outcome: str) -> dict[str, int]:
        c: Counter[str] = Counter()
        for (reason, o, _target), n in self.outcomes.items():
            if o == outcome:
                c[reason] += n
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_json(self) -> dict[str, Any]:
        replayed = self._by(REPLAYED)
        return {
            "topic": self.topic,
            "jurisdiction": self.jurisdiction,
            "policy_version": self.policy_version,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "group": self.group,
            "transactional_id": self.transactional_id,
            "read": sum(self.outcomes.values()),
            "replayed": sum(replayed.values()),
            "replayed_by_destination": replayed,
            "still_quarantined": self._by(QUARANTINED),
            "not_selected": self._by_reason(NOT_SELECTED),
            "already_replayed": sum(self._by_reason(ALREADY_REPLAYED).values()),
            "by_reason": [
                {"reason": reason, "outcome": outcome, "target": target or None, "records": n}
                for (reason, outcome, target), n in sorted(self.outcomes.items())
            ],
            "partitions": [{"partition": p, "start": self.starts.get(p), "end": end}
                           for p, end in sorted(self.ends.items())],
            "incomplete_chains": self.incomplete_chains,
        }

    def lines(self) -> list[str]:
        d = self.to_json()
        verb = "would be replayed" if self.dry_run else "replayed"
        head = (f"{'dry run: ' if self.dry_run else ''}replay of {self.topic} (jurisdiction {self.jurisdiction}) under "
                f"policy {self.policy_version}: {d['read']} records read, {d['replayed']} {verb}"
                + ("" if self.complete else "; STOPPED before the end offsets it started with: run it again"))
        out = [head, f"{verb} per destination:"]
        out += [f"  {n:>8}  {topic}" for topic, n in d["replayed_by_destination"].items()] or ["  -"]
        out.append("still quarantined per reason (nothing written for them):")
        out += [f"  {n:>8}  {reason}" for reason, n in d["still_quarantined"].items()] or ["  -"]
        if d["not_selected"]:
            out.append("not selected (--reason), left in place:")
            out += [f"  {n:>8}  {reason}" for reason, n in d["not_selected"].items()]
        if d["already_replayed"]:
            out.append(f"already replayed earlier (their audit link exists): {d['already_replayed']}")
        out.append("by reason quarantined:")
        for row in d["by_reason"]:
            target = f" -> {row['target']}" if row["target"] else ""
            out.append(f"  {row['records']:>8}  {row['reason']}: {row['outcome']}{target}")
        return out


# -- the Kafka shell -----------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr: rewritten in place on a terminal (at most twice a second), else
    one line every ``every`` records read."""

    def __init__(self, topic: str, total: int, *, every: int = 10_000, stream: TextIO | None = None) -> None:
        self.topic, self.total, self.every = topic, total, every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._last_time = 0.0
        self._last_count = 0

    def update(self, outcomes: Counter[OutcomeKey]) -> None:
        read = sum(outcomes.values())
        replayed = sum(n for (_r, o, _t), n in outcomes.items() if o == REPLAYED)
        line = f"{self.topic}: {read} of about {self.total} records read, {replayed} replayed"
        if self.tty:
            now = time.monotonic()
            if now - self._last_time >= 0.5:
                self._last_time = now
                self.stream.write("\r" + line)
                self.stream.flush()
        elif self.every > 0 and read // self.every > self._last_count // self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_count = read

    def done(self) -> None:
        if self.tty and self._last_time:
            self.stream.write("\n")
            self.stream.flush()


def _positions_reached(consumer: Any, topic: str, ends: Mapping[int, int], checked: list[float]) -> bool:
    """Every partition of ``ends`` is at or past its end: by the consumer's position (which steps
    over transaction markers), or, where no position is known yet (nothing fetched since an
    assignment or a rewind), by the group's committed offset (asked at most once a second)."""
    assigned = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
    if not set(ends) <= assigned:
        return False
    positions = consumer.position([TopicPartition(topic, p) for p in ends])
    behind = [tp for tp in positions if tp.offset < ends[tp.partition]]
    if not behind:
        return True
    if any(tp.offset >= 0 for tp in behind) or time.monotonic() - checked[0] < 1.0:
        return False
    checked[0] = time.monotonic()
    try:
        committed = consumer.committed([TopicPartition(topic, tp.partition) for tp in behind], timeout=10)
    except KafkaException as err:  # asked again in a second; the engine's own calls report what is wrong
        log.debug("could not read the replay group's committed offsets: %s", err)
        return False
    return all(tp.offset >= ends[tp.partition] for tp in committed)


def run_engine(engine: Any, processor: ReplayProcessor, topic: str, ends: Mapping[int, int],
               progress: Progress | None = None) -> bool:
    """Run ``engine`` until the positions reach ``ends`` at a commit point; True if they did
    (False: stopped before, e.g. by SIGTERM)."""
    reached = [False]
    checked = [0.0]

    def until(_stats: Any) -> bool:
        if progress is not None:
            progress.update(processor.counts)
        if processor.settled and _positions_reached(engine.consumer, topic, ends, checked):
            reached[0] = True
        return reached[0]

    engine.run(until=until)
    if progress is not None:
        progress.done()
    return reached[0] and processor.settled


def _read_to_ends(consumer_config: Mapping[str, Any], topic: str, starts: Mapping[int, int],
                  ends: Mapping[int, int], batch_size: int) -> Iterable[list[Any]]:
    """Batches of the committed records of ``topic`` from ``starts`` up to ``ends`` (dry run)."""
    from confluent_kafka import KafkaError  # noqa: PLC0415

    from router.kafka_read import committed_reader  # noqa: PLC0415

    pending = {p for p in ends if starts[p] < ends[p]}
    if not pending:
        return
    consumer = committed_reader(consumer_config, group_prefix="residency-router-replay-dry-run")
    try:
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(pending)])
        while pending:
            batch = []
            for m in consumer.consume(num_messages=batch_size, timeout=0.5):
                err, p = m.error(), m.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(p)
                        continue
                    raise ReplayError(f"reading {topic}[{p}]: {err.str()}")
                if p not in pending or m.offset() >= ends[p]:
                    pending.discard(p)
                    continue
                batch.append(m)
                if m.offset() >= ends[p] - 1:
                    pending.discard(p)
            if batch:
                yield batch
    finally:
        consumer.close()


def run_dry(processor: ReplayProcessor, consumer_config: Mapping[str, Any], topic: str, *,
            starts: Mapping[int, int], ends: Mapping[int, int], batch_size: int,
            progress: Progress | None = None) -> None:
    """Decide every record from ``starts`` to ``ends`` as the replay would, writing nothing."""
    processor.on_assign([TopicPartition(topic, p) for p in sorted(ends)])
    processor.checkpoint()
    for batch in _read_to_ends(consumer_config, topic, starts, ends, batch_size):
        processor.process(batch)  # outputs dropped: no producer
        processor.checkpoint()
        if progress is not None:
            progress.update(processor.counts)
    if progress is not None:
        progress.done()


@dataclass
class ReplayOptions:
    jurisdiction: str
    reasons: list[str] | None = None
    dry_run: bool = False
    from_beginning: bool = False
    bootstrap: str | None = None
    config_dir: Path | None = None
    batch_size: int | None = None
    progress_every: int = 10_000
    install_signal_handlers: bool = True


def _offsets(consumer: Any, topic: str, group_offsets: bool, timeout: float = 30.0
             ) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """(low, high, committed) per partition of ``topic``; committed is -1 where the group has none."""
    from router.kafka_read import partitions_of  # noqa: PLC0415

    parts = partitions_of(consumer, topic, timeout, what="quarantine topic", error=ReplayError,
                          hint="check policy.quarantine_topic and 'topics', and that `topics create` ran")
    lows: dict[int, int] = {}
    highs: dict[int, int] = {}
    try:
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            lows[p], highs[p] = int(low), int(high)
        committed = dict.fromkeys(parts, -1)
        if group_offsets:
            for tp in consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout):
                committed[tp.partition] = tp.offset if tp.error is None else -1
    except KafkaException as err:
        raise ReplayError(f"could not read the offsets of quarantine topic {topic!r}: {err}") from None
    return lows, highs, committed


def replay(config: Any, options: ReplayOptions) -> ReplaySummary:  # noqa: PLR0912, PLR0915 - the wiring, in order
    """Replay ``quarantine.<J>`` of ``config`` (a :class:`router.config.models.RouterConfig`): placement
    checked as ``run`` checks it, then the engine (or, with ``dry_run``, a plain read) to the end
    offsets of the start. Raises :class:`ConfigError` / :class:`ReplayError` before anything is
    written when the config, placement or cluster does not allow a safe replay."""
    from router.audit.kafka import read_recorded_placements  # noqa: PLC0415
    from router.envelope import Sealer  # noqa: PLC0415
    from router.kafka_read import committed_reader  # noqa: PLC0415
    from router.keys.factory import build_dek_manager, build_jurisdiction_keys, build_signer  # noqa: PLC0415
    from router.pipeline.app import (  # noqa: PLC0415
        _WatchPlacement,
        audit_placement,
        default_instance_id,
        engine_settings,
    )
    from router.pipeline.engine import TransactionalEngine  # noqa: PLC0415
    from router.placement.kafka import PlacementWatch, admin_for, check_startup  # noqa: PLC0415
    from router.placement.model import jurisdictions_sha256  # noqa: PLC0415
    from router.quarantine.sealed import build_opener  # noqa: PLC0415
    from router.routing.build import evaluator_for, ingress_of  # noqa: PLC0415

    j = options.jurisdiction
    missing = [s for s in ("pipeline", "keys", "audit", "residency", "policy") if getattr(config, s, None) is None]
    if missing:
        raise ConfigError(f"`quarantine replay` needs the config sections {', '.join(missing)} (as `run` does)")
    if j not in config.jurisdictions:
        raise ConfigError(f"--jurisdiction: {j!r} is not under 'jurisdictions' (known: "
                          f"{', '.join(sorted(config.jurisdictions))})")
    if j not in config.keys.jurisdictions:
        raise ConfigError(f"--jurisdiction: {j!r} has no key under keys.jurisdictions: its quarantine cannot be opened")
    reasons = frozenset(parse_reason(r) for r in options.reasons) if options.reasons else None
    pipe, audit = config.pipeline, config.audit
    topic = config.policy.quarantine_topic.format(jurisdiction=j, entity="")
    placed = {t.name: t.jurisdiction for t in config.topics}
    if placed.get(topic) != j:
        raise ConfigError(f"quarantine topic {topic} is not under 'topics' with jurisdiction {j}: its placement "
                          "cannot be checked")
    cluster = config.clusters.get("default")
    if cluster is None:
        raise ConfigError("`quarantine replay` uses the cluster named 'default': add clusters.default to the config")
    props = dict(cluster.client_properties())
    if options.bootstrap:
        props["bootstrap.servers"] = options.bootstrap
    group = f"{pipe.group_id}.replay.{j}"
    txn_id = f"{pipe.transactional_id_prefix}-replay-{j}"

    admin = admin_for(config, props["bootstrap.servers"])
    report = check_startup(config, admin)  # every configured topic in place, as `run` requires
    audit_report = report.topics.get(audit.topic)
    if audit_report is None:
        raise ConfigError(f"the audit topic {audit.topic!r} must be listed under 'topics' (jurisdiction "
                          f"{audit.jurisdiction}) so that its placement is checked")
    audit_partitions = audit_placement(audit.topic, len(audit_report.partitions),
                                       read_recorded_placements(props, audit.topic))

    reader = committed_reader(props, group_prefix="residency-router-replay", group_id=group)
    try:
        lows, highs, committed = _offsets(reader, topic, group_offsets=not options.from_beginning)
        starts = {p: lows[p] if committed[p] < lows[p] else committed[p] for p in lows}
        if options.from_beginning and not options.dry_run and any(lows[p] < highs[p] for p in lows):
            try:  # the group restarts at the beginning (links keep replayed records from being routed again)
                reader.commit(offsets=[TopicPartition(topic, p, lows[p]) for p in sorted(lows)], asynchronous=False)
            except KafkaException as err:
                raise ReplayError(f"--from-beginning: could not reset consumer group {group!r} ({err}); is another "
                                  f"replay of {j} running, or has a stopped one's session not timed out yet "
                                  f"(pipeline.session_timeout_ms)?") from None
    finally:
        reader.close()
    ends = {p: highs[p] for p in lows if starts[p] < highs[p]}

    ingress = ingress_of(config)
    evaluator = evaluator_for(config, options.config_dir, ingress=ingress)
    residency = config.residency
    header_bound = frozenset(t for t, spec in ingress.items() if spec.origin.trusted
                             and (residency.header or residency.tenant_header))
    summary = ReplaySummary(topic, j, evaluator.version, options.dry_run, True, dict(ends), starts, Counter(),
                            group="" if options.dry_run else group, transactional_id="" if options.dry_run else txn_id)
    if not ends:
        return summary

    watch = PlacementWatch.from_config(config, admin, bootstrap=props["bootstrap.servers"], known_racks=report.brokers)
    watch.refresh()
    watch.start()
    try:
        jurisdiction_keys = build_jurisdiction_keys(config.keys)
        sealer = Sealer(build_dek_manager(config.keys, jurisdiction_keys), build_signer(config.keys))
        quarantine_pattern = config.policy.quarantine_topic
        origins = {t: spec.origin.jurisdiction for t, spec in ingress.items()}
        from router.pipeline.app import topic_message_limit  # noqa: PLC0415

        max_message = min(int(props.get("message.max.bytes", 1_000_000)),
                          topic_message_limit(admin, [t.name for t in config.topics]))
        instance = f"replay-{j}@{default_instance_id()}"

        def chains(partition: int, sources: Sequence[tuple[str, int]]) -> Mapping[tuple[str, int], ReplayChain]:
            return read_replay_chains(props, audit.topic, partition, sources)

        processor = ReplayProcessor(
            ReplaySettings(topic=topic, jurisdiction=j, audit_topic=audit.topic, audit_partitions=audit_partitions,
                           instance_id=instance, reasons=reasons, ingress_topics=frozenset(ingress),
                           header_bound_topics=header_bound, topic_jurisdiction=placed),
            evaluator,
            _WatchPlacement(watch, jurisdiction_of_rack=config.jurisdiction_of_rack,
                            jurisdictions_sha256=jurisdictions_sha256(config)),
            sealer,
            DigestKeys(jurisdiction_keys),
            RouterSettings(
                quarantine_topic=lambda q: quarantine_pattern.format(jurisdiction=q, entity=""),
                audit_topic=audit.topic,
                instance_id=instance,
                origin_jurisdiction=origins.__getitem__,
                audit_jurisdiction=audit.jurisdiction,
                stall_on_placement_violation=config.placement.on_violation == "stall",
                max_output_bytes=max_message - 16_384,
            ),
            build_opener(config.keys),
            chains=chains,
        )
        batch_size = options.batch_size or pipe.batch_size
        progress = Progress(topic, sum(ends[p] - starts[p] for p in ends), every=options.progress_every)
        if options.dry_run:
            run_dry(processor, props, topic, starts=starts, ends=ends, batch_size=batch_size, progress=progress)
            complete = True
        else:
            engine = TransactionalEngine(engine_settings(
                pipe, bootstrap_config=props, ingress_topics=[topic], group_id=group, transactional_id=txn_id,
                batch_size=batch_size,
            ), processor)
            if options.install_signal_handlers:
                engine.install_signal_handlers()
            complete = run_engine(engine, processor, topic, ends, progress)
    finally:
        watch.stop(5)
    summary.complete = complete
    summary.outcomes = processor.committed()
    summary.incomplete_chains = sorted(processor.incomplete_chains)
    return summary
