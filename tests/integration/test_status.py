"""``residency-router status`` on the real cluster, with a router instance running: it names the
instance and its partitions, reports zero lag once the router has caught up, routed offsets at
least the records each jurisdiction's topics hold, quarantine counts by reason equal to what the
quarantine topics hold, every topic in place and the key provider answering; ``--watch --json``
prints one document per refresh and ends with exit 0 on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from router.devtools.samples import generate
from router.quarantine.record import decode_quarantine
from tests.integration.router_env import RouterEnv, make_env, router_cmd
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

N_EVENTS = 300


def status_json(env: RouterEnv, *extra: str, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "router.cli", "status", "--config", str(env.config_path), "--json", "--sample", "1",
         *extra],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def caught_up(doc: dict[str, Any], instance_client_id: str) -> bool:
    members = doc["group"]["members"]
    parts = doc["lag"]["partitions"]
    return (
        doc["error"] is None
        and [m["client_id"] for m in members] == [instance_client_id]
        and bool(parts)
        and all(p["lag"] == 0 for p in parts)
    )


@pytest.fixture(scope="module")
def running(kafka_cluster: Any, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A deployment with generated events on its ingress topic and one router instance ('a')
    running until the module ends; waits until ``status`` sees it caught up."""
    env = make_env(kafka_cluster, kafka_admin, tmp_path_factory.mktemp("status"))
    records = list(generate(N_EVENTS, seed=11))
    produce_all(env.bootstrap, env.ingress, ((r.key, r.value) for r in records))
    router = subprocess.Popen(router_cmd(env, "a", 600), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert env.config.pipeline is not None
    client_id = f"{env.config.pipeline.transactional_id_prefix}-a"
    try:
        deadline = time.monotonic() + 180
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert router.poll() is None, f"the router exited: {router.communicate()[1][-3000:]}"
            code, doc = status_json(env)
            if caught_up(doc, client_id):
                break
        else:
            raise AssertionError(f"status never showed the router caught up: {json.dumps(doc)[:3000]}")
        yield {"env": env, "records": records, "doc": doc, "code": code, "client_id": client_id, "router": router}
    finally:
        if router.poll() is None:
            router.send_signal(signal.SIGTERM)
            try:
                router.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                router.kill()
                router.communicate()


def test_the_running_instance_and_its_partitions_are_listed(running: dict[str, Any]) -> None:
    env, doc = running["env"], running["doc"]
    (member,) = doc["group"]["members"]
    assert member["client_id"] == running["client_id"]
    assert doc["group"]["state"] == "stable"
    ingress_parts = {m.partition() for m in read_topic(env.bootstrap, env.ingress)}
    assigned = {(p["topic"], p["partition"]) for p in member["partitions"]}
    assert {(env.ingress, p) for p in ingress_parts} <= assigned


def test_lag_is_zero_after_the_router_caught_up(running: dict[str, Any]) -> None:
    env, doc = running["env"], running["doc"]
    assert doc["lag"]["error"] is None
    assert doc["lag"]["total"] == 0
    ends: Counter[int] = Counter()
    for m in read_topic(env.bootstrap, env.ingress):
        ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
    assert sum(ends.values()) == N_EVENTS  # the ingress topic is written without transactions
    by_partition = {p["partition"]: p for p in doc["lag"]["partitions"]}
    for partition, end in ends.items():
        assert by_partition[partition]["end"] == end
        assert by_partition[partition]["committed"] == end
        assert by_partition[partition]["lag"] == 0


def test_routed_offsets_cover_the_records_of_each_jurisdiction_the_events_belong_to(running: dict[str, Any]) -> None:
    env, doc = running["env"], running["doc"]
    assert env.config.residency is not None
    table = env.config.residency.country_table()
    belong = {table[r.country] for r in running["records"] if r.country in table}
    assert belong == {"eu", "us"}, "the generator's events belong to both jurisdictions"
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    committed: Counter[str] = Counter()
    written: Counter[str] = Counter()  # with the records of aborted transactions
    for topic in env.routed_topics():
        committed[placed[topic]] += len(read_topic(env.bootstrap, topic))
        written[placed[topic]] += len(read_topic(env.bootstrap, topic, isolation="read_uncommitted"))
    rows = {r["jurisdiction"]: r for r in doc["jurisdictions"]}
    for j in belong:
        assert committed[j] > 0
        # every record has an offset; each transaction adds one marker per partition it wrote to,
        # so never more markers than records
        assert committed[j] <= rows[j]["routed_offsets"] <= 2 * written[j]
        assert rows[j]["routed_topics"] == 5


def test_quarantine_counts_by_reason_match_the_quarantine_topics(running: dict[str, Any]) -> None:
    env, doc = running["env"], running["doc"]
    views = {q["jurisdiction"]: q for q in doc["quarantine"]["topics"]}
    total = 0
    for j in ("eu", "us"):
        topic = env.config.policy.quarantine_topic.format(jurisdiction=j, entity="")  # type: ignore[union-attr]
        reasons = Counter(decode_quarantine(m.value()).reason for m in read_topic(env.bootstrap, topic))
        assert views[j]["topic"] == topic
        assert views[j]["error"] is None
        assert views[j]["behind"] == 0
        assert views[j]["by_reason"] == dict(reasons)
        assert views[j]["records"] == sum(reasons.values())
        total += sum(reasons.values())
    assert total > 0, "the generated events include some that no policy routes"


def test_every_topic_is_in_place_and_the_keys_answer(running: dict[str, Any]) -> None:
    env, doc = running["env"], running["doc"]
    assert doc["placement"]["ok"] is True
    assert {t["topic"] for t in doc["placement"]["topics"]} == {t.name for t in env.config.topics}
    assert all(t["verdict"] == "ok" for t in doc["placement"]["topics"])
    assert [(k["jurisdiction"], k["ok"]) for k in doc["keys"]["jurisdictions"]] == [("eu", True), ("us", True)]
    assert doc["healthy"] is True
    assert running["code"] == 0


def test_watch_prints_a_document_per_refresh_and_ctrl_c_exits_0(running: dict[str, Any]) -> None:
    env = running["env"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "status", "--config", str(env.config_path), "--watch", "--json",
         "--interval", "1", "--sample", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        docs = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert docs[0]["sample_s"] is None
    assert docs[1]["sample_s"] is not None
    assert all(d["group"]["members"][0]["client_id"] == running["client_id"] for d in docs)
