"""Reading the audit topic from Kafka: a partition's committed chain tail, and the whole trail.

The Kafka shell around :mod:`router.audit.chain`. Both readers use ``isolation.level=read_committed``
whatever the given config says, so records of aborted or still-open transactions are never seen.

Contract between router instances and audit partitions: an instance appends to audit partition
``ingress partition % audit partitions`` for each ingress partition assigned to it, and to no
other. Every chain therefore belongs to the ingress partitions mapped onto it, is written by the one
instance that owns them at a time, and never interleaves records from two instances. (When there
are fewer audit partitions than ingress partitions, two ingress partitions share a chain; the
consumer group must then assign them together, or the pipeline must hold the chain's tail only
while it owns every ingress partition that maps to it.)

On start and after every partition assignment, and *after* ``init_transactions()`` (which aborts
any transaction a previous incarnation left open), the pipeline calls :func:`read_chain_tail` for
each audit partition it will write to and hands the result to
:meth:`router.audit.chain.AuditChain.set_tail`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from router.audit.chain import AuditChain, ChainTail
from router.errors import RouterError

TAIL_WINDOW = 10
"""Offsets read back from the end at first; widened (x4) while no data record is found, because
transaction markers and aborted records occupy offsets too."""


class AuditReadError(RouterError):
    """The audit topic could not be read; the message names the topic and what to check."""


def _consumer(consumer_config: Mapping[str, Any]) -> Any:
    conf: dict[str, Any] = {"group.id": f"residency-router-audit-{uuid.uuid4().hex}", **consumer_config}
    conf.update({
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    return Consumer(conf)


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as err:
        raise AuditReadError(f"could not read metadata of audit topic {topic!r}: {err}") from None
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        why = t.error.str() if t is not None and t.error is not None else "it does not exist"
        raise AuditReadError(f"audit topic {topic!r} cannot be read: {why} (check audit.topic in the config)")
    return sorted(t.partitions)


def _watermarks(consumer: Any, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    except KafkaException as err:
        raise AuditReadError(f"could not read the offsets of {topic}[{partition}]: {err}") from None
    return int(low), int(high)


def _deadline_check(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise AuditReadError(f"timed out reading {what}; check that the cluster is reachable")


def _last_value(consumer: Any, topic: str, partition: int, *, start: int, stop: int, deadline: float) -> bytes | None:
    """The value of the last committed record with ``start <= offset < stop``, or None."""
    consumer.assign([TopicPartition(topic, partition, start)])
    last: bytes | None = None
    try:
        while True:
            _deadline_check(deadline, f"the tail of {topic}[{partition}]")
            for m in consumer.consume(num_messages=500, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return last
                    raise AuditReadError(f"reading {topic}[{partition}]: {err.str()}")
                if m.offset() >= stop:
                    return last
                last = m.value() or b""
    finally:
        consumer.unassign()


def read_chain_tail(
    consumer_config: Mapping[str, Any], topic: str, partition: int, *, timeout: float = 30.0
) -> ChainTail | None:
    """The ``(seq, hash)`` of the last committed audit record of ``topic[partition]``, or None if
    the partition holds no committed record.

    Reads back :data:`TAIL_WINDOW` offsets from the end and widens the window while only
    transaction markers or aborted records are found. The tail record's own hash is checked;
    raises :class:`router.audit.record.AuditDecodeError` if it fails (never extend a damaged chain)
    and :class:`AuditReadError` if the partition cannot be read.
    """
    deadline = time.monotonic() + timeout
    consumer = _consumer(consumer_config)
    try:
        low, high = _watermarks(consumer, topic, partition, timeout)
        stop, window = high, TAIL_WINDOW
        while stop > low:
            start = max(low, stop - window)
            value = _last_value(consumer, topic, partition, start=start, stop=stop, deadline=deadline)
            if value is not None:
                return AuditChain().resume(partition, value)
            stop, window = start, window * 4
        return None
    finally:
        consumer.close()


def read_audit(
    consumer_config: Mapping[str, Any], topic: str, *, timeout: float = 300.0
) -> Iterator[tuple[int, int, bytes]]:
    """Every committed record of the audit topic as ``(partition, offset, value)``, from the
    beginning to the end each partition had when the read started; then stops.

    Partitions are interleaved; each one is in offset order (what :func:`verify_chain` needs).
    A record without a value yields ``b""`` (which verification reports as undecodable).
    """
    deadline = time.monotonic() + timeout
    consumer = _consumer(consumer_config)
    try:
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in _partitions(consumer, topic, timeout):
            low, high = _watermarks(consumer, topic, p, timeout)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        if not ends:
            return
        consumer.assign(starts)
        while ends:
            _deadline_check(deadline, f"audit topic {topic!r}")
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                p = m.partition()
                if p not in ends:
                    continue
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        del ends[p]
                        continue
                    raise AuditReadError(f"reading {topic}[{p}]: {err.str()}")
                if m.offset() >= ends[p]:
                    del ends[p]
                    continue
                yield p, m.offset(), m.value() or b""
                if m.offset() == ends[p] - 1:
                    del ends[p]
    finally:
        consumer.close()
