"""Placement against a real multi-rack cluster: verdicts, start-up check, drift watch, topics create."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.cli import main
from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.placement.kafka import PlacementWatch, check_startup, wait_for_topics
from router.placement.model import PlacementError

pytestmark = pytest.mark.integration

# confluent-kafka (Python) has no alter_partition_reassignments, and Kafka 4.x moved the
# kafka-reassign-partitions tool out of the broker jars the dev cluster caches; the Java Admin
# client in kafka-clients does have it, so a one-file Java program (run as source) starts the move.
REASSIGN_JAVA = """
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.TopicPartition;

public class Reassign {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        List<Integer> target = new ArrayList<>();
        for (String s : a[3].split(",")) target.add(Integer.parseInt(s));
        try (Admin admin = Admin.create(p)) {
            admin.alterPartitionReassignments(Map.of(new TopicPartition(a[1], Integer.parseInt(a[2])),
                Optional.of(new NewPartitionReassignment(target)))).all().get();
        }
    }
}
"""


def eu_and_us(kafka_cluster: Any) -> tuple[list[int], list[int]]:
    eu, us = kafka_cluster.brokers_in("eu-"), kafka_cluster.brokers_in("us-")
    if len(eu) < 2 or not us:
        pytest.skip("needs two brokers with an eu-* rack and one with a us-* rack")
    return eu, us


def config_for(kafka_cluster: Any, topics: dict[str, str], **extra: Any) -> RouterConfig:
    return parse_config({
        "clusters": {"default": {"bootstrap": kafka_cluster.bootstrap, "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [{"name": n, "jurisdiction": j} for n, j in topics.items()],
        **extra,
    })


@pytest.fixture
def placed_topic(kafka_admin: Any, create_topic: Any) -> Callable[..., str]:
    """``create_topic`` that returns once every broker's metadata shows the topic."""

    def make(prefix: str, *, assignment: list[list[int]]) -> str:
        topic: str = create_topic(prefix, assignment=assignment)
        snap = wait_for_topics(kafka_admin, [topic], timeout=15)
        assert topic in snap.topics, f"{topic} not visible in metadata after 15 s"
        return topic

    return make


@pytest.fixture
def reassign(kafka_cluster: Any, tmp_path: Path) -> Callable[[str, int, list[int]], None]:
    from router.devtools.devcluster.artifacts import java_binary, resolve
    from router.devtools.devcluster.errors import DevClusterError

    try:
        classpath = resolve(offline=True).classpath
        java = java_binary()
    except DevClusterError as err:
        pytest.skip(f"needs the cached Kafka jars and Java to reassign partitions: {err}")
    if shutil.which(java) is None and not Path(java).exists():
        pytest.skip("java not found")
    source = tmp_path / "Reassign.java"
    source.write_text(REASSIGN_JAVA, encoding="utf-8")

    def run(topic: str, partition: int, replicas: list[int]) -> None:
        subprocess.run(
            [java, "-cp", classpath, str(source), kafka_cluster.bootstrap, topic, str(partition),
             ",".join(map(str, replicas))],
            check=True, capture_output=True, text=True, timeout=120,
        )

    return run


def test_topic_on_eu_brokers_is_permitted_for_eu_and_not_for_us(
    kafka_cluster: Any, kafka_admin: Any, placed_topic: Any
) -> None:
    eu, _ = eu_and_us(kafka_cluster)
    topic = placed_topic("crm.eu", assignment=[eu[:2], eu[1::-1]])
    config = config_for(kafka_cluster, {topic: "eu"})
    report = check_startup(config, kafka_admin)
    assert report.ok
    watch = PlacementWatch.from_config(config, kafka_admin)
    watch.refresh()
    assert watch.permitted(topic, "eu")
    assert not watch.permitted(topic, "us")


def test_startup_check_refuses_an_eu_destination_with_a_replica_on_a_us_broker(
    kafka_cluster: Any, kafka_admin: Any, placed_topic: Any
) -> None:
    eu, us = eu_and_us(kafka_cluster)
    topic = placed_topic("crm.eu", assignment=[eu[:2], [eu[0], us[0]]])
    with pytest.raises(PlacementError) as caught:
        check_startup(config_for(kafka_cluster, {topic: "eu"}), kafka_admin)
    text = str(caught.value)
    assert topic in text
    assert f"partition 1 has a replica on broker {us[0]}" in text
    assert kafka_cluster.racks[us[0]] in text
    assert "partition 0 " not in text


def test_startup_check_reports_a_missing_topic(kafka_cluster: Any, kafka_admin: Any, unique_name: Any) -> None:
    topic = unique_name("crm.eu.absent")
    with pytest.raises(PlacementError, match="does not exist"):
        check_startup(config_for(kafka_cluster, {topic: "eu"}), kafka_admin)


def test_watch_stops_permitting_within_one_interval_of_a_reassignment_abroad(
    kafka_cluster: Any, kafka_admin: Any, placed_topic: Any, reassign: Any
) -> None:
    """The first check whose snapshot shows the replica abroad withdraws the permission: counted
    in checks (one per interval), not in wall-clock seconds."""
    from router.placement.kafka import snapshot

    eu, us = eu_and_us(kafka_cluster)
    topic = placed_topic("crm.eu", assignment=[eu[:2]])
    interval = 1.0
    config = config_for(kafka_cluster, {topic: "eu"},
                        placement={"recheck_interval_s": interval, "max_verdict_age_s": 10})
    checks: list[bool] = []
    """One entry per check: whether its snapshot showed a replica on the us broker."""
    cond = threading.Condition()

    def counted(*args: Any, **kwargs: Any) -> Any:
        snap = snapshot(*args, **kwargs)
        with cond:
            replicas = snap.topics.get(topic)
            checks.append(replicas is not None and any(us[0] in r for r in replicas.values()))
            cond.notify_all()
        return snap

    def wait_for(predicate: Any, what: str) -> None:
        with cond:
            assert cond.wait_for(predicate, timeout=30), what

    with PlacementWatch.from_config(config, kafka_admin, snapshot_fn=counted) as watch:
        watch.start()
        wait_for(lambda: bool(checks), "a first check")
        assert watch.permitted(topic, "eu"), watch.why_not(topic, "eu")

        reassign(topic, 0, [eu[0], us[0]])
        wait_for(lambda: any(checks), "a check that sees the replica abroad")
        with cond:
            first_seen = checks.index(True)
            # the verdict of that check is published before the next check starts
            cond.wait_for(lambda: len(checks) > first_seen + 1, timeout=30)
        assert not watch.permitted(topic, "eu")
        why = watch.why_not(topic, "eu")
        assert why is not None
        assert f"broker {us[0]}" in why


@pytest.fixture
def cleanup_topics(kafka_admin: Any) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    if names:
        with contextlib.suppress(Exception):
            for f in kafka_admin.delete_topics(names, request_timeout=30).values():
                with contextlib.suppress(Exception):
                    f.result()


def test_topics_create_places_eu_topics_on_eu_brokers_only(
    kafka_cluster: Any, kafka_admin: Any, unique_name: Any, tmp_path: Path,
    cleanup_topics: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    eu, us = eu_and_us(kafka_cluster)
    eu_topic, us_topic = unique_name("crm.eu.contact"), unique_name("quarantine.us")
    cleanup_topics += [eu_topic, us_topic]
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": {"default": {"bootstrap": "unused.invalid:9092", "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [
            {"name": eu_topic, "jurisdiction": "eu", "partitions": 4, "replication_factor": 2},
            {"name": us_topic, "jurisdiction": "us", "partitions": 1, "replication_factor": 1},
        ],
    }), encoding="utf-8")
    args = ["--config", str(path), "--bootstrap", kafka_cluster.bootstrap]

    assert main(["topics", "create", *args]) == 0
    md = kafka_admin.list_topics(timeout=15).topics
    eu_replicas = [tuple(p.replicas) for p in md[eu_topic].partitions.values()]
    assert len(eu_replicas) == 4
    assert all(set(r) <= set(eu) and len(set(r)) == 2 for r in eu_replicas)
    assert len({r[0] for r in eu_replicas}) == min(len(eu), 4)  # leaders spread
    assert all(set(p.replicas) <= set(us) for p in md[us_topic].partitions.values())
    assert "created" in capsys.readouterr().out

    assert main(["topics", "create", *args]) == 0
    assert "exists, verified" in capsys.readouterr().out
    assert main(["placement", *args]) == 0


def test_placement_command_exits_1_and_names_the_violation(
    kafka_cluster: Any, placed_topic: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eu, us = eu_and_us(kafka_cluster)
    topic = placed_topic("crm.eu", assignment=[[eu[0], us[0]]])
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": {"default": {"bootstrap": kafka_cluster.bootstrap, "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [{"name": topic, "jurisdiction": "eu"}],
    }), encoding="utf-8")
    assert main(["placement", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION" in out
    assert f"broker {us[0]}" in out


def test_topics_create_refuses_a_replication_factor_the_jurisdiction_cannot_hold(
    kafka_cluster: Any, kafka_admin: Any, unique_name: Any, tmp_path: Path,
    cleanup_topics: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    _, us = eu_and_us(kafka_cluster)
    eu_topic, us_topic = unique_name("crm.eu.contact"), unique_name("crm.us.contact")
    cleanup_topics += [eu_topic, us_topic]
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": {"default": {"bootstrap": kafka_cluster.bootstrap, "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [
            {"name": eu_topic, "jurisdiction": "eu", "replication_factor": 1},
            {"name": us_topic, "jurisdiction": "us", "replication_factor": len(us) + 1},
        ],
    }), encoding="utf-8")
    assert main(["topics", "create", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"topic {us_topic} needs replication_factor {len(us) + 1} in jurisdiction us" in err
    assert eu_topic not in kafka_admin.list_topics(timeout=15).topics  # nothing created
