"""Finding each chain's committed tail among interleaved records of one audit partition
(router.audit.kafka.scan_chain_tails), with a fake read_committed consumer: other chains'
records, format-1 records, transaction markers and aborted records (offsets without a visible
record) between them; the scan stops as soon as every chain asked for is found."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, TopicPartition

from router.audit.chain import AuditChain, ChainTail
from router.audit.kafka import TAIL_WINDOW, committed_sources, scan_chain_tails
from router.audit.record import AuditDecodeError, ChainId, chain_key
from tests.unit.test_audit_record import fields, format1_records

pytestmark = pytest.mark.unit

TOPIC = "audit"


@dataclass
class _Msg:
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _eof: bool = False

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Any:
        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None


@dataclass
class FakeAuditPartition:
    """One audit partition as a read_committed consumer sees it: committed records at their
    offsets; offsets of markers and aborted records hold nothing visible."""

    records: dict[int, tuple[bytes | None, bytes]] = field(default_factory=dict)
    low: int = 0
    high: int = 0
    delivered: int = 0
    """Records handed out by consume(): what the scan cost."""
    _pos: int | None = None

    def add(self, key: bytes | None, value: bytes) -> None:
        self.records[self.high] = (key, value)
        self.high += 1

    def gap(self, n: int = 1) -> None:
        self.high += n  # a commit/abort marker or aborted records

    # -- the consumer calls scan_chain_tails makes ---------------------------------------------
    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        assert (tp.topic, tp.partition, cached) == (TOPIC, 0, False)
        return self.low, self.high

    def assign(self, tps: list[TopicPartition]) -> None:
        (tp,) = tps
        self._pos = tp.offset

    def unassign(self) -> None:
        self._pos = None

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        assert self._pos is not None
        out: list[_Msg] = []
        while len(out) < num_messages and self._pos < self.high:
            rec = self.records.get(self._pos)
            if rec is not None:
                out.append(_Msg(self._pos, *rec))
                self.delivered += 1
            self._pos += 1
        if self._pos >= self.high and len(out) < num_messages:
            out.append(_Msg(self.high, None, None, _eof=True))
        return out


def _source_fields(source: tuple[str, int], i: int) -> Any:
    return fields(i, source_topic=source[0], source_partition=source[1])


def _write(part: FakeAuditPartition, chain: AuditChain, source: tuple[str, int], i: int) -> None:
    part.add(chain_key(*source), chain.append(source, _source_fields(source, i)))


def _scan(part: FakeAuditPartition, sources: list[tuple[str, int]]) -> dict[ChainId, ChainTail]:
    import time

    return scan_chain_tails(part, TOPIC, 0, sources, deadline=time.monotonic() + 30)


def test_each_chains_tail_is_found_among_interleaved_records() -> None:
    rng = random.Random(5)
    part, chain = FakeAuditPartition(), AuditChain()
    sources = [("A", 0), ("B", 0), ("B", 3), ("C", 1)]
    for i in range(400):
        _write(part, chain, rng.choice(sources), i)
        if rng.random() < 0.2:
            part.gap(rng.choice([1, 1, 7]))
    expected = {ChainId(*s): chain.tail(s) for s in sources}
    assert _scan(part, sources) == expected
    assert _scan(part, [("B", 3)]) == {ChainId("B", 3): chain.tail(("B", 3))}


def test_a_chain_with_no_record_is_absent_and_the_scan_reaches_the_partition_start() -> None:
    part, chain = FakeAuditPartition(low=0), AuditChain()
    for i in range(50):
        _write(part, chain, ("A", 0), i)
    assert _scan(part, [("A", 0), ("Z", 9)]) == {ChainId("A", 0): chain.tail(("A", 0))}
    assert part.delivered >= 50  # looked at every record for Z[9]


def test_a_tail_far_back_is_found_by_widening_windows() -> None:
    """B[0] wrote once, then A[0] wrote 5,000 records and a run of aborted records followed."""
    part, chain = FakeAuditPartition(), AuditChain()
    _write(part, chain, ("B", 0), 0)
    for i in range(5000):
        _write(part, chain, ("A", 0), i)
    part.gap(3 * TAIL_WINDOW)
    assert _scan(part, [("A", 0), ("B", 0)]) == {ChainId("A", 0): chain.tail(("A", 0)),
                                                 ChainId("B", 0): chain.tail(("B", 0))}


def test_recent_tails_cost_a_small_window_not_the_partition() -> None:
    part, chain = FakeAuditPartition(), AuditChain()
    for i in range(10_000):
        _write(part, chain, ("AB"[i % 2], 0), i)
    part.gap()  # the commit marker
    assert _scan(part, [("A", 0), ("B", 0)]) == {ChainId("A", 0): chain.tail(("A", 0)),
                                                 ChainId("B", 0): chain.tail(("B", 0))}
    assert part.delivered <= TAIL_WINDOW


def test_other_chains_records_are_skipped_by_key_without_decoding() -> None:
    part, chain = FakeAuditPartition(), AuditChain()
    _write(part, chain, ("A", 0), 0)
    for _ in range(30):
        part.add(chain_key("B", 0), b"not decodable, and not asked for")
    assert _scan(part, [("A", 0)]) == {ChainId("A", 0): chain.tail(("A", 0))}


def test_format_1_records_before_the_first_format_2_record_are_not_a_tail() -> None:
    part, chain = FakeAuditPartition(), AuditChain()
    for p, _off, data in format1_records():
        if p == 0:
            part.add(None, data)  # format-1 records had no key; they chain A[0] and B[0] by audit partition
    assert _scan(part, [("A", 0), ("B", 0)]) == {}
    _write(part, chain, ("A", 0), 0)
    assert _scan(part, [("A", 0), ("B", 0)]) == {ChainId("A", 0): chain.tail(("A", 0))}


def test_a_damaged_tail_is_refused_not_extended() -> None:
    part, chain = FakeAuditPartition(), AuditChain()
    _write(part, chain, ("A", 0), 0)
    key, value = part.records[0]
    damaged = bytearray(value)
    damaged[-2] ^= 1
    part.records[0] = (key, bytes(damaged))
    with pytest.raises(AuditDecodeError, match="fails its own hash"):
        _scan(part, [("A", 0)])
    part.records[0] = (key, b"garbage keyed for A[0]")
    with pytest.raises(AuditDecodeError):
        _scan(part, [("A", 0)])


class _Committed:
    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), OFFSET_INVALID))
                for tp in tps]


def test_only_sources_with_a_committed_offset_can_have_a_tail() -> None:
    consumer = _Committed({("A", 0): 17, ("B", 0): 0})
    assert committed_sources(consumer, [("A", 0), ("B", 0), ("C", 0)], timeout=1) == {("A", 0), ("B", 0)}


class _Topic(FakeAuditPartition):
    """A one-partition audit topic for read_recorded_placements (metadata and close too)."""

    def list_topics(self, topic: str, timeout: float) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def close(self) -> None:
        pass


def test_the_recorded_placement_is_read_past_records_that_are_not_audit_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from router.audit import kafka
    from router.quarantine.access import ACCESS_KEY

    topic = _Topic()
    chain = AuditChain(audit_partitions=4)
    _write(topic, chain, ("A", 0), 0)
    for _ in range(3 * TAIL_WINDOW):  # quarantine access records written after it (their own kind)
        topic.add(ACCESS_KEY, b"RRQA{}")
    topic.gap()
    monkeypatch.setattr(kafka, "_consumer", lambda *_a, **_k: topic)
    assert kafka.read_recorded_placements({}, TOPIC) == {0: 4}


def test_a_partition_ending_in_format_1_records_records_no_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.audit import kafka

    topic = _Topic()
    for p, _off, data in format1_records():
        if p == 0:
            topic.add(None, data)
    monkeypatch.setattr(kafka, "_consumer", lambda *_a, **_k: topic)
    assert kafka.read_recorded_placements({}, TOPIC) == {}
