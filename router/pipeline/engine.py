"""The transactional consume → process → produce engine (the Kafka shell of the pipeline).

Guarantee: every consumed record's outputs and its consumed offset are committed in one Kafka
transaction, or none of them is. Readers with ``isolation.level=read_committed`` therefore see each
input's outputs exactly once, across crashes, restarts and rebalances.

The engine knows nothing about routing: a :class:`BatchProcessor` turns records into outputs.
The router's processor does decode/classify/decide/seal; the benchmark's baseline uses the same
engine with a processor that copies bytes, so both run with the same client settings, batch sizes
and commit interval.

Error model (librdkafka's ``examples/transactions.c``):

- retriable error → call the same function again (bounded; then treated as ambiguous);
- ``txn_requires_abort()`` → abort, seek back to the committed offsets, back off exponentially
  (the stall settings; reset by the next commit) and reprocess;
- ``fatal()`` or an ambiguous end of transaction (commit/abort that kept failing) → close the
  producer and create a new one with the same ``transactional.id`` (``init_transactions`` fences
  the old epoch and aborts what it left open); never start another transaction on it. The
  processor then resumes from what is committed (:meth:`BatchProcessor.on_assign` for the assigned
  partitions, e.g. the audit chain tails read back), not from its pre-commit checkpoint: an
  ambiguous commit may have succeeded;
- a fatal error while creating the producer (e.g. a transactional.id the principal may not use)
  → :class:`FatalPipelineError` naming the call, the error and the likely fix;
- :class:`StallError` from the processor (e.g. a key provider that is down) → abort, rewind,
  back off exponentially and retry: offsets do not advance and nothing is produced meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from router import telemetry
from router.errors import RouterError
from router.pipeline.faults import FaultPoints

log = logging.getLogger("router.pipeline")


class StallError(RouterError):
    """A dependency the processor needs is unavailable; the batch must be retried later, unchanged."""


class FatalPipelineError(RouterError):
    """The pipeline cannot continue (e.g. it was fenced by another instance with its transactional.id)."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce inside the current transaction."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int = -1  # -1: let the partitioner choose
    headers: list[tuple[str, bytes]] | None = None


class BatchProcessor(Protocol):
    """Turns consumed records into output records. Called only inside an open transaction."""

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        """Outputs for the batch. Raise :class:`StallError` to retry the batch later unchanged."""
        ...

    def checkpoint(self) -> object:
        """An immutable snapshot of processor state (e.g. audit chains) at a commit point."""
        ...

    def rollback(self, state: object) -> None:
        """Return to a snapshot after an abort: the aborted batch will be processed again."""
        ...

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Called after partitions are assigned, before their first record is processed, and again
        for the current assignment after the producer was re-created (after :meth:`rollback`):
        resume from what is committed where the processor can read it back."""
        ...


@dataclass
class EngineSettings:
    bootstrap_config: dict[str, str]
    """librdkafka properties shared by consumer and producer (bootstrap, security)."""
    ingress_topics: list[str]
    group_id: str
    transactional_id: str
    batch_size: int = 500
    commit_interval_ms: int = 100
    commit_max_records: int = 5000
    session_timeout_ms: int = 10000
    transaction_timeout_ms: int = 10000
    max_retries: int = 5
    stall_backoff_initial_s: float = 0.2
    stall_backoff_max_s: float = 10.0
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    producer_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineStats:
    consumed: int = 0
    produced: int = 0
    commits: int = 0
    aborts: int = 0
    producer_restarts: int = 0
    stalls: int = 0
    abort_backoffs: int = 0
    """Back-offs after an abortable error (each one follows an abort)."""


class _Restart(Exception):
    """The producer must be re-created (fatal error or ambiguous transaction end)."""


class TransactionalEngine:
    """Runs the consume → process → produce loop until :meth:`stop` (or SIGTERM) is called."""

    def __init__(
        self,
        settings: EngineSettings,
        processor: BatchProcessor,
        *,
        wait: Callable[[float], object] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``wait`` is the back-off pause (default: wait on the stop event, so :meth:`stop` cuts
        it short); ``sleep`` the pause between retries of a retriable call. Tests inject both.
        ``environ`` (default ``os.environ``) is read once here for ``ROUTER_FAULT``, the fault
        points of tests (:mod:`router.pipeline.faults`); a malformed value is a ConfigError."""
        self.s = settings
        self._faults = FaultPoints.from_env(environ)
        """None unless a test set ROUTER_FAULT: each step then costs one ``is None`` test."""
        self._deferred: Exception | None = None
        """An error of a rebalance callback, raised again by the loop once ``consume`` returned."""
        self.processor = processor
        self.stats = EngineStats()
        self._stop = threading.Event()
        self._wait: Callable[[float], object] = wait if wait is not None else self._stop.wait
        self._sleep = sleep
        self._abort_backoff = settings.stall_backoff_initial_s
        self._backoff_due: float | None = None
        """A back-off owed after an abortable error, waited at the top of the loop."""
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._in_txn = False
        self._txn_started = 0.0
        self._txn_records = 0
        self._state: object = None
        self._span: Any = None
        self._assigned_at: float | None = None
        """When partitions were last assigned: idle time counts from then (a rebalance is not idleness)."""

    # -- clients ---------------------------------------------------------------------------
    def _consumer_config(self) -> dict[str, Any]:
        return {
            **self.s.bootstrap_config,
            "group.id": self.s.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.s.session_timeout_ms,
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 50,
            **self.s.consumer_overrides,
        }

    def _producer_config(self) -> dict[str, Any]:
        return {
            **self.s.bootstrap_config,
            "transactional.id": self.s.transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "transaction.timeout.ms": self.s.transaction_timeout_ms,
            **self.s.producer_overrides,
        }

    def _new_producer(self) -> Producer:
        producer = Producer(self._producer_config())
        self._retry(lambda: producer.init_transactions(30), "init_transactions", restart_on_fail=False)
        return producer

    @property
    def producer(self) -> Producer:
        assert self._producer is not None
        return self._producer

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None
        return self._consumer

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the open transaction and return."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop cleanly (open transaction committed, clients closed)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(  # noqa: PLR0912, PLR0915 - the error model stays readable in one loop
        self, *, max_idle_s: float | None = None, until: Callable[[EngineStats], bool] | None = None
    ) -> EngineStats:
        """Run until stopped, or until ``until(stats)`` is true, or idle for ``max_idle_s``.

        Idle time counts from the later of the last record and the last partition assignment, so
        waiting for the group to rebalance is not mistaken for an empty topic.
        """
        self._producer = self._new_producer()
        self._consumer = Consumer(self._consumer_config())
        self.consumer.subscribe(self.s.ingress_topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._state = self.processor.checkpoint()
        last_data = time.monotonic()
        backoff = self.s.stall_backoff_initial_s
        try:
            while not self._stop.is_set():
                if until is not None and until(self.stats):
                    break
                if self._backoff_due is not None:
                    due, self._backoff_due = self._backoff_due, None
                    self._wait(due)
                    continue
                msgs = self.consumer.consume(num_messages=self.s.batch_size, timeout=0.05)
                if self._deferred is not None:
                    deferred, self._deferred = self._deferred, None
                    if isinstance(deferred, _AbortNeeded):
                        self._abort_and_back_off(deferred, "rebalance")
                    else:
                        self._restart_producer()
                    continue
                data = [m for m in msgs if m.error() is None]
                for m in msgs:
                    if (err := m.error()) is not None and err.code() != KafkaError._PARTITION_EOF:
                        if err.fatal():
                            raise FatalPipelineError(f"consumer failed: {err.str()}")
                        log.warning("consumer error: %s", err.str())
                if data:
                    last_data = time.monotonic()
                    try:
                        self._process(data)
                        backoff = self.s.stall_backoff_initial_s
                    except StallError as err:
                        self.stats.stalls += 1
                        telemetry.stalls.add(1, {"cause": type(err).__name__})
                        log.warning("stalling %.1fs, offsets not advanced: %s", backoff, err)
                        self._abort_and_rewind("stall")
                        self._wait(backoff)
                        backoff = min(backoff * 2, self.s.stall_backoff_max_s)
                        continue
                    except _AbortNeeded as err:
                        self._abort_and_back_off(err, "produce")
                        continue
                    except _Restart:
                        self._restart_producer()
                        continue
                elif (
                    max_idle_s is not None
                    and self._assigned_at is not None
                    and not self._in_txn
                    and time.monotonic() - max(last_data, self._assigned_at) > max_idle_s
                ):
                    break
                if self._in_txn and (
                    (time.monotonic() - self._txn_started) * 1000 >= self.s.commit_interval_ms
                    or self._txn_records >= self.s.commit_max_records
                ):
                    try:
                        self._commit()
                    except _Restart:
                        self._restart_producer()
            if self._in_txn:
                try:
                    self._commit()
                except _Restart:
                    self._restart_producer()
        finally:
            self._close()
        return self.stats

    # -- one batch -------------------------------------------------------------------------
    def _begin(self) -> None:
        self._retry(self.producer.begin_transaction, "begin_transaction")
        self._in_txn = True
        self._txn_started = time.monotonic()
        self._txn_records = 0
        self._span = telemetry.tracer.start_span("router.transaction")
        if self._faults is not None:
            self._fault("after_begin", "begin_transaction")

    def _process(self, msgs: list[Message]) -> None:
        if not self._in_txn:
            self._begin()
        outputs = self.processor.process(msgs)
        produce = self.producer.produce
        for out in outputs:
            while True:
                try:
                    # The client only reads the header list; its stub types it as an invariant
                    # list of (str, str | bytes | None), which list[tuple[str, bytes]] satisfies.
                    headers = cast("list[tuple[str, str | bytes | None]] | None", out.headers)
                    produce(out.topic, out.value, out.key, partition=out.partition, headers=headers)
                    break
                except BufferError:
                    self.producer.poll(0.05)
                except KafkaException as err:
                    self._handle_txn_error(err, "produce")
        if self._faults is not None:
            self._fault("after_produce", "produce")
        self.stats.consumed += len(msgs)
        self.stats.produced += len(outputs)
        self._txn_records += len(msgs)

    def _commit(self) -> None:
        consumer = self.consumer
        positions = consumer.position(consumer.assignment())
        positions = [tp for tp in positions if tp.offset >= 0]
        try:
            if positions:
                self._retry(
                    lambda: self.producer.send_offsets_to_transaction(
                        positions, consumer.consumer_group_metadata(), 30
                    ),
                    "send_offsets_to_transaction",
                )
                if self._faults is not None:
                    self._fault("after_send_offsets", "send_offsets_to_transaction")
            if self._faults is not None:
                self._fault("before_commit", "commit_transaction")
            self._retry(lambda: self.producer.commit_transaction(30), "commit_transaction")
            if self._faults is not None:
                # Committed: an error raised here is an ambiguous commit that succeeded.
                self._fault("after_commit", "commit_transaction")
        except _AbortNeeded as err:
            self._abort_and_back_off(err, "commit")
            return
        self._in_txn = False
        self.stats.commits += 1
        self._abort_backoff = self.s.stall_backoff_initial_s
        telemetry.batches.add(1)
        if self._span is not None:
            self._span.set_attribute("router.records", self._txn_records)
            self._span.end()
            self._span = None
        self._state = self.processor.checkpoint()

    # -- errors ----------------------------------------------------------------------------
    def _fault(self, step: str, what: str) -> None:
        """Reach fault point ``step`` (only when ROUTER_FAULT is set). A KafkaError it raises is
        handled as an error of the call ``what``, as if librdkafka had raised it there."""
        faults = self._faults
        assert faults is not None
        if what == "produce":
            try:
                faults.hit(step)
            except KafkaException as err:
                self._handle_txn_error(err, "produce")
        else:
            self._retry(lambda: faults.hit(step), what)

    def _retry(self, fn: Callable[[], object], what: str, *, restart_on_fail: bool = True) -> None:
        """Call ``fn``; retry retriable errors; map the rest onto the error model."""
        for attempt in range(self.s.max_retries + 1):
            try:
                fn()
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.fatal():
                    if err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
                        raise FatalPipelineError(
                            f"{what}: this instance was fenced: another instance uses transactional.id "
                            f"{self.s.transactional_id!r}; give each instance its own pipeline.instance_id"
                        ) from None
                    if not restart_on_fail:
                        raise FatalPipelineError(
                            f"{what} failed with a fatal error: {err.str()} ({err.name()}); the transactional "
                            f"producer cannot start. Check that the client's principal may use transactional.id "
                            f"{self.s.transactional_id!r} (Kafka ACL: Write and Describe on that TransactionalId) "
                            "and that another instance is not running with the same transactional.id "
                            "(give each instance its own pipeline.instance_id)"
                        ) from None
                    log.error("%s: fatal producer error, re-creating the producer: %s", what, err.str())
                    raise _Restart from None
                if err.txn_requires_abort():
                    raise _AbortNeeded(what, err.str()) from None
                if err.retriable() and attempt < self.s.max_retries:
                    self._sleep(min(0.1 * 2**attempt, 2.0))
                    continue
                if not restart_on_fail:
                    raise FatalPipelineError(f"{what} failed: {err.str()}") from None
                log.error(
                    "%s: giving up after %d attempts (%s); outcome ambiguous, re-creating the producer",
                    what,
                    attempt + 1,
                    err.str(),
                )
                raise _Restart from None
            else:
                return

    def _handle_txn_error(self, exc: KafkaException, what: str) -> None:
        err: KafkaError = exc.args[0]
        if err.fatal():
            raise _Restart from None
        if err.txn_requires_abort():
            raise _AbortNeeded(what, err.str()) from None
        raise exc

    def _abort_and_back_off(self, err: _AbortNeeded, cause: str) -> None:
        """Abort and rewind after an abortable error; the loop waits before the next attempt.

        The wait doubles per abortable error in a row (``stall_backoff_initial_s`` up to
        ``stall_backoff_max_s``) and is reset by the next commit, so a persistent cause (a denied
        topic, min.insync.replicas unmet) does not spin re-processing the same batch.
        """
        self._abort_and_rewind(cause)
        self.stats.abort_backoffs += 1
        backoff = self._abort_backoff
        log.warning(
            "%s: abortable error (%s); transaction aborted, offsets rewound, retrying in %.2fs",
            err.what,
            err.detail,
            backoff,
        )
        self._backoff_due = backoff
        self._abort_backoff = min(backoff * 2, self.s.stall_backoff_max_s)

    def _abort_and_rewind(self, cause: str) -> None:
        """Abort the open transaction, seek back to committed offsets, restore processor state."""
        if self._in_txn:
            try:
                self._retry(lambda: self.producer.abort_transaction(30), "abort_transaction")
            except _AbortNeeded:
                raise _Restart from None
            self._in_txn = False
            self.stats.aborts += 1
            telemetry.aborts.add(1, {"cause": cause})
            if self._span is not None:
                self._span.set_attribute("router.aborted", cause)
                self._span.end()
                self._span = None
        self._rewind()
        self.processor.rollback(self._state)

    def _rewind(self) -> None:
        consumer = self.consumer
        assignment = consumer.assignment()
        if not assignment:
            return
        for tp in consumer.committed(assignment, timeout=30):
            offset = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _restart_producer(self) -> None:
        self.stats.producer_restarts += 1
        self._in_txn = False
        if self._span is not None:
            self._span.end()
            self._span = None
        with contextlib.suppress(KafkaException):
            self.producer.flush(0)
        self._producer = self._new_producer()  # fences and aborts what the old one left open
        self._rewind()
        # The old transaction is settled now, but its outcome is unknown here (an ambiguous commit
        # may have succeeded): the pre-commit checkpoint may be behind what is committed. Roll back
        # to it, then let the processor resume the assigned partitions from what is committed
        # (the audit chain tails read back); a processor that cannot read back keeps the rollback.
        self.processor.rollback(self._state)
        self.processor.on_assign(self.consumer.assignment())
        self._state = self.processor.checkpoint()

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        self._assigned_at = time.monotonic()
        if self._faults is not None:
            try:
                self._fault("in_rebalance", "on_assign")
            except (_AbortNeeded, _Restart) as err:
                self._deferred = err  # the assignment is still taken over below
        self.processor.on_assign(partitions)
        self._state = self.processor.checkpoint()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what was processed for the partitions being taken away (or abort it)."""
        log.info("revoked %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        try:
            if self._faults is not None:
                self._fault("in_rebalance", "commit_transaction" if self._in_txn else "on_revoke")
            if self._in_txn:
                self._commit()
        except (_AbortNeeded, _Restart) as err:
            self._deferred = err

    def _close(self) -> None:
        if self._in_txn and self._producer is not None:
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(10)
            self._in_txn = False
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None


class _AbortNeeded(Exception):
    """The transaction must be aborted and the batch reprocessed."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(what, detail)
        self.what = what
        """The call that failed."""
        self.detail = detail
        """librdkafka's error text."""
