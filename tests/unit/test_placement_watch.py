"""PlacementWatch: cheap verdicts, re-checks on an interval, fail closed when checks stop working."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.errors import ConfigError
from router.placement.kafka import PlacementWatch, snapshot
from router.placement.model import ClusterSnapshot, PlacementUnavailableError
from tests.unit.fake_kafka import done

pytestmark = pytest.mark.unit

BROKERS: dict[int, str | None] = {1: "eu-west-1a", 2: "eu-central-1a", 3: "us-east-1a"}


def j_of_rack(rack: str | None) -> str | None:
    return rack.split("-")[0] if rack else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCluster:
    """Stands in for :func:`router.placement.kafka.snapshot`; set ``down`` to make it fail."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.topics: dict[str, dict[int, tuple[int, ...]]] = {"crm.eu.contact": {0: (1, 2)}}
        self.brokers: dict[int, str | None] = dict(BROKERS)
        """The brokers describe_cluster lists (a killed broker drops out)."""
        self.down = False
        self.calls = 0
        self.admins: list[Any] = []

    def __call__(self, admin: Any, topics: Any, **_: Any) -> ClusterSnapshot:
        self.calls += 1
        self.admins.append(admin)
        if self.down:
            raise PlacementUnavailableError("cluster unreachable")
        return ClusterSnapshot(dict(self.brokers), {t: self.topics[t] for t in topics if t in self.topics},
                               self.clock())


def make_watch(**kwargs: Any) -> tuple[PlacementWatch, FakeCluster, Clock]:
    clock = Clock()
    cluster = FakeCluster(clock)
    watch = PlacementWatch(None, {"crm.eu.contact": "eu"}, j_of_rack, recheck_interval_s=5,
                           max_verdict_age_s=30, clock=clock, snapshot_fn=cluster, **kwargs)
    return watch, cluster, clock


def test_nothing_is_permitted_before_the_first_check() -> None:
    watch, _, _ = make_watch()
    assert not watch.permitted("crm.eu.contact", "eu")
    assert watch.reason == "no placement check has succeeded yet"


def test_first_check_permits_a_topic_placed_in_its_jurisdiction() -> None:
    watch, _, _ = make_watch()
    assert watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    assert not watch.permitted("crm.eu.contact", "us")
    assert watch.why_not("crm.eu.contact", "eu") is None


def test_checks_run_only_once_per_interval() -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    clock.now += 4.9
    assert not watch.maybe_refresh()
    clock.now += 0.1
    assert watch.maybe_refresh()
    assert cluster.calls == 2


def test_a_replica_moved_abroad_is_not_permitted_after_the_next_check() -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    cluster.topics["crm.eu.contact"] = {0: (1, 2, 3)}  # reassignment adding broker 3
    clock.now += 5
    watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    why = watch.why_not("crm.eu.contact", "eu")
    assert why is not None
    assert "partition 0" in why
    assert "broker 3" in why


def test_failed_checks_keep_the_verdict_until_it_expires_then_fail_closed() -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    cluster.down = True
    clock.now += 29
    watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    clock.now += 1.5
    assert not watch.permitted("crm.eu.contact", "eu")
    assert watch.expired
    assert watch.reason is not None
    assert "max_verdict_age_s=30" in watch.reason
    assert "cluster unreachable" in watch.reason


def test_a_successful_check_after_an_outage_permits_again() -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    cluster.down = True
    clock.now += 40
    watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    cluster.down = False
    clock.now += 5
    watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    assert watch.reason is None


def test_a_broker_seen_before_and_now_down_counts_in_its_last_rack(caplog: pytest.LogCaptureFixture) -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    del cluster.brokers[2]  # SIGKILLed: describe_cluster no longer lists it
    with caplog.at_level(logging.INFO, logger="router.placement.kafka"):
        for _ in range(3):
            clock.now += 5
            watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    assert watch.offline_brokers == {2: "eu-central-1a"}
    report = watch.report
    assert report is not None
    assert "broker 2 offline (last seen in rack eu-central-1a)" in report.topics["crm.eu.contact"].describe()
    offline_lines = [r for r in caplog.records if "offline" in r.getMessage()]
    assert len(offline_lines) == 1, "logged once per change, not once per check"
    assert offline_lines[0].levelno == logging.WARNING


def test_a_broker_never_seen_is_unknown_and_not_permitted() -> None:
    watch, cluster, _ = make_watch()
    cluster.topics["crm.eu.contact"] = {0: (1, 7)}  # broker 7 never listed by any check
    watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    why = watch.why_not("crm.eu.contact", "eu")
    assert why is not None
    assert "broker 7 (not registered with the cluster" in why


def test_a_broker_down_at_the_first_check_is_unknown_unless_known_racks_seeds_it() -> None:
    watch, cluster, _ = make_watch()
    del cluster.brokers[2]
    watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    seeded, cluster, _ = make_watch(known_racks={2: "eu-central-1a"})
    del cluster.brokers[2]
    seeded.maybe_refresh()
    assert seeded.permitted("crm.eu.contact", "eu")


def test_a_broker_that_returns_with_a_rack_abroad_is_a_violation_at_the_next_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, cluster, clock = make_watch()
    watch.maybe_refresh()
    del cluster.brokers[2]
    clock.now += 5
    watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    cluster.brokers[2] = "us-east-1b"  # restarted with another broker.rack
    clock.now += 5
    with caplog.at_level(logging.INFO, logger="router.placement.kafka"):
        watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    why = watch.why_not("crm.eu.contact", "eu")
    assert why is not None
    assert "broker 2 (rack us-east-1b, jurisdiction us)" in why
    assert watch.offline_brokers == {}
    assert any("broker 2 back online" in r.getMessage() for r in caplog.records)
    # and it stays a violation once gone again: the memory now holds the us rack
    del cluster.brokers[2]
    clock.now += 5
    watch.maybe_refresh()
    assert not watch.permitted("crm.eu.contact", "eu")
    assert watch.offline_brokers == {2: "us-east-1b"}


def test_consecutive_failed_checks_recreate_the_admin_client() -> None:
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    watch, cluster, clock = make_watch(admin_factory=factory, recreate_admin_after=3)
    cluster.down = True
    for _ in range(2):
        watch.maybe_refresh()
        clock.now += 5
    assert made == []
    watch.maybe_refresh()
    clock.now += 5
    assert len(made) == 1
    cluster.down = False
    watch.maybe_refresh()
    assert cluster.admins[-1] is made[0], "the next check uses the new client"
    assert watch.permitted("crm.eu.contact", "eu")


def test_a_failing_admin_factory_keeps_the_old_client() -> None:
    def factory() -> object:
        raise ConfigError("clusters.default is missing")

    watch, cluster, clock = make_watch(admin_factory=factory, recreate_admin_after=1)
    cluster.down = True
    watch.maybe_refresh()
    clock.now += 5
    cluster.down = False
    watch.maybe_refresh()
    assert cluster.admins == [None, None]
    assert watch.permitted("crm.eu.contact", "eu")


# -- snapshot() against a fake AdminClient whose "controller" can die ------------------------

class Node:
    def __init__(self, id: int, rack: str | None) -> None:
        self.id = id
        self.rack = rack


def _timed_out() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out waiting for controller"))


class FakeAdmin:
    """librdkafka's behaviour as read in its source: describe_cluster and describe_topics go to
    the broker the client last learned as controller and time out while that broker is down;
    list_topics goes to any live broker and its response names a live controller."""

    def __init__(self) -> None:
        self.live: dict[int, str | None] = dict(BROKERS)
        self.topics: dict[str, dict[int, tuple[int, ...]]] = {"crm.eu.contact": {0: (1, 2)}}
        self.controller = 1
        self.learns_from_metadata = True
        self.calls: list[str] = []

    def _controller_up(self) -> bool:
        return self.controller in self.live

    def describe_cluster(self, request_timeout: float) -> Future[Any]:
        self.calls.append("describe_cluster")
        if not self._controller_up():
            return done(error=_timed_out())
        return done(SimpleNamespace(nodes=[Node(b, r) for b, r in self.live.items()]))

    def describe_topics(self, topics: Any, request_timeout: float) -> dict[str, Future[Any]]:
        self.calls.append("describe_topics")
        out: dict[str, Future[Any]] = {}
        for name in topics.topic_names:
            if not self._controller_up():
                out[name] = done(error=_timed_out())
            elif name not in self.topics:
                out[name] = done(error=KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            else:
                parts = [SimpleNamespace(id=p, replicas=[Node(b, None) for b in r])
                         for p, r in self.topics[name].items()]
                out[name] = done(SimpleNamespace(partitions=parts))
        return out

    def list_topics(self, timeout: float) -> Any:
        self.calls.append("list_topics")
        if not self.live:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        if self.learns_from_metadata:
            self.controller = min(self.live)
        return SimpleNamespace(brokers=dict.fromkeys(self.live), topics={})


def test_snapshot_reads_racks_and_replicas() -> None:
    admin = FakeAdmin()
    snap = snapshot(admin, ["crm.eu.contact", "absent"], timeout=1.0, clock=lambda: 7.0)
    assert snap.brokers == BROKERS
    assert snap.topics == {"crm.eu.contact": {0: (1, 2)}}
    assert admin.calls == ["describe_cluster", "describe_topics"]


def test_snapshot_recovers_from_a_dead_controller_through_any_live_broker() -> None:
    admin = FakeAdmin()
    del admin.live[1]  # the broker the client takes for the controller is killed
    snap = snapshot(admin, ["crm.eu.contact"], timeout=1.0, clock=lambda: 7.0)
    assert snap.brokers == {2: "eu-central-1a", 3: "us-east-1a"}
    assert snap.topics == {"crm.eu.contact": {0: (1, 2)}}
    assert admin.calls == ["describe_cluster", "list_topics", "describe_cluster", "describe_topics"]


def test_snapshot_still_timing_out_after_the_metadata_refresh_is_unavailable() -> None:
    admin = FakeAdmin()
    admin.learns_from_metadata = False
    del admin.live[1]
    with pytest.raises(PlacementUnavailableError, match="Timed out waiting for controller"):
        snapshot(admin, ["crm.eu.contact"], timeout=1.0)
    assert admin.calls == ["describe_cluster", "list_topics", "describe_cluster"]


def test_snapshot_with_no_broker_up_is_unavailable() -> None:
    admin = FakeAdmin()
    admin.live.clear()
    with pytest.raises(PlacementUnavailableError):
        snapshot(admin, ["crm.eu.contact"], timeout=1.0)


def test_watch_through_a_killed_controller_and_a_stuck_client_keeps_permitting() -> None:
    """The fault on the real cluster, with fakes: the controller broker (an eu broker hosting the
    topic) dies; the client first stays stuck, then a recreated client reads the cluster."""
    clock = Clock()
    stuck = FakeAdmin()
    stuck.learns_from_metadata = False
    fresh = FakeAdmin()
    watch = PlacementWatch(stuck, {"crm.eu.contact": "eu"}, j_of_rack, recheck_interval_s=1,
                           max_verdict_age_s=10, clock=clock, admin_factory=lambda: fresh,
                           recreate_admin_after=2)
    watch.maybe_refresh()
    assert watch.permitted("crm.eu.contact", "eu")
    for admin in (stuck, fresh):
        del admin.live[1]
        admin.controller = 1
    for _ in range(3):
        clock.now += 1
        watch.maybe_refresh()
    assert "describe_cluster" in fresh.calls
    assert watch.permitted("crm.eu.contact", "eu"), watch.why_not("crm.eu.contact", "eu")
    assert watch.offline_brokers == {1: "eu-west-1a"}
    assert watch.why_not("crm.eu.contact", "us") is not None
