"""Placement core: verdicts from hand-built snapshots, replica plans, the placement config."""

from __future__ import annotations

import pytest

from router.config.loader import parse_config
from router.placement.model import (
    ClusterSnapshot,
    PlacementError,
    Verdict,
    Violation,
    plan_assignment,
    verify,
)

pytestmark = pytest.mark.unit

BROKERS: dict[int, str | None] = {1: "eu-west-1a", 2: "eu-central-1a", 3: "us-east-1a"}


def j_of_rack(rack: str | None) -> str | None:
    if not rack:
        return None
    return {"eu": "eu", "us": "us"}.get(rack.split("-")[0])


def snap(topics: dict[str, dict[int, tuple[int, ...]]], brokers: dict[int, str | None] = BROKERS) -> ClusterSnapshot:
    return ClusterSnapshot(brokers, topics, taken_at=100.0)


def test_topic_with_every_replica_on_eu_brokers_is_ok_and_permitted_only_for_eu() -> None:
    report = verify(snap({"crm.eu.contact": {0: (1, 2), 1: (2, 1)}}), {"crm.eu.contact": "eu"}, j_of_rack)
    assert report.ok
    assert report.topics["crm.eu.contact"].verdict is Verdict.OK
    assert report.permitted("crm.eu.contact", "eu")
    assert not report.permitted("crm.eu.contact", "us")


def test_one_replica_on_a_us_broker_is_a_violation_naming_partition_and_broker() -> None:
    report = verify(snap({"crm.eu.contact": {0: (1, 2), 1: (2, 3)}}), {"crm.eu.contact": "eu"}, j_of_rack)
    t = report.topics["crm.eu.contact"]
    assert t.verdict is Verdict.VIOLATION
    assert t.violations == (Violation(partition=1, broker=3, rack="us-east-1a", jurisdiction="us"),)
    assert not report.permitted("crm.eu.contact", "eu")
    text = report.message()
    assert "crm.eu.contact" in text
    assert "partition 1" in text
    assert "broker 3" in text
    assert "us-east-1a" in text


def test_broker_without_rack_belongs_to_no_jurisdiction() -> None:
    report = verify(snap({"t": {0: (1, 4)}}, {**BROKERS, 4: None}), {"t": "eu"}, j_of_rack)
    (v,) = report.topics["t"].violations
    assert (v.partition, v.broker, v.rack, v.jurisdiction, v.broker_known) == (0, 4, None, None, True)
    assert "no rack" in report.message()


def test_replica_on_a_broker_absent_from_the_cluster_is_a_violation() -> None:
    report = verify(snap({"t": {0: (1, 9)}}), {"t": "eu"}, j_of_rack)
    (v,) = report.topics["t"].violations
    assert (v.broker, v.broker_known, v.jurisdiction) == (9, False, None)
    assert "broker 9" in report.message()
    assert not report.permitted("t", "eu")


def test_replica_on_an_offline_broker_counts_in_its_last_known_rack() -> None:
    live = {1: "eu-west-1a", 3: "us-east-1a"}
    report = verify(ClusterSnapshot(live, {"t": {0: (1, 2)}}, 100.0, offline={2: "eu-central-1a"}),
                    {"t": "eu"}, j_of_rack)
    t = report.topics["t"]
    assert t.verdict is Verdict.OK
    assert report.permitted("t", "eu")
    assert report.offline == {2: "eu-central-1a"}
    assert "broker 2 offline (last seen in rack eu-central-1a)" in t.describe()


def test_offline_broker_last_seen_abroad_is_a_violation_marked_offline() -> None:
    live = {1: "eu-west-1a"}
    report = verify(ClusterSnapshot(live, {"t": {0: (1, 3)}}, 100.0, offline={3: "us-east-1a"}),
                    {"t": "eu"}, j_of_rack)
    (v,) = report.topics["t"].violations
    assert (v.broker, v.rack, v.jurisdiction, v.broker_known, v.offline) == (3, "us-east-1a", "us", True, True)
    assert "broker 3 (offline, last seen in rack us-east-1a, jurisdiction us)" in report.message()


def test_a_listed_broker_is_never_offline_its_live_rack_decides() -> None:
    # broker 2 is listed again with a us rack: the stale eu memory must not count
    brokers = {1: "eu-west-1a", 2: "us-east-1b"}
    report = verify(ClusterSnapshot(brokers, {"t": {0: (1, 2)}}, 100.0, offline={2: "eu-central-1a"}),
                    {"t": "eu"}, j_of_rack)
    (v,) = report.topics["t"].violations
    assert (v.broker, v.rack, v.jurisdiction, v.offline) == (2, "us-east-1b", "us", False)
    assert report.offline == {}


def test_unregistered_broker_message_says_what_to_do() -> None:
    text = verify(snap({"t": {0: (1, 9)}}), {"t": "eu"}, j_of_rack).message()
    assert "broker 9 (not registered with the cluster" in text
    assert "Start the broker" in text


def test_missing_topic_is_reported_and_not_permitted() -> None:
    report = verify(snap({}), {"crm.eu.lead": "eu"}, j_of_rack)
    assert report.topics["crm.eu.lead"].verdict is Verdict.MISSING
    assert not report.ok
    assert not report.permitted("crm.eu.lead", "eu")
    assert "topics create" in report.message()


def test_topic_not_among_the_requirements_is_never_permitted() -> None:
    report = verify(snap({"other": {0: (1,)}}), {}, j_of_rack)
    assert not report.permitted("other", "eu")


def test_placement_error_lists_every_violation_with_a_fix() -> None:
    report = verify(snap({"a": {0: (3,)}, "b": {0: (1,), 1: (3, 1)}}), {"a": "eu", "b": "eu"}, j_of_rack)
    text = str(PlacementError.from_report(report))
    assert "reassign partition 0 of a off broker 3" in text
    assert "reassign partition 1 of b off broker 3" in text
    assert "residency-router topics create" in text


def test_plan_assignment_spreads_leaders_and_replicas_over_the_given_brokers() -> None:
    plan = plan_assignment([5, 1, 3], partitions=6, rf=2)
    assert plan == [[1, 3], [3, 5], [5, 1], [1, 3], [3, 5], [5, 1]]
    assert {p[0] for p in plan} == {1, 3, 5}
    assert all(len(set(p)) == 2 and set(p) <= {1, 3, 5} for p in plan)


def test_plan_assignment_refuses_a_replication_factor_above_the_broker_count() -> None:
    with pytest.raises(ValueError, match="needs 3 brokers, only 2"):
        plan_assignment([1, 2], partitions=1, rf=3)


BASE = {"clusters": {"default": {"bootstrap": "k:9092"}}, "jurisdictions": {"eu": {"racks": ["eu-*"]}}}


def test_placement_config_defaults() -> None:
    p = parse_config(BASE).placement
    assert (p.recheck_interval_s, p.max_verdict_age_s, p.on_violation) == (5.0, 30.0, "quarantine")


def test_placement_config_rejects_a_max_age_shorter_than_the_interval() -> None:
    from router.errors import ConfigError

    with pytest.raises(ConfigError, match="max_verdict_age_s"):
        parse_config({**BASE, "placement": {"recheck_interval_s": 10, "max_verdict_age_s": 5}})


def test_placement_config_rejects_an_unknown_violation_policy() -> None:
    from router.errors import ConfigError

    with pytest.raises(ConfigError, match="on_violation"):
        parse_config({**BASE, "placement": {"on_violation": "ignore"}})
