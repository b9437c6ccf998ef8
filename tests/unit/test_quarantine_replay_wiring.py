"""``replay()`` (what the CLI calls) wired end to end over fakes of every Kafka client it builds:
the engine's producer and consumer (tests/unit/fake_kafka.py), the assigned readers of the
quarantine and audit topics, the admin client and the placement watch. Keys come from a dev keyring
the config names, as in a deployment; the quarantine records are the router's own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import decode_entry
from router.config.base import ClusterConfig
from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.envelope import Opener, Sealer
from router.keys.digest import DigestKeys
from router.keys.factory import build_dek_manager, build_jurisdiction_keys, build_public_keys, build_signer
from router.keys.local import LocalKeyring
from router.pipeline.engine import TransactionalEngine
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.quarantine.replay import ReplayOptions, replay
from router.routing.build import evaluator_for
from tests.unit.fake_kafka import FakeCluster, FakeMessage, FakePartitionEof, wire_engine
from tests.unit.test_pipeline_processor import FakePlacement
from tests.unit.test_quarantine_replay import (
    AUDIT,
    BEFORE,
    FIXED,
    INGRESS,
    PLACED,
    QTOPIC,
    _doc,
    _engine_settings,
    _event,
)

pytestmark = pytest.mark.unit


class FakeReader:
    """``committed_reader``'s consumer over the fake cluster: the quarantine topic's log and the
    committed audit records, read by assignment; the group's committed offsets."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.positions: dict[tuple[str, int], int] = {}

    def _log(self, topic: str, partition: int) -> list[Any]:
        if topic == AUDIT:
            records = [o for o in self.cluster.outputs(AUDIT) if o.partition == partition]
            return [FakeMessage(AUDIT, partition, i, o.value, o.key) for i, o in enumerate(records)]
        return list(self.cluster.logs.get((topic, partition), []))

    def list_topics(self, topic: str, timeout: float | None = None) -> Any:
        parts = {p: None for (t, p) in self.cluster.logs if t == topic} if topic != AUDIT else dict.fromkeys(range(3))
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions=parts, error=None)})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None, cached: bool = False) -> Any:
        return 0, len(self._log(tp.topic, tp.partition))

    def committed(self, tps: Sequence[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        offsets = self.cluster.offsets
        return [TopicPartition(tp.topic, tp.partition, offsets.get((tp.topic, tp.partition), OFFSET_INVALID))
                for tp in tps]

    def commit(self, offsets: Sequence[TopicPartition], asynchronous: bool = True) -> None:
        for tp in offsets:
            self.cluster.offsets[(tp.topic, tp.partition)] = tp.offset

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self.positions = {(tp.topic, tp.partition): tp.offset for tp in tps}

    def unassign(self) -> None:
        self.positions = {}

    def consume(self, num_messages: int = 1, timeout: float | None = None) -> list[Any]:
        out: list[Any] = []
        for (topic, partition), pos in list(self.positions.items()):
            log = self._log(topic, partition)
            take = log[pos:pos + num_messages]
            out.extend(take)
            self.positions[(topic, partition)] = pos + len(take)
            if pos + len(take) >= len(log):
                out.append(FakePartitionEof(partition))
        return out

    def close(self) -> None:
        pass


class FakeWatch:
    def __init__(self) -> None:
        self.report = SimpleNamespace(topics={t: SimpleNamespace(partitions=[0, 1, 2]) for t in PLACED}, ok=True,
                                      taken_at=1.0, brokers={}, failures=[])
        self.expired, self.reason = False, ""
        self.started = self.stopped = False

    def permitted(self, topic: str, jurisdiction: str) -> bool:
        return PLACED.get(topic) == jurisdiction

    def refresh(self) -> Any:
        return self.report

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float | None = None) -> None:
        self.stopped = True


def _config(tmp_path: Path, countries: dict[str, list[str]]) -> RouterConfig:
    keyring = tmp_path / "keyring.json"
    if not keyring.exists():
        LocalKeyring.create(keyring, ["eu", "us"])
    doc = _doc(countries)
    if "allow_plaintext" in ClusterConfig.model_fields:  # a config of a cluster without TLS says so
        doc["clusters"]["default"]["allow_plaintext"] = True
    doc["keys"] = {"providers": {"dev": {"type": "local", "keyring": str(keyring)}},
                   "jurisdictions": {"eu": {"provider": "dev"}, "us": {"provider": "dev"}},
                   "signer": {"keyring": str(keyring)}}
    return parse_config(doc, str(tmp_path / "router.yaml"))


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    cluster = wire_engine(FakeCluster(max_txns=2000), monkeypatch)
    watch = FakeWatch()
    monkeypatch.setattr("router.placement.kafka.admin_for", lambda *_a, **_k: object())
    monkeypatch.setattr("router.placement.kafka.check_startup", lambda *_a, **_k: watch.report)
    monkeypatch.setattr("router.placement.kafka.PlacementWatch.from_config", lambda *_a, **_k: watch)
    monkeypatch.setattr("router.pipeline.app.topic_message_limit", lambda *_a, **_k: 1 << 31)
    monkeypatch.setattr("router.audit.kafka.read_recorded_placements", lambda *_a, **_k: {})
    monkeypatch.setattr("router.kafka_read.committed_reader", lambda *_a, **_k: FakeReader(cluster))

    before = _config(tmp_path, BEFORE)
    assert before.keys is not None
    keys = build_jurisdiction_keys(before.keys)
    sealer = Sealer(build_dek_manager(before.keys, keys), build_signer(before.keys))
    values = [_event(i, "CH") for i in range(17)]
    for i, v in enumerate(values):
        cluster.logs.setdefault((INGRESS, 0), []).append(FakeMessage(INGRESS, 0, i, v, f"k{i}".encode()))
    router = RouterProcessor(
        evaluator_for(before), FakePlacement(dict(PLACED)), sealer, AuditChain(),
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic=AUDIT, instance_id="a",
                       origin_jurisdiction=lambda _t: "eu", audit_jurisdiction="eu", audit_partitions=3),
        DigestKeys(keys),
    )
    TransactionalEngine(_engine_settings(INGRESS, "router", "router-a", batch=50), router, environ={}).run(
        until=lambda _s: cluster.committed_offset(INGRESS, 0) == len(values))
    for o in cluster.outputs(QTOPIC):
        log = cluster.logs.setdefault((QTOPIC, o.partition), [])
        log.append(FakeMessage(QTOPIC, o.partition, len(log), o.value, o.key))
    opener = Opener(keys, build_public_keys(before.keys))
    return {"cluster": cluster, "watch": watch, "fixed": _config(tmp_path, FIXED), "values": values, "opener": opener}


def _routed(d: dict[str, Any]) -> list[tuple[int, bytes]]:
    out = []
    for o in d["cluster"].outputs("crm.eu.contact"):
        opened = d["opener"].open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction="eu")
        out.append((opened.ctx.source_offset, opened.plaintext))
    return sorted(out)


def test_replay_routes_every_record_once_with_its_own_group_and_transactional_id(deployment: dict[str, Any]) -> None:
    d = deployment
    summary = replay(d["fixed"], ReplayOptions("eu", install_signal_handlers=False))
    assert summary.complete and summary.to_json()["replayed"] == 17
    assert _routed(d) == list(enumerate(d["values"]))
    cluster = d["cluster"]
    producer_ids = {p.config.get("transactional.id") for p in cluster.producers}
    assert producer_ids == {"router-a", "router-replay-eu"}
    assert {c.config["group.id"] for c in cluster.consumers} == {"router", "router.replay.eu"}
    audit = [(o.partition, i, o.value) for i, o in enumerate(cluster.outputs(AUDIT))]
    per_partition: dict[int, int] = {}
    log = []
    for p, _i, v in audit:
        log.append((p, per_partition.get(p, 0), v))
        per_partition[p] = per_partition.get(p, 0) + 1
    assert verify_chain(log).ok
    assert sum(decode_entry(v).replay is not None for _p, _o, v in log) == 17
    assert d["watch"].started and d["watch"].stopped

    again = replay(d["fixed"], ReplayOptions("eu", install_signal_handlers=False))
    assert again.complete and again.to_json()["read"] == 0 and _routed(d) == list(enumerate(d["values"]))
    rescan = replay(d["fixed"], ReplayOptions("eu", from_beginning=True, install_signal_handlers=False))
    assert rescan.complete and rescan.to_json()["already_replayed"] == 17
    assert _routed(d) == list(enumerate(d["values"]))


def test_dry_run_reports_what_replay_would_do_and_writes_nothing(deployment: dict[str, Any]) -> None:
    d = deployment
    cluster = d["cluster"]
    committed, offsets = list(cluster.committed), dict(cluster.offsets)
    summary = replay(d["fixed"], ReplayOptions("eu", dry_run=True, install_signal_handlers=False))
    assert summary.complete and summary.to_json()["replayed_by_destination"] == {"crm.eu.contact": 17}
    assert cluster.committed == committed and cluster.offsets == offsets
    assert {p.config.get("transactional.id") for p in cluster.producers} == {"router-a"}, "no replay producer"


def test_an_unknown_reason_or_jurisdiction_is_refused_before_anything_is_read(deployment: dict[str, Any]) -> None:
    from router.errors import RouterError

    d = deployment
    with pytest.raises(RouterError, match="--reason"):
        replay(d["fixed"], ReplayOptions("eu", reasons=["NOT_A_CODE"], install_signal_handlers=False))
    with pytest.raises(RouterError, match="--jurisdiction"):
        replay(d["fixed"], ReplayOptions("ch", install_signal_handlers=False))
    assert d["cluster"].outputs("crm.eu.contact") == []
