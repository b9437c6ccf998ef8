"""Bounded plaintext on ingress against a real cluster: ``run`` refuses an ingress topic that keeps
records longer than ``pipeline.ingress[].max_retention`` before consuming anything and starts once
the topic is altered within it; ``topics create`` gives a new ingress topic its bound and reports an
existing one beyond it without altering it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from router.cli import main
from tests.integration.router_env import RouterEnv, make_env, router_cmd
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

WEEK_MS = 604_800_000
SIX_HOURS_MS = 21_600_000
HOUR_MS = 3_600_000
DEADLINE_S = 90.0
N_RECORDS = 20


def _topic_config(admin: Any, topic: str) -> dict[str, str]:
    """retention.ms, segment.ms and cleanup.policy as the cluster reports them now."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=15)[resource].result(timeout=15)
    return {k: entries[k].value for k in ("retention.ms", "segment.ms", "cleanup.policy")}


def _committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=15)
        return int(tp.offset)
    finally:
        c.close()


def _eventually(what: str, attempt: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not attempt():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S}s")


def _with_ingress(env: RouterEnv, topic: str, **entry: Any) -> dict[str, Any]:
    """The env's config with ``topic`` (1 partition in eu) as its only ingress topic, written back."""
    doc: dict[str, Any] = yaml.safe_load(env.config_path.read_text(encoding="utf-8"))
    rf = next(t["replication_factor"] for t in doc["topics"] if t["name"] == env.ingress)
    doc["topics"].append({"name": topic, "jurisdiction": "eu", "partitions": 1, "replication_factor": rf})
    doc["pipeline"]["ingress"] = [{**doc["pipeline"]["ingress"][0], "topic": topic, **entry}]
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return doc


def test_run_refuses_an_ingress_topic_kept_longer_than_its_bound_then_starts_once_altered(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    eu = kafka_cluster.brokers_in("eu-")
    if not eu:
        pytest.skip("needs a broker with an eu-* rack")
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    ingress = f"crm.ingress.long.{env.suffix}"
    replicas = eu[:2]
    kafka_admin.create_topics([NewTopic(ingress, num_partitions=1, replica_assignment=[replicas], config={
        "retention.ms": str(WEEK_MS), "segment.ms": "600000", "cleanup.policy": "delete"})],
        request_timeout=30)[ingress].result()
    doc = _with_ingress(env, ingress)  # max_retention: the default, 6h
    group = doc["pipeline"]["group_id"]
    produce_all(env.bootstrap, ingress, ((f"k{i}".encode(), b'{"not": "read"}') for i in range(N_RECORDS)))
    assert _topic_config(kafka_admin, ingress)["retention.ms"] == str(WEEK_MS)

    refusals: list[str] = []

    def refused() -> bool:
        proc = subprocess.run(router_cmd(env, "a", 3), capture_output=True, text=True, timeout=120, check=False)
        refusals.append(f"exit {proc.returncode}: {proc.stderr[-600:]}")
        # until every broker knows the new topic, the placement check may find it missing
        return proc.returncode == 2 and "retention.ms is" in proc.stderr

    _eventually(f"run refuses on retention (runs: {refusals[-2:]})", refused)
    err = refusals[-1]
    assert f"ingress topic {ingress}" in err
    assert f"retention.ms is {WEEK_MS} (7d)" in err
    assert f"pipeline.ingress[0].max_retention = {SIX_HOURS_MS} ms (6h)" in err
    assert f"--add-config retention.ms={SIX_HOURS_MS}" in err
    errors = [line for line in err.splitlines() if line.startswith("residency-router: error:")]
    assert len(errors) == 1
    # nothing was consumed: the router's group has committed no offset, the audit trail is empty
    assert _committed(env.bootstrap, group, ingress) < 0
    assert read_topic(env.bootstrap, env.audit_topic) == []

    # topics create reports the topic and leaves it as it is
    assert main(["topics", "create", "--config", str(env.config_path)]) == 1
    out = capsys.readouterr().out
    assert f"{ingress}: NOT ALTERED: ingress topic {ingress} may keep raw records" in out
    assert _topic_config(kafka_admin, ingress)["retention.ms"] == str(WEEK_MS)

    resource = ConfigResource(ResourceType.TOPIC, ingress, incremental_configs=[
        ConfigEntry("retention.ms", str(HOUR_MS), incremental_operation=AlterConfigOpType.SET)])
    kafka_admin.incremental_alter_configs([resource], request_timeout=30)[resource].result()

    runs: list[str] = []
    stats: dict[str, Any] = {}

    def starts() -> bool:
        proc = subprocess.run(router_cmd(env, "a", 3), capture_output=True, text=True, timeout=180, check=False)
        runs.append(f"exit {proc.returncode}: {proc.stderr[-600:]}")
        if proc.returncode != 0:
            # a broker that has not applied the alteration yet still reports the week
            assert proc.returncode == 2 and f"retention.ms is {WEEK_MS}" in proc.stderr, runs[-1]
            return False
        stats.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        return True

    _eventually(f"run starts once retention.ms is within the bound (runs: {runs[-2:]})", starts)
    assert stats["consumed"] == N_RECORDS
    assert _committed(env.bootstrap, group, ingress) == N_RECORDS


def test_topics_create_gives_a_new_ingress_topic_its_bound(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    if not kafka_cluster.brokers_in("eu-"):
        pytest.skip("needs a broker with an eu-* rack")
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    ingress = f"crm.ingress.new.{env.suffix}"
    _with_ingress(env, ingress, max_retention="90m")

    assert main(["topics", "create", "--config", str(env.config_path)]) == 0
    out = capsys.readouterr().out
    assert f"{ingress}: created" in out
    assert f"{ingress}: ingress retention within pipeline.ingress[0].max_retention (1h30m)" in out
    # 90 minutes, segments of a tenth of it, deletion only
    assert _topic_config(kafka_admin, ingress) == {"retention.ms": "5400000", "segment.ms": "540000",
                                                   "cleanup.policy": "delete"}
