"""The transactional consume → process → produce engine (the Kafka shell of the pipeline).

Guarantee: every consumed record's outputs and its consumed offset are committed in one Kafka
transaction, or none of them is. Readers with ``isolation.level=read_committed`` therefore see each
input's outputs exactly once, across crashes, restarts and rebalances.

The engine knows nothing about routing: a :class:`BatchProcessor` turns records into outputs.
The router's processor does decode/classify/decide/seal; the benchmark's baseline uses the same
engine with a processor that copies bytes, so both run with the same client settings, batch sizes
and commit interval.

Error model (librdkafka's ``examples/transactions.c``; docs/reliability.md, "Engine error model"):

- retriable error → call the same function again (bounded; then treated as ambiguous);
- ``txn_requires_abort()``, or a ``produce()`` the client refused (record too large, unknown topic
  or partition) → abort, seek back to the committed offsets, back off exponentially (reset by the
  next commit) and reprocess. The warning names the call, the error and the destinations whose
  deliveries failed (a min.insync.replicas shortfall shows as timed-out deliveries to a partition).
  After ``abort_escalate_after`` failures in a row an ERROR names the likely cause and the remedy,
  :attr:`EngineStats.abort_escalations` counts it, and the engine keeps retrying at the maximum
  back-off: it resumes by itself once the cause is gone, and never exits silently;
- a record the broker refuses as too large (``MSG_SIZE_TOO_LARGE``) → the processor is told the
  refused size (``lower_output_limit``, if it has one), so that re-processing the batch quarantines
  that record without its payload: one record cannot stop the router;
- ``fatal()`` or an ambiguous end of transaction (commit/abort that kept failing, an abort that
  itself needs an abort) → close the producer and create a new one with the same
  ``transactional.id`` (``init_transactions`` fences the old epoch and aborts what it left open);
  never start another transaction on it. The processor then resumes from what is committed
  (:meth:`BatchProcessor.on_assign` for the assigned partitions, e.g. the audit chain tails read
  back), not from its pre-commit checkpoint: an ambiguous commit may have succeeded;
- ``send_offsets_to_transaction`` that has not returned ``hung_call_after_s`` after it was made
  (librdkafka ignores its timeout while the group coordinator is unknown or gone: its issues 5456
  and 5511; one such call stayed blocked for minutes after a coordinator's broker restarted) →
  the call is left to its thread, the producer is abandoned without a flush and a new one is
  created as for a fatal error (its ``init_transactions`` fences the abandoned one). A fatal error
  the producer reports meanwhile (polled each second) is handled as the call's own;
- fenced while the open transaction is older than ``transaction.timeout.ms`` (the coordinator
  aborted it and bumped the epoch, which librdkafka reports as a fence) → producer re-created; the
  WARNING names the partitions whose writes were unacknowledged, and so does each timed-out
  ``init_transactions`` of the new producer while the coordinator cannot complete that abort;
- fenced otherwise (another producer took the ``transactional.id``) → :class:`FatalPipelineError`;
- an authorization failure (topic, group, transactional.id, cluster), at start-up or on any call
  or delivery → :class:`FatalPipelineError` naming the missing permission and its resource;
- a fatal error while creating the producer → :class:`FatalPipelineError` naming the call, the
  error and the likely fix;
- a refused TLS handshake or authentication (``_SSL``, ``_AUTHENTICATION``, a PLAINTEXT client on a
  TLS port), reported through ``error_cb`` → logged once as one line naming the
  ``clusters.default.security`` setting to fix (:class:`router.config.security.ClientErrorReporter`);
  librdkafka retries such connections forever, so once it also reports every broker down with such
  an error since the last progress (an assignment or a commit) the refusal is persistent, not a
  broker restart: :class:`FatalPipelineError` with that line, at start-up or while running. Except
  while the OAUTHBEARER token source fails for a reason that passes (OpenBao unreachable,
  :func:`router.config.security.token_outage`): then the engine waits (logged once per failure,
  ``/readyz`` names it), a producer that cannot get a token is re-created after a back-off, and the
  router resumes by itself once tokens come back. A source failure that does not pass (AppRole
  refused, the role not allowed) or a broker refusing the token ends the run with the source's line.
  A broker answering a SASL handshake with ILLEGAL_SASL_STATE after the clients had connected is a
  re-authentication refused for now (librdkafka authenticates a new connection): logged, never fatal;
  so is a handshake whose connection dropped (:func:`router.config.security.explain_client_error`);
- :class:`StallError` from the processor (e.g. a key provider that is down) → abort, rewind,
  back off exponentially and retry: offsets do not advance and nothing is produced meanwhile.

Only :class:`FatalPipelineError` (and the processor's own bugs) leave :meth:`TransactionalEngine.run`;
its private signals never do. Recovery is driven by the loop: an error only records what is owed
(an abort is done at once, a producer re-creation, a rewind and a back-off at the top of the loop),
so an error inside a rebalance callback or inside the recovery itself is handled the same way.
Fault points for tests: :mod:`router.pipeline.faults` (``ROUTER_FAULT``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, cast

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
from router.config.security import ClientErrorReporter, explain_client_error, is_sasl_state_refusal, token_outage
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
    """Turns consumed records into output records. Called only inside an open transaction.

    Optionally, a processor may have ``lower_output_limit(topic: str, refused_size: int) -> int |
    None``: the broker refused a record of ``refused_size`` bytes (value + key + headers) to
    ``topic``; from now on outputs that large must be made smaller (e.g. quarantined without their
    payload). It returns the new limit, or None when it cannot help (the engine then backs off).
    """

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


_TXN_CALL_TIMEOUT_S = 30.0
"""The timeout given to each transactional call (librdkafka returns _TIMED_OUT after it)."""


@dataclass
class EngineSettings:
    bootstrap_config: dict[str, Any]
    """librdkafka properties shared by consumer and producer (bootstrap, security; an OAUTHBEARER
    ``oauth_cb`` is a callable)."""
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
    abort_escalate_after: int = 10
    """Failed transactions in a row (aborts, producer re-creations) before an ERROR names the cause."""
    hung_call_after_s: float = _TXN_CALL_TIMEOUT_S + 15.0
    """A ``send_offsets_to_transaction`` still blocked this long after it was made (its own timeout
    is ``_TXN_CALL_TIMEOUT_S``) is hung: the producer is abandoned and re-created."""
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
    abort_escalations: int = 0
    """ERRORs logged because transactions kept failing (every ``abort_escalate_after`` in a row)."""
    output_limit_lowered: int = 0
    """Records the broker refused as too large, after which the processor lowered its output limit."""


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """What :meth:`TransactionalEngine.health` reports: safe to take from any thread (the engine
    swaps immutable values in whole; counters are plain ints). Names only, never a record value."""

    assigned: frozenset[tuple[str, int]]
    """The (topic, partition) pairs this instance holds."""
    stall_cause: str | None
    """Why the engine backs off instead of making progress: a :class:`StallError`'s type name, or
    ``transactions_failing`` once ``abort_escalate_after`` transactions in a row failed; else None."""
    stall_detail: str | None
    """The stall's message (value-free, like every RouterError and librdkafka error)."""
    last_commit_age_s: float | None
    """Seconds since the last committed transaction (None before the first)."""
    stats: EngineStats
    """A copy of the counters."""


# -- the error model's private signals (never leave run()) -------------------------------------------


class _TxnFailure(Exception):
    """The open transaction cannot be committed as it is."""

    def __init__(self, what: str, detail: str, code: int | None = None) -> None:
        super().__init__(what, detail)
        self.what = what
        """The call that failed."""
        self.detail = detail
        """librdkafka's error text (and the failed deliveries, once known)."""
        self.code = code
        self.refused: tuple[str, int] | None = None
        """(topic, size) of a record the broker or the client refused as too large."""


class _AbortNeeded(_TxnFailure):
    """The transaction must be aborted and the batch reprocessed."""


class _Restart(_TxnFailure):
    """The producer must be re-created (fatal error or ambiguous transaction end)."""


_AUTHORIZATION = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
_PRODUCE_REQUEST = re.compile(r"ProduceRequest for (\S+) \[(\d+)\]")
"""The partition librdkafka names in a produce request's error ("ProduceRequest for t [0] with ...")."""
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
"""Delivery reports of records an abort discarded: not failures of a transaction."""
_MIN_INSYNC = (
    "fewer in-sync replicas than the topic's min.insync.replicas (or no leader) for the partitions named",
    "bring their replicas back in sync (restart the missing broker; see kafka-topics --describe "
    "--under-min-isr-partitions) or lower the topic's min.insync.replicas; the router resumes by itself",
)
_CAUSES: dict[int, tuple[str, str]] = {
    KafkaError.NOT_ENOUGH_REPLICAS: _MIN_INSYNC,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND: _MIN_INSYNC,
    KafkaError._MSG_TIMED_OUT: _MIN_INSYNC,
    KafkaError.REQUEST_TIMED_OUT: _MIN_INSYNC,
    # Reaches the escalation only as the coordinator's timeout abort (any other fence ends the run).
    KafkaError._FENCED: (
        "a transaction open past transaction.timeout.ms, aborted by the transaction coordinator: writes to the "
        "partitions named were not acknowledged in time (fewer in-sync replicas than the topic's "
        "min.insync.replicas, or no leader), or this process was paused",
        _MIN_INSYNC[1],
    ),
    KafkaError.UNKNOWN_TOPIC_OR_PART: (
        "a destination topic or partition does not exist (deleted or shrunk while running)",
        "recreate it, or let the placement watch divert its records to quarantine (it marks a missing "
        "topic within its interval); the router resumes by itself",
    ),
    KafkaError.MSG_SIZE_TOO_LARGE: (
        "a record larger than the broker or topic accepts (message.max.bytes / max.message.bytes)",
        "raise the topic's max.message.bytes, or lower pipeline.max_record_bytes; audit records cannot "
        "be shrunk",
    ),
}
_CAUSES[KafkaError._UNKNOWN_TOPIC] = _CAUSES[KafkaError._UNKNOWN_PARTITION] = _CAUSES[KafkaError.UNKNOWN_TOPIC_OR_PART]
_CAUSES.update(dict.fromkeys(_FENCED, _CAUSES[KafkaError._FENCED]))  # a fence under any of its codes
_UNKNOWN_CAUSE = (
    "the error named above",
    "see the error text; the transaction is retried at the maximum back-off until it commits",
)


def _size(out: OutRecord) -> int:
    return len(out.value or b"") + len(out.key or b"") + sum(len(k) + len(v) for k, v in out.headers or ())


class TransactionalEngine:
    """Runs the consume → process → produce loop until :meth:`stop` (or SIGTERM) is called."""

    _connected_once = False
    """Set at the first progress: the clients authenticated, so a SASL-state refusal since is a refused
    re-authentication, not a listener without SASL."""
    _producer_hung = False
    """A call of the current producer is hung in another thread (it must not be touched: :meth:`_discard`)."""
    _timed_out_writes: tuple[str, ...] = ()
    """``topic[partition]`` whose unacknowledged writes kept the last transaction open until the
    coordinator aborted it; until the next commit (the coordinator cannot complete that abort, nor a
    new producer's init_transactions, before those partitions take its markers)."""

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
        self.processor = processor
        self.stats = EngineStats()
        self._faults = FaultPoints.from_env(environ)
        """None unless a test set ROUTER_FAULT: each step then costs one ``is None`` test."""
        self._stop = threading.Event()
        self._wait: Callable[[float], object] = wait if wait is not None else self._stop.wait
        self._sleep = sleep
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._in_txn = False
        self._txn_started = 0.0
        self._txn_records = 0
        self._batch: list[OutRecord] = []
        """The outputs of the batch being produced (to name destinations in errors)."""
        self._failed: dict[tuple[str, int, str], int] = {}
        """Failed deliveries of the open transaction: (topic, partition, error name) -> count."""
        self._refused: tuple[str, int] | None = None
        """(topic, size) of a delivery the broker refused as too large, in the open transaction."""
        self._denied: set[str] = set()
        """Topics whose deliveries were refused for want of authorization, in the open transaction."""
        self._state: object = None
        self._span: Any = None
        self._assigned_at: float | None = None
        """When partitions were last assigned: idle time counts from then (a rebalance is not idleness)."""
        # What recovery still owes, done at the top of the loop (never inside a callback):
        self._needs_restart = False
        self._producer_fatal = False
        """The current producer has reported a fatal error (it must not be flushed: :meth:`_discard`)."""
        self._needs_rewind = False
        self._resume_from_broker = False
        """After a re-created producer or a failed assignment: the processor resumes from what is
        committed (:meth:`BatchProcessor.on_assign`), never from its in-memory checkpoint."""
        self._backoff_due: float | None = None
        self._failures_in_row = 0
        """Failed transactions (aborts, re-created producers) since the last commit."""
        self._abort_backoff = settings.stall_backoff_initial_s
        self._stall_backoff = settings.stall_backoff_initial_s
        # For health(): immutable values assigned whole, read from other threads.
        self._assigned: frozenset[tuple[str, int]] = frozenset()
        self._stalled: StallError | None = None
        """The last StallError, until a batch is processed again."""
        self._last_failure: str | None = None
        self._last_commit: float | None = None
        # TLS and authentication refusals (error_cb of both clients, served by consume() and poll()):
        self._client_errors = ClientErrorReporter()
        self._brokers_down = False
        """librdkafka reported every broker down since the last progress (assignment or commit)."""
        self._unauthenticated: FatalPipelineError | None = None
        """Set once every broker is down and a TLS or authentication refusal was reported since the
        last progress: raised after the next consume() (and by a failed init_transactions). Not while
        the OAUTHBEARER token source fails retriably (:func:`router.config.security.token_outage`)."""
        self._token_outage: str | None = None
        """The token source failure last logged as the cause of a wait (logged once per failure)."""

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
            "error_cb": self._on_client_error,
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
            # Failed deliveries only (none on the happy path): they name the destination partition
            # and the cause when a transaction cannot commit.
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_client_error,
            **self.s.producer_overrides,
        }

    def _new_producer(self, *, starting: bool) -> Producer:
        """A producer with its transactions initialised. At start-up every failure is a
        FatalPipelineError; later a transient one is a :class:`_Restart` (tried again)."""
        try:
            producer = Producer(self._producer_config())
        except KafkaException as exc:
            outage = token_outage()
            if outage is not None and not starting:  # no token yet: try again after a back-off
                raise _Restart("create producer", str(outage)) from None
            explained = explain_client_error(exc)
            if explained is not None:
                raise FatalPipelineError(str(explained)) from None
            raise FatalPipelineError(f"the producer's configuration is refused: {exc.args[0].str()}") from None

        def init() -> None:
            try:
                producer.init_transactions(_TXN_CALL_TIMEOUT_S)
            except KafkaException:
                producer.poll(0)  # serve error_cb: a persistent TLS or authentication refusal is not retried
                if self._unauthenticated is not None:
                    raise self._unauthenticated from None
                raise

        try:
            self._retry(init, "init_transactions")
        except _TxnFailure as err:
            if not starting:
                if self._timed_out_writes:
                    err.detail = (
                        f"{err.detail}; the transaction coordinator is still completing its abort of the transaction "
                        f"that timed out, whose markers go to {', '.join(self._timed_out_writes)}: it completes (and "
                        "the router resumes) once those partitions take writes again"
                    )
                raise
            raise FatalPipelineError(
                f"init_transactions failed: {err.detail}; the transactional producer cannot start. Check that "
                f"the cluster is reachable, that the client's principal may use transactional.id "
                f"{self.s.transactional_id!r} (Kafka ACL: Write and Describe on that TransactionalId) and that "
                "another instance is not running with the same transactional.id (give each instance its own "
                "pipeline.instance_id)"
            ) from None
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
    def health(self) -> EngineHealth:
        """Partitions held, stall state and counters, for health checks and metrics (any thread)."""
        stalled = self._stalled
        cause = type(stalled).__name__ if stalled is not None else None
        detail = str(stalled) if stalled is not None else None
        failures = self._failures_in_row
        if cause is None and failures >= self.s.abort_escalate_after:
            cause = "transactions_failing"
            detail = f"{failures} transactions in a row failed; last: {self._last_failure}"
        last = self._last_commit
        return EngineHealth(
            assigned=self._assigned,
            stall_cause=cause,
            stall_detail=detail,
            last_commit_age_s=None if last is None else time.monotonic() - last,
            stats=EngineStats(**vars(self.stats)),
        )

    def stop(self) -> None:
        """Ask the loop to finish the open transaction and return."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop cleanly (open transaction committed, clients closed);
        SIGUSR1 writes every thread's stack to stderr and the router goes on (to see where a router
        that makes no progress waits)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)

    def run(
        self, *, max_idle_s: float | None = None, until: Callable[[EngineStats], bool] | None = None
    ) -> EngineStats:
        """Run until stopped, or until ``until(stats)`` is true, or idle for ``max_idle_s``.

        Idle time counts from the later of the last record and the last partition assignment, so
        waiting for the group to rebalance is not mistaken for an empty topic.
        """
        self._producer = self._new_producer(starting=True)
        try:
            self._consumer = Consumer(self._consumer_config())
        except KafkaException as exc:
            raise FatalPipelineError(f"the consumer's configuration is refused: {exc.args[0].str()}") from None
        try:
            self.consumer.subscribe(self.s.ingress_topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._state = self.processor.checkpoint()
            self._loop(max_idle_s, until)
            if self._in_txn:
                try:
                    self._commit()
                except _TxnFailure as err:
                    log.warning(
                        "%s: the last transaction could not be committed (%s); it is aborted, and its records "
                        "will be processed again from the committed offsets",
                        err.what,
                        err.detail,
                    )
        finally:
            self._close()
        return self.stats

    def _loop(self, max_idle_s: float | None, until: Callable[[EngineStats], bool] | None) -> None:
        last_data = time.monotonic()
        while not self._stop.is_set():
            if until is not None and until(self.stats):
                return
            if self._backoff_due is not None:
                due, self._backoff_due = self._backoff_due, None
                self._wait(due)
                continue
            try:
                if self._needs_restart:
                    self._restart_producer()
                if self._needs_rewind and not self._rewind_and_resume():
                    continue
                msgs = self.consumer.consume(num_messages=self.s.batch_size, timeout=0.05)
                if self._needs_restart or self._needs_rewind:
                    continue  # a rebalance callback failed: what it fetched is rewound first
                data = self._data(msgs)
                if data:
                    last_data = time.monotonic()
                    self._process(data)
                    self._stall_backoff = self.s.stall_backoff_initial_s
                    self._stalled = None
                elif (
                    max_idle_s is not None
                    and self._assigned_at is not None
                    and not self._in_txn
                    and time.monotonic() - max(last_data, self._assigned_at) > max_idle_s
                ):
                    return
                if self._in_txn and (
                    (time.monotonic() - self._txn_started) * 1000 >= self.s.commit_interval_ms
                    or self._txn_records >= self.s.commit_max_records
                ):
                    self._commit()
            except StallError as err:
                self._stall(err)
            except _TxnFailure as err:
                self._recover(err)
            except KafkaException as exc:
                # A client call outside the error model's wrappers (position, seek, ...): its outcome
                # is unknown, so the producer is re-created and the processor resumes from the broker.
                self._recover(self._failure(exc.args[0], "client call"))

    def _data(self, msgs: list[Message]) -> list[Message]:
        if self._unauthenticated is not None:  # consume() served error_cb: a persistent TLS/authentication refusal
            raise self._unauthenticated
        data = []
        for m in msgs:
            err = m.error()
            if err is None:
                data.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                if err.code() in _AUTHORIZATION:
                    raise self._not_authorized(err, "consume", [m.topic() or ""])
                if err.fatal():
                    raise FatalPipelineError(f"consumer failed: {err.str()} ({err.name()})")
                log.warning("consumer error: %s (%s)", err.str(), err.name())
        return data

    # -- one batch -------------------------------------------------------------------------
    def _begin(self) -> None:
        self._failed.clear()
        self._denied.clear()
        self._refused = None
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
        outputs = self._batch = self.processor.process(msgs)
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
                except KafkaException as exc:
                    self._produce_failed(exc.args[0], out)
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
                producer = self.producer
                self._retry(
                    lambda: self._bounded(
                        lambda: producer.send_offsets_to_transaction(
                            positions, consumer.consumer_group_metadata(), _TXN_CALL_TIMEOUT_S
                        ),
                        "send_offsets_to_transaction",
                        producer,
                    ),
                    "send_offsets_to_transaction",
                )
                if self._faults is not None:
                    self._fault("after_send_offsets", "send_offsets_to_transaction")
            if self._faults is not None:
                self._fault("before_commit", "commit_transaction")
            self._retry(lambda: self.producer.commit_transaction(_TXN_CALL_TIMEOUT_S), "commit_transaction")
            if self._faults is not None:
                # Committed: an error raised here is an ambiguous commit that succeeded.
                self._fault("after_commit", "commit_transaction")
        except _TxnFailure as err:
            self._add_deliveries(err)
            raise
        self._in_txn = False
        self._connected()
        self._timed_out_writes = ()
        self.stats.commits += 1
        self._failures_in_row = 0
        self._last_commit = time.monotonic()
        self._abort_backoff = self.s.stall_backoff_initial_s
        telemetry.batches.add(1)
        if self._span is not None:
            self._span.set_attribute("router.records", self._txn_records)
            self._span.end()
            self._span = None
        self._state = self.processor.checkpoint()

    def _bounded(self, call: Callable[[], object], what: str, producer: Producer) -> None:
        """``call()`` (a call of ``producer``) in a thread of its own, given ``hung_call_after_s`` to
        return or raise (what it raises is raised here). Past a second, the producer is polled each
        second: librdkafka reports a fatal error there (fenced: another instance took the
        ``transactional.id``) while the call itself may never return; that error is raised. Still
        blocked after ``hung_call_after_s``, the call is left to its thread, which holds the
        producer until librdkafka lets go, and the producer is to be re-created untouched
        (:class:`_Restart`)."""
        done = threading.Event()
        raised: list[BaseException] = []

        def target() -> None:
            try:
                call()
            except BaseException as exc:  # handed to the caller's thread
                raised.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name=f"router-{what}", daemon=True).start()
        deadline = time.monotonic() + self.s.hung_call_after_s
        while not done.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                self._producer_hung = True
                raise _Restart(
                    what,
                    f"the call has not returned {self.s.hung_call_after_s:.0f}s after it was made, past its own "
                    f"{_TXN_CALL_TIMEOUT_S:.0f}s timeout (librdkafka waits for a group coordinator it lost "
                    "without a limit); the producer is abandoned",
                )
            try:
                producer.poll(0)  # thread-safe; serves the producer's events while the call waits
            except KafkaException as exc:
                if exc.args[0].fatal():  # the call still runs: the producer must not be touched again
                    self._producer_hung = True
                    raise
        if raised:
            raise raised[0]

    # -- errors ----------------------------------------------------------------------------
    def _fault(self, step: str, what: str) -> None:
        """Reach fault point ``step`` (only when ROUTER_FAULT is set). A KafkaError it raises is
        handled as an error of the call ``what``, as if librdkafka had raised it there."""
        faults = self._faults
        assert faults is not None
        if what == "produce":
            try:
                faults.hit(step)
            except KafkaException as exc:
                self._produce_failed(exc.args[0], None)
        else:
            self._retry(lambda: faults.hit(step), what)

    def _retry(self, fn: Callable[[], object], what: str) -> None:
        """Call ``fn``; retry retriable errors (bounded); map the rest onto the error model."""
        for attempt in range(self.s.max_retries + 1):
            try:
                fn()
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if (
                    err.retriable()
                    and not err.fatal()
                    and not err.txn_requires_abort()
                    and err.code() not in _AUTHORIZATION
                    and attempt < self.s.max_retries
                ):
                    self._sleep(min(0.1 * 2**attempt, 2.0))
                    continue
                raise self._failure(err, what, attempts=attempt + 1) from None
            else:
                return

    def _failure(self, err: KafkaError, what: str, *, attempts: int = 1) -> _TxnFailure:
        """The error model's answer to ``err`` from the call ``what`` (FatalPipelineError is raised)."""
        code = err.code()
        detail = f"{err.str()} ({err.name()})"
        if code in _AUTHORIZATION:
            raise self._not_authorized(err, what, self._batch_topics())
        if err.fatal():
            self._producer_fatal = True
            if code in _FENCED and self._outlived_timeout():
                # The transaction coordinator aborts a transaction open past transaction.timeout.ms
                # and bumps the producer's epoch; librdkafka (no KIP-588) reports that as a fence.
                # A new producer's init_transactions takes a new epoch; nothing was committed.
                self._timed_out_writes = self._unacknowledged(err.str())
                pending = ", ".join(self._timed_out_writes) or "its partitions"
                cause = _CAUSES[KafkaError._FENCED][0]
                log.warning(
                    "%s: the transaction coordinator aborted the transaction, open past transaction.timeout.ms "
                    "(%d ms), while its writes to %s were unacknowledged (librdkafka reports the abort as a "
                    "fence). Likely cause: %s. Re-creating the producer and resuming from what is committed",
                    what, self.s.transaction_timeout_ms, pending, cause,
                )
                return _Restart(what, f"transaction timed out at the coordinator, writes to {pending} "
                                      f"unacknowledged: {detail}", code)
            if code in _FENCED:
                raise FatalPipelineError(
                    f"{what}: this producer was fenced ({err.name()}): another producer took over "
                    f"transactional.id {self.s.transactional_id!r}. Either another instance runs with the same "
                    "pipeline.instance_id (give each instance its own), or this process was paused or cut off "
                    f"for longer than transaction.timeout.ms ({self.s.transaction_timeout_ms} ms) and its "
                    "transaction was aborted; started again, the router resumes from what is committed"
                )
            return _Restart(what, f"fatal error: {detail}", code)
        if err.txn_requires_abort():
            return _AbortNeeded(what, detail, code)
        return _Restart(what, f"{detail} after {attempts} attempt(s); outcome unknown", code)

    def _unacknowledged(self, text: str) -> tuple[str, ...]:
        """``topic[partition]`` of the writes a coordinator's timeout abort caught in flight: those
        librdkafka's fence names ("ProduceRequest for <topic> [<partition>] ... failed") and those
        whose deliveries failed in the open transaction."""
        named = {(t, int(p)) for t, p in _PRODUCE_REQUEST.findall(text)}
        named |= {(t, p) for t, p, _name in self._failed}
        return tuple(f"{t}[{p}]" for t, p in sorted(named))

    def _outlived_timeout(self) -> bool:
        """The open transaction began more than transaction.timeout.ms ago (the coordinator's clock
        starts later, at the first partition added, so a transaction it timed out always passes)."""
        return self._in_txn and (time.monotonic() - self._txn_started) * 1000 >= self.s.transaction_timeout_ms

    def _produce_failed(self, err: KafkaError, out: OutRecord | None) -> NoReturn:
        """``produce()`` raised: the record is not in the transaction, so the batch must be aborted
        (or, on a fatal error, the producer re-created). ``out`` is None for a fault point."""
        code = err.code()
        if code in _AUTHORIZATION:
            raise self._not_authorized(err, "produce", [out.topic] if out is not None else self._batch_topics())
        if err.fatal():
            raise self._failure(err, "produce")
        where = f"{out.topic}[{out.partition}]" if out is not None else "a destination of the batch"
        failure = _AbortNeeded("produce", f"{err.str()} ({err.name()}) for {where}", code)
        if code == KafkaError.MSG_SIZE_TOO_LARGE and out is not None:
            failure.refused = (out.topic, _size(out))
        raise failure

    def _not_authorized(self, err: KafkaError, what: str, topics: Iterable[str]) -> FatalPipelineError:
        code = err.code()
        names = sorted({t for t in topics if t})
        if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            if what == "consume":
                operation, resource = "READ (and DESCRIBE)", f"topic(s) {', '.join(names or self.s.ingress_topics)}"
            else:
                where = ", ".join(names) if names else "the destination topics of the batch"
                operation, resource = "WRITE (and DESCRIBE)", f"topic(s) {where}"
        elif code == KafkaError.GROUP_AUTHORIZATION_FAILED:
            operation, resource = "READ", f"consumer group {self.s.group_id!r}"
        elif code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            operation, resource = "WRITE and DESCRIBE", f"TransactionalId {self.s.transactional_id!r}"
        else:
            operation, resource = "IDEMPOTENT_WRITE", "the cluster"
        user = self.s.bootstrap_config.get("sasl.username")
        token_principal = getattr(self.s.bootstrap_config.get("oauth_cb"), "principal", None)
        if user:
            principal = f"the router's principal (sasl.username {user!r})"
        elif token_principal:
            principal = f"the router's principal (User:{token_principal}, named by its OAUTHBEARER token)"
        else:
            principal = "the router's principal"
        return FatalPipelineError(
            f"{what}: not authorized ({err.name()}: {err.str()}): {principal} lacks {operation} on {resource}; "
            "grant it with a Kafka ACL (kafka-acls --add --allow-principal ...) and start the router again"
        )

    def _batch_topics(self) -> list[str]:
        return sorted({o.topic for o in self._batch})

    def _on_client_error(self, err: KafkaError) -> None:
        """``error_cb`` of both clients. A TLS or authentication refusal is logged once naming the
        setting (the reporter); with every broker also down since the last progress it is
        persistent and ends the run (:attr:`_unauthenticated`, raised by the loop)."""
        if self._connected_once and is_sasl_state_refusal(err):
            # A re-authentication the broker refused for now (its SASL state) on connections that
            # authenticated before: librdkafka authenticates a new connection; the credentials stand.
            log.warning("a broker refused a re-authentication for its SASL state; librdkafka reconnects (%s)",
                        err.str())
            return
        self._client_errors(err)
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
        if self._brokers_down and self._unauthenticated is None:
            refused = self._client_errors.take()
            if refused is None:
                return
            outage = token_outage()
            if outage is not None:
                # The OAUTHBEARER token source fails for a reason that passes (OpenBao unreachable):
                # librdkafka keeps asking it, and the clients resume once it answers.
                if str(outage) != self._token_outage:
                    self._token_outage = str(outage)
                    log.warning("no broker accepts the connection while the OAUTHBEARER token source fails: %s; "
                                "the router waits (offsets not advanced) and resumes by itself", outage)
                return
            self._unauthenticated = FatalPipelineError(
                f"{refused}; no broker accepts the connection (librdkafka retries it forever), so the router "
                "stops: fix the setting and start it again")

    def _connected(self) -> None:
        """Progress (an assignment, a commit): the connection works, so earlier TLS or
        authentication errors and "all brokers down" were transient."""
        self._brokers_down = False
        self._connected_once = True
        self._token_outage = None
        self._client_errors.take()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """Producer callback, failed deliveries only (``delivery.report.only.error``)."""
        if err is None or err.code() in _PURGED:
            return
        topic, partition = msg.topic() or "?", msg.partition()
        key = (topic, partition if partition is not None else -1, err.name())
        self._failed[key] = self._failed.get(key, 0) + 1
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = len(msg.value() or b"") + len(msg.key() or b"")
            headers = msg.headers() or []
            for name, header in headers.items() if isinstance(headers, dict) else headers:
                size += len(name) + len(header or b"")
            self._refused = (topic, size)
        if err.code() in _AUTHORIZATION:
            self._denied.add(topic)

    def _add_deliveries(self, err: _TxnFailure) -> None:
        """Add the open transaction's failed deliveries to ``err`` (serving pending reports first);
        a denied write is a FatalPipelineError."""
        if self._producer is not None and not self._producer_hung:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._producer.poll(0)
        if self._denied:
            raise self._not_authorized(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), err.what, self._denied)
        if self._failed:
            listed = ", ".join(f"{t}[{p}] {name} x{n}" for (t, p, name), n in sorted(self._failed.items()))
            err.detail = f"{err.detail}; failed deliveries: {listed}"
        if self._refused is not None and err.refused is None:
            err.refused = self._refused

    # -- recovery --------------------------------------------------------------------------
    def _recover(self, err: _TxnFailure) -> None:
        """Settle the open transaction after ``err`` and note what the loop owes: a producer
        re-creation, a rewind, a back-off. Never raises the private signals."""
        self._failures_in_row += 1
        self._last_failure = f"{err.what}: {err.detail}"
        if isinstance(err, _Restart):
            log.error("%s: %s; re-creating the producer", err.what, err.detail)
            self._mark_restart()
            if self._failures_in_row > 1:  # the last re-creation did not lead to a commit
                self._back_off(err, "producer re-created")
            return
        self._abort("abort")
        self._needs_rewind = True
        self.stats.abort_backoffs += 1
        lowered = self._lower_output_limit(err)
        self._back_off(err, "transaction aborted, offsets rewound", immediate=lowered)

    def _back_off(self, err: _TxnFailure, done: str, *, immediate: bool = False) -> None:
        backoff = 0.0 if immediate else self._abort_backoff
        if not immediate:
            self._abort_backoff = min(backoff * 2, self.s.stall_backoff_max_s)
        n, every = self._failures_in_row, self.s.abort_escalate_after
        if n >= every and (n - every) % every == 0:
            backoff = self._abort_backoff = self.s.stall_backoff_max_s
            cause, remedy = _CAUSES.get(err.code if err.code is not None else 0, _UNKNOWN_CAUSE)
            self.stats.abort_escalations += 1
            log.error(
                "%d transactions in a row failed; last: %s: %s. Likely cause: %s. Remedy: %s. Retrying every "
                "%.1fs (pipeline.stall_backoff_max_s); nothing is lost, the input waits in the ingress topics",
                n,
                err.what,
                err.detail,
                cause,
                remedy,
                backoff,
            )
        else:
            log.warning("%s: %s; %s, retrying in %.2fs", err.what, err.detail, done, backoff)
        if backoff > 0:
            self._backoff_due = backoff

    def _lower_output_limit(self, err: _TxnFailure) -> bool:
        """A record refused as too large: let the processor shrink such outputs. True if it did."""
        if err.refused is None:
            return False
        hook = getattr(self.processor, "lower_output_limit", None)
        if hook is None:
            return False
        topic, size = err.refused
        limit = cast("Callable[[str, int], int | None]", hook)(topic, size)
        if limit is None:
            return False
        self.stats.output_limit_lowered += 1
        log.warning(
            "a record of %d bytes to %s was refused as too large; outputs over %d bytes are now quarantined "
            "OVERSIZED without their payload (raise the topic's max.message.bytes to keep them)",
            size,
            topic,
            limit,
        )
        return True

    def _stall(self, err: StallError) -> None:
        self.stats.stalls += 1
        self._stalled = err
        telemetry.stalls.add(1, {"cause": type(err).__name__})
        backoff = self._stall_backoff
        log.warning("stalling %.1fs, offsets not advanced: %s", backoff, err)
        self._abort("stall")
        self._needs_rewind = True
        self._backoff_due = backoff
        self._stall_backoff = min(backoff * 2, self.s.stall_backoff_max_s)

    def _abort(self, cause: str) -> None:
        """Abort the open transaction and return the processor to the last commit point. An abort
        that fails (or needs an abort itself) leaves the outcome to a re-created producer."""
        if self._in_txn:
            try:
                self._retry(lambda: self.producer.abort_transaction(_TXN_CALL_TIMEOUT_S), "abort_transaction")
            except _TxnFailure as err:
                log.error("%s: %s; re-creating the producer", err.what, err.detail)
                self._mark_restart()
                return
            self._in_txn = False
            self.stats.aborts += 1
            telemetry.aborts.add(1, {"cause": cause})
            self._end_span(cause)
        self.processor.rollback(self._state)

    def _mark_restart(self) -> None:
        self._in_txn = False
        self._end_span("restart")
        self._needs_restart = self._needs_rewind = self._resume_from_broker = True

    def _end_span(self, cause: str) -> None:
        if self._span is not None:
            self._span.set_attribute("router.aborted", cause)
            self._span.end()
            self._span = None

    def _restart_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            self._discard(old, 0)
        self._producer = self._new_producer(starting=False)  # fences and aborts what the old one left open
        self._needs_restart = False
        self.stats.producer_restarts += 1

    def _rewind_and_resume(self) -> bool:
        """Seek the assignment back to the committed offsets and put the processor where they are:
        its last checkpoint after a plain abort; after anything ambiguous, the state it reads back
        from the broker (:meth:`BatchProcessor.on_assign`). False (and a back-off) if it failed."""
        consumer = self.consumer
        assignment = consumer.assignment()
        try:
            if assignment:
                for tp in consumer.committed(assignment, timeout=30):
                    offset = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else OFFSET_BEGINNING
                    consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            self.processor.rollback(self._state)
            if self._resume_from_broker:
                self.processor.on_assign(assignment)
        except (KafkaException, RouterError) as exc:
            if isinstance(exc, FatalPipelineError):
                raise
            why = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
            log.warning("could not rewind to the committed offsets (%s); retrying in %.2fs", why,
                        self._abort_backoff)
            self._backoff_due = self._abort_backoff
            self._abort_backoff = min(self._abort_backoff * 2, self.s.stall_backoff_max_s)
            return False
        self._state = self.processor.checkpoint()
        self._needs_rewind = self._resume_from_broker = False
        return True

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Resume the processor for new partitions. Errors are noted for the loop, never raised
        through ``consume()``: the assignment is taken over either way."""
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        self._connected()
        self._assigned_at = time.monotonic()
        self._assigned = self._assigned | {(tp.topic, tp.partition) for tp in partitions}
        try:
            if self._faults is not None:
                self._fault("in_rebalance", "on_assign")
            self.processor.on_assign(partitions)
            self._state = self.processor.checkpoint()
        except _TxnFailure as err:
            self._recover(err)
            self._needs_rewind = self._resume_from_broker = True
        except RouterError as err:
            if isinstance(err, FatalPipelineError):
                raise
            log.warning("could not resume the assigned partitions (%s); retrying before consuming", err)
            self._needs_rewind = self._resume_from_broker = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what was processed for the partitions being taken away (or abort it)."""
        log.info("revoked %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        self._assigned = self._assigned - {(tp.topic, tp.partition) for tp in partitions}
        try:
            if self._faults is not None:
                self._fault("in_rebalance", "commit_transaction" if self._in_txn else "on_revoke")
            if self._in_txn:
                self._commit()
        except _TxnFailure as err:
            self._recover(err)

    def _close(self) -> None:
        if self._in_txn and self._producer is not None and not self._producer_hung:
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(10)
            self._in_txn = False
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._discard(self._producer, 10)
            self._producer = None

    def _discard(self, producer: Producer, timeout: float) -> None:
        """Serve what delivery reports a producer being dropped still holds; never raises.

        A producer in a fatal state (fenced, or any fatal error) is not flushed: confluent-kafka's
        flush() dispatches callbacks with the fatal error still pending and fails with a
        SystemError, which would replace the error that ended the run. Nothing it holds can be
        delivered anyway: its transaction is aborted by the fence or by the next producer's
        init_transactions.
        """
        fatal, self._producer_fatal = self._producer_fatal, False
        hung, self._producer_hung = self._producer_hung, False
        if fatal or hung:  # a hung producer's call still runs in another thread: nothing may touch it
            return
        with contextlib.suppress(KafkaException, RuntimeError, SystemError):
            producer.flush(timeout)
