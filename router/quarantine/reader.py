"""Reading a quarantine topic for operators: value-free views, filters, statistics, and the Kafka reads.

The pure part (:class:`QuarantineEntry`, :func:`entry_line`, :func:`entry_json`, :class:`Filter`,
:class:`QuarantineStats`, :func:`parse_position`, :func:`parse_since`) works on decoded
:class:`router.quarantine.record.QuarantineRecord` objects and never touches ``sealed_payload``:
everything it prints is metadata (times, positions, names, reason codes, versions and value-free
detail text). The Kafka part (:func:`read_quarantine`, :func:`read_one`) reads with
``isolation.level=read_committed``, so records of aborted router transactions are never shown.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from router.errors import ReasonCode, RouterError
from router.kafka_read import committed_reader, partitions_of
from router.quarantine.record import QuarantineDecodeError, QuarantineRecord, decode_quarantine


class QuarantineReadError(RouterError):
    """The quarantine topic could not be read, or a position or option is invalid; the message
    names the option or topic to check and never carries record data."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One record read from a quarantine topic: where it sits, and the decoded record (or why it
    did not decode)."""

    topic: str
    partition: int
    offset: int
    record: QuarantineRecord | None
    error: str | None = None
    """Why the bytes did not decode (``record`` is then None)."""

    @property
    def position(self) -> str:
        """``partition:offset`` in the quarantine topic: what ``show --offset`` takes."""
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """A clear envelope header (``rr-entity``, ``rr-operation``) of the sealed original."""
        if self.record is None:
            return None
        for key, value in self.record.envelope_headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def entity(self) -> str | None:
        return self.header("rr-entity")

    @property
    def operation(self) -> str | None:
        return self.header("rr-operation")


def format_ms(ms: int | None) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds (``-`` for none)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def entry_json(e: QuarantineEntry) -> dict[str, Any]:
    """The value-free metadata of an entry as a JSON-ready dict (no payload, no payload bytes)."""
    out: dict[str, Any] = {"topic": e.topic, "partition": e.partition, "offset": e.offset, "position": e.position}
    r = e.record
    if r is None:
        out["error"] = e.error
        return out
    out.update({
        "quarantined_at": format_ms(r.quarantined_at_ms),
        "quarantined_at_ms": r.quarantined_at_ms,
        "source": {"topic": r.source_topic, "partition": r.source_partition, "offset": r.source_offset,
                   "timestamp_ms": r.source_timestamp_ms},
        "entity": e.entity,
        "operation": e.operation,
        "reason": r.reason,
        "detail": r.detail,
        "field_names": list(r.field_names),
        "categories": list(r.categories),
        "classification_level": r.classification_level,
        "jurisdictions": list(r.jurisdictions),
        "policy_version": r.policy_version,
        "router_version": r.router_version,
        "event_id": r.event_id,
        "payload_digest": r.payload_sha256,
        "trace_id": r.trace_id,
        "has_payload": bool(r.sealed_payload),
        "key_id": r.key_id,
    })
    return out


def _names(items: tuple[str, ...]) -> str:
    return ",".join(items) if items else "-"


def entry_line(e: QuarantineEntry) -> str:
    """One line per record: time, quarantine position, source position, entity, operation, reason,
    field names, categories, policy version, detail. Values never appear: these are all metadata."""
    r = e.record
    if r is None:
        return f"-  {e.position}  UNDECODABLE  {e.error}"
    return (
        f"{format_ms(r.quarantined_at_ms)}  {e.position}  {r.source_topic}[{r.source_partition}]@{r.source_offset}  "
        f"{e.entity or '-'} {e.operation or '-'}  {r.reason}  fields={_names(r.field_names)}  "
        f"categories={_names(r.categories)}  policy={r.policy_version}  {r.detail}"
    )


def entry_show(e: QuarantineEntry) -> list[str]:
    """The metadata of one record, one ``name: value`` line each (``show``)."""
    d = entry_json(e)
    if e.record is None:
        return [f"position: {e.position}", f"error: {e.error}"]
    src = d["source"]
    return [
        f"topic: {e.topic}",
        f"position: {e.position}",
        f"quarantined_at: {d['quarantined_at']}",
        f"reason: {d['reason']}",
        f"detail: {d['detail']}",
        f"source: {src['topic']}[{src['partition']}]@{src['offset']} (timestamp {format_ms(src['timestamp_ms'])})",
        f"entity: {d['entity'] or '-'}",
        f"operation: {d['operation'] or '-'}",
        f"field_names: {_names(tuple(d['field_names']))}",
        f"categories: {_names(tuple(d['categories']))}",
        f"classification_level: {d['classification_level']}",
        f"jurisdictions: {_names(tuple(d['jurisdictions']))}",
        f"policy_version: {d['policy_version']}",
        f"router_version: {d['router_version']}",
        f"event_id: {d['event_id'] or '-'}",
        f"payload_digest: {d['payload_digest']}",
        f"trace_id: {d['trace_id'] or '-'}",
        f"payload: {'sealed copy present' if d['has_payload'] else 'none (stays in the ingress topic)'}",
    ]


# -- filters ---------------------------------------------------------------------------------------

_REASONS = {r.value for r in ReasonCode}


def parse_reason(text: str) -> str:
    """A reason code as ``--reason`` takes it (case-insensitive); refuses unknown codes."""
    code = text.strip().upper()
    if code not in _REASONS:
        known = ", ".join(sorted(_REASONS - {ReasonCode.ROUTED.value}))
        raise QuarantineReadError(f"--reason: {text!r} is not a reason code (known: {known})")
    return code


_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_since(text: str, *, now_ms: int) -> int:
    """``--since`` as epoch milliseconds: an ISO 8601 time (``2026-11-29T04:00:00Z``, a date, or
    without zone: UTC), a duration back from ``now_ms`` (``90s``, ``15m``, ``2h``, ``7d``), or epoch
    milliseconds (13 digits or more)."""
    t = text.strip()
    m = _DURATION.match(t)
    if m:
        return now_ms - int(m.group(1)) * _UNIT_MS[m.group(2)]
    if t.isdigit() and len(t) >= 13:
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QuarantineReadError(
            f"--since: {text!r} is neither an ISO 8601 time (2026-11-29T04:00:00Z), a duration (15m, 2h, 7d) "
            "nor epoch milliseconds"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def parse_position(text: str) -> tuple[int, int]:
    """``--offset P:O`` (partition and offset in the quarantine topic, as ``list`` prints them)."""
    m = re.fullmatch(r"\s*(\d{1,9}):(\d{1,19})\s*", text)
    if m is None:
        raise QuarantineReadError(
            f"--offset: {text!r} is not PARTITION:OFFSET (two non-negative integers, e.g. 0:42, as 'list' prints them)"
        )
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True, slots=True)
class Filter:
    """Which entries ``list`` and ``tail`` print: a reason code, a time from which on (inclusive,
    by ``quarantined_at``). Undecodable records always pass (an operator must see them)."""

    reason: str | None = None
    since_ms: int | None = None

    def __call__(self, e: QuarantineEntry) -> bool:
        r = e.record
        if r is None:
            return True
        if self.reason is not None and r.reason != self.reason:
            return False
        return self.since_ms is None or r.quarantined_at_ms >= self.since_ms


# -- statistics ------------------------------------------------------------------------------------


@dataclass
class QuarantineStats:
    """Counts by reason, entity and policy version; the oldest and newest record."""

    records: int = 0
    undecodable: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_entity: Counter[str] = field(default_factory=Counter)
    by_policy_version: Counter[str] = field(default_factory=Counter)
    oldest: QuarantineEntry | None = None
    newest: QuarantineEntry | None = None

    def add(self, e: QuarantineEntry) -> None:
        self.records += 1
        r = e.record
        if r is None:
            self.undecodable += 1
            return
        self.by_reason[r.reason] += 1
        self.by_entity[e.entity or "-"] += 1
        self.by_policy_version[r.policy_version] += 1
        if self.oldest is None or r.quarantined_at_ms < self.oldest.record.quarantined_at_ms:  # type: ignore[union-attr]
            self.oldest = e
        if self.newest is None or r.quarantined_at_ms >= self.newest.record.quarantined_at_ms:  # type: ignore[union-attr]
            self.newest = e

    @staticmethod
    def _end(e: QuarantineEntry | None) -> dict[str, Any] | None:
        if e is None or e.record is None:
            return None
        return {"quarantined_at": format_ms(e.record.quarantined_at_ms),
                "quarantined_at_ms": e.record.quarantined_at_ms, "position": e.position, "reason": e.record.reason}

    def to_json(self) -> dict[str, Any]:
        def ordered(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        return {
            "records": self.records,
            "undecodable": self.undecodable,
            "by_reason": ordered(self.by_reason),
            "by_entity": ordered(self.by_entity),
            "by_policy_version": ordered(self.by_policy_version),
            "oldest": self._end(self.oldest),
            "newest": self._end(self.newest),
        }

    def lines(self, topic: str) -> list[str]:
        d = self.to_json()
        out = [f"quarantine topic {topic}: {self.records} records"
               + (f" ({self.undecodable} undecodable)" if self.undecodable else "")]
        for title, key in (("by reason", "by_reason"), ("by entity", "by_entity"),
                           ("by policy version", "by_policy_version")):
            out.append(f"{title}:")
            out += [f"  {n:>8}  {name}" for name, n in d[key].items()] or ["  -"]
        for which in ("oldest", "newest"):
            end = d[which]
            out.append(f"{which}: " + ("-" if end is None else f"{end['quarantined_at']} at {end['position']} "
                                                                f"({end['reason']})"))
        return out


def decode_entry(topic: str, partition: int, offset: int, value: bytes | None) -> QuarantineEntry:
    """Decode one quarantine message; bytes that do not decode become an entry with ``error`` set."""
    try:
        return QuarantineEntry(topic, partition, offset, decode_quarantine(value or b""))
    except QuarantineDecodeError as err:
        return QuarantineEntry(topic, partition, offset, None, str(err))


# -- Kafka -----------------------------------------------------------------------------------------

SINCE_MARGIN_MS = 5 * 60_000
"""``--since`` seeks by Kafka timestamp this much earlier than asked (a broker's clock under
LogAppendTime may lag the router's), then filters by ``quarantined_at`` exactly."""


def _consumer(consumer_config: Mapping[str, Any]) -> Any:
    return committed_reader(consumer_config, group_prefix="residency-router-quarantine")


def topic_partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    """The partitions of ``topic``; :class:`QuarantineReadError` if it does not exist."""
    return partitions_of(
        consumer, topic, timeout, what="quarantine topic", error=QuarantineReadError,
        hint="check policy.quarantine_topic and 'topics' in the config, and that `residency-router topics create` ran",
    )


def _starts(consumer: Any, topic: str, parts: list[int], *, since_ms: int | None, from_end: bool,
            timeout: float) -> tuple[list[Any], dict[int, int]]:
    """Where to start each partition, and its end (high watermark) when the read started."""
    from confluent_kafka import OFFSET_END, KafkaException, TopicPartition  # noqa: PLC0415

    ends: dict[int, int] = {}
    starts: list[Any] = []
    try:
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            ends[p] = int(high)
            starts.append(TopicPartition(topic, p, int(high) if from_end else int(low)))
        if since_ms is not None and not from_end:
            wanted = [TopicPartition(topic, p, max(0, since_ms - SINCE_MARGIN_MS)) for p in parts]
            found = consumer.offsets_for_times(wanted, timeout=timeout)
            # No record at or after the time: start at the end (OFFSET_END / -1).
            starts = [TopicPartition(topic, tp.partition, ends[tp.partition] if tp.offset in (OFFSET_END, -1)
                                     else max(tp.offset, s.offset)) for tp, s in zip(found, starts, strict=True)]
    except KafkaException as err:
        raise QuarantineReadError(f"could not read the offsets of quarantine topic {topic!r}: {err}") from None
    return starts, ends


def read_quarantine(
    consumer_config: Mapping[str, Any],
    topic: str,
    *,
    since_ms: int | None = None,
    follow: bool = False,
    from_end: bool = False,
    max_idle_s: float | None = None,
    timeout: float = 120.0,
    on_ready: Callable[[dict[int, int]], None] | None = None,
) -> Iterator[QuarantineEntry]:
    """Every committed record of ``topic`` as a :class:`QuarantineEntry`, partitions interleaved,
    each in offset order.

    Without ``follow``: from the beginning (or the first offset at ``since_ms``, by Kafka timestamp
    less :data:`SINCE_MARGIN_MS`) to the end each partition had when the read started, within
    ``timeout`` seconds. With ``follow``: then keeps reading new records until interrupted or, with
    ``max_idle_s``, until that long without a record; ``from_end`` starts at the current end.
    ``on_ready`` gets each partition's start offset once the consumer is positioned. Filtering by
    time is the caller's (:class:`Filter`); this only seeks.
    """
    from confluent_kafka import KafkaError  # noqa: PLC0415

    consumer = _consumer(consumer_config)
    try:
        parts = topic_partitions(consumer, topic, min(timeout, 30.0))
        starts, ends = _starts(consumer, topic, parts, since_ms=since_ms, from_end=from_end,
                              timeout=min(timeout, 30.0))
        pending = {tp.partition for tp in starts if tp.offset < ends[tp.partition]}
        consumer.assign(starts)
        if on_ready is not None:
            on_ready({tp.partition: tp.offset for tp in starts})
        if not follow and not pending:
            return
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while follow or pending:
            if not follow and time.monotonic() > deadline:
                raise QuarantineReadError(f"timed out reading quarantine topic {topic!r}; check that the cluster "
                                          "is reachable")
            msgs = consumer.consume(num_messages=500, timeout=0.5)
            got = False
            for m in msgs:
                err = m.error()
                p = m.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(p)
                        continue
                    raise QuarantineReadError(f"reading {topic}[{p}]: {err.str()}")
                if not follow and m.offset() >= ends[p]:
                    pending.discard(p)
                    continue
                got = True
                yield decode_entry(topic, p, m.offset(), m.value())
                if m.offset() >= ends[p] - 1:
                    pending.discard(p)
            if got:
                idle_since = time.monotonic()
            elif follow and max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                return
    finally:
        consumer.close()


def read_one(consumer_config: Mapping[str, Any], topic: str, partition: int, offset: int, *,
             timeout: float = 30.0) -> tuple[QuarantineEntry, bytes, list[tuple[str, bytes]]]:
    """The committed record at ``topic[partition]@offset``: its entry, raw value and Kafka headers.

    :class:`QuarantineReadError` names ``--offset`` when the partition does not exist or no
    committed record sits at that offset (out of range, a transaction marker, an aborted write).
    """
    from confluent_kafka import KafkaError, KafkaException, TopicPartition  # noqa: PLC0415

    consumer = _consumer(consumer_config)
    try:
        parts = topic_partitions(consumer, topic, timeout)
        if partition not in parts:
            raise QuarantineReadError(f"--offset: quarantine topic {topic!r} has no partition {partition} "
                                      f"(partitions {parts[0]}..{parts[-1]})")
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout,
                                                       cached=False)
        except KafkaException as err:
            raise QuarantineReadError(f"could not read the offsets of {topic}[{partition}]: {err}") from None
        if not low <= offset < high:
            raise QuarantineReadError(f"--offset: {partition}:{offset} is outside {topic}[{partition}], which holds "
                                      f"offsets {low}..{high - 1}" if high > low else
                                      f"--offset: {topic}[{partition}] holds no records")
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=1, timeout=0.5)
            if not msgs:
                continue
            m = msgs[0]
            problem = m.error()
            if problem is not None and problem.code() != KafkaError._PARTITION_EOF:
                raise QuarantineReadError(f"reading {topic}[{partition}]: {problem.str()}")
            if problem is None and m.offset() == offset:
                value = m.value() or b""
                return decode_entry(topic, partition, offset, value), value, list(m.headers() or [])
            break  # the first committed record after it, or the end: nothing committed at that offset
        raise QuarantineReadError(f"--offset: no committed quarantine record at {partition}:{offset} in {topic} "
                                  "(a transaction marker or an aborted write occupies it; 'list' prints the "
                                  "positions of records)")
    finally:
        consumer.close()
