"""AuditChain: sequencing, per-partition state, resume, checkpoint and rollback."""

from __future__ import annotations

import itertools

import pytest

from router.audit.chain import AuditChain, ChainTail, verify_chain
from router.audit.record import ZERO_HASH, AuditDecodeError, decode_audit
from tests.unit.test_audit_record import fields

pytestmark = pytest.mark.unit


def test_first_record_has_seq_zero_and_zero_prev_hash() -> None:
    rec = decode_audit(AuditChain().append(0, fields()))
    assert (rec.seq, rec.prev_hash) == (0, ZERO_HASH)


def test_each_record_links_to_the_previous_one() -> None:
    chain = AuditChain()
    recs = [decode_audit(chain.append(0, fields(i))) for i in range(5)]
    assert [r.seq for r in recs] == [0, 1, 2, 3, 4]
    for before, after in itertools.pairwise(recs):
        assert after.prev_hash == before.hash
    assert chain.tail(0) == ChainTail(4, recs[-1].hash)


def test_partitions_have_independent_chains() -> None:
    chain = AuditChain()
    a0 = chain.append(0, fields(0))
    b0 = chain.append(1, fields(1))
    a1 = chain.append(0, fields(2))
    assert [decode_audit(x).seq for x in (a0, b0, a1)] == [0, 0, 1]
    assert verify_chain([(0, 0, a0), (1, 0, b0), (0, 1, a1)]).ok


def test_an_appended_chain_verifies() -> None:
    chain = AuditChain()
    report = verify_chain((0, i, chain.append(0, fields(i))) for i in range(20))
    assert report.ok
    assert report.records == 20
    assert report.tails() == {0: chain.tail(0)}


def test_rollback_restores_the_checkpointed_state() -> None:
    chain = AuditChain()
    committed = [chain.append(0, fields(i)) for i in range(3)]
    state = chain.checkpoint()
    chain.append(0, fields(3))  # in a transaction that is then aborted
    chain.append(1, fields(4))
    chain.rollback(state)
    assert chain.tail(1) is None
    again = chain.append(0, fields(3))
    assert decode_audit(again).seq == 3
    assert verify_chain((0, i, r) for i, r in enumerate([*committed, again])).ok


def test_checkpoint_is_not_changed_by_later_appends() -> None:
    chain = AuditChain()
    chain.append(0, fields())
    state = chain.checkpoint()
    chain.append(0, fields(1))
    assert state.tails[0].seq == 0
    with pytest.raises(TypeError):
        state.tails[0] = ChainTail(9, ZERO_HASH)  # type: ignore[index]


def test_a_chain_built_from_a_checkpoint_continues_it() -> None:
    first = AuditChain()
    r0 = first.append(2, fields(0))
    second = AuditChain(first.checkpoint())
    r1 = second.append(2, fields(1))
    assert verify_chain([(2, 0, r0), (2, 1, r1)]).ok


def test_resume_from_the_last_record_continues_the_chain() -> None:
    before = AuditChain()
    records = [before.append(0, fields(i)) for i in range(3)]
    after = AuditChain()  # a restarted router
    assert after.resume(0, records[-1]) == before.tail(0)
    records.append(after.append(0, fields(3)))
    assert verify_chain((0, i, r) for i, r in enumerate(records)).ok


def test_set_tail_accepts_a_plain_tuple() -> None:
    before = AuditChain()
    records = [before.append(0, fields(i)) for i in range(2)]
    tail = before.tail(0)
    assert tail is not None
    after = AuditChain()
    after.set_tail(0, (tail.seq, tail.hash))
    records.append(after.append(0, fields(2)))
    assert verify_chain((0, i, r) for i, r in enumerate(records)).ok


def test_set_tail_none_restarts_at_zero() -> None:
    chain = AuditChain()
    chain.append(0, fields())
    chain.set_tail(0, None)
    assert decode_audit(chain.append(0, fields())).seq == 0


def test_set_tail_rejects_a_malformed_hash() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        AuditChain().set_tail(0, (1, b"short"))


def test_resume_refuses_a_record_that_fails_its_hash() -> None:
    data = bytearray(AuditChain().append(0, fields()))
    data[-1] ^= 1
    with pytest.raises(AuditDecodeError):
        AuditChain().resume(0, bytes(data))


def test_forget_drops_a_partition() -> None:
    chain = AuditChain()
    chain.append(0, fields())
    chain.forget(0)
    assert chain.tail(0) is None
