"""``quarantine replay`` over the in-memory Kafka fakes (tests/unit/fake_kafka.py), no broker.

The router itself (``RouterProcessor`` over the core ``evaluator_for`` builds) quarantines events
whose country the config does not map (UNRESOLVED_JURISDICTION); its committed quarantine records
become the quarantine topic; the config is fixed (the country added) and the replay runs on the
same engine ``run`` uses. Every check is against ground truth the test made: the events it wrote
(their ingress offsets and bytes), opened from the committed outputs with the destination
jurisdiction's key, and the committed audit records verified with the project's verifier.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import AuditRecord, decode_entry
from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.pipeline.engine import EngineSettings, TransactionalEngine
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.quarantine import replay as replay_mod
from router.quarantine.record import decode_quarantine
from router.quarantine.replay import (
    ALREADY_REPLAYED,
    HEADERS_NOT_KEPT,
    KEY_NOT_KEPT,
    NOT_SELECTED,
    QUARANTINED,
    REPLAYED,
    ReplayChain,
    ReplayProcessor,
    ReplaySettings,
    ReplaySummary,
    replay_chains_from,
    run_dry,
    run_engine,
)
from router.routing.build import evaluator_for
from tests.unit.fake_kafka import FakeCluster, FakeMessage, wire_engine
from tests.unit.test_pipeline_processor import DIGESTS, FakePlacement, _keys

pytestmark = pytest.mark.unit

INGRESS = "crm.ingress"
QTOPIC = "quarantine.eu"
AUDIT = "audit"
PLACED = {"crm.eu.contact": "eu", "crm.us.contact": "us", "quarantine.eu": "eu", "quarantine.us": "us",
          "audit": "eu", INGRESS: "eu"}


def _doc(countries: dict[str, list[str]], *, trusted: bool = False) -> dict[str, Any]:
    return {
        "clusters": {"default": {"bootstrap": "fake:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [{"name": t, "jurisdiction": j} for t, j in PLACED.items()],
        "residency": {"countries": countries},
        "policy": {
            "version": "v1",
            "topic": "crm.{jurisdiction}.{entity}",
            "quarantine_topic": "quarantine.{jurisdiction}",
            "rules": [{"name": "eu", "data": ["eu"], "allow": ["eu"]}, {"name": "us", "data": ["us"], "allow": ["us"]}],
        },
        "audit": {"topic": AUDIT, "jurisdiction": "eu"},
        "pipeline": {"ingress": [{"topic": INGRESS, "jurisdiction": "eu", "decoder": "salesforce-json",
                                  "trusted": trusted}],
                     "group_id": "router", "transactional_id_prefix": "router"},
    }


def _config(countries: dict[str, list[str]], **kw: Any) -> RouterConfig:
    return parse_config(_doc(countries, **kw), "test.yaml")


BEFORE = {"eu": ["EEA"], "us": ["US"]}
"""Switzerland (CH) is in no jurisdiction: its events are quarantined UNRESOLVED_JURISDICTION."""
FIXED = {"eu": ["EEA", "CH"], "us": ["US"]}


def _event(i: int, country: str) -> bytes:
    header = {"entityName": "Contact", "changeType": "UPDATE", "recordIds": [f"003{i:012d}"],
              "changedFields": ["MailingCountry", "Description"], "transactionKey": f"t{i}"}
    return json.dumps({"ChangeEventHeader": header, "MailingCountry": country,
                       "Description": f"note number {i}"}).encode()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    return wire_engine(FakeCluster(max_txns=2000), monkeypatch)


def _engine_settings(topic: str, group: str, txn: str, batch: int = 5) -> EngineSettings:
    return EngineSettings(bootstrap_config={"bootstrap.servers": "fake:9092"}, ingress_topics=[topic], group_id=group,
                          transactional_id=txn, batch_size=batch, commit_interval_ms=0, max_retries=2)


def _audit_log(cluster: FakeCluster) -> list[tuple[int, int, bytes]]:
    """The committed audit records as (partition, offset, value), offsets counted per partition."""
    next_offset: dict[int, int] = {}
    log: list[tuple[int, int, bytes]] = []
    for o in cluster.outputs(AUDIT):
        offset = next_offset.get(o.partition, 0)
        next_offset[o.partition] = offset + 1
        assert o.value is not None
        log.append((o.partition, offset, o.value))
    return log


class ChainsFromFake:
    """``read_replay_chains`` against the fake: the replay chains in the committed audit records."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.reads = 0

    def __call__(self, partition: int, sources: Sequence[tuple[str, int]]) -> Mapping[tuple[str, int], ReplayChain]:
        self.reads += 1
        records = [(o, decode_entry(v), v) for p, o, v in _audit_log(self.cluster) if p == partition]
        return replay_chains_from(records, sources)


@pytest.fixture
def keys() -> Any:
    return _keys()


def _quarantine(cluster: FakeCluster, keys: Any, values: list[bytes], countries: dict[str, list[str]] = BEFORE,
                *, key: bytes | None = b"k") -> None:
    """The router decides ``values`` (ingress offsets 0..n-1) under ``countries``; its committed
    quarantine records of eu become the replay's input topic, one fake partition per router one."""
    sealer, _eu, _us = keys
    for i, v in enumerate(values):
        cluster.logs.setdefault((INGRESS, 0), []).append(FakeMessage(INGRESS, 0, i, v, key))
    router = RouterProcessor(
        evaluator_for(_config(countries)), FakePlacement(dict(PLACED)), sealer, AuditChain(),
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic=AUDIT, instance_id="a",
                       origin_jurisdiction=lambda _t: "eu", audit_jurisdiction="eu"),
        DIGESTS[0],
    )
    eng = TransactionalEngine(_engine_settings(INGRESS, "router", "router-a", batch=50), router, environ={})
    eng.run(until=lambda _s: cluster.committed_offset(INGRESS, 0) == len(values))
    for o in cluster.outputs(QTOPIC):
        log = cluster.logs.setdefault((QTOPIC, o.partition), [])
        log.append(FakeMessage(QTOPIC, o.partition, len(log), o.value, o.key))


def _processor(cluster: FakeCluster, keys: Any, countries: dict[str, list[str]] = FIXED,
               reasons: frozenset[str] | None = None, trusted: bool = False) -> ReplayProcessor:
    sealer, eu_opener, _us = keys
    config = _config(countries, trusted=trusted)
    header_bound = frozenset({INGRESS}) if trusted else frozenset()
    return ReplayProcessor(
        ReplaySettings(topic=QTOPIC, jurisdiction="eu", audit_topic=AUDIT, audit_partitions=3, instance_id="replay-eu",
                       reasons=reasons, ingress_topics=frozenset({INGRESS}), header_bound_topics=header_bound,
                       topic_jurisdiction=PLACED),
        evaluator_for(config), FakePlacement(dict(PLACED)), sealer, DIGESTS[0],
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic=AUDIT, instance_id="replay-eu",
                       origin_jurisdiction=lambda _t: "eu", audit_jurisdiction="eu"),
        eu_opener, chains=ChainsFromFake(cluster),
    )


def _ends(cluster: FakeCluster) -> dict[int, int]:
    return {p: len(log) for (t, p), log in cluster.logs.items() if t == QTOPIC}


def _replay(cluster: FakeCluster, keys: Any, **kw: Any) -> tuple[bool, ReplayProcessor]:
    processor = _processor(cluster, keys, **kw)
    eng = TransactionalEngine(_engine_settings(QTOPIC, "router.replay.eu", "router-replay-eu"), processor, environ={})
    return run_engine(eng, processor, QTOPIC, _ends(cluster)), processor


def _routed(cluster: FakeCluster, keys: Any, topic: str = "crm.eu.contact") -> list[tuple[int, bytes]]:
    """(ingress offset, plaintext) of every committed record in ``topic``, opened with eu's key."""
    _sealer, eu_opener, _us = keys
    out = []
    for o in cluster.outputs(topic):
        assert o.value is not None
        opened = eu_opener.open(o.value, o.headers, topic=topic, partition=o.partition, expected_jurisdiction="eu")
        assert opened.ctx.source_topic == INGRESS
        out.append((opened.ctx.source_offset, opened.plaintext))
    return out


def _replay_records(cluster: FakeCluster) -> list[AuditRecord]:
    records = (decode_entry(v) for _p, _o, v in _audit_log(cluster))
    return [r for r in records if isinstance(r, AuditRecord) and r.replay is not None]


# -- tests -------------------------------------------------------------------------------------------


def test_unresolved_records_are_routed_once_after_the_fix_with_linked_and_verified_audit(
    cluster: FakeCluster, keys: Any
) -> None:
    values = [_event(i, "CH") for i in range(23)]
    _quarantine(cluster, keys, values)
    quarantined = {(m.partition(), m.offset()): decode_quarantine(m.value())
                   for (t, _p), log in cluster.logs.items() if t == QTOPIC for m in log}
    assert sorted(r.source_offset for r in quarantined.values()) == list(range(23))
    assert {r.reason for r in quarantined.values()} == {"UNRESOLVED_JURISDICTION"}
    assert _routed(cluster, keys) == []

    complete, processor = _replay(cluster, keys)

    assert complete
    assert sorted(_routed(cluster, keys)) == [(i, v) for i, v in enumerate(values)]  # each once, the original bytes
    links = _replay_records(cluster)
    assert sorted((r.replay.quarantine_partition, r.replay.quarantine_offset) for r in links  # type: ignore[union-attr]
                  ) == sorted(quarantined)
    for r in links:
        assert r.replay is not None
        q = quarantined[(r.replay.quarantine_partition, r.replay.quarantine_offset)]
        assert (r.fields.source_topic, r.fields.source_partition, r.fields.source_offset) == (
            QTOPIC, r.replay.quarantine_partition, r.replay.quarantine_offset)
        assert (r.replay.ingress_topic, r.replay.ingress_offset) == (INGRESS, q.source_offset)
        assert (r.replay.quarantine_reason, r.replay.quarantine_policy_version) == (q.reason, q.policy_version)
        assert r.fields.policy_version != q.policy_version  # the fix is a new policy version
        assert (r.fields.decision, r.fields.destination_topic) == ("route", "crm.eu.contact")
    report = verify_chain(_audit_log(cluster))
    assert report.ok, [b.describe() for b in report.breaks]
    assert {c.source_topic for c in report.chains} == {INGRESS, QTOPIC}  # the router's chain untouched by the replay
    assert sum(processor.committed()[k] for k in processor.committed() if k[1] == REPLAYED) == 23


def test_a_second_replay_routes_none_even_from_the_beginning(cluster: FakeCluster, keys: Any) -> None:
    values = [_event(i, "CH") for i in range(12)]
    _quarantine(cluster, keys, values)
    assert _replay(cluster, keys)[0]
    first = sorted(_routed(cluster, keys))

    for tp in _ends(cluster):  # as after --from-beginning, or a consumer group whose offsets expired
        cluster.offsets[(QTOPIC, tp)] = 0
    complete, processor = _replay(cluster, keys)

    assert complete
    assert sorted(_routed(cluster, keys)) == first == [(i, v) for i, v in enumerate(values)]
    assert processor.committed() == Counter({("UNRESOLVED_JURISDICTION", ALREADY_REPLAYED, ""): 12})
    assert verify_chain(_audit_log(cluster)).ok


def test_a_replay_stopped_between_transactions_then_run_again_routes_each_record_exactly_once(
    cluster: FakeCluster, keys: Any
) -> None:
    values = [_event(i, "CH") for i in range(30)]
    _quarantine(cluster, keys, values)
    processor = _processor(cluster, keys)
    eng = TransactionalEngine(_engine_settings(QTOPIC, "router.replay.eu", "router-replay-eu"), processor, environ={})
    stats = eng.run(until=lambda s: s.commits >= 3)  # stopped (as by a kill) after the third commit
    assert stats.commits == 3
    partial = _routed(cluster, keys)
    assert 0 < len(partial) < 30

    again, _ = _replay(cluster, keys)  # a new process: tails and links read back from the audit topic

    assert again
    assert sorted(_routed(cluster, keys)) == [(i, v) for i, v in enumerate(values)]
    assert verify_chain(_audit_log(cluster)).ok


def test_an_ambiguous_commit_that_succeeded_neither_duplicates_nor_forks_the_replay_chain(
    cluster: FakeCluster, keys: Any
) -> None:
    values = [_event(i, "CH") for i in range(20)]
    _quarantine(cluster, keys, values)
    first_replay_txn = cluster.txn_count + 2
    cluster.fail("commit_transaction", KafkaError._TIMED_OUT, [first_replay_txn], retriable=True, commit_first=True)

    complete, _ = _replay(cluster, keys)

    assert complete
    assert sorted(_routed(cluster, keys)) == [(i, v) for i, v in enumerate(values)]
    report = verify_chain(_audit_log(cluster))
    assert report.ok, [b.describe() for b in report.breaks]


def test_records_of_other_reasons_are_passed_over_and_records_still_unroutable_stay(
    cluster: FakeCluster, keys: Any
) -> None:
    values = [_event(0, "CH"), b"{not json", _event(2, "JP"), _event(3, "CH")]
    _quarantine(cluster, keys, values)
    reasons = Counter(decode_quarantine(m.value()).reason for (t, _p), log in cluster.logs.items() if t == QTOPIC
                      for m in log)
    assert reasons["UNRESOLVED_JURISDICTION"] == 3 and sum(reasons.values()) == 4

    complete, processor = _replay(cluster, keys, reasons=frozenset({"UNRESOLVED_JURISDICTION"}))

    assert complete
    assert sorted(off for off, _v in _routed(cluster, keys)) == [0, 3]  # JP is still in no jurisdiction
    done = processor.committed()
    assert done[("UNRESOLVED_JURISDICTION", QUARANTINED, "UNRESOLVED_JURISDICTION")] == 1
    (other,) = [k for k in done if k[1] == NOT_SELECTED]
    assert other[0] == next(r for r in reasons if r != "UNRESOLVED_JURISDICTION") and done[other] == 1
    assert len(cluster.outputs(QTOPIC)) == 4  # nothing new quarantined: only the router's four


def test_a_record_now_routed_out_of_its_quarantine_jurisdiction_needs_its_key_and_stays(
    cluster: FakeCluster, keys: Any
) -> None:
    _quarantine(cluster, keys, [_event(0, "CH")])
    complete, processor = _replay(cluster, keys, countries={"eu": ["EEA"], "us": ["US", "CH"]})
    assert complete
    assert cluster.outputs("crm.us.contact") == [] and _replay_records(cluster) == []
    assert processor.committed() == Counter({("UNRESOLVED_JURISDICTION", QUARANTINED, KEY_NOT_KEPT): 1})


def test_a_keyless_record_is_routed_out_of_its_quarantine_jurisdiction_as_run_would(
    cluster: FakeCluster, keys: Any
) -> None:
    _quarantine(cluster, keys, [_event(0, "CH")], key=None)
    complete, _ = _replay(cluster, keys, countries={"eu": ["EEA"], "us": ["US", "CH"]})
    assert complete
    (out,) = cluster.outputs("crm.us.contact")
    assert out.key is None
    _sealer, _eu, us_opener = keys
    opened = us_opener.open(out.value, out.headers, topic="crm.us.contact", partition=out.partition,
                            expected_jurisdiction="us")
    assert opened.plaintext == _event(0, "CH")


def test_records_of_a_trusted_ingress_topic_are_not_replayed_without_their_headers(
    cluster: FakeCluster, keys: Any
) -> None:
    _quarantine(cluster, keys, [_event(0, "CH")])
    complete, processor = _replay(cluster, keys, trusted=True)
    assert complete and _routed(cluster, keys) == []
    assert processor.committed() == Counter({("UNRESOLVED_JURISDICTION", QUARANTINED, HEADERS_NOT_KEPT): 1})


def test_a_dry_run_decides_every_record_and_writes_nothing(
    cluster: FakeCluster, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = [_event(i, "CH" if i % 3 else "JP") for i in range(9)]
    _quarantine(cluster, keys, values)
    before = list(cluster.committed)
    logs = {p: log for (t, p), log in cluster.logs.items() if t == QTOPIC}

    def batches(_config: Any, _topic: str, starts: Mapping[int, int], ends: Mapping[int, int],
                _size: int) -> Iterator[list[Any]]:
        for p, log in logs.items():
            yield log[starts[p]:ends[p]]

    monkeypatch.setattr(replay_mod, "_read_to_ends", batches)
    processor = _processor(cluster, keys)
    run_dry(processor, {}, QTOPIC, starts=dict.fromkeys(logs, 0), ends=_ends(cluster), batch_size=5)

    assert cluster.committed == before and cluster.txn_count == len(before)  # no transaction, no output
    summary = ReplaySummary(QTOPIC, "eu", "v1", True, True, _ends(cluster), {}, processor.committed())
    d = summary.to_json()
    assert d["replayed_by_destination"] == {"crm.eu.contact": 6}
    assert d["still_quarantined"] == {"UNRESOLVED_JURISDICTION": 3}
    assert any("would be replayed" in line for line in summary.lines())


def test_on_assign_reads_each_replay_chain_once_per_audit_partition(cluster: FakeCluster, keys: Any) -> None:
    processor = _processor(cluster, keys)
    reader = processor._chains
    assert isinstance(reader, ChainsFromFake)
    processor.on_assign([TopicPartition(QTOPIC, p) for p in range(3)])
    placed = {replay_mod.chain_partition(QTOPIC, p, 3) for p in range(3)}
    assert reader.reads == len(placed)


def test_readers_replay_check_accepts_replayed_records_after_newer_ones_of_their_ingress_partition(
    cluster: FakeCluster, keys: Any
) -> None:
    """The router routes events of ingress offsets 6..11 before the older quarantined 0..5 are
    replayed into the same topic, sealed with their original source positions: a reader's default
    ReplayGuard (one record per source position) accepts every record of every partition, in log
    order; none is a duplicate of another."""
    from router.envelope.replay import ReplayGuard

    values = [_event(i, "CH" if i < 6 else "DE") for i in range(12)]
    _quarantine(cluster, keys, values)
    assert sorted(off for off, _v in _routed_by_router(cluster, keys)) == list(range(6, 12))
    assert _replay(cluster, keys)[0]

    _sealer, eu_opener, _us = keys
    guard = ReplayGuard()
    offsets: dict[int, int] = {}
    accepted = 0
    for o in cluster.outputs("crm.eu.contact"):
        offset = offsets.get(o.partition, 0)
        offsets[o.partition] = offset + 1
        opened = eu_opener.open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction="eu")
        assert opened.replay_protected
        guard.check(o.topic, o.partition, offset, opened)  # raises Replayed when refused
        accepted += 1
    assert accepted == 12


def _routed_by_router(cluster: FakeCluster, keys: Any) -> list[tuple[int, bytes]]:
    _sealer, eu_opener, _us = keys
    out = []
    for o in cluster.outputs("crm.eu.contact"):
        opened = eu_opener.open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction="eu")
        if opened.ctx.source_topic == INGRESS:
            out.append((opened.ctx.source_offset, opened.plaintext))
    return out
