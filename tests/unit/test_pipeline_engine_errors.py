"""The transactional engine's error model, driven by in-memory fakes of the Kafka clients
(tests/unit/fake_kafka.py). No broker, no real sleeps.

Every scenario checks what a reader of the committed log would see: each input position's output
committed exactly once (for the router: each audit record names its source position and the hash of
the output it describes, and those outputs are exactly the committed ones), the consumed offsets,
and the audit chain verified by the project's own verifier over the committed audit records. Chain
tails are read back from those committed records (as ``read_chain_tails`` does from the broker)."""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from router.audit.chain import AuditChain, ChainTail, verify_chain
from router.audit.record import ChainId, decode_audit
from router.errors import ReasonCode, RouterError
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, FatalPipelineError, OutRecord, StallError, TransactionalEngine
from router.pipeline.processor import RouterProcessor
from router.quarantine.record import decode_quarantine
from tests.unit.deadline import within
from tests.unit.fake_kafka import FakeCluster, FakeErrorEvent, wire_engine
from tests.unit.test_pipeline_processor import DIGESTS, PLACED, FakePlacement, _keys, _route, settings

pytestmark = pytest.mark.unit

INGRESS = "ingress"
ROUTED = "crm.eu.contact"


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    return wire_engine(FakeCluster(), monkeypatch)


def _settings(**overrides: Any) -> EngineSettings:
    base: dict[str, Any] = {
        "bootstrap_config": {"bootstrap.servers": "fake:9092"},
        "ingress_topics": [INGRESS],
        "group_id": "g",
        "transactional_id": "router-test",
        "batch_size": 10,
        "commit_interval_ms": 0,
        "max_retries": 2,
    }
    return EngineSettings(**{**base, **overrides})


class Waits:
    """Records back-off waits instead of sleeping; stops the engine after ``limit`` of them and
    calls ``on_wait`` (a cause going away, a watch noticing something) before returning."""

    def __init__(self, limit: int = 1000, on_wait: Any = None) -> None:
        self.calls: list[float] = []
        self.limit = limit
        self.on_wait = on_wait
        self.engine: TransactionalEngine | None = None

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        if self.on_wait is not None:
            self.on_wait(len(self.calls))
        if len(self.calls) >= self.limit and self.engine is not None:
            self.engine.stop()
        return False


def _engine(settings: EngineSettings, processor: Any, waits: Waits | None = None,
            sleeps: list[float] | None = None) -> TransactionalEngine:
    waits = waits or Waits()
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    eng = TransactionalEngine(settings, processor, wait=waits, sleep=record, environ={})
    waits.engine = eng
    return eng


def _audit_log(cluster: FakeCluster) -> list[tuple[int, int, bytes]]:
    """The committed audit records as (partition, offset, value), offsets counted per partition."""
    next_offset: dict[int, int] = {}
    log: list[tuple[int, int, bytes]] = []
    for o in cluster.outputs("audit"):
        offset = next_offset.get(o.partition, 0)
        next_offset[o.partition] = offset + 1
        assert o.value is not None
        log.append((o.partition, offset, o.value))
    return log


class TailReader:
    """``read_chain_tails`` against the fake: the tails the chain verifier finds in the committed
    records of an audit partition. Counts its reads."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.reads = 0

    def __call__(self, partition: int, sources: Sequence[tuple[str, int]]) -> Mapping[Any, ChainTail | None]:
        self.reads += 1
        tails = verify_chain(r for r in _audit_log(self.cluster) if r[0] == partition).tails()
        return {ChainId(*s): tails.get(ChainId(*s)) for s in sources}


def _router_processor(
    cluster: FakeCluster, *, with_tail_reader: bool = True, placed: dict[str, str] | None = None, **overrides: Any
) -> RouterProcessor:
    sealer, _eu, _us = _keys()
    return RouterProcessor(
        _route(), FakePlacement(dict(placed or PLACED)), sealer, AuditChain(), settings(**overrides), DIGESTS[0],
        chain_tails=TailReader(cluster) if with_tail_reader else None,
    )


def _values(n: int, size: int = 0) -> list[bytes]:
    return [f"v{i}".encode().ljust(size, b".") for i in range(n)]


def _assert_exactly_once_and_chained(cluster: FakeCluster, n: int) -> list[Any]:
    """Each of the n input positions is audited exactly once in the committed log, the chain
    verifies, the committed outputs are exactly the ones the audit records describe, and the
    consumed offset is at n. Returns the decoded audit fields in committed order."""
    log = _audit_log(cluster)
    report = verify_chain(log)
    assert report.ok, [b.describe() for b in report.breaks]
    assert report.records == n
    fields = [decode_audit(v).fields for _p, _o, v in log]
    assert sorted((f.source_topic, f.source_partition, f.source_offset) for f in fields) == [
        (INGRESS, 0, i) for i in range(n)
    ], "each source position audited exactly once"
    outputs = [o for o in cluster.outputs() if o.topic != "audit"]
    assert Counter((o.topic, hashlib.sha256(o.value or b"").hexdigest()) for o in outputs) == Counter(
        (f.destination_topic, f.sealed_sha256) for f in fields
    ), "the committed outputs are exactly those the audit records describe"
    assert cluster.committed_offset(INGRESS, 0) == n
    return fields


def _assert_copied_once(cluster: FakeCluster, values: list[bytes], topic: str = "out") -> None:
    assert [o.value for o in cluster.outputs(topic)] == values
    assert cluster.committed_offset(INGRESS, 0) == len(values)


# -- 1. retriable, then success --------------------------------------------------------------------


@pytest.mark.parametrize("call", ["begin_transaction", "send_offsets_to_transaction", "commit_transaction"])
def test_a_retriable_error_is_retried_on_the_same_call_and_nothing_is_aborted(cluster: FakeCluster, call: str) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    # max_retries is 2. (The fake numbers each begin_transaction call as a transaction of its own.)
    cluster.fail(call, KafkaError._TIMED_OUT, lambda t: t >= 2, retriable=True, times=2)
    sleeps: list[float] = []
    eng = _engine(_settings(), _router_processor(cluster), sleeps=sleeps)

    stats = eng.run(until=lambda _s: cluster.done())

    assert (stats.aborts, stats.producer_restarts) == (0, 0)
    assert sleeps == [0.1, 0.2]  # two retries, backing off
    assert [t.number for t in cluster.committed] == ([1, 4, 5] if call == "begin_transaction" else [1, 2, 3])
    _assert_exactly_once_and_chained(cluster, 30)


# -- 2. ambiguous commit ------------------------------------------------------------------------------


def test_ambiguous_commit_that_succeeded_keeps_the_audit_chain_intact(cluster: FakeCluster) -> None:
    """Review §3.1 / A4: commit of transaction 2 is applied, then keeps timing out (retriable)."""
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True, commit_first=True)
    proc = _router_processor(cluster)
    eng = _engine(_settings(), proc)

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.producer_restarts == 1
    assert len(cluster.committed) == 3
    assert stats.consumed == 30  # the batch was committed: not processed again
    _assert_exactly_once_and_chained(cluster, 30)


def test_ambiguous_commit_that_failed_is_reprocessed_once_with_an_intact_chain(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True)
    proc = _router_processor(cluster)
    reader = proc._chain_tails
    assert isinstance(reader, TailReader)
    eng = _engine(_settings(), proc)

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.producer_restarts == 1
    assert stats.consumed == 40  # the batch of the lost commit was processed again
    assert reader.reads == 2  # at the assignment, and again after the ambiguous outcome
    _assert_exactly_once_and_chained(cluster, 30)


def test_after_an_ambiguous_commit_the_tail_is_read_back_not_taken_from_memory(cluster: FakeCluster) -> None:
    """The commit succeeded; had the engine rolled the chain back to its pre-commit checkpoint, the
    next batch would repeat seq numbers (``duplicated``); resuming from the broker keeps it whole. A
    tail reader that is not called makes this fail."""
    cluster.add_input(INGRESS, 0, _values(20))
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [1], fatal=True, commit_first=True)
    proc = _router_processor(cluster)
    eng = _engine(_settings(), proc)

    eng.run(until=lambda _s: cluster.done())

    fields = _assert_exactly_once_and_chained(cluster, 20)
    assert [f.source_offset for f in fields] == list(range(20))


def test_without_a_tail_reader_a_restart_rolls_back_to_the_checkpoint(cluster: FakeCluster) -> None:
    """No chain_tails (tests, the copy baseline): the in-memory rollback stays the behaviour."""
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True)
    eng = _engine(_settings(), _router_processor(cluster, with_tail_reader=False))

    eng.run(until=lambda _s: cluster.done())

    _assert_exactly_once_and_chained(cluster, 30)


# -- 3. abortable errors: abort, rewind, no output, back off, escalate ---------------------------------


def test_an_abortable_error_aborts_rewinds_and_commits_nothing_of_the_batch(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail("send_offsets_to_transaction", KafkaError.NOT_ENOUGH_REPLICAS, [2], txn_requires_abort=True)
    eng = _engine(_settings(), _router_processor(cluster))

    stats = eng.run(until=lambda _s: cluster.done())

    assert (stats.aborts, stats.producer_restarts) == (1, 0)
    assert [t.number for t in cluster.committed] == [1, 3, 4]
    assert stats.consumed == 40
    _assert_exactly_once_and_chained(cluster, 30)


def test_abortable_errors_back_off_exponentially_and_reset_after_a_commit(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_input(INGRESS, 0, _values(20))
    cluster.fail_delivery("out", KafkaError._MSG_TIMED_OUT, [1, 2, 3], partition=0)
    cluster.fail("send_offsets_to_transaction", KafkaError.NOT_ENOUGH_REPLICAS, [5], txn_requires_abort=True,
                 reason="not enough in-sync replicas")
    waits = Waits()
    eng = _engine(_settings(stall_backoff_initial_s=0.01, stall_backoff_max_s=0.03), CopyProcessor("out"), waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run(until=lambda _s: cluster.done())

    assert waits.calls == [0.01, 0.02, 0.03, 0.01]  # doubled, capped, reset after the commit of txn 4
    assert stats.abort_backoffs == 4
    assert stats.aborts == 4
    _assert_copied_once(cluster, _values(20))
    assert [t.number for t in cluster.committed] == [4, 6]
    text = caplog.text
    # the destination partition and the cause of the failed deliveries, then the other call's error
    assert "commit_transaction" in text and "out[0] _MSG_TIMED_OUT x10" in text
    assert "send_offsets_to_transaction" in text and "not enough in-sync replicas" in text


def test_min_insync_replicas_unmet_escalates_naming_the_partition_and_the_remedy_then_resumes(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """min.insync.replicas unmet: deliveries to one partition time out, every commit is abortable.
    After abort_escalate_after failures in a row: one ERROR with the partition, the cause and the
    remedy, counted; retries go on at the maximum back-off; when replicas are back, it resumes."""
    cluster.add_input(INGRESS, 0, _values(30))
    proc = _router_processor(cluster)
    min_isr_back = [False]
    cluster.fail_delivery(ROUTED, KafkaError._MSG_TIMED_OUT, lambda _t: not min_isr_back[0])

    def restore(n_waits: int) -> None:
        if n_waits == 13:
            min_isr_back[0] = True

    waits = Waits(on_wait=restore)
    eng = _engine(_settings(stall_backoff_initial_s=0.5, stall_backoff_max_s=4.0, abort_escalate_after=5),
                  proc, waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run(until=lambda _s: cluster.done())

    assert waits.calls == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert stats.aborts == 13
    assert stats.abort_escalations == 2  # at the 5th and the 10th failure in a row
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith("5 transactions in a row failed")
    [routed_partition] = {o.partition for o in cluster.outputs(ROUTED)}  # where they went once committed
    assert f"{ROUTED}[{routed_partition}] _MSG_TIMED_OUT" in errors[0]
    assert "min.insync.replicas" in errors[0] and "Remedy:" in errors[0]
    assert "resumes by itself" in errors[0]
    _assert_exactly_once_and_chained(cluster, 30)


def test_a_persistent_abortable_error_never_spins_and_never_exits(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [b"x"] * 5)
    cluster.fail("produce", KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND, None, txn_requires_abort=True)
    waits = Waits(limit=30)
    eng = _engine(_settings(stall_backoff_initial_s=0.5, stall_backoff_max_s=4.0), CopyProcessor("out"), waits)

    stats = eng.run()  # returns only because Waits stops it after 30 back-offs

    assert waits.calls[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert set(waits.calls[3:]) == {4.0}
    assert stats.aborts == 30
    assert stats.abort_escalations == 3  # the default: every 10 in a row
    assert cluster.committed == []
    assert cluster.txn_count == 30  # one attempt per back-off, not a busy loop


# -- 4. fatal errors: producer re-created, offsets rewound ---------------------------------------------


@pytest.mark.parametrize("call", ["produce", "send_offsets_to_transaction", "commit_transaction", "begin_transaction"])
def test_a_fatal_error_recreates_the_producer_and_rewinds(cluster: FakeCluster, call: str) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail(call, KafkaError._INCONSISTENT, [2], fatal=True, reason="fatal idempotence state")
    eng = _engine(_settings(), _router_processor(cluster))

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.producer_restarts == 1
    assert len(cluster.producers) == 2
    assert [t.number for t in cluster.committed] == [1, 3, 4]
    _assert_exactly_once_and_chained(cluster, 30)


def test_a_send_offsets_that_never_returns_abandons_the_producer_and_loses_and_duplicates_nothing(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka's send_offsets_to_transaction can block past its timeout, for minutes, while the
    group coordinator is lost (a fault run saw it after the coordinator's broker restarted). The
    engine gives the call ``hung_call_after_s``, leaves it to its thread, never touches that
    producer again, and goes on with a new one."""
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.hang([2])
    eng = _engine(_settings(hung_call_after_s=0.2), _router_processor(cluster))

    try:
        stats = within(60, lambda: eng.run(until=lambda _s: cluster.done()), "the engine").result()
    finally:
        eng.stop()
        cluster.release()

    assert cluster.hung == [2]
    assert stats.producer_restarts == 1
    assert len(cluster.producers) == 2 and cluster.producers[0].hanging
    assert [t.number for t in cluster.committed] == [1, 3, 4]
    _assert_exactly_once_and_chained(cluster, 30)
    assert any("send_offsets_to_transaction" in r.getMessage() and "has not returned" in r.getMessage()
               for r in caplog.records)


def test_a_producer_fenced_while_its_send_offsets_hangs_ends_the_run_as_fenced_without_waiting_for_the_bound(
    cluster: FakeCluster,
) -> None:
    """Another instance took the transactional.id while send_offsets_to_transaction waits, and the
    call never returns (librdkafka reports the fence through poll() only). The run ends as fenced,
    as for a fenced call, long before ``hung_call_after_s``; a re-created producer would have
    fenced the other instance in turn."""
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.hang([2], fenced=True)
    eng = _engine(_settings(hung_call_after_s=3600.0), _router_processor(cluster))

    try:
        outcome = within(60, lambda: eng.run(until=lambda _s: cluster.done()), "the engine")
    finally:
        eng.stop()
        cluster.release()

    assert isinstance(outcome.error, FatalPipelineError), outcome
    assert "fenced" in str(outcome.error) and "pipeline.instance_id" in str(outcome.error)
    assert len(cluster.producers) == 1, "no producer re-created: it would fence the instance that took over"
    assert [t.number for t in cluster.committed] == [1]
    _assert_exactly_once_and_chained(cluster, 10)
    assert cluster.consumers[0].closed


def test_a_fenced_producer_is_a_fatal_pipeline_error_and_its_transaction_is_not_committed(
    cluster: FakeCluster,
) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail("commit_transaction", KafkaError._FENCED, [2], fatal=True, reason="Producer fenced")
    eng = _engine(_settings(transaction_timeout_ms=7000), _router_processor(cluster))

    with pytest.raises(FatalPipelineError) as info:
        eng.run(until=lambda _s: cluster.done())

    message = str(info.value)
    assert "fenced" in message and "'router-test'" in message
    assert "pipeline.instance_id" in message and "transaction.timeout.ms (7000 ms)" in message
    assert [t.number for t in cluster.committed] == [1]
    _assert_exactly_once_and_chained(cluster, 10)  # the first transaction's, and nothing of the fenced one
    assert cluster.consumers[0].closed


def test_a_fence_after_the_transaction_outlived_its_timeout_recreates_the_producer_and_goes_on(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The transaction coordinator aborts a transaction open longer than transaction.timeout.ms and
    bumps the producer's epoch; librdkafka (no KIP-588) then reports the producer fenced. A cluster
    fault run hit it: a destination without its min.insync.replicas kept a transaction open past the
    timeout and the router exited 2 as if another instance had taken its transactional.id. With the
    transaction that old, the fence is the coordinator's: re-create the producer and go on, naming the
    partition whose writes were unacknowledged. The coordinator cannot complete its abort before that
    partition takes the abort's markers, so the new producer's init_transactions waits
    (CONCURRENT_TRANSACTIONS, retried by librdkafka until the call times out): that wait names it too."""
    import router.pipeline.engine as engine_module

    skew = [0.0]

    class _Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def monotonic(self) -> float:
            return time.monotonic() + skew[0]

    monkeypatch.setattr(engine_module, "time", _Clock())

    def outlived(txn: int) -> bool:
        if txn == 2:
            skew[0] += 8.0  # the second transaction stays open past its 7 s timeout
            return True
        return False

    cluster.add_input(INGRESS, 0, _values(30))
    # librdkafka's text for the fence, as a cluster run logged it
    fence = ("ProduceRequest for crm.eu.contact [1] with 6 message(s) failed: Broker: Producer attempted an operation "
             "with an old epoch (broker 1 PID{Id:1,Epoch:0}, base seq 19): transactional producer fenced by newer "
             "producer instance")
    cluster.fail("commit_transaction", KafkaError._FENCED, outlived, fatal=True, reason=fence)
    # the first new producer's init_transactions times out each time while the abort is pending
    cluster.fail("init_transactions", KafkaError._TIMED_OUT, lambda t: t == 2, retriable=True, times=3,
                 reason="Timed out waiting for operation to finish")
    eng = _engine(_settings(transaction_timeout_ms=7000), _router_processor(cluster))

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        eng.run(until=lambda _s: cluster.done())

    assert len(cluster.producers) == 3, "the fenced producer is replaced; so is the one whose init timed out"
    _assert_exactly_once_and_chained(cluster, 30)
    fenced = [r.getMessage() for r in caplog.records if "transaction coordinator aborted" in r.getMessage()]
    assert len(fenced) == 1 and r"writes to crm.eu.contact[1] were unacknowledged" in fenced[0], caplog.text
    assert "min.insync.replicas" in fenced[0]
    waited = [r.getMessage() for r in caplog.records if r.getMessage().startswith("init_transactions:")]
    assert waited and "its abort of the transaction that timed out, whose markers go to crm.eu.contact[1]" in waited[0]


# -- 5. records refused by size, topics gone -------------------------------------------------------------


def test_a_record_the_client_refuses_as_too_large_is_quarantined_without_payload(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The producer's real limit is below what the processor was told (a lower topic
    max.message.bytes, compression): produce() raises MSG_SIZE_TOO_LARGE. The batch is aborted, the
    processor lowers its output limit, the record becomes an OVERSIZED quarantine record without its
    payload; nothing else changes and nothing is lost."""
    values = _values(30)
    values[14] = values[14].ljust(50_000, b"#")
    cluster.add_input(INGRESS, 0, values)
    cluster.max_message_bytes = 20_000
    proc = _router_processor(cluster)
    eng = _engine(_settings(), proc)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run(until=lambda _s: cluster.done())

    assert stats.aborts == 1 and stats.output_limit_lowered == 1
    fields = _assert_exactly_once_and_chained(cluster, 30)
    by_offset = {f.source_offset: f for f in fields}
    assert by_offset[14].reason == ReasonCode.OVERSIZED.value
    assert by_offset[14].destination_topic == "quarantine.eu"
    assert all(by_offset[i].decision == "route" for i in range(30) if i != 14)
    [q] = cluster.outputs("quarantine.eu")
    assert q.value is not None and len(q.value) < 20_000
    assert decode_quarantine(q.value).sealed_payload == b""
    assert "refused as too large" in caplog.text and ROUTED in caplog.text


def test_a_record_the_broker_refuses_as_too_large_is_quarantined_without_payload(cluster: FakeCluster) -> None:
    values = _values(30)
    values[3] = values[3].ljust(50_000, b"#")
    cluster.add_input(INGRESS, 0, values)
    cluster.broker_max_message_bytes = 20_000  # the refusal comes back as a failed delivery
    eng = _engine(_settings(), _router_processor(cluster))

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.aborts == 1 and stats.output_limit_lowered == 1
    fields = _assert_exactly_once_and_chained(cluster, 30)
    assert [f.source_offset for f in fields if f.reason == ReasonCode.OVERSIZED.value] == [3]


def test_audit_records_the_broker_refuses_stall_with_escalation_instead_of_crashing(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """An audit record cannot be shrunk: the router stalls (backs off, escalates), never crashes."""
    cluster.add_input(INGRESS, 0, _values(5))
    cluster.broker_max_message_bytes = 200  # smaller than any audit record
    waits = Waits(limit=12)
    eng = _engine(_settings(abort_escalate_after=4), _router_processor(cluster), waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run()

    assert cluster.committed == []
    assert stats.abort_escalations == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "audit[" in errors[0] and "MSG_SIZE_TOO_LARGE" in errors[0] and "max.message.bytes" in errors[0]


def test_a_destination_deleted_mid_run_stalls_until_placement_diverts_it(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """produce() raises _UNKNOWN_TOPIC for a deleted destination: abort and back off (no crash);
    once the placement watch marks the topic missing, its records go to quarantine."""
    cluster.add_input(INGRESS, 0, _values(30))
    placed = dict(PLACED)
    proc = _router_processor(cluster, placed=placed)
    assert isinstance(proc.placement, FakePlacement)
    placement = proc.placement

    def delete_after_first_commit(_txn: int) -> bool:
        if cluster.committed:
            cluster.deleted_topics.add(ROUTED)
        return False

    cluster.fail("begin_transaction", 0, delete_after_first_commit)

    def watch_notices(n_waits: int) -> None:
        if n_waits == 2:
            placement.placed.pop(ROUTED)  # MISSING: no longer permitted

    waits = Waits(on_wait=watch_notices)
    eng = _engine(_settings(), proc, waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run(until=lambda _s: cluster.done())

    assert stats.aborts == 2 and len(waits.calls) == 2
    fields = _assert_exactly_once_and_chained(cluster, 30)
    assert [f.destination_topic for f in fields] == [ROUTED] * 10 + ["quarantine.eu"] * 20
    assert {f.reason for f in fields[10:]} == {ReasonCode.PLACEMENT_VIOLATION.value}
    assert f"_UNKNOWN_TOPIC) for {ROUTED}[" in caplog.text


# -- 6. authorization failures: one clear error, no spin -------------------------------------------------


def test_transactional_id_not_authorized_at_start_up_is_a_clear_fatal_error(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [b"x"])
    cluster.fail("init_transactions", KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, fatal=True,
                 reason="Transactional Id authorization failed")
    eng = _engine(_settings(bootstrap_config={"bootstrap.servers": "fake:9092", "sasl.username": "router"}),
                  CopyProcessor("out"))

    with pytest.raises(FatalPipelineError) as info:
        eng.run()

    message = str(info.value)
    assert message.startswith("init_transactions: not authorized (TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
    assert "Transactional Id authorization failed" in message
    assert "sasl.username 'router'" in message
    assert "lacks WRITE and DESCRIBE on TransactionalId 'router-test'" in message
    assert cluster.committed == [] and cluster.txn_count == 0


def test_not_authorized_under_oauthbearer_names_the_principal_of_the_token(cluster: FakeCluster) -> None:
    class Source:
        principal = "router-eu"

        def __call__(self, _config: str) -> tuple[str, float, str]:
            raise AssertionError("the fake cluster asks for no token")

    cluster.add_input(INGRESS, 0, [b"x"])
    cluster.fail("init_transactions", KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, fatal=True,
                 reason="Transactional Id authorization failed")
    eng = _engine(_settings(bootstrap_config={"bootstrap.servers": "fake:9092", "oauth_cb": Source()}),
                  CopyProcessor("out"))

    with pytest.raises(FatalPipelineError) as info:
        eng.run()

    message = str(info.value)
    assert "User:router-eu, named by its OAUTHBEARER token" in message
    assert "sasl.username" not in message


def test_another_fatal_error_at_start_up_is_a_clear_fatal_error(cluster: FakeCluster) -> None:
    cluster.fail("init_transactions", KafkaError._INCONSISTENT, None, fatal=True, reason="broken")
    with pytest.raises(FatalPipelineError) as info:
        _engine(_settings(), CopyProcessor("out")).run()
    message = str(info.value)
    assert "init_transactions failed" in message and "broken" in message
    assert "'router-test'" in message and "another instance" in message


@pytest.mark.parametrize(
    ("call", "code", "permission"),
    [
        ("produce", KafkaError.TOPIC_AUTHORIZATION_FAILED, "lacks WRITE (and DESCRIBE) on topic(s) out"),
        ("send_offsets_to_transaction", KafkaError.GROUP_AUTHORIZATION_FAILED, "lacks READ on consumer group 'g'"),
        ("commit_transaction", KafkaError.TOPIC_AUTHORIZATION_FAILED,
         "lacks WRITE (and DESCRIBE) on topic(s) out"),
    ],
)
def test_a_denied_write_or_group_is_a_clear_fatal_error_without_a_spin(
    cluster: FakeCluster, call: str, code: int, permission: str
) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    cluster.fail(call, code, lambda t: t >= 2, txn_requires_abort=True, reason="authorization failed")
    eng = _engine(_settings(), CopyProcessor("out"))

    with pytest.raises(FatalPipelineError) as info:
        eng.run(until=lambda _s: cluster.done())

    assert f"{call}: not authorized" in str(info.value)
    assert permission in str(info.value)
    assert cluster.txn_count == 2  # the first denial ends it
    _assert_copied_once(cluster, _values(10))


def test_a_delivery_denied_by_the_broker_is_a_clear_fatal_error(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(10))
    cluster.fail_delivery("out", KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(FatalPipelineError, match=r"lacks WRITE \(and DESCRIBE\) on topic\(s\) out"):
        _engine(_settings(), CopyProcessor("out")).run(until=lambda _s: cluster.done())
    assert cluster.committed == [] and cluster.txn_count == 1


@pytest.mark.parametrize(
    ("code", "permission"),
    [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "lacks READ (and DESCRIBE) on topic(s) ingress"),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "lacks READ on consumer group 'g'"),
    ],
)
def test_a_consumer_that_may_not_read_is_a_clear_fatal_error(cluster: FakeCluster, code: int, permission: str) -> None:
    cluster.add_input(INGRESS, 0, _values(10))
    cluster.consumer_errors.append(FakeErrorEvent(KafkaError(code, "Broker: not authorized"), INGRESS))
    with pytest.raises(FatalPipelineError) as info:
        _engine(_settings(), CopyProcessor("out")).run(until=lambda _s: cluster.done())
    assert str(info.value).startswith("consume: not authorized")
    assert permission in str(info.value)
    assert cluster.txn_count == 0


def test_a_transient_consumer_error_is_logged_and_the_run_goes_on(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_input(INGRESS, 0, _values(10))
    cluster.consumer_errors.append(FakeErrorEvent(KafkaError(KafkaError._TRANSPORT, "Local: Broker transport failure")))
    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        _engine(_settings(), CopyProcessor("out")).run(until=lambda _s: cluster.done())
    assert "consumer error: Local: Broker transport failure (_TRANSPORT)" in caplog.text
    _assert_copied_once(cluster, _values(10))


# -- 7. a processor stall: abort, rewind, back off, resume ---------------------------------------------


class Stalling:
    """A processor wrapper that stalls its ``at``-th to ``at + times - 1``-th batch (a key provider
    that is down for a while)."""

    def __init__(self, inner: RouterProcessor, at: int, times: int) -> None:
        self.inner, self.at, self.times = inner, at, times
        self.batches = 0

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        self.batches += 1
        if self.at <= self.batches < self.at + self.times:
            raise StallError("key unavailable: eu")
        return self.inner.process(msgs)

    def checkpoint(self) -> object:
        return self.inner.checkpoint()

    def rollback(self, state: object) -> None:
        self.inner.rollback(state)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.inner.on_assign(partitions)


def test_a_stalled_batch_is_aborted_rewound_and_retried_with_back_off_until_it_goes_through(
    cluster: FakeCluster,
) -> None:
    cluster.add_input(INGRESS, 0, _values(40))
    waits = Waits()
    # commit every 2 batches (never by time): the first stall hits the second batch of the second
    # transaction, whose first batch's outputs and audit records are then aborted and rolled back
    eng = _engine(_settings(commit_interval_ms=60_000, commit_max_records=20, stall_backoff_initial_s=0.5),
                  Stalling(_router_processor(cluster), at=4, times=3), waits)

    stats = eng.run(until=lambda _s: cluster.done())

    assert waits.calls == [0.5, 1.0, 2.0]
    assert (stats.stalls, stats.aborts) == (3, 3)
    assert [t.number for t in cluster.committed] == [1, 5]
    _assert_exactly_once_and_chained(cluster, 40)


# -- 8. the private signals never leave run() ----------------------------------------------------------


class Failing:
    """A processor wrapper whose on_assign fails the first ``fail_assign`` times (an audit topic that
    cannot be read during a rebalance)."""

    def __init__(self, inner: RouterProcessor, fail_assign: int = 0) -> None:
        self.inner = inner
        self.fail_assign = fail_assign

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        return self.inner.process(msgs)

    def checkpoint(self) -> object:
        return self.inner.checkpoint()

    def rollback(self, state: object) -> None:
        self.inner.rollback(state)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        if self.fail_assign > 0:
            self.fail_assign -= 1
            raise RouterError("audit topic cannot be read")
        self.inner.on_assign(partitions)


PATHS: dict[str, Any] = {
    "abort that needs an abort": lambda c: (
        c.fail("commit_transaction", KafkaError._STATE, [2], txn_requires_abort=True),
        c.fail("abort_transaction", KafkaError._STATE, [2], txn_requires_abort=True),
    ),
    "abort that is fatal": lambda c: (
        c.fail("produce", KafkaError.NOT_ENOUGH_REPLICAS, [2], txn_requires_abort=True),
        c.fail("abort_transaction", KafkaError._FATAL, [2], fatal=True),
    ),
    "abort that keeps timing out": lambda c: (
        c.fail("produce", KafkaError.NOT_ENOUGH_REPLICAS, [2], txn_requires_abort=True),
        c.fail("abort_transaction", KafkaError._TIMED_OUT, [2], retriable=True),
    ),
    "re-created producer that cannot initialise at first": lambda c: (
        c.fail("commit_transaction", KafkaError._FATAL, [2], fatal=True),
        c.fail("init_transactions", KafkaError._TIMED_OUT, lambda t: t == 2, retriable=True, times=3),
    ),
    "begin that fails without flags": lambda c: c.fail("begin_transaction", KafkaError._STATE, [2], times=1),
    "send_offsets that fails without flags": lambda c: c.fail(
        "send_offsets_to_transaction", KafkaError._CONFLICT, [2]),
    "commit that fails then the abort of the next is fatal": lambda c: (
        c.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True),
        c.fail("produce", KafkaError.NOT_ENOUGH_REPLICAS, [3], txn_requires_abort=True),
        c.fail("abort_transaction", KafkaError._FATAL, [3], fatal=True),
    ),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_failure_path_recovers_and_only_public_errors_could_escape(cluster: FakeCluster, path: str) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    PATHS[path](cluster)
    eng = _engine(_settings(), _router_processor(cluster))

    eng.run(until=lambda _s: cluster.done())  # any private exception would fail the test here

    _assert_exactly_once_and_chained(cluster, 30)


def test_an_assignment_whose_tails_cannot_be_read_is_retried_before_anything_is_consumed(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    waits = Waits()
    eng = _engine(_settings(), Failing(_router_processor(cluster), fail_assign=2), waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        eng.run(until=lambda _s: cluster.done())

    assert len(waits.calls) == 1  # the retry after the callback is immediate, the next one waits
    assert "audit topic cannot be read" in caplog.text
    _assert_exactly_once_and_chained(cluster, 30)


# -- 9. SIGTERM mid-batch ---------------------------------------------------------------------------------


@pytest.fixture
def sigterm_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class SigtermDuring(Failing):
    """Delivers SIGTERM to this process while the ``at``-th batch is being processed."""

    def __init__(self, inner: RouterProcessor, at: int) -> None:
        super().__init__(inner)
        self.at = at
        self.batches = 0

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        self.batches += 1
        if self.batches == self.at:
            signal.raise_signal(signal.SIGTERM)
        return self.inner.process(msgs)


@pytest.mark.usefixtures("sigterm_handlers")
def test_sigterm_mid_batch_commits_the_open_transaction_and_returns(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(100))
    proc = SigtermDuring(_router_processor(cluster), at=3)
    eng = _engine(_settings(commit_interval_ms=60_000, commit_max_records=15), proc)
    eng.install_signal_handlers()

    stats = eng.run()  # returns: the CLI exits 0

    assert proc.batches == 3
    assert [len(t.offsets) for t in cluster.committed] == [1, 1]  # 20 (commit_max_records), then 10 at exit
    _assert_exactly_once_and_chained(cluster, 30)
    assert stats.consumed == 30
    assert cluster.consumers[0].closed


@pytest.mark.usefixtures("sigterm_handlers")
def test_sigterm_mid_batch_whose_commit_fails_aborts_and_returns(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_input(INGRESS, 0, _values(100))
    cluster.fail("commit_transaction", KafkaError.NOT_ENOUGH_REPLICAS, [2], txn_requires_abort=True)
    proc = SigtermDuring(_router_processor(cluster), at=3)
    eng = _engine(_settings(commit_interval_ms=60_000, commit_max_records=15), proc)
    eng.install_signal_handlers()

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        eng.run()

    _assert_exactly_once_and_chained(cluster, 20)  # the open transaction's 10 records wait for the next owner
    assert ("abort_transaction", 2) in cluster.calls
    assert "processed again from the committed offsets" in caplog.text
