"""Reading the audit topic from Kafka: the committed tails of chains, and the whole trail.

The Kafka shell around :mod:`router.audit.chain`. Every reader uses ``isolation.level=read_committed``
whatever the given config says, so records of aborted or still-open transactions are never seen.

Contract between router instances and audit chains: a chain is one ingress partition's (its
source), and only the instance that owns that ingress partition appends to it, in the audit
partition :func:`router.audit.record.chain_partition` places it in. Several chains may share an
audit partition, so a chain's tail is not simply the partition's last record:
:func:`read_chain_tails` scans back from the partition's end (in widening windows, skipping other
chains' records by their Kafka key) until it has found the last record of every chain asked for,
or reached the partition's start.

On start and after every partition assignment, and *after* ``init_transactions()`` (which aborts
any transaction a previous incarnation left open), the pipeline calls :func:`read_chain_tails` for
the chains of its assigned ingress partitions, grouped by audit partition, and hands the results
to :meth:`router.audit.chain.AuditChain.set_tail`. A chain whose ingress partition has no committed
consumer offset in the router's group has no committed audit record either (offsets and audit
records commit in one transaction): given ``group_id``, such chains are answered without a scan.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from router.audit.chain import ChainTail, checked_tail
from router.audit.record import AuditDecodeError, AuditEntry, ChainId, chain_key, decode_entry
from router.errors import RouterError
from router.kafka_read import committed_reader, partitions_of

TAIL_WINDOW = 10
"""Offsets read back from the end at first; widened (x4) while a chain asked for is not found,
because transaction markers, aborted records and other chains' records occupy offsets too."""

Source = tuple[str, int]
"""An ingress (topic, partition): the identity of its audit chain."""


class AuditReadError(RouterError):
    """The audit topic could not be read; the message names the topic and what to check."""


def _consumer(consumer_config: Mapping[str, Any], group_id: str | None = None) -> Any:
    return committed_reader(consumer_config, group_prefix="residency-router-audit", group_id=group_id)


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    return partitions_of(consumer, topic, timeout, what="audit topic", hint="check audit.topic in the config",
                         error=AuditReadError)


def _watermarks(consumer: Any, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    except KafkaException as err:
        raise AuditReadError(f"could not read the offsets of {topic}[{partition}]: {err}") from None
    return int(low), int(high)


def _deadline_check(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise AuditReadError(f"timed out reading {what}; check that the cluster is reachable")


def _read_window(consumer: Any, topic: str, partition: int, *, start: int, stop: int, deadline: float) -> Iterator[Any]:
    """The committed records with ``start <= offset < stop``, in offset order."""
    consumer.assign([TopicPartition(topic, partition, start)])
    try:
        while True:
            _deadline_check(deadline, f"the tail of {topic}[{partition}]")
            for m in consumer.consume(num_messages=500, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    raise AuditReadError(f"reading {topic}[{partition}]: {err.str()}")
                if m.offset() >= stop:
                    return
                yield m
    finally:
        consumer.unassign()


def scan_chain_tails(
    consumer: Any, topic: str, partition: int, sources: Collection[Source], *, deadline: float
) -> dict[ChainId, ChainTail]:
    """The tails of the chains of ``sources`` found in ``topic[partition]``, read with ``consumer``
    (an assignable ``read_committed`` consumer); chains with no record there are absent.

    Scans windows back from the end (:data:`TAIL_WINDOW`, widened x4) until every chain is found or
    the partition's start is reached. Records keyed for another chain are skipped undecoded; a
    record without a key (format 1) is decoded and skipped unless it is of a wanted chain. A found
    tail's own hash is checked: raises :class:`router.audit.record.AuditDecodeError` if it fails
    (never extend a damaged chain), or if a record keyed for a wanted chain does not decode.
    """
    wanted: dict[bytes, ChainId] = {chain_key(t, p): ChainId(t, p) for t, p in sources}
    found: dict[ChainId, ChainTail] = {}
    low, high = _watermarks(consumer, topic, partition, max(0.0, deadline - time.monotonic()))
    stop, window = high, TAIL_WINDOW
    while stop > low and wanted:
        start = max(low, stop - window)
        last: dict[ChainId, tuple[AuditEntry, bytes]] = {}
        for m in _read_window(consumer, topic, partition, start=start, stop=stop, deadline=deadline):
            key = m.key()
            if key is not None and key not in wanted:
                continue
            value = m.value() or b""
            try:
                rec = decode_entry(value)  # a placement record (format 4) is a chain link too
            except AuditDecodeError:
                if key is None:
                    continue  # not a record of any chain asked for
                raise
            chain = rec.chain(partition)
            if chain.source_topic is not None and chain_key(chain.source_topic, chain.partition) in wanted:
                last[chain] = (rec, value)
        for chain, (rec, value) in last.items():
            found[chain] = checked_tail(rec, value)
            del wanted[chain_key(chain.source_topic or "", chain.partition)]
        stop, window = start, window * 4
    return found


def committed_sources(consumer: Any, sources: Collection[Source], *, timeout: float) -> set[Source]:
    """The ``sources`` that have a committed offset in ``consumer``'s group (a consumer built with
    that group id). Only those can have a committed audit record."""
    try:
        positions = consumer.committed([TopicPartition(t, p) for t, p in sources], timeout=timeout)
    except KafkaException as err:
        raise AuditReadError(f"could not read the committed offsets of the ingress partitions: {err}") from None
    return {(tp.topic, tp.partition) for tp in positions if tp.error is None and tp.offset >= 0}


def read_chain_tails(
    consumer_config: Mapping[str, Any],
    topic: str,
    partition: int,
    sources: Collection[Source],
    *,
    group_id: str | None = None,
    timeout: float = 30.0,
) -> dict[ChainId, ChainTail | None]:
    """The ``(seq, hash)`` of the last committed record of each chain of ``sources`` in
    ``topic[partition]``, or None for a chain with no committed record there.

    With ``group_id`` (the router's consumer group), chains whose ingress partition has no
    committed offset in that group are None without reading the audit partition. See
    :func:`scan_chain_tails` for the scan and its errors; raises :class:`AuditReadError` if the
    partition cannot be read within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    result: dict[ChainId, ChainTail | None] = {ChainId(t, p): None for t, p in sources}
    consumer = _consumer(consumer_config, group_id)
    try:
        todo = set(sources) if group_id is None else committed_sources(consumer, sources, timeout=timeout)
        if todo:
            result.update(scan_chain_tails(consumer, topic, partition, todo, deadline=deadline))
        return result
    finally:
        consumer.close()


def read_recorded_placements(
    consumer_config: Mapping[str, Any], topic: str, *, timeout: float = 30.0
) -> dict[int, int]:
    """Per audit partition whose last committed audit record is of format 2, the
    ``audit_partitions`` that record's chain is placed over: the placement the trail already uses
    (the router keeps it when the topic has grown since, so that no chain moves). Partitions that
    are empty or whose last audit record is of format 1 are absent. Records that are not audit
    records (e.g. the quarantine access records sharing the topic) are passed over.
    """
    deadline = time.monotonic() + timeout
    consumer = _consumer(consumer_config)
    out: dict[int, int] = {}
    try:
        for p in _partitions(consumer, topic, timeout):
            low, high = _watermarks(consumer, topic, p, timeout)
            stop, window = high, TAIL_WINDOW
            while stop > low:
                start = max(low, stop - window)
                last: AuditEntry | None = None
                for m in _read_window(consumer, topic, p, start=start, stop=stop, deadline=deadline):
                    try:
                        last = decode_entry(m.value() or b"")
                    except AuditDecodeError:
                        continue  # not an audit record: verification reports it if it should be one
                if last is not None:
                    if last.audit_partitions is not None:
                        out[p] = last.audit_partitions
                    break
                stop, window = start, window * 4
        return out
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
