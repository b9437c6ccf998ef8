"""Every audit chain has exactly one writer: the owner of the one ingress partition it chains.

Two router instances own A[0] and B[0] of two ingress topics with unequal partition counts (the
range assignor does this); both write audit records, and the chain verifier runs over what they
committed, in the order each audit partition received it.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import chain_partition, decode_audit
from router.pipeline.processor import RouterProcessor
from tests.unit.fake_kafka import FakeMessage
from tests.unit.test_pipeline_processor import DIGESTS, PLACED, FakePlacement, _keys, _route, settings

pytestmark = pytest.mark.unit

AUDIT = "audit"


def _instance(name: str, audit_partitions: int = 2, **kw: Any) -> RouterProcessor:
    sealer, _eu, _us = _keys()
    placement = FakePlacement({**PLACED, "A": "eu", "B": "eu", "C": "eu"}, partitions=audit_partitions)
    return RouterProcessor(_route(), placement, sealer, AuditChain(), settings(instance_id=name), DIGESTS[0], **kw)


class AuditLog:
    """What the audit topic holds: per partition, records in the order they were committed."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[bytes]] = {}

    def commit(self, outs: list[Any]) -> None:
        for o in outs:
            if o.topic == AUDIT:
                self.partitions.setdefault(o.partition, []).append(o.value)

    def positioned(self) -> list[tuple[int, int, bytes]]:
        return [(p, off, v) for p, values in sorted(self.partitions.items()) for off, v in enumerate(values)]


def test_two_instances_owning_a0_and_b0_write_chains_that_verify() -> None:
    """A has 2 partitions, B has 3; the range assignor gives A[0] to one instance, B[0] to another."""
    one, two = _instance("router-1"), _instance("router-2")
    log = AuditLog()
    for batch in range(3):  # interleaved transactions of the two instances
        log.commit(one.process([FakeMessage("A", 0, batch * 2 + i, f"a{batch}{i}".encode()) for i in range(2)]))
        log.commit(two.process([FakeMessage("B", 0, batch * 2 + i, f"b{batch}{i}".encode()) for i in range(2)]))

    report = verify_chain(log.positioned())

    assert report.ok, [b.describe() for b in report.breaks]
    assert report.records == 12
    by_source: dict[tuple[str, int], list[int]] = {}
    for _p, _off, value in log.positioned():
        f = decode_audit(value).fields
        by_source.setdefault((f.source_topic, f.source_partition), []).append(decode_audit(value).seq)
    # each source's records form one gap-free chain
    assert by_source == {("A", 0): [0, 1, 2, 3, 4, 5], ("B", 0): [0, 1, 2, 3, 4, 5]}


@pytest.mark.parametrize("audit_partitions", [1, 2, 3])
def test_a0_and_b0_on_two_instances_verify_however_many_audit_partitions(audit_partitions: int) -> None:
    """A has 2 partitions, B has 3: instance 1 owns A[0], A[1]; instance 2 owns B[0..2]. With one
    audit partition every chain shares it; with more, some do."""
    one, two = _instance("router-1", audit_partitions), _instance("router-2", audit_partitions)
    log = AuditLog()
    for batch in range(4):
        log.commit(one.process([FakeMessage("A", p, batch, b"a") for p in range(2)]))
        log.commit(two.process([FakeMessage("B", p, batch, b"b") for p in range(3)]))
    report = verify_chain(log.positioned())
    assert report.ok, [b.describe() for b in report.breaks]
    assert set(report.chains) == {("A", 0), ("A", 1), ("B", 0), ("B", 1), ("B", 2)}
    assert all(t is not None and t.seq == 3 for t in report.tails().values())
    assert set(log.partitions) <= set(range(audit_partitions))


def _committed_tails(log: AuditLog) -> Any:
    """What ``read_chain_tails`` answers, from the committed audit log: the last record of each
    asked-for source in the audit partition (checked like the real reader checks it)."""
    from router.audit.chain import checked_tail

    def read(partition: int, sources: Any) -> dict[tuple[str, int], Any]:
        found: dict[tuple[str, int], Any] = dict.fromkeys(sources)
        for value in log.partitions.get(partition, []):
            f = decode_audit(value).fields
            if (f.source_topic, f.source_partition) in found:
                found[(f.source_topic, f.source_partition)] = checked_tail(value)
        return found

    return read


def test_a_chain_moves_between_instances_on_rebalance_and_continues_from_the_broker() -> None:
    """A[0] moves from instance 1 to instance 2 and back; each new owner reads the tail back on
    assignment, so the chain goes on without a fork, and nothing stale is trusted from memory."""
    from confluent_kafka import TopicPartition

    log = AuditLog()
    one = _instance("router-1", 1, chain_tails=_committed_tails(log))
    two = _instance("router-2", 1, chain_tails=_committed_tails(log))
    one.on_assign([TopicPartition("A", 0), TopicPartition("A", 1)])
    two.on_assign([TopicPartition("B", 0)])
    offset = 0
    for owner_of_a0 in (one, two, one, two):
        other = two if owner_of_a0 is one else one
        owner_of_a0.on_assign([TopicPartition("A", 0), TopicPartition("B", 0)] if owner_of_a0 is two
                              else [TopicPartition("A", 0), TopicPartition("A", 1)])
        other.on_assign([TopicPartition("B", 0)] if other is two else [TopicPartition("A", 1)])
        log.commit(owner_of_a0.process([FakeMessage("A", 0, offset + i, b"x") for i in range(3)]))
        log.commit(two.process([FakeMessage("B", 0, offset + i, b"y") for i in range(2)]))
        offset += 3
    report = verify_chain(log.positioned())
    assert report.ok, [b.describe() for b in report.breaks]
    a0 = [decode_audit(v) for v in log.partitions[0] if decode_audit(v).fields.source_topic == "A"]
    assert [r.seq for r in a0] == list(range(12))
    writers = [r.fields.instance_id for r in a0]
    assert writers == ["router-1"] * 3 + ["router-2"] * 3 + ["router-1"] * 3 + ["router-2"] * 3


def test_ingress_partitions_added_at_runtime_go_to_existing_audit_partitions() -> None:
    """The ingress topic grows from 2 to 12 partitions while running: every new source's chain is
    placed in one of the audit topic's 2 partitions (none is produced to a partition that does not
    exist), starts at seq 0 after its tail is read back as empty, and verifies."""
    from confluent_kafka import TopicPartition

    log = AuditLog()
    proc = _instance("router-1", 2, chain_tails=_committed_tails(log))
    proc.on_assign([TopicPartition("A", p) for p in range(2)])
    log.commit(proc.process([FakeMessage("A", p, 0, b"x") for p in range(2)]))
    proc.on_assign([TopicPartition("A", p) for p in range(12)])  # the rebalance after the growth
    outs = proc.process([FakeMessage("A", p, 1, b"x") for p in range(12)])
    assert {o.partition for o in outs if o.topic == AUDIT} <= {0, 1}
    log.commit(outs)
    report = verify_chain(log.positioned())
    assert report.ok, [b.describe() for b in report.breaks]
    tails = report.tails()
    assert {s: t.seq for s, t in tails.items() if t is not None} == {
        ("A", p): (1 if p < 2 else 0) for p in range(12)
    }
    # a new ingress topic, too
    proc.on_assign([TopicPartition("C", 0), *(TopicPartition("A", p) for p in range(12))])
    log.commit(proc.process([FakeMessage("C", 0, 0, b"z")]))
    assert verify_chain(log.positioned()).ok


def test_audit_records_are_keyed_by_their_chain() -> None:
    proc = _instance("router-1", 3)
    outs = proc.process([FakeMessage("B", 2, 7, b"x")])
    (audit,) = [o for o in outs if o.topic == AUDIT]
    assert audit.key == b"B:2"
    assert audit.partition == decode_audit(audit.value).placed_in()


def test_chains_stay_placed_over_the_count_the_trail_records() -> None:
    from router.errors import ConfigError
    from router.pipeline.app import audit_placement

    assert audit_placement("audit", 6, {}) == 6  # a new trail: the topic's count
    assert audit_placement("audit", 6, {0: 4, 3: 4}) == 4  # grown from 4 to 6: no chain moves
    with pytest.raises(ConfigError, match="placed over 8"):
        audit_placement("audit", 6, {1: 8})  # recreated smaller
    with pytest.raises(ConfigError, match=r"different partition counts \(3, 4\)"):
        audit_placement("audit", 6, {0: 4, 1: 3})


def test_a_processor_keeps_the_partition_count_it_was_built_with() -> None:
    """The audit topic grows while running (placement now reports 8): chains do not move."""
    proc = _instance("router-1", 4)
    placement = proc.placement
    first = [o for o in proc.process([FakeMessage("A", 0, 0, b"x")]) if o.topic == AUDIT]
    placement.n = 8  # type: ignore[attr-defined]
    again = [o for o in proc.process([FakeMessage("A", 0, 1, b"x")]) if o.topic == AUDIT]
    assert first[0].partition == again[0].partition == chain_partition("A", 0, 4)
    assert decode_audit(again[0].value).audit_partitions == 4  # type: ignore[arg-type]
