"""AuditChain: sequencing, per-chain state, resume, checkpoint and rollback."""

from __future__ import annotations

import itertools

import pytest

from router.audit.chain import AuditChain, ChainTail, verify_chain
from router.audit.record import ZERO_HASH, AuditDecodeError, ChainId, chain_partition, decode_audit
from tests.unit.test_audit_record import fields

SRC = ("crm.ingress", 0)
"""The source of :func:`fields`: the chain its records belong to."""

pytestmark = pytest.mark.unit


def test_first_record_has_seq_zero_and_zero_prev_hash() -> None:
    rec = decode_audit(AuditChain().append(SRC, fields()))
    assert (rec.seq, rec.prev_hash) == (0, ZERO_HASH)


def test_each_record_links_to_the_previous_one() -> None:
    chain = AuditChain()
    recs = [decode_audit(chain.append(SRC, fields(i))) for i in range(5)]
    assert [r.seq for r in recs] == [0, 1, 2, 3, 4]
    for before, after in itertools.pairwise(recs):
        assert after.prev_hash == before.hash
    assert chain.tail(SRC) == ChainTail(4, recs[-1].hash)


def test_sources_have_independent_chains_even_in_one_audit_partition() -> None:
    chain = AuditChain()
    a0 = chain.append(("A", 0), fields(0, source_topic="A"))
    b0 = chain.append(("B", 0), fields(1, source_topic="B"))
    a1 = chain.append(("A", 0), fields(2, source_topic="A"))
    assert [decode_audit(x).seq for x in (a0, b0, a1)] == [0, 0, 1]
    report = verify_chain([(0, 0, a0), (0, 1, b0), (0, 2, a1)])
    assert report.ok
    assert report.tails() == {ChainId("A", 0): chain.tail(("A", 0)), ChainId("B", 0): chain.tail(("B", 0))}


def test_records_carry_the_partition_count_their_chain_is_placed_over() -> None:
    chain = AuditChain(audit_partitions=7)
    rec = decode_audit(chain.append(("A", 3), fields(0, source_topic="A", source_partition=3)))
    assert (rec.format_version, rec.audit_partitions) == (2, 7)
    assert rec.placed_in() == chain_partition("A", 3, 7)
    assert rec.chain(99) == ChainId("A", 3) == ("A", 3)


def test_an_appended_chain_verifies() -> None:
    chain = AuditChain()
    report = verify_chain((0, i, chain.append(SRC, fields(i))) for i in range(20))
    assert report.ok
    assert report.records == 20
    assert report.tails() == {ChainId(*SRC): chain.tail(SRC)}


def test_rollback_restores_the_checkpointed_state() -> None:
    chain = AuditChain()
    committed = [chain.append(SRC, fields(i)) for i in range(3)]
    state = chain.checkpoint()
    chain.append(SRC, fields(3))  # in a transaction that is then aborted
    chain.append(("B", 1), fields(4, source_topic="B", source_partition=1))
    chain.rollback(state)
    assert chain.tail(("B", 1)) is None
    again = chain.append(SRC, fields(3))
    assert decode_audit(again).seq == 3
    assert verify_chain((0, i, r) for i, r in enumerate([*committed, again])).ok


def test_checkpoint_is_not_changed_by_later_appends() -> None:
    chain = AuditChain()
    chain.append(SRC, fields())
    state = chain.checkpoint()
    chain.append(SRC, fields(1))
    assert state.tails[SRC].seq == 0
    with pytest.raises(TypeError):
        state.tails[SRC] = ChainTail(9, ZERO_HASH)  # type: ignore[index]


def test_a_chain_built_from_a_checkpoint_continues_it() -> None:
    first = AuditChain(audit_partitions=4)
    r0 = first.append(SRC, fields(0))
    second = AuditChain(first.checkpoint(), audit_partitions=4)
    r1 = second.append(SRC, fields(1))
    where = chain_partition(*SRC, 4)
    assert verify_chain([(where, 0, r0), (where, 1, r1)]).ok


def test_resume_from_the_last_record_continues_the_chain() -> None:
    before = AuditChain()
    records = [before.append(SRC, fields(i)) for i in range(3)]
    after = AuditChain()  # a restarted router
    assert after.resume(SRC, records[-1]) == before.tail(SRC)
    records.append(after.append(SRC, fields(3)))
    assert verify_chain((0, i, r) for i, r in enumerate(records)).ok


def test_set_tail_accepts_a_plain_tuple() -> None:
    before = AuditChain()
    records = [before.append(SRC, fields(i)) for i in range(2)]
    tail = before.tail(SRC)
    assert tail is not None
    after = AuditChain()
    after.set_tail(SRC, (tail.seq, tail.hash))
    records.append(after.append(SRC, fields(2)))
    assert verify_chain((0, i, r) for i, r in enumerate(records)).ok


def test_set_tail_none_restarts_at_zero() -> None:
    chain = AuditChain()
    chain.append(SRC, fields())
    chain.set_tail(SRC, None)
    assert decode_audit(chain.append(SRC, fields())).seq == 0


def test_set_tail_rejects_a_malformed_hash() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        AuditChain().set_tail(SRC, (1, b"short"))


def test_resume_refuses_a_record_that_fails_its_hash() -> None:
    data = bytearray(AuditChain().append(SRC, fields()))
    data[-1] ^= 1
    with pytest.raises(AuditDecodeError):
        AuditChain().resume(SRC, bytes(data))


def test_forget_drops_a_partition() -> None:
    chain = AuditChain()
    chain.append(SRC, fields())
    chain.forget(SRC)
    assert chain.tail(SRC) is None


def test_a_chain_needs_at_least_one_audit_partition() -> None:
    with pytest.raises(ValueError, match="audit_partitions"):
        AuditChain(audit_partitions=0)
