"""verify_chain: each kind of tampering is found at the right partition and offset."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.audit.chain import AuditChain, BreakKind, verify_chain
from router.audit.record import HASH_OFFSET, HASH_SIZE, canonical_bytes, chain_hash, decode_audit, encode_audit
from tests.unit.test_audit_record import fields

pytestmark = pytest.mark.unit


def _chain(n: int, partition: int = 0, instance: str = "router-a") -> list[bytes]:
    chain = AuditChain()
    return [chain.append(partition, fields(i, instance_id=instance)) for i in range(n)]


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
    assert report.partitions[0].tail is not None
    assert report.partitions[0].tail.seq == 5


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


def test_break_is_reported_per_partition_with_its_offset() -> None:
    p0 = _positioned(CHAIN, 0)
    p1 = [(1, 100 + off, r) for off, r in enumerate(CHAIN[:2] + CHAIN[3:])]  # offsets need not start at 0
    interleaved = [x for pair in itertools.zip_longest(p0, p1) for x in pair if x is not None]
    report = verify_chain(interleaved)
    assert report.partitions[0].broken is None
    broken = report.partitions[1].broken
    assert broken is not None
    assert (broken.offset, broken.kind) == (102, BreakKind.DELETED)
    assert report.partitions[1].tail is not None
    assert report.partitions[1].tail.seq == 1
    assert "partition 1 offset 102: deleted" in broken.describe()


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
