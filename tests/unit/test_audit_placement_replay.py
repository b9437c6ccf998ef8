"""``quarantine replay`` records placement snapshots in its own chains: each replay chain gets a
placement record before its first replayed decision, the decisions reference it, and the whole
trail (the router's chains, without snapshots here, and the replay's) verifies.

The replay runs on the fake Kafka with the real PlacementWatch behind the router's adapter, fed a
fake cluster description whose replicas all sit in their topic's jurisdiction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from router.audit.chain import verify_chain
from router.audit.record import AuditRecord, PlacementRecord, decode_entry
from router.pipeline.app import _WatchPlacement
from router.pipeline.engine import TransactionalEngine
from router.pipeline.processor import RouterSettings
from router.placement.kafka import PlacementWatch
from router.placement.model import ClusterSnapshot, jurisdictions_sha256
from router.quarantine.replay import ReplayProcessor, ReplaySettings, run_engine
from router.routing.build import evaluator_for
from tests.unit.fake_kafka import FakeCluster
from tests.unit.test_pipeline_processor import DIGESTS
from tests.unit.test_quarantine_replay import (
    AUDIT,
    FIXED,
    INGRESS,
    PLACED,
    QTOPIC,
    ChainsFromFake,
    _audit_log,
    _config,
    _ends,
    _engine_settings,
    _event,
    _quarantine,
    cluster,  # noqa: F401 - the fake cluster fixture
    keys,  # noqa: F401 - the keys fixture
)

pytestmark = pytest.mark.unit

BROKERS = {1: "eu-a", 2: "eu-b", 3: "us-a", 4: "us-b"}


def _snapshot_fn(_admin: Any, topics: Iterable[str], *, timeout: float, clock: Any) -> ClusterSnapshot:
    del timeout
    by_j = {"eu": (1, 2), "us": (3, 4)}
    return ClusterSnapshot(dict(BROKERS), {t: dict.fromkeys(range(3), by_j[PLACED[t]]) for t in topics}, clock())


def _replay_with_snapshots(fake: FakeCluster, keys_: Any) -> ReplayProcessor:
    sealer, eu_opener, _us = keys_
    config = _config(FIXED)
    watch = PlacementWatch(None, PLACED, config.jurisdiction_of_rack, snapshot_fn=_snapshot_fn, clock=lambda: 1.0)
    watch.refresh()
    processor = ReplayProcessor(
        ReplaySettings(topic=QTOPIC, jurisdiction="eu", audit_topic=AUDIT, audit_partitions=3, instance_id="replay-eu",
                       ingress_topics=frozenset({INGRESS}), topic_jurisdiction=PLACED),
        evaluator_for(config),
        _WatchPlacement(watch, jurisdiction_of_rack=config.jurisdiction_of_rack,
                        jurisdictions_sha256=jurisdictions_sha256(config)),
        sealer, DIGESTS[0],
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic=AUDIT, instance_id="replay-eu",
                       origin_jurisdiction=lambda _t: "eu", audit_jurisdiction="eu"),
        eu_opener, chains=ChainsFromFake(fake),
    )
    eng = TransactionalEngine(_engine_settings(QTOPIC, "router.replay.eu", "router-replay-eu"), processor, environ={})
    assert run_engine(eng, processor, QTOPIC, _ends(fake))
    return processor


def test_replay_chains_hold_the_snapshot_their_decisions_reference(cluster: FakeCluster, keys: Any) -> None:  # noqa: F811
    values = [_event(i, "CH") for i in range(23)]
    _quarantine(cluster, keys, values)  # the router's chains: written without snapshots (FakePlacement)
    _replay_with_snapshots(cluster, keys)

    by_chain: dict[tuple[str, int], list[AuditRecord | PlacementRecord]] = {}
    for partition, _offset, value in _audit_log(cluster):
        rec = decode_entry(value)
        chain = rec.chain(partition)
        by_chain.setdefault((chain.source_topic or "", chain.partition), []).append(rec)
    replay_chains = {c: recs for c, recs in by_chain.items() if c[0] == QTOPIC}
    assert replay_chains
    replayed = 0
    for recs in replay_chains.values():
        first = recs[0]
        assert isinstance(first, PlacementRecord) and first.seq == 0  # before the chain's first decision
        assert sum(isinstance(r, PlacementRecord) for r in recs) == 1  # the verdict never changed
        for r in recs[1:]:
            assert isinstance(r, AuditRecord) and r.replay is not None
            assert r.fields.placement_snapshot == first.snapshot.sha256
            assert (r.fields.destination_topic, r.fields.destination_jurisdiction) == ("crm.eu.contact", "eu")
            partition = r.fields.destination_partition
            assert partition is not None
            assert first.snapshot.replicas("crm.eu.contact", partition) == (1, 2)
            replayed += 1
    assert replayed == len(values)
    report = verify_chain(_audit_log(cluster))
    assert report.ok, report.breaks
    by = {c.chain: c for c in report.sorted_chains()}
    assert sum(by[c].referenced for c in replay_chains) == len(values)
    assert all(by[c].replay for c in replay_chains)
    assert sum(c.unreferenced for c in report.sorted_chains() if c.chain.source_topic == INGRESS) == len(values)
