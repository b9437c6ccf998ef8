"""In-memory stand-ins for the Admin calls and the read_committed consumer ``residency-router status``
uses (no broker): the test sets the ground truth (partitions, end and start offsets, committed
offsets, group members, brokers' racks and replica lists, quarantine records) and the collector
reads it through the same method names and result types as confluent_kafka's clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Node,
    TopicPartition,
)
from confluent_kafka.admin import (
    ConsumerGroupDescription,
    ListOffsetsResultInfo,
    MemberAssignment,
    MemberDescription,
    OffsetSpec,
)

from tests.unit.fake_kafka import FakeMessage, FakePartitionEof, done

OFFSET_INVALID = -1001
_EARLIEST = type(OffsetSpec.earliest())


def _failed(err: BaseException) -> Future[Any]:
    f: Future[Any] = Future()
    f.set_exception(err)
    return f


def kafka_error(code: int = KafkaError._TRANSPORT, text: str = "Local: Broker transport failure") -> KafkaException:
    return KafkaException(KafkaError(code, text))


@dataclass
class FakeGroup:
    state: str = "STABLE"
    members: list[tuple[str, str, str, list[tuple[str, int]]]] = field(default_factory=list)
    """(member id, client id, host, assigned partitions)."""
    assignor: str = "range"
    coordinator: int = 1


class FakeAdmin:
    """The cluster as the test sets it: ``partitions[topic]``, ``high``/``low`` per partition,
    ``committed[group][(topic, partition)]``, ``groups``, ``racks`` (broker -> rack) and
    ``replicas[topic][partition]``. ``failures[method]`` makes that call raise (or its futures fail)."""

    def __init__(self) -> None:
        self.partitions: dict[str, int] = {}
        self.high: dict[tuple[str, int], int] = {}
        self.low: dict[tuple[str, int], int] = {}
        self.committed: dict[str, dict[tuple[str, int], int]] = {}
        self.groups: dict[str, FakeGroup] = {}
        self.racks: dict[int, str | None] = {}
        self.replicas: dict[str, dict[int, list[int]]] = {}
        self.failures: dict[str, BaseException] = {}
        self.calls: list[str] = []

    # -- set-up ---------------------------------------------------------------------------------
    def add_topic(self, name: str, ends: Sequence[int], *, starts: Sequence[int] | None = None,
                  replicas: Sequence[int] = (1,)) -> None:
        self.partitions[name] = len(ends)
        for p, end in enumerate(ends):
            self.high[(name, p)] = end
            self.low[(name, p)] = 0 if starts is None else starts[p]
        self.replicas[name] = {p: list(replicas) for p in range(len(ends))}

    def _check(self, method: str) -> None:
        self.calls.append(method)
        if method in self.failures:
            raise self.failures[method]

    # -- the Admin API ----------------------------------------------------------------------------
    def list_topics(self, timeout: float = -1) -> Any:
        self._check("list_topics")
        return SimpleNamespace(topics={
            name: SimpleNamespace(partitions=dict.fromkeys(range(n)), error=None)
            for name, n in self.partitions.items()})

    def list_offsets(self, request: dict[TopicPartition, Any], request_timeout: float = -1) -> dict[Any, Any]:
        self._check("list_offsets")
        out: dict[Any, Any] = {}
        for tp, spec in request.items():
            table = self.low if isinstance(spec, _EARLIEST) else self.high
            out[tp] = done(ListOffsetsResultInfo(table[(tp.topic, tp.partition)], -1, -1))
        return out

    def list_consumer_group_offsets(self, request: list[Any], request_timeout: float = -1) -> dict[str, Any]:
        self._check("list_consumer_group_offsets")
        (req,) = request
        mine = self.committed.get(req.group_id, {})
        tps = [TopicPartition(tp.topic, tp.partition, mine.get((tp.topic, tp.partition), OFFSET_INVALID))
               for tp in req.topic_partitions]
        return {req.group_id: done(ConsumerGroupTopicPartitions(req.group_id, tps))}

    def describe_consumer_groups(self, group_ids: list[str], request_timeout: float = -1) -> dict[str, Any]:
        self.calls.append("describe_consumer_groups")
        out: dict[str, Any] = {}
        for g in group_ids:
            if "describe_consumer_groups" in self.failures:
                out[g] = _failed(self.failures["describe_consumer_groups"])
                continue
            fg = self.groups.get(g, FakeGroup(state="DEAD"))
            members = [MemberDescription(mid, cid, host, MemberAssignment([TopicPartition(t, p) for t, p in parts]))
                       for mid, cid, host, parts in fg.members]
            out[g] = done(ConsumerGroupDescription(g, False, members, fg.assignor, fg.state,
                                                    Node(fg.coordinator, "127.0.0.1", 9092)))
        return out

    def describe_cluster(self, request_timeout: float = -1) -> Any:
        self._check("describe_cluster")
        return done(SimpleNamespace(nodes=[Node(b, "127.0.0.1", 9092 + b, rack) for b, rack in self.racks.items()]))

    def describe_topics(self, topics: Any, request_timeout: float = -1) -> dict[str, Any]:
        self._check("describe_topics")
        out: dict[str, Any] = {}
        for name in topics.topic_names:
            if name not in self.replicas:
                out[name] = _failed(kafka_error(KafkaError.UNKNOWN_TOPIC_OR_PART, "Broker: Unknown topic"))
                continue
            parts = [SimpleNamespace(id=p, replicas=list(r)) for p, r in sorted(self.replicas[name].items())]
            out[name] = done(SimpleNamespace(partitions=parts))
        return out


class FakeLog:
    """Partitions of committed records at chosen offsets (gaps are transaction markers), each with a
    Kafka timestamp; ``end`` per partition is its high watermark (past the last marker)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], list[tuple[int, int, bytes]]] = {}
        self.end: dict[tuple[str, int], int] = {}
        self.served: list[tuple[str, int, int]] = []
        """Every (topic, partition, offset) a consumer handed out: a record read twice shows here twice."""
        self.consumers: list[FakeReader] = []

    def append(self, topic: str, partition: int, values: Sequence[bytes], *, timestamp_ms: int = 0,
               marker: bool = True) -> None:
        """Append ``values`` as one transaction: consecutive offsets, then a commit marker."""
        key = (topic, partition)
        at = self.end.get(key, 0)
        log = self.records.setdefault(key, [])
        for v in values:
            log.append((at, timestamp_ms, v))
            at += 1
        self.end[key] = at + (1 if marker else 0)

    def reader(self) -> FakeReader:
        r = FakeReader(self)
        self.consumers.append(r)
        return r


class FakeReader:
    """A read_committed consumer over a :class:`FakeLog`: assign, consume (with end-of-partition
    events), offsets_for_times, close."""

    def __init__(self, log: FakeLog) -> None:
        self.log = log
        self.pos: dict[tuple[str, int], int] = {}
        self.eof_sent: set[tuple[str, int]] = set()
        self.closed = False

    def assign(self, tps: list[TopicPartition]) -> None:
        self.pos = {(tp.topic, tp.partition): tp.offset for tp in tps}
        self.eof_sent = set()

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        out = []
        for tp in tps:
            hits = [o for o, ts, _v in self.log.records.get((tp.topic, tp.partition), []) if ts >= tp.offset]
            out.append(TopicPartition(tp.topic, tp.partition, hits[0] if hits else -1))
        return out

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        out: list[Any] = []
        for key in sorted(self.pos):
            end = self.log.end.get(key, 0)
            for o, _ts, v in self.log.records.get(key, []):
                if len(out) >= num_messages:
                    return out
                if o >= self.pos[key]:
                    out.append(FakeMessage(key[0], key[1], o, v))
                    self.log.served.append((key[0], key[1], o))
                    self.pos[key] = o + 1
                    self.eof_sent.discard(key)
            if self.pos[key] < end:
                self.pos[key] = end  # past the trailing marker
            if key not in self.eof_sent and len(out) < num_messages:
                out.append(FakePartitionEof(key[1], key[0], self.pos[key]))
                self.eof_sent.add(key)
        return out

    def close(self) -> None:
        self.closed = True


# -- a deployment and its cluster -----------------------------------------------------------------

RACKS = {1: "eu-west-1a", 2: "eu-central-1a", 3: "us-east-1a"}


def config_doc(keyring: Path) -> dict[str, Any]:
    topics = [
        {"name": "crm.eu.contact", "jurisdiction": "eu"},
        {"name": "crm.eu.account", "jurisdiction": "eu"},
        {"name": "quarantine.eu", "jurisdiction": "eu"},
        {"name": "crm.us.contact", "jurisdiction": "us"},
        {"name": "quarantine.us", "jurisdiction": "us"},
        {"name": "audit", "jurisdiction": "eu"},
        {"name": "crm.ingress", "jurisdiction": "eu"},
    ]
    return {
        "clusters": {"default": {"bootstrap": "127.0.0.1:9092", "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": topics,
        "residency": {"countries": {"eu": ["EEA"], "us": ["US"]}},
        "policy": {"version": "t", "topic": "crm.{jurisdiction}.{entity}",
                   "quarantine_topic": "quarantine.{jurisdiction}",
                   "rules": [{"name": "eu", "data": ["eu"], "allow": ["eu"]},
                             {"name": "us", "data": ["us"], "allow": ["us"]}]},
        "keys": {"providers": {"dev": {"type": "local", "keyring": str(keyring)}},
                 "jurisdictions": {"eu": {"provider": "dev"}, "us": {"provider": "dev"}},
                 "signer": {"keyring": str(keyring)}},
        "audit": {"topic": "audit", "jurisdiction": "eu"},
        "pipeline": {"ingress": [{"topic": "crm.ingress", "jurisdiction": "eu"},
                                 {"topic": "us.ingress", "jurisdiction": "us"}],
                     "group_id": "router-g"},
    }


def in_place_cluster() -> FakeAdmin:
    """Every topic of the config, replicas inside its jurisdiction; the router group with one member."""
    admin = FakeAdmin()
    admin.racks = dict(RACKS)
    eu, us = (1, 2), (3,)
    for name in ("crm.eu.contact", "crm.eu.account", "quarantine.eu", "audit", "crm.ingress"):
        admin.add_topic(name, [0, 0, 0], replicas=eu)
    for name in ("crm.us.contact", "quarantine.us", "us.ingress"):
        admin.add_topic(name, [0], replicas=us)
    admin.groups["router-g"] = FakeGroup(members=[
        ("rdkafka-aa", "router-g-a", "/10.0.0.1", [("crm.ingress", 0), ("crm.ingress", 1), ("us.ingress", 0)]),
        ("rdkafka-bb", "router-g-b", "/10.0.0.2", [("crm.ingress", 2)]),
    ])
    return admin
