"""The transactional engine's error model, driven by in-memory fakes of the Kafka clients
(tests/unit/fake_kafka.py): ambiguous commits keep the audit chain intact, abortable errors back
off, a fatal error at start-up is a clear FatalPipelineError. No broker, no real sleeps."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import KafkaError

from router.audit.chain import AuditChain, ChainTail, checked_tail, verify_chain
from router.audit.record import decode_audit
from router.pipeline import engine as engine_mod
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, FatalPipelineError, TransactionalEngine
from router.pipeline.processor import RouterProcessor
from tests.unit.fake_kafka import FakeCluster
from tests.unit.test_pipeline_processor import DIGESTS, PLACED, FakePlacement, _keys, _route, settings

pytestmark = pytest.mark.unit

INGRESS = "ingress"


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    c = FakeCluster()
    monkeypatch.setattr(engine_mod, "Producer", c.producer)
    monkeypatch.setattr(engine_mod, "Consumer", c.consumer)
    return c


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
    """Records back-off waits instead of sleeping; stops the engine after ``limit`` of them."""

    def __init__(self, limit: int = 1000) -> None:
        self.calls: list[float] = []
        self.limit = limit
        self.engine: TransactionalEngine | None = None

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        if len(self.calls) >= self.limit and self.engine is not None:
            self.engine.stop()
        return False


def _engine(settings: EngineSettings, processor: Any, waits: Waits | None = None) -> TransactionalEngine:
    waits = waits or Waits()
    eng = TransactionalEngine(settings, processor, wait=waits, sleep=lambda _s: None)
    waits.engine = eng
    return eng


def _router_processor(cluster: FakeCluster, *, with_tail_reader: bool) -> RouterProcessor:
    sealer, _eu, _us = _keys()

    def chain_tails(partition: int, sources: Any) -> dict[tuple[str, int], ChainTail | None]:
        """What ``read_chain_tails`` does, against the fake cluster's committed audit records."""
        found: dict[tuple[str, int], ChainTail | None] = dict.fromkeys(sources)
        for o in cluster.outputs("audit"):
            f = decode_audit(o.value or b"").fields
            if o.partition == partition and (f.source_topic, f.source_partition) in found:
                found[(f.source_topic, f.source_partition)] = checked_tail(o.value or b"")
        return found

    return RouterProcessor(
        _route(), FakePlacement(PLACED), sealer, AuditChain(), settings(), DIGESTS[0],
        chain_tails=chain_tails if with_tail_reader else None,
    )


def _assert_exactly_once_and_chained(cluster: FakeCluster, n: int) -> None:
    routed = cluster.outputs("crm.eu.contact")
    audit = cluster.outputs("audit")
    # every committed audit record verifies, in the order it was committed (its offset order)
    report = verify_chain((o.partition, i, o.value or b"") for i, o in enumerate(audit))
    assert report.ok, [b.describe() for b in report.breaks]
    assert report.records == n
    positions = sorted(decode_audit(o.value or b"").fields.source_offset for o in audit)
    assert positions == list(range(n)), "each source position audited exactly once"
    assert len(routed) == n
    assert cluster.committed_offset(INGRESS, 0) == n


# -- 1. ambiguous commit ----------------------------------------------------------------------


def test_ambiguous_commit_that_succeeded_keeps_the_audit_chain_intact(cluster: FakeCluster) -> None:
    """Review §3.1 / A4: commit of transaction 2 is applied, then keeps timing out (retriable)."""
    cluster.add_input(INGRESS, 0, [f"v{i}".encode() for i in range(30)])
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True, commit_first=True)
    proc = _router_processor(cluster, with_tail_reader=True)
    eng = _engine(_settings(), proc)

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.producer_restarts == 1
    assert len(cluster.committed) == 3
    _assert_exactly_once_and_chained(cluster, 30)


def test_ambiguous_commit_that_failed_is_reprocessed_once_with_an_intact_chain(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [f"v{i}".encode() for i in range(30)])
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True)
    proc = _router_processor(cluster, with_tail_reader=True)
    eng = _engine(_settings(), proc)

    stats = eng.run(until=lambda _s: cluster.done())

    assert stats.producer_restarts == 1
    assert stats.consumed == 40  # the batch of the lost commit was processed again
    _assert_exactly_once_and_chained(cluster, 30)


def test_without_a_tail_reader_a_restart_rolls_back_to_the_checkpoint(cluster: FakeCluster) -> None:
    """No chain_tail (tests, the copy baseline): the in-memory rollback stays the behaviour."""
    cluster.add_input(INGRESS, 0, [f"v{i}".encode() for i in range(30)])
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [2], retriable=True)
    proc = _router_processor(cluster, with_tail_reader=False)
    eng = _engine(_settings(), proc)

    eng.run(until=lambda _s: cluster.done())

    _assert_exactly_once_and_chained(cluster, 30)


# -- 2. abortable errors back off ---------------------------------------------------------------


def test_abortable_errors_back_off_exponentially_and_reset_after_a_commit(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.add_input(INGRESS, 0, [f"v{i}".encode() for i in range(20)])
    cluster.fail("produce", KafkaError.TOPIC_AUTHORIZATION_FAILED, [1, 2, 3], txn_requires_abort=True,
                 reason="Topic authorization failed")
    cluster.fail("send_offsets_to_transaction", KafkaError.NOT_ENOUGH_REPLICAS, [5], txn_requires_abort=True,
                 reason="not enough in-sync replicas")
    waits = Waits()
    eng = _engine(_settings(stall_backoff_initial_s=0.01, stall_backoff_max_s=0.03), CopyProcessor("out"), waits)

    with caplog.at_level(logging.WARNING, logger="router.pipeline"):
        stats = eng.run(until=lambda _s: cluster.done())

    assert waits.calls == [0.01, 0.02, 0.03, 0.01]  # doubled, capped, reset after the commit of txn 4
    assert stats.abort_backoffs == 4
    assert stats.aborts == 4
    assert [o.value for o in cluster.outputs("out")] == [f"v{i}".encode() for i in range(20)]
    assert [t.number for t in cluster.committed] == [4, 6]
    text = caplog.text
    assert "produce" in text and "Topic authorization failed" in text
    assert "send_offsets_to_transaction" in text and "not enough in-sync replicas" in text


def test_a_persistent_abortable_error_never_spins(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [b"x"] * 5)
    cluster.fail("produce", KafkaError.TOPIC_AUTHORIZATION_FAILED, None, txn_requires_abort=True)
    waits = Waits(limit=6)
    eng = _engine(_settings(stall_backoff_initial_s=0.5, stall_backoff_max_s=4.0), CopyProcessor("out"), waits)

    stats = eng.run()

    assert waits.calls == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert stats.aborts == 6
    assert cluster.committed == []
    assert cluster.txn_count == 6  # one attempt per back-off, not a busy loop


# -- 3. fatal error at start-up -----------------------------------------------------------------


def test_fatal_error_at_start_up_is_a_clear_fatal_pipeline_error(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [b"x"])
    cluster.fail("init_transactions", KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, fatal=True,
                 reason="Transactional Id authorization failed")
    eng = _engine(_settings(), CopyProcessor("out"))

    with pytest.raises(FatalPipelineError) as info:
        eng.run()

    message = str(info.value)
    assert "init_transactions" in message
    assert "Transactional Id authorization failed" in message
    assert "router-test" in message  # the transactional.id to grant or to free
    assert "ACL" in message and "another instance" in message
    assert cluster.committed == []
