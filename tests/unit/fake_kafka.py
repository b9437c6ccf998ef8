"""In-memory stand-ins for confluent_kafka's Producer and Consumer, for unit tests of the engine's
error model (no broker).

A :class:`FakeCluster` holds the input topics, the committed consumer offsets and a log of
committed transactions (outputs + offsets). Its :meth:`FakeCluster.producer` and
:meth:`FakeCluster.consumer` are drop-in factories: monkeypatch ``router.pipeline.engine.Producer``
and ``router.pipeline.engine.Consumer`` with them. :meth:`FakeCluster.fail` makes a chosen call
raise ``KafkaException(KafkaError(...))`` with chosen flags on chosen transactions (numbered from 1
in ``begin_transaction`` order, across producers); ``commit_first`` makes ``commit_transaction``
commit and then raise (an ambiguous commit that actually succeeded); ``times`` bounds how often a
fault fires (a retriable error that goes away).

Broker-side refusals, as librdkafka reports them: :meth:`FakeCluster.fail_delivery` fails the
deliveries to a topic (partition) inside chosen transactions - the producer's ``on_delivery``
callback gets each failed record and ``commit_transaction`` raises an abortable error (e.g. a
min.insync.replicas shortfall: ``_MSG_TIMED_OUT``); ``max_message_bytes`` makes ``produce()``
refuse larger records (``MSG_SIZE_TOO_LARGE``, the client's own check);
``broker_max_message_bytes`` makes the broker refuse them (failed delivery, abortable commit);
``deleted_topics`` makes ``produce()`` raise ``_UNKNOWN_TOPIC``; ``consumer_errors`` are handed out
by the next ``consume()`` as error events.

:meth:`FakeCluster.hang` makes ``send_offsets_to_transaction`` block in chosen transactions, as
librdkafka's does while the group coordinator is lost, until :meth:`FakeCluster.release`; the
released call then raises the fence the next producer's ``init_transactions`` left. Any other call
but ``poll()`` on a producer while one of its calls hangs fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from router.pipeline import engine as engine_mod


@dataclass
class FakeMessage:
    """A consumed record with the accessors of ``confluent_kafka.Message`` (data messages only)."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = b"k"
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class FakePartitionEof:
    """The end-of-partition event ``consume()`` hands out with ``enable.partition.eof``: an error
    event (``_PARTITION_EOF``) that says which partition was read to its end, and where."""

    def __init__(self, partition: int, topic: str | None = None, offset: int | None = None) -> None:
        self._partition = partition
        self._topic = topic
        self._offset = offset

    def error(self) -> KafkaError:
        return KafkaError(KafkaError._PARTITION_EOF)

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


@dataclass
class FakeErrorEvent:
    """An error event as ``consume()`` returns it among the messages."""

    err: KafkaError
    _topic: str | None = None

    def error(self) -> KafkaError:
        return self.err

    def topic(self) -> str | None:
        return self._topic


@dataclass(frozen=True)
class DeliveryFault:
    topic: str
    code: int
    txns: Callable[[int], bool]
    partition: int | None = None
    """None: every partition of the topic."""


@dataclass
class Delivered:
    """A failed delivery as the producer's ``on_delivery`` callback sees it (confluent_kafka.Message)."""

    out: Produced

    def topic(self) -> str:
        return self.out.topic

    def partition(self) -> int:
        return self.out.partition

    def value(self) -> bytes | None:
        return self.out.value

    def key(self) -> bytes | None:
        return self.out.key

    def headers(self) -> list[tuple[str, Any]] | None:
        return self.out.headers


def size_of(out: Produced) -> int:
    """What a broker compares with its message size limit (value + key + headers)."""
    headers = sum(len(k) + len(v or b"") for k, v in out.headers or [])
    return len(out.value or b"") + len(out.key or b"") + headers


@dataclass(frozen=True)
class Produced:
    topic: str
    partition: int
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, Any]] | None


@dataclass
class Transaction:
    number: int
    outputs: list[Produced] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class Fault:
    call: str
    """``init_transactions``, ``begin_transaction``, ``produce``, ``send_offsets_to_transaction``,
    ``commit_transaction`` or ``abort_transaction``."""
    code: int
    txns: Callable[[int], bool]
    """Which transactions (by number; 0 before the first ``begin_transaction``) it hits."""
    fatal: bool = False
    retriable: bool = False
    txn_requires_abort: bool = False
    commit_first: bool = False
    reason: str = "injected"
    times: int | None = None
    """Fire at most this often (None: every time it matches)."""
    raised: int = 0

    def error(self) -> KafkaException:
        return KafkaException(
            KafkaError(self.code, self.reason, fatal=self.fatal, retriable=self.retriable,
                       txn_requires_abort=self.txn_requires_abort)
        )


def _always(_txn: int) -> bool:
    return True


class FakeCluster:
    def __init__(self, group: str = "g", *, max_txns: int = 200) -> None:
        self.group = group
        self.max_txns = max_txns
        """More transactions than this fail the test: the engine is spinning."""
        self.logs: dict[tuple[str, int], list[FakeMessage]] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.committed: list[Transaction] = []
        self.faults: list[Fault] = []
        self.txn_count = 0
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []
        self.calls: list[tuple[str, int]] = []
        self.delivery_faults: list[DeliveryFault] = []
        self.max_message_bytes: int | None = None
        """The producer's own limit: ``produce()`` of a larger record raises MSG_SIZE_TOO_LARGE."""
        self.broker_max_message_bytes: int | None = None
        """The broker's limit: a larger record fails its delivery; the commit raises abortable."""
        self.deleted_topics: set[str] = set()
        """Topics ``produce()`` does not know (raises _UNKNOWN_TOPIC)."""
        self.consumer_errors: list[FakeErrorEvent] = []
        """Error events the next ``consume()`` returns (then forgotten)."""
        self.hangs: Callable[[int], bool] | None = None
        self.hang_fenced = False
        """Transactions whose ``send_offsets_to_transaction`` blocks until :meth:`release`."""
        self.released = threading.Event()
        self.hung: list[int] = []
        """Transactions whose ``send_offsets_to_transaction`` blocked."""

    # -- set-up -----------------------------------------------------------------------------
    def add_input(self, topic: str, partition: int, values: Iterable[bytes], key: bytes | None = b"k") -> None:
        log = self.logs.setdefault((topic, partition), [])
        for v in values:
            log.append(FakeMessage(topic, partition, len(log), v, key))

    def fail(
        self, call: str, code: int, txns: Iterable[int] | Callable[[int], bool] | None = None, **flags: Any
    ) -> Fault:
        match: Callable[[int], bool]
        if txns is None:
            match = _always
        elif callable(txns):
            match = txns
        else:
            chosen = set(txns)
            match = chosen.__contains__
        fault = Fault(call, code, match, **flags)
        self.faults.append(fault)
        return fault

    def fail_delivery(
        self, topic: str, code: int, txns: Iterable[int] | Callable[[int], bool] | None = None, *,
        partition: int | None = None,
    ) -> DeliveryFault:
        """Deliveries to ``topic`` (``partition``) fail with ``code`` in the chosen transactions."""
        match: Callable[[int], bool]
        if txns is None:
            match = _always
        elif callable(txns):
            match = txns
        else:
            match = set(txns).__contains__
        fault = DeliveryFault(topic, code, match, partition)
        self.delivery_faults.append(fault)
        return fault

    def hang(self, txns: Iterable[int], *, fenced: bool = False) -> None:
        """``send_offsets_to_transaction`` of these transactions blocks until :meth:`release`;
        ``fenced``: meanwhile the producer's ``poll()`` raises the fatal fence (another instance
        took the transactional.id), as librdkafka's does."""
        self.hangs = set(txns).__contains__
        self.hang_fenced = fenced

    def release(self) -> None:
        self.released.set()

    # -- factories (monkeypatch targets) ------------------------------------------------------
    def producer(self, config: dict[str, Any]) -> FakeProducer:
        p = FakeProducer(self, config)
        self.producers.append(p)
        return p

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        c = FakeConsumer(self, config)
        self.consumers.append(c)
        return c

    # -- inspection ---------------------------------------------------------------------------
    def outputs(self, topic: str | None = None) -> list[Produced]:
        return [o for t in self.committed for o in t.outputs if topic is None or o.topic == topic]

    def committed_offset(self, topic: str, partition: int) -> int | None:
        return self.offsets.get((topic, partition))

    def done(self) -> bool:
        """Every input partition's committed offset is at its end."""
        return all(self.offsets.get(tp) == len(log) for tp, log in self.logs.items())

    # -- internals ----------------------------------------------------------------------------
    def _check(self, call: str, txn: int, *, on_commit: Callable[[], None] | None = None) -> None:
        self.calls.append((call, txn))
        for f in self.faults:
            if f.call == call and f.txns(txn) and (f.times is None or f.raised < f.times):
                if on_commit is not None and f.commit_first:
                    on_commit()
                f.raised += 1
                raise f.error()
        if on_commit is not None:
            on_commit()

    def _apply(self, txn: Transaction) -> None:
        if any(t is txn for t in self.committed):
            return  # already committed (a retried commit after an ambiguous one)
        self.committed.append(txn)
        self.offsets.update(txn.offsets)


class FakeProducer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.txn: Transaction | None = None
        self.fatal = False
        self.hanging = False
        """One of this producer's calls blocks (:meth:`FakeCluster.hang`): no other call may come
        but ``poll()`` (thread-safe in librdkafka)."""
        self.fenced_while_hanging = False

    def init_transactions(self, timeout: float | None = None) -> None:
        self._not_hanging()
        self._check("init_transactions", self.cluster.txn_count)
        for other in self.cluster.producers:  # fences the previous epoch and aborts what it left open
            if other is not self:
                other.txn = None

    def begin_transaction(self) -> None:
        self._not_hanging()
        self.cluster.txn_count += 1
        if self.cluster.txn_count > self.cluster.max_txns:
            raise AssertionError(f"more than {self.cluster.max_txns} transactions: the engine spins")
        self.txn = Transaction(self.cluster.txn_count)
        self._check("begin_transaction", self.txn.number)

    def produce(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int = -1,
        headers: list[tuple[str, Any]] | None = None, **_kw: Any,
    ) -> None:
        assert self.txn is not None, "produce outside a transaction"
        self._check("produce", self.txn.number)
        out = Produced(topic, partition, value, key, headers)
        limit = self.cluster.max_message_bytes
        if limit is not None and size_of(out) > limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"))
        if topic in self.cluster.deleted_topics:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC, "Local: Unknown topic"))
        self.txn.outputs.append(out)

    def _failed_deliveries(self, txn: Transaction) -> KafkaException | None:
        """Report the transaction's failed deliveries to ``on_delivery``; the abortable error the
        commit then raises, if any failed."""
        failed: list[tuple[int, Produced]] = []
        limit = self.cluster.broker_max_message_bytes
        for out in txn.outputs:
            if limit is not None and size_of(out) > limit:
                failed.append((KafkaError.MSG_SIZE_TOO_LARGE, out))
                continue
            for f in self.cluster.delivery_faults:
                if f.topic == out.topic and f.partition in (None, out.partition) and f.txns(txn.number):
                    failed.append((f.code, out))
                    break
        if not failed:
            return None
        report = self.config.get("on_delivery")
        for code, out in failed:
            if report is not None:
                report(KafkaError(code, "delivery failed"), Delivered(out))
        code = failed[0][0]
        return KafkaException(
            KafkaError(code, f"Failed to deliver {len(failed)} message(s)", txn_requires_abort=True)
        )

    def send_offsets_to_transaction(self, positions: Sequence[TopicPartition], metadata: Any,
                                    timeout: float | None = None) -> None:
        assert self.txn is not None, "send_offsets_to_transaction outside a transaction"
        if self.cluster.hangs is not None and self.cluster.hangs(self.txn.number):
            self.hanging = True
            self.fenced_while_hanging = self.cluster.hang_fenced
            self.cluster.hung.append(self.txn.number)
            self.cluster.released.wait()
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced while hung", fatal=True))
        self._check("send_offsets_to_transaction", self.txn.number)
        for tp in positions:
            self.txn.offsets[(tp.topic, tp.partition)] = tp.offset

    def commit_transaction(self, timeout: float | None = None) -> None:
        self._not_hanging()
        txn = self.txn
        assert txn is not None, "commit_transaction outside a transaction"
        if (failed := self._failed_deliveries(txn)) is not None:
            self.cluster.calls.append(("commit_transaction", txn.number))
            raise failed
        self._check("commit_transaction", txn.number, on_commit=lambda: self.cluster._apply(txn))
        self.txn = None

    def abort_transaction(self, timeout: float | None = None) -> None:
        self._not_hanging()
        self._check("abort_transaction", self.txn.number if self.txn else self.cluster.txn_count)
        self.txn = None

    def poll(self, timeout: float | None = None) -> int:
        if self.fenced_while_hanging:  # librdkafka raises a fatal error from poll()
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))
        return 0

    def flush(self, timeout: float | None = None) -> int:
        self._not_hanging()
        if self.fatal:
            # confluent-kafka 2.x: flush() on a producer in a fatal state (e.g. fenced) dispatches
            # callbacks with the fatal error still pending and fails like this
            raise SystemError("<method 'code' of 'confluent_kafka.cimpl.KafkaError' objects> returned a result "
                              "with an exception set")
        return 0

    def _not_hanging(self) -> None:
        assert not self.hanging, "a producer was called while another of its calls hangs"

    def _check(self, call: str, txn: int, **kw: Any) -> None:
        """The cluster's fault check; a fatal error leaves this producer fatal, as librdkafka's does."""
        try:
            self.cluster._check(call, txn, **kw)
        except KafkaException as exc:
            if exc.args[0].fatal():
                self.fatal = True
            raise


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.topics: list[str] = []
        self._on_assign: Callable[..., Any] | None = None
        self._assignment: list[TopicPartition] | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Callable[..., Any] | None = None,
                  on_revoke: Callable[..., Any] | None = None) -> None:
        self.topics = list(topics)
        self._on_assign = on_assign

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.cluster.consumer_errors:
            events, self.cluster.consumer_errors = self.cluster.consumer_errors, []
            return events
        if self._assignment is None:
            self._assignment = [TopicPartition(t, p) for (t, p) in sorted(self.cluster.logs) if t in self.topics]
            for tp in self.committed(self._assignment):
                self.seek(tp)
            if self._on_assign is not None:
                self._on_assign(self, list(self._assignment))
            return []
        out: list[FakeMessage] = []
        for tp in self._assignment:
            key = (tp.topic, tp.partition)
            log = self.cluster.logs[key]
            pos = self.positions.get(key, 0)
            take = log[pos : pos + num_messages - len(out)]
            out.extend(take)
            self.positions[key] = pos + len(take)
            if len(out) >= num_messages:
                break
        return out

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment or [])

    def position(self, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), OFFSET_INVALID))
            for tp in partitions
        ]

    def committed(self, partitions: Sequence[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.cluster.offsets.get((tp.topic, tp.partition), OFFSET_INVALID))
            for tp in partitions
        ]

    def seek(self, tp: TopicPartition) -> None:
        offset = tp.offset
        if offset in (OFFSET_BEGINNING, OFFSET_INVALID) or offset < 0:
            offset = 0
        self.positions[(tp.topic, tp.partition)] = offset

    def consumer_group_metadata(self) -> str:
        return self.cluster.group

    def close(self) -> None:
        self.closed = True


def wire_engine(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    """``cluster``'s producer and consumer factories in place of ``router.pipeline.engine``'s
    ``Producer`` and ``Consumer`` for the test (``cluster`` is returned, for fixtures)."""
    monkeypatch.setattr(engine_mod, "Producer", cluster.producer)
    monkeypatch.setattr(engine_mod, "Consumer", cluster.consumer)
    return cluster


def done(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    """A finished future, as the admin client's calls return them: its result, or its exception."""
    f: Future[Any] = Future()
    if error is not None:
        f.set_exception(error)
    else:
        f.set_result(value)
    return f
