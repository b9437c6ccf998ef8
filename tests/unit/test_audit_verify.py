"""verify_chain: each kind of tampering is found at the right partition, offset and chain; chains
of several sources share audit partitions; format-1 records (one chain per audit partition) still
verify."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.audit.chain import AuditChain, BreakKind, verify_chain
from router.audit.record import (
    HASH_OFFSET,
    HASH_SIZE,
    ChainId,
    canonical_bytes,
    chain_hash,
    chain_partition,
    decode_audit,
    encode_audit,
)
from tests.unit.test_audit_record import fields, format1_records

pytestmark = pytest.mark.unit


def _chain(n: int, source: tuple[str, int] = ("crm.ingress", 0), instance: str = "router-a",
           audit_partitions: int = 1) -> list[bytes]:
    chain = AuditChain(audit_partitions=audit_partitions)
    topic, part = source
    return [chain.append(source, fields(i, instance_id=instance, source_topic=topic, source_partition=part))
            for i in range(n)]


def _positioned(records: list[bytes], partition: int = 0) -> list[tuple[int, int, bytes]]:
    return [(partition, offset, r) for offset, r in enumerate(records)]


CHAIN = _chain(6)


def _only_break(records: list[tuple[int, int, bytes]]) -> tuple[int, int, BreakKind]:
    report = verify_chain(records)
    assert not report.ok
    (b,) = report.breaks
    return b.partition, b.offset, b.kind


def test_intact_chain_verifies() -> None:
    report = verify_chain(_positioned(CHAIN))
    assert report.ok
    assert report.breaks == []
    assert report.records == 6


def test_empty_input_verifies() -> None:
    assert verify_chain([]).ok


def test_edited_record_is_found() -> None:
    records = list(CHAIN)
    edited = bytearray(records[3])
    edited[-5] ^= 0x01  # somewhere in the trailing fields
    records[3] = bytes(edited)
    assert _only_break(_positioned(records)) == (0, 3, BreakKind.EDITED)


def test_edited_and_rehashed_record_breaks_the_next_link() -> None:
    records = list(CHAIN)
    rec = decode_audit(records[2])
    forged, _ = encode_audit(2, rec.prev_hash, fields(99))
    records[2] = forged
    assert _only_break(_positioned(records)) == (0, 3, BreakKind.BROKEN_LINK)


def test_deleted_record_is_found() -> None:
    records = CHAIN[:2] + CHAIN[3:]
    assert _only_break(_positioned(records)) == (0, 2, BreakKind.DELETED)


def test_deleted_head_is_found() -> None:
    assert _only_break(_positioned(CHAIN[1:])) == (0, 0, BreakKind.DELETED)


def test_deleted_head_is_accepted_when_allowed() -> None:
    report = verify_chain(_positioned(CHAIN[2:]), allow_head_truncation=True)
    assert report.ok
    tail = report.chains[ChainId("crm.ingress", 0)].tail
    assert tail is not None
    assert tail.seq == 5


def test_reordered_records_are_found() -> None:
    records = [CHAIN[0], CHAIN[1], CHAIN[3], CHAIN[2], CHAIN[4], CHAIN[5]]
    assert _only_break(_positioned(records)) == (0, 2, BreakKind.REORDERED)


def test_duplicated_record_is_found() -> None:
    records = [*CHAIN[:4], CHAIN[3], *CHAIN[4:]]
    assert _only_break(_positioned(records)) == (0, 4, BreakKind.DUPLICATED)


def test_undecodable_record_is_found() -> None:
    records = [*CHAIN[:2], b"not an audit record", *CHAIN[2:]]
    assert _only_break(_positioned(records)) == (0, 2, BreakKind.UNDECODABLE)


def test_forged_start_is_found() -> None:
    rec = decode_audit(CHAIN[1])
    # a record with seq 0 whose prev_hash is not zero, hashed correctly
    data = bytearray(CHAIN[0])
    prev_at = HASH_OFFSET + HASH_SIZE + 1  # after the hash and seq (0 is one byte)
    data[prev_at : prev_at + HASH_SIZE] = rec.hash
    data[HASH_OFFSET : HASH_OFFSET + HASH_SIZE] = chain_hash(rec.hash, canonical_bytes(bytes(data)))
    assert _only_break(_positioned([bytes(data)])) == (0, 0, BreakKind.BAD_START)


def test_chain_spliced_from_another_partition_is_found() -> None:
    other = _chain(6, instance="router-b")
    records = [*CHAIN[:3], *other[3:]]  # same seqs, different lineage
    assert _only_break(_positioned(records)) == (0, 3, BreakKind.BROKEN_LINK)


# Over 3 audit partitions, A[0] is placed in partition 0 and B[0] in partition 1.
A0, B0 = ("A", 0), ("B", 0)


def test_break_is_reported_per_chain_with_its_partition_and_offset() -> None:
    assert (chain_partition(*A0, 3), chain_partition(*B0, 3)) == (0, 1)
    a, b = _chain(6, A0, audit_partitions=3), _chain(6, B0, audit_partitions=3)
    p0 = _positioned(a, 0)
    p1 = [(1, 100 + off, r) for off, r in enumerate(b[:2] + b[3:])]  # offsets need not start at 0
    interleaved = [x for pair in itertools.zip_longest(p0, p1) for x in pair if x is not None]
    report = verify_chain(interleaved)
    assert report.chains[ChainId(*A0)].broken is None
    chain_b = report.chains[ChainId(*B0)]
    broken = chain_b.broken
    assert broken is not None
    assert (broken.partition, broken.offset, broken.kind) == (1, 102, BreakKind.DELETED)
    assert chain_b.tail is not None
    assert chain_b.tail.seq == 1
    assert "partition 1 offset 102: deleted" in broken.describe()
    assert "(chain B[0])" in broken.describe()
    assert dict(report.partition_records) == {0: 6, 1: 5}


def _interleaved(*chains: list[bytes]) -> list[bytes]:
    return [r for group in itertools.zip_longest(*chains) for r in group if r is not None]


def test_chains_sharing_an_audit_partition_verify_each_on_its_own() -> None:
    a, b = _chain(5, A0), _chain(4, B0)
    report = verify_chain(_positioned(_interleaved(a, b)))
    assert report.ok
    assert {c: t.seq for c, t in report.tails().items() if t is not None} == {("A", 0): 4, ("B", 0): 3}


def test_a_record_deleted_from_one_of_two_interleaved_chains_breaks_only_that_chain() -> None:
    a, b = _chain(5, A0), _chain(4, B0)
    shared = _interleaved(a, b)  # a0 b0 a1 b1 a2 b2 a3 b3 a4
    del shared[3]  # b1
    report = verify_chain(_positioned(shared))
    assert report.chains[ChainId(*A0)].broken is None
    broken = report.chains[ChainId(*B0)].broken
    assert broken is not None
    assert (broken.offset, broken.kind, broken.seq) == (4, BreakKind.DELETED, 2)  # b2, now at offset 4


def test_two_writers_on_one_chain_are_found_as_duplicated() -> None:
    one, two = _chain(3, A0, instance="router-1"), _chain(3, A0, instance="router-2")  # both believe they own A[0]
    report = verify_chain(_positioned(_interleaved(one, two)))
    assert [(b.offset, b.kind) for b in report.breaks] == [(1, BreakKind.DUPLICATED)]


def test_a_record_outside_its_chains_partition_is_misplaced() -> None:
    a = _chain(3, A0, audit_partitions=3)  # placed in partition 0
    report = verify_chain([(0, 0, a[0]), (0, 1, a[1]), (2, 0, a[2])])
    (b,) = report.breaks
    assert (b.partition, b.offset, b.kind) == (2, 0, BreakKind.MISPLACED)
    assert "placed in audit partition 0" in b.detail


def test_a_chain_continued_in_another_partition_is_misplaced() -> None:
    """The same chain placed over 3 and then over 4 partitions: A[0] moves from partition 0 to 3."""
    assert (chain_partition(*A0, 3), chain_partition(*A0, 4)) == (0, 3)
    first = AuditChain(audit_partitions=3)
    r0 = first.append(A0, fields(0, source_topic="A"))
    grown = AuditChain(first.checkpoint(), audit_partitions=4)
    r1 = grown.append(A0, fields(1, source_topic="A"))
    (b,) = verify_chain([(0, 0, r0), (3, 0, r1)]).breaks
    assert (b.partition, b.offset, b.kind) == (3, 0, BreakKind.MISPLACED)
    assert "earlier records are in audit partition 0" in b.detail


def test_format_1_records_verify_as_one_chain_per_audit_partition() -> None:
    old = format1_records()
    report = verify_chain(old)
    assert report.ok
    assert {c: (t.seq if t else None) for c, t in report.tails().items()} == {(None, 0): 4, (None, 1): 1}
    assert {c.chain: c.format_version for c in report.sorted_chains()} == {(None, 0): 1, (None, 1): 1}


def test_format_1_tampering_is_still_found() -> None:
    old = format1_records()
    (p, off, data) = old[2]
    edited = bytearray(data)
    edited[-4] ^= 0x01
    old[2] = (p, off, bytes(edited))
    assert _only_break(old) == (0, 2, BreakKind.EDITED)
    swapped = format1_records()  # the first two records of partition 0 trade places
    (p0, o0, d0), (p1, o1, d1) = swapped[0], swapped[1]
    swapped[0], swapped[1] = (p0, o0, d1), (p1, o1, d0)
    assert _only_break(swapped) == (0, 0, BreakKind.REORDERED)


def test_format_2_chains_after_format_1_records_in_the_same_partition_verify() -> None:
    """An upgraded router's records follow the old ones in partition 0: both kinds of chain verify."""
    old = [(p, off, d) for p, off, d in format1_records() if p == 0]
    new = [(0, len(old) + i, r) for i, r in enumerate(_interleaved(_chain(3, A0), _chain(2, B0)))]
    report = verify_chain([*old, *new])
    assert report.ok, [b.describe() for b in report.breaks]
    assert set(report.chains) == {(None, 0), ("A", 0), ("B", 0)}


def test_an_undecodable_record_breaks_its_partition_not_the_chains_in_it() -> None:
    a, b = _chain(3, A0), _chain(3, B0)
    records = [*_interleaved(a, b)[:3], b"not an audit record", *_interleaved(a, b)[3:]]
    report = verify_chain(_positioned(records))
    (brk,) = report.breaks
    assert (brk.partition, brk.offset, brk.kind) == (0, 3, BreakKind.UNDECODABLE)
    assert brk.describe().startswith("partition 0 offset 3: undecodable")
    assert report.chains[ChainId(*A0)].broken is None
    assert report.chains[ChainId(*B0)].broken is None


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(CHAIN) - 1), position=st.data(), xor=st.integers(1, 255))
def test_any_single_byte_change_is_found(index: int, position: st.DataObject, xor: int) -> None:
    records = list(CHAIN)
    data = bytearray(records[index])
    at = position.draw(st.integers(0, len(data) - 1))
    data[at] ^= xor
    records[index] = bytes(data)
    report = verify_chain(_positioned(records))
    assert not report.ok
    assert report.breaks[0].offset == index


def test_audit_verify_passes_over_quarantine_access_records_and_reports_per_chain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Access records share the audit topic but are no chain's links: verify counts them apart."""
    import json

    from router.audit import kafka
    from router.cli import audit as cli
    from router.cli import build_parser

    a, b = _chain(3, A0), _chain(2, B0)
    values = _interleaved(a, b)  # a0 b0 a1 b1 a2
    values.insert(2, b"RRQA{}")
    trail = [(0, offset, v) for offset, v in enumerate(values)]
    monkeypatch.setattr(kafka, "read_audit", lambda *_a, **_k: iter(trail))
    monkeypatch.setattr(cli, "_consumer_config", lambda _args: ({}, "audit"))
    args = build_parser().parse_args(["audit", "verify", "--config", "c.yaml", "--json"])
    assert cli._verify(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["records"], out["access_records"]) == (True, 5, 1)
    assert [(c["chain"], c["records"], c["tail"]["seq"]) for c in out["chains"]] == [("A[0]", 3, 2), ("B[0]", 2, 1)]

    trail[4] = (0, 4, b[0])  # B[0]'s seq 0 again where its seq 1 was
    args = build_parser().parse_args(["audit", "verify", "--config", "c.yaml"])
    assert cli._verify(args) == 1
    text = capsys.readouterr().out
    assert "2 chain(s), 1 broken: BROKEN" in text
    assert "1 quarantine access record(s)" in text
    assert "break: partition 0 offset 4: duplicated: seq 0 after seq 0 (chain B[0])" in text
