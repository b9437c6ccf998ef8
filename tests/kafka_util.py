"""Small Kafka helpers for integration tests: produce a batch, read a topic to its end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

T = TypeVar("T")


def wait_for_cluster(
    read: Callable[[], T], reached: Callable[[T], bool], *, what: str, timeout: float,
    show: Callable[[T], str] = repr, every: float = 0.2,
) -> T:
    """Ask ``read()`` (an admin client's metadata or group description) every ``every`` s until
    ``reached`` holds for its answer, which is returned. A request that fails (it may go to a broker a
    test has just killed, or to a coordinator still loading) is asked again. After ``timeout`` s the
    assertion says ``what`` ("<it> did not reach <state>") and the last error or the last answer
    (through ``show``)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            value = read()
        except KafkaException as err:
            last = str(err)
        else:
            if reached(value):
                return value
            last = show(value)
        time.sleep(every)
    raise AssertionError(f"{what} in {timeout} s (last: {last})")


def produce_all(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]], **kw: Any) -> int:
    """Produce (key, value) pairs idempotently and wait until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []

    def report(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(err.str())

    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report, **kw)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0 and not failures, f"produce failed: {remaining} unsent, {failures[:3]}"
    return n


def read_topic(bootstrap: str, topic: str, *, isolation: str = "read_committed", timeout: float = 60.0,
               client: dict[str, Any] | None = None) -> list[Any]:
    """Every message of every partition from the beginning to the current end, in partition order.
    ``client``: extra client properties (security settings of a secured cluster)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **(client or {}),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=15).topics[topic]
        parts = sorted(md.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        done: set[int] = set()
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(set(parts) - done)} did not reach their end")
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                        continue
                    raise RuntimeError(err.str())
                done.discard(m.partition())
                out.append(m)
        return out
    finally:
        consumer.close()
