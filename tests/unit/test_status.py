"""``residency-router status`` collection over fake Admin and consumer clients: the numbers it
reports (offset rates and totals, lag, group members, placement verdicts, quarantine counts, key
health) against the ground truth each test sets up, and that a failing source stays in its section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.keys.config import OpenBaoProviderConfig
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyring
from router.ops.model import OffsetSample, TopicRoles, offset_rate
from router.ops.status import (
    ClusterUnreachableError,
    KeyProbe,
    QuarantineCounter,
    StatusCollector,
    single_attempt_builder,
)
from router.quarantine.record import QuarantineRecord, encode_quarantine
from tests.unit.fake_status_kafka import FakeAdmin, FakeGroup, FakeLog, config_doc, in_place_cluster, kafka_error

pytestmark = pytest.mark.unit

T0 = 1_700_000_000_000
@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    LocalKeyring.create(path, ["eu", "us"])
    return path


@pytest.fixture
def config(keyring: Path, tmp_path: Path) -> RouterConfig:
    return parse_config(config_doc(keyring), str(tmp_path / "router.yaml"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def collector(config: RouterConfig, admin: FakeAdmin, log: FakeLog | None = None, *, clock: Clock | None = None,
              keys: KeyProbe | None = None, since_ms: int | None = None) -> StatusCollector:
    log = log or FakeLog()
    roles = TopicRoles.from_config(config)
    counter = QuarantineCounter(roles.quarantine, log.reader, since_ms=since_ms, budget_s=5.0)
    return StatusCollector(config, admin=admin, quarantine=counter, keys=keys or KeyProbe(config.keys),
                           bootstrap="127.0.0.1:9092", timeout=2.0, clock=clock or Clock(), now_ms=lambda: T0)


def q_record(reason: str, *, at: int = T0) -> bytes:
    return encode_quarantine(QuarantineRecord(
        reason=reason, detail="d", classification_level="restricted", categories=("PII",), field_names=("Email",),
        jurisdictions=("eu",), source_topic="crm.ingress", source_partition=0, source_offset=1,
        source_timestamp_ms=at, event_id=None, payload_sha256="hmac-sha256:eu:" + "cd" * 32, router_version="0",
        policy_version="p1", trace_id=None, quarantined_at_ms=at, sealed_payload=b"sealed", envelope_headers=()))


# -- roles and rates ---------------------------------------------------------------------------------


def test_topic_roles_follow_the_config(config: RouterConfig) -> None:
    roles = TopicRoles.from_config(config)
    assert dict(roles.routed) == {"crm.eu.contact": "eu", "crm.eu.account": "eu", "crm.us.contact": "us"}
    assert dict(roles.quarantine) == {"eu": "quarantine.eu", "us": "quarantine.us"}
    assert dict(roles.ingress) == {"crm.ingress": "eu", "us.ingress": "us"}
    assert roles.audit == "audit"
    assert "audit" not in roles.topics()


def test_rates_are_end_offset_deltas_per_second_per_jurisdiction(config: RouterConfig) -> None:
    admin, clock = in_place_cluster(), Clock()
    for p, end in enumerate((10, 20, 30)):
        admin.high[("crm.eu.contact", p)] = end
    admin.high[("quarantine.eu", 1)] = 4
    c = collector(config, admin, clock=clock)
    c.sample()
    # 4 s later: eu routed +60 (contact) +20 (account), quarantine.eu +8, us routed +12, quarantine.us unchanged
    clock.now += 4.0
    admin.high[("crm.eu.contact", 0)] += 60
    admin.high[("crm.eu.account", 2)] += 20
    admin.high[("quarantine.eu", 1)] += 8
    admin.high[("crm.us.contact", 0)] += 12
    admin.high[("crm.ingress", 0)] += 1000  # ingress offsets are neither routed nor quarantined
    status = c.collect()
    rows = {r.jurisdiction: r for r in status.jurisdictions}
    assert status.sample_s == 4.0
    assert rows["eu"].routed_per_s == 20.0
    assert rows["eu"].quarantined_per_s == 2.0
    assert rows["us"].routed_per_s == 3.0
    assert rows["us"].quarantined_per_s == 0.0
    assert rows["eu"].routed_offsets == 10 + 20 + 30 + 60 + 20
    assert rows["eu"].quarantined_offsets == 12
    assert rows["us"].routed_offsets == 12
    assert rows["eu"].routed_topics == 2


def test_first_status_without_a_sample_has_totals_and_no_rates(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.high[("crm.us.contact", 0)] = 7
    status = collector(config, admin).collect()
    us = next(r for r in status.jurisdictions if r.jurisdiction == "us")
    assert status.sample_s is None
    assert us.routed_per_s is None
    assert us.routed_offsets == 7


def test_an_end_offset_that_went_down_counts_as_no_progress() -> None:
    before = OffsetSample(0.0, {("t", 0): 50, ("t", 1): 5})
    after = OffsetSample(2.0, {("t", 0): 3, ("t", 1): 9, ("t", 2): 100})  # t[0] recreated, t[2] new
    assert offset_rate(before, after, ["t"]) == 2.0


# -- lag and group ---------------------------------------------------------------------------------


def test_lag_per_partition_and_per_ingress_jurisdiction(config: RouterConfig) -> None:
    admin = in_place_cluster()
    for p, end in enumerate((100, 50, 70)):
        admin.high[("crm.ingress", p)] = end
    admin.low[("crm.ingress", 2)] = 40  # retention removed offsets 0..39 of partition 2
    admin.high[("us.ingress", 0)] = 9
    admin.committed["router-g"] = {("crm.ingress", 0): 100, ("crm.ingress", 1): 45, ("us.ingress", 0): 2}
    status = collector(config, admin).collect()
    by_tp = {(r.topic, r.partition): r for r in status.lag.rows}
    assert by_tp[("crm.ingress", 0)].lag == 0
    assert by_tp[("crm.ingress", 1)].lag == 5
    assert by_tp[("crm.ingress", 2)].committed is None
    assert by_tp[("crm.ingress", 2)].lag == 30  # nothing committed: the router starts at the earliest offset
    assert by_tp[("us.ingress", 0)].lag == 7
    assert status.lag.total == 42
    rows = {r.jurisdiction: r for r in status.jurisdictions}
    assert rows["eu"].lag == 35
    assert rows["us"].lag == 7


def test_group_members_state_and_assignment(config: RouterConfig) -> None:
    status = collector(config, in_place_cluster()).collect()
    g = status.group
    assert g.group == "router-g"
    assert g.state == "stable"
    assert g.coordinator == 1
    assert [(m.client_id, m.host, m.partitions) for m in g.members] == [
        ("router-g-a", "/10.0.0.1", (("crm.ingress", 0), ("crm.ingress", 1), ("us.ingress", 0))),
        ("router-g-b", "/10.0.0.2", (("crm.ingress", 2),)),
    ]


def test_a_group_without_members_is_reported_empty(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.groups["router-g"] = FakeGroup(state="EMPTY")
    g = collector(config, admin).collect().group
    assert g.state == "empty"
    assert g.members == ()
    assert g.error is None


# -- placement -------------------------------------------------------------------------------------


def test_placement_ok_for_every_topic_in_place(config: RouterConfig) -> None:
    status = collector(config, in_place_cluster()).collect()
    assert status.placement.ok
    assert {r.topic for r in status.placement.rows} == {t.name for t in config.topics} | {"us.ingress"}


def test_a_replica_abroad_is_a_violation_naming_broker_and_rack(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.replicas["crm.eu.contact"][1] = [1, 3]
    status = collector(config, admin).collect()
    bad = [r for r in status.placement.rows if r.verdict != "ok"]
    assert [(r.topic, r.verdict) for r in bad] == [("crm.eu.contact", "violation")]
    assert "partition 1 has a replica on broker 3 (rack us-east-1a, jurisdiction us)" in bad[0].detail
    assert not status.placement.ok
    assert status.placement.problems_of("eu") == 1
    assert status.placement.problems_of("us") == 0
    assert not status.healthy


def test_a_missing_topic_is_reported_missing(config: RouterConfig) -> None:
    admin = in_place_cluster()
    del admin.partitions["crm.us.contact"], admin.replicas["crm.us.contact"]
    status = collector(config, admin).collect()
    verdicts = {r.topic: r.verdict for r in status.placement.rows}
    assert verdicts["crm.us.contact"] == "missing"
    us = next(r for r in status.jurisdictions if r.jurisdiction == "us")
    assert us.missing_topics == ("crm.us.contact",)


# -- errors stay in their section --------------------------------------------------------------------


def test_an_unreachable_cluster_names_the_bootstrap_setting_and_the_timeout(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.failures["list_topics"] = kafka_error()
    c = collector(config, admin)
    with pytest.raises(ClusterUnreachableError) as caught:
        c.sample()
    msg = str(caught.value)
    assert "127.0.0.1:9092" in msg
    assert "clusters.default.bootstrap" in msg
    assert "within 2 s (--timeout)" in msg
    assert "Broker transport failure" in msg
    status = c.collect()
    assert status.error is not None
    assert "clusters.default.bootstrap" in status.error
    assert status.keys.ok, "key health does not depend on the cluster"
    assert not status.healthy


def test_a_failing_group_description_leaves_the_other_sections(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.failures["describe_consumer_groups"] = kafka_error(KafkaError.COORDINATOR_NOT_AVAILABLE,
                                                             "Broker: Coordinator not available")
    status = collector(config, admin).collect()
    assert status.group.error is not None
    assert "router-g" in status.group.error
    assert "Coordinator not available" in status.group.error
    assert status.error is None
    assert status.placement.ok
    assert status.lag.error is None
    assert len(status.jurisdictions) == 2


def test_failing_committed_offsets_leave_lag_unknown_and_the_rest_shown(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.failures["list_consumer_group_offsets"] = kafka_error()
    status = collector(config, admin).collect()
    assert status.lag.error is not None
    assert status.lag.total is None
    assert all(r.lag is None for r in status.jurisdictions)
    assert status.group.error is None
    assert status.placement.ok


def test_failing_placement_reads_are_the_placement_sections_error(config: RouterConfig) -> None:
    admin = in_place_cluster()
    admin.failures["describe_cluster"] = kafka_error()
    status = collector(config, admin).collect()
    assert status.placement.error is not None
    assert "clusters.default.bootstrap" in status.placement.error
    assert not status.placement.ok
    assert status.group.error is None


# -- key providers ---------------------------------------------------------------------------------


class _DownProvider:
    name = "openbao"

    def digest_key(self, key_id: str) -> bytes:
        raise KeyUnavailable("OpenBao at https://bao.example:8200 is unreachable or slow (ConnectionError)",
                             retriable=True, key_id=key_id)


def test_key_probe_times_one_digest_key_call_per_jurisdiction(config: RouterConfig) -> None:
    ticks = iter([0.0, 0.004, 1.0, 1.25])
    probe = KeyProbe(config.keys, clock=lambda: next(ticks))
    view = probe.check()
    assert [(k.jurisdiction, k.provider, k.key_id, k.ok) for k in view.rows] == [
        ("eu", "dev", "eu", True), ("us", "dev", "us", True)]
    assert [k.latency_ms for k in view.rows] == pytest.approx([4.0, 250.0])
    assert view.ok


def test_a_provider_that_is_down_is_its_rows_error(keyring: Path, tmp_path: Path) -> None:
    doc = config_doc(keyring)
    doc["keys"]["providers"]["bao"] = {"type": "openbao", "url": "https://bao.example:8200", "token": "t"}
    doc["keys"]["jurisdictions"]["us"] = {"provider": "bao"}
    config = parse_config(doc, str(tmp_path / "router.yaml"))
    assert config.keys is not None
    real = single_attempt_builder(config.keys)

    def build(cfg: Any) -> Any:
        return _DownProvider() if isinstance(cfg, OpenBaoProviderConfig) else real(cfg)

    view = KeyProbe(config.keys, build=build).check()
    rows = {k.jurisdiction: k for k in view.rows}
    assert rows["eu"].ok
    assert (rows["us"].provider, rows["us"].ok) == ("bao", False)
    assert rows["us"].error is not None
    assert "KEY_UNAVAILABLE key 'us' (retriable)" in rows["us"].error
    assert "unreachable" in rows["us"].error
    assert not view.ok


def test_a_provider_that_cannot_be_built_is_an_error_row_and_is_retried(config: RouterConfig) -> None:
    attempts: list[int] = []

    def build(_cfg: Any) -> Any:
        attempts.append(1)
        raise FileNotFoundError("keyring.json")

    probe = KeyProbe(config.keys, build=build)
    first = probe.check()
    assert not first.ok
    assert all("FileNotFoundError" in (k.error or "") for k in first.rows)
    probe.check()
    assert len(attempts) == 4, "each check tries to build the provider again"


# -- quarantine counts -----------------------------------------------------------------------------


def _quarantine_cluster(log: FakeLog) -> FakeAdmin:
    admin = in_place_cluster()
    for (topic, p), end in log.end.items():
        admin.high[(topic, p)] = end
    return admin


def test_quarantine_counts_by_reason_are_read_committed_and_incremental(config: RouterConfig) -> None:
    log = FakeLog()
    log.append("quarantine.eu", 0, [q_record("UNRESOLVED_JURISDICTION")] * 3)
    log.append("quarantine.eu", 1, [q_record("GAP_EVENT"), q_record("UNRESOLVED_JURISDICTION")])
    log.append("quarantine.us", 0, [q_record("POLICY_DENIED")])
    admin = _quarantine_cluster(log)
    c = collector(config, admin, log)
    first = {v.jurisdiction: v for v in c.collect().quarantine}
    assert first["eu"].stats is not None
    assert first["eu"].stats.records == 5
    assert dict(first["eu"].stats.by_reason) == {"UNRESOLVED_JURISDICTION": 4, "GAP_EVENT": 1}
    assert first["eu"].behind == 0
    assert first["us"].stats is not None
    assert dict(first["us"].stats.by_reason) == {"POLICY_DENIED": 1}

    log.append("quarantine.eu", 0, [q_record("GAP_EVENT")] * 2)
    admin.high[("quarantine.eu", 0)] = log.end[("quarantine.eu", 0)]
    second = {v.jurisdiction: v for v in c.collect().quarantine}
    assert second["eu"].stats is not None
    assert dict(second["eu"].stats.by_reason) == {"UNRESOLVED_JURISDICTION": 4, "GAP_EVENT": 3}
    assert len(log.served) == len(set(log.served)) == 3 + 2 + 1 + 2, "no record is read twice"
    assert len(log.consumers) == 1, "one consumer stays assigned between refreshes"


def test_quarantine_counts_since_a_time_leave_earlier_records_out(config: RouterConfig) -> None:
    since = T0 + 3_600_000
    log = FakeLog()
    log.append("quarantine.eu", 0, [q_record("GAP_EVENT", at=T0)], timestamp_ms=T0)
    log.append("quarantine.eu", 0, [q_record("SCAN_LIMIT", at=since - 60_000)], timestamp_ms=since - 60_000)
    log.append("quarantine.eu", 0, [q_record("POLICY_DENIED", at=since + 1)] * 2, timestamp_ms=since + 1)
    c = collector(config, _quarantine_cluster(log), log, since_ms=since)
    eu = next(v for v in c.collect().quarantine if v.jurisdiction == "eu")
    assert eu.stats is not None
    assert dict(eu.stats.by_reason) == {"POLICY_DENIED": 2}
    assert ("quarantine.eu", 0, 0) not in log.served, "the read seeks past records older than the window"


def test_quarantine_reading_stops_at_its_budget_and_goes_on_at_the_next_refresh(config: RouterConfig) -> None:
    log = FakeLog()
    log.append("quarantine.eu", 2, [q_record("GAP_EVENT")] * 4)
    admin = _quarantine_cluster(log)
    roles = TopicRoles.from_config(config)
    ticks = iter(float(t) for t in range(1000))

    def clock() -> float:
        return next(ticks)

    counter = QuarantineCounter(roles.quarantine, log.reader, budget_s=0.5, clock=clock)
    c = StatusCollector(config, admin=admin, quarantine=counter, keys=KeyProbe(config.keys),
                        bootstrap="127.0.0.1:9092", now_ms=lambda: T0)
    eu = next(v for v in c.collect().quarantine if v.jurisdiction == "eu")
    assert eu.stats is not None
    assert eu.stats.records == 0
    assert eu.behind == 5  # four records and the commit marker
    counter._budget_s = 100.0
    eu = next(v for v in c.collect().quarantine if v.jurisdiction == "eu")
    assert eu.stats is not None
    assert eu.stats.records == 4
    assert eu.behind == 0


def test_a_missing_quarantine_topic_is_its_rows_error(config: RouterConfig) -> None:
    admin = in_place_cluster()
    del admin.partitions["quarantine.us"]
    views = {v.jurisdiction: v for v in collector(config, admin).collect().quarantine}
    assert views["us"].error is not None
    assert "quarantine.us" in views["us"].error
    assert views["eu"].error is None


def test_a_quarantine_read_error_is_shown_and_the_next_refresh_starts_over(config: RouterConfig) -> None:
    log = FakeLog()
    log.append("quarantine.eu", 0, [q_record("GAP_EVENT")])
    admin = _quarantine_cluster(log)
    broken = {"on": True}

    def factory() -> Any:
        if broken["on"]:
            raise kafka_error()
        return log.reader()

    roles = TopicRoles.from_config(config)
    counter = QuarantineCounter(roles.quarantine, factory)
    c = StatusCollector(config, admin=admin, quarantine=counter, keys=KeyProbe(config.keys),
                        bootstrap="127.0.0.1:9092", now_ms=lambda: T0)
    status = c.collect()
    assert all(v.error is not None and "Broker transport failure" in v.error for v in status.quarantine)
    assert status.placement.ok
    broken["on"] = False
    eu = next(v for v in c.collect().quarantine if v.jurisdiction == "eu")
    assert eu.error is None
    assert eu.stats is not None
    assert eu.stats.records == 1


def test_an_open_transaction_ends_the_read_at_the_committed_end_without_waiting_for_the_budget(
        config: RouterConfig) -> None:
    log = FakeLog()
    log.append("quarantine.eu", 0, [q_record("GAP_EVENT")] * 2)
    admin = _quarantine_cluster(log)
    admin.high[("quarantine.eu", 0)] += 3  # three offsets of a transaction still open: past what is committed
    now = {"t": 0.0}

    def clock() -> float:
        now["t"] += 0.05
        return now["t"]

    roles = TopicRoles.from_config(config)
    counter = QuarantineCounter(roles.quarantine, log.reader, budget_s=60.0, clock=clock)
    eu = next(v for v in counter.refresh(c_sample(admin)) if v.jurisdiction == "eu")
    assert eu.stats is not None
    assert eu.stats.records == 2
    assert eu.behind == 3
    assert now["t"] < 60.0, "the read ended once the committed end was reached and nothing more came"


def c_sample(admin: FakeAdmin) -> OffsetSample:
    return OffsetSample(0.0, dict(admin.high), dict(admin.low))
