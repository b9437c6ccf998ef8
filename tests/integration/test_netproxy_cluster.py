"""The dev cluster behind fault proxies: clients reach the brokers only through the proxies,
replication does not, and a client partitioned from every broker for a moment recovers with no
record lost or duplicated.

Ground truth comes from around the proxies: the brokers' INTERNAL listeners (``direct_bootstrap``)
show what the brokers hold while the proxied client is cut off.

Starts its own 3-node cluster with ``--proxy`` (not the session cluster); skipped when the tests
run against an external or Docker cluster.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from router.devtools.devcluster.launcher import ClusterInfo, DevCluster
from router.devtools.netproxy import ProxyControl
from tests.kafka_util import read_topic

pytestmark = pytest.mark.integration

HELD = 3.0
"""Seconds of a wait that must expire while the proxies hold everything."""
END_TXN = 26


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    if os.environ.get("ROUTER_TEST_BOOTSTRAP") or os.environ.get("ROUTER_TEST_CLUSTER") == "docker":
        pytest.skip("the fault proxies front the project's own dev cluster only")
    cluster = DevCluster(tmp_path_factory.mktemp("devcluster-proxy"))
    try:
        yield cluster.up(proxy=True)
    finally:
        cluster.down()


@pytest.fixture
def proxy(proxied: ClusterInfo) -> Iterator[ProxyControl]:
    assert proxied.proxy is not None
    ctl = ProxyControl(proxied.proxy.control)
    yield ctl
    ctl.disarm()
    ctl.set_mode("pass")


def eventually(pred: Callable[[], bool], timeout: float = 60.0, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def make_topic(info: ClusterInfo, prefix: str, config: dict[str, str] | None = None) -> str:
    """A 3-partition topic with a replica on every broker, created around the proxies."""
    admin = AdminClient({"bootstrap.servers": info.direct_bootstrap})
    ids = [n.node_id for n in info.nodes]
    name = f"{prefix}.{uuid.uuid4().hex[:12]}"
    assignment = [ids[i:] + ids[:i] for i in range(len(ids))]
    topic = NewTopic(name, num_partitions=len(ids), replica_assignment=assignment, config=config or {})
    admin.create_topics([topic], request_timeout=30)[name].result()

    def visible() -> bool:
        md = admin.list_topics(name, timeout=10).topics.get(name)
        return md is not None and md.error is None and len(md.partitions) == len(ids)

    assert eventually(visible, 30), f"topic {name} did not show in metadata"
    return name


def values(messages: list[Any]) -> list[bytes]:
    return [m.value() for m in messages]


def test_clients_are_sent_to_the_proxies_and_the_direct_listeners_bypass_them(
    proxied: ClusterInfo, proxy: ProxyControl
) -> None:
    proxy_ports = {n.node_id: n.proxy_port for n in proxied.nodes}
    internal_ports = {n.node_id: n.internal_port for n in proxied.nodes}
    via_proxy = AdminClient({"bootstrap.servers": proxied.bootstrap}).list_topics(timeout=30).brokers
    direct = AdminClient({"bootstrap.servers": proxied.direct_bootstrap}).list_topics(timeout=30).brokers
    assert {b.id: b.port for b in via_proxy.values()} == proxy_ports
    assert {b.id: b.port for b in direct.values()} == internal_ports
    status = proxy.status()
    assert {p["id"]: int(p["listen"].rsplit(":", 1)[1]) for p in status["proxies"]} == proxy_ports


def test_produce_and_consume_through_the_proxies(proxied: ClusterInfo, proxy: ProxyControl) -> None:
    topic = make_topic(proxied, "proxied")
    before = {p["id"]: p["forwarded_bytes"]["upstream"] for p in proxy.status()["proxies"]}
    producer = Producer({"bootstrap.servers": proxied.bootstrap, "enable.idempotence": True})
    sent = [f"r-{i:05d}".encode() for i in range(3000)]
    for i, v in enumerate(sent):
        producer.produce(topic, v, key=str(i).encode())
    assert producer.flush(60) == 0
    got = read_topic(proxied.bootstrap, topic)
    assert sorted(values(got)) == sorted(sent)
    after = {p["id"]: p["forwarded_bytes"]["upstream"] for p in proxy.status()["proxies"]}
    # Every broker leads one partition, so every proxy carried client traffic.
    assert all(after[b] > before[b] for b in before), (before, after)


def test_replication_does_not_pass_the_proxies(proxied: ClusterInfo, proxy: ProxyControl) -> None:
    # Every write needs all three replicas in sync: were followers fetching through the proxies,
    # the blackhole would stall them and the writes would fail.
    topic = make_topic(proxied, "replicated", {"min.insync.replicas": str(len(proxied.nodes))})
    proxy.set_mode("blackhole")
    producer = Producer({"bootstrap.servers": proxied.direct_bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(300):
        producer.produce(topic, f"v{i}".encode())
    assert producer.flush(60) == 0
    assert len(read_topic(proxied.direct_bootstrap, topic)) == 300


def test_producer_partitioned_from_every_broker_recovers_without_loss_or_duplicates(
    proxied: ClusterInfo, proxy: ProxyControl
) -> None:
    topic = make_topic(proxied, "partitioned")
    delivered: list[bytes] = []
    errors: list[str] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err.str())
        else:
            delivered.append(msg.value())

    producer = Producer({"bootstrap.servers": proxied.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    first = [f"first-{i:04d}".encode() for i in range(500)]
    second = [f"second-{i:04d}".encode() for i in range(500)]
    for v in first:
        producer.produce(topic, v, on_delivery=report)
    assert producer.flush(60) == 0

    proxy.set_mode("blackhole")
    for v in second:
        producer.produce(topic, v, on_delivery=report)
    # A bounded wait that must expire: nothing of the second batch is acknowledged...
    assert producer.flush(HELD) > 0
    assert sorted(delivered) == sorted(first)
    # ... nor reached a broker, as the brokers themselves show.
    assert sorted(values(read_topic(proxied.direct_bootstrap, topic))) == sorted(first)

    proxy.set_mode("pass")
    assert producer.flush(120) == 0
    assert errors == []
    assert sorted(delivered) == sorted(first + second)
    stored = values(read_topic(proxied.direct_bootstrap, topic))
    assert sorted(stored) == sorted(first + second)  # every record once: none lost, none doubled


def test_consumer_partitioned_from_every_broker_resumes_where_it_was(proxied: ClusterInfo, proxy: ProxyControl) -> None:
    topic = make_topic(proxied, "consumed")
    direct = Producer({"bootstrap.servers": proxied.direct_bootstrap, "enable.idempotence": True})
    consumer = Consumer(
        {
            "bootstrap.servers": proxied.bootstrap,
            "group.id": f"proxied-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(len(proxied.nodes))])
        first = [f"a{i}".encode() for i in range(200)]
        for v in first:
            direct.produce(topic, v)
        assert direct.flush(60) == 0
        seen: list[bytes] = []

        def drain(until: int, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while len(seen) < until and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=500, timeout=0.5):
                    assert m.error() is None, m.error()
                    seen.append(m.value())

        drain(len(first), 60)
        assert sorted(seen) == sorted(first)

        proxy.set_mode("blackhole")
        second = [f"b{i}".encode() for i in range(200)]
        for v in second:
            direct.produce(topic, v)
        assert direct.flush(60) == 0
        drain(len(first) + 1, HELD)  # must come back empty-handed
        assert sorted(seen) == sorted(first)

        proxy.set_mode("pass")
        drain(len(first) + len(second), 120)
        assert sorted(seen) == sorted(first + second)
    finally:
        consumer.close()


def test_end_txn_answer_lost_in_a_partition_commits_once(proxied: ClusterInfo, proxy: ProxyControl) -> None:
    """The client's EndTxn reaches the coordinator, then the partition holds every answer: the
    brokers commit while the client waits; after the partition heals the client's commit returns
    and the records are there exactly once."""
    topic = make_topic(proxied, "txn")
    producer = Producer({"bootstrap.servers": proxied.bootstrap, "transactional.id": f"proxied-{uuid.uuid4().hex}"})
    producer.init_transactions(60)
    producer.begin_transaction()
    records = [f"t{i:04d}".encode() for i in range(300)]
    for v in records:
        producer.produce(topic, v)
    assert producer.flush(60) == 0
    proxy.arm(END_TXN, "blackhole", direction="downstream")
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            producer.commit_transaction(120)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    committer = threading.Thread(target=commit, daemon=True)
    committer.start()
    assert eventually(lambda: proxy.status()["trigger"]["fired"], 60), "no EndTxn passed the proxies"
    # The brokers commit (markers go broker to broker, around the proxies) ...
    assert eventually(
        lambda: len(read_topic(proxied.direct_bootstrap, topic, isolation="read_committed")) == len(records), 60
    )
    # ... while the client still waits for the answer.
    committer.join(HELD)
    assert committer.is_alive()
    assert outcome == []

    proxy.set_mode("pass")
    committer.join(150)
    assert outcome == [None]
    stored = values(read_topic(proxied.direct_bootstrap, topic, isolation="read_committed"))
    assert sorted(stored) == sorted(records)
    producer.begin_transaction()  # the producer is usable after the partition
    producer.produce(topic, b"after")
    producer.commit_transaction(60)
    assert sorted(values(read_topic(proxied.direct_bootstrap, topic))) == sorted([*records, b"after"])


def test_devcluster_cli_status_shows_the_proxies(proxied: ClusterInfo) -> None:
    import json

    from tests.unit.devcluster_util import devcluster_cli

    out = devcluster_cli(proxied.state_dir, "status", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert proxied.proxy is not None
    assert doc["proxy"]["control"] == proxied.proxy.control
    assert doc["proxy"]["running"] is True
    assert [b["proxy"] for b in doc["brokers"]] == [f"127.0.0.1:{n.proxy_port}" for n in proxied.nodes]
    assert Path(doc["proxy"]["log"]).exists()
