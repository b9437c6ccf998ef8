"""PlacementWatch: cheap verdicts, re-checks on an interval, fail closed when checks stop working."""

from __future__ import annotations

from typing import Any

import pytest

from router.placement.kafka import PlacementWatch
from router.placement.model import ClusterSnapshot, PlacementUnavailableError

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
        self.down = False
        self.calls = 0

    def __call__(self, admin: Any, topics: Any, **_: Any) -> ClusterSnapshot:
        self.calls += 1
        if self.down:
            raise PlacementUnavailableError("cluster unreachable")
        return ClusterSnapshot(BROKERS, {t: self.topics[t] for t in topics if t in self.topics}, self.clock())


def make_watch() -> tuple[PlacementWatch, FakeCluster, Clock]:
    clock = Clock()
    cluster = FakeCluster(clock)
    watch = PlacementWatch(None, {"crm.eu.contact": "eu"}, j_of_rack, recheck_interval_s=5,
                           max_verdict_age_s=30, clock=clock, snapshot_fn=cluster)
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
