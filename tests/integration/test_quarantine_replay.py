"""``residency-router quarantine replay`` on the real cluster, run as subprocesses.

The router quarantines 200 generated events whose country (Switzerland) no jurisdiction of the
test config maps (UNRESOLVED_JURISDICTION, in eu: the ingress topic's jurisdiction); the config is
then fixed (CH added to eu) and replayed. Each check is against ground truth the test holds: the
generator's records (their bytes, entity and country) at their ingress offsets, read back from the
topics (routed records opened with the eu key, audit records decoded and verified), never the
tool's own summary alone: a dry run writes nothing; a replay routes every record exactly once to
crm.eu.<entity>, each with a linked audit record, and ``audit verify`` accepts the trail; a second
replay routes none; a replay killed by SIGKILL after its second commit and started again still
routes each record exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from router.audit.record import decode_audit, is_placement_record
from router.envelope import Opener
from router.keys.factory import build_jurisdiction_keys, build_public_keys
from router.quarantine.record import decode_quarantine
from tests.integration.router_env import RouterEnv, make_env
from tests.integration.test_router_e2e import run_router
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

N = 200
COUNTRY = "CH"
"""In no jurisdiction of router_env's config (eu: EEA, us: US) until the fix adds it to eu."""


def _records(n: int = N, seed: int = 7) -> list[Any]:
    """The first ``n`` generated records of a Swiss subject (every format and entity), with a value."""
    from router.ingest.samples import generate

    picked = [r for r in generate(40 * n, seed=seed) if r.country == COUNTRY and r.value is not None]
    assert len(picked) >= n
    return picked[:n]


def _fixed(env: RouterEnv, **pipeline: Any) -> Path:
    """The deployment's config with Switzerland added to eu (and ``pipeline`` settings changed)."""
    doc = yaml.safe_load(env.config_path.read_text())
    doc["residency"]["countries"]["eu"] = [*doc["residency"]["countries"]["eu"], COUNTRY]
    doc["pipeline"].update(pipeline)
    path = env.config_path.with_name(f"fixed-{uuid.uuid4().hex[:6]}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _replay(config: Path, *args: str, fault: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ROUTER_FAULT", None)
    if fault:
        env["ROUTER_FAULT"] = fault
    cmd = [sys.executable, "-m", "router.cli", "quarantine", "replay", "--config", str(config), "--jurisdiction", "eu",
           "--json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)


def _summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture
def quarantined(kafka_cluster: Any, kafka_admin: Any, tmp_path: Path) -> dict[str, Any]:
    """A deployment whose router has quarantined the 200 Swiss records, and the ground truth."""
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    records = _records()
    produce_all(env.bootstrap, env.ingress, ((r.key, r.value) for r in records))
    run_router(env)
    ingress = {m.offset(): m.value() for m in read_topic(env.bootstrap, env.ingress)}
    assert sorted(ingress) == list(range(N)) and [ingress[i] for i in range(N)] == [r.value for r in records]
    qtopic = f"quarantine.eu.{env.suffix}"
    quarantine = {}
    for m in read_topic(env.bootstrap, qtopic):
        rec = decode_quarantine(m.value())
        quarantine[(m.partition(), m.offset())] = rec
    assert sorted(r.source_offset for r in quarantine.values()) == list(range(N)), "each record quarantined once"
    assert {r.reason for r in quarantine.values()} == {"UNRESOLVED_JURISDICTION"}
    assert _routed(env) == {}, "nothing routed before the fix"
    expected = {i: f"crm.eu.{r.entity.lower()}.{env.suffix}" for i, r in enumerate(records)}
    return {"env": env, "records": records, "ingress": ingress, "qtopic": qtopic, "quarantine": quarantine,
            "expected": expected}


def _routed(env: RouterEnv) -> dict[int, list[tuple[str, bytes]]]:
    """Ingress offset -> (topic, plaintext) of every committed record in a routed topic, each opened
    with the key of its topic's jurisdiction."""
    keys = env.config.keys
    assert keys is not None
    opener = Opener(build_jurisdiction_keys(keys), build_public_keys(keys))
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    out: dict[int, list[tuple[str, bytes]]] = {}
    for topic in env.routed_topics():
        for m in read_topic(env.bootstrap, topic):
            opened = opener.open(m.value(), m.headers(), topic=topic, partition=m.partition(),
                                 expected_jurisdiction=placed[topic])
            assert opened.ctx.source_topic == env.ingress
            out.setdefault(opened.ctx.source_offset, []).append((topic, opened.plaintext))
    return out


def _replay_links(env: RouterEnv) -> list[Any]:
    """The audit records of replayed quarantine records (with their replay link) in the audit topic."""
    values = [m.value() for m in read_topic(env.bootstrap, env.audit_topic)]
    decisions = [decode_audit(v) for v in values if not is_placement_record(v)]
    return [r for r in decisions if r.replay is not None]


def _assert_routed_exactly_once(q: dict[str, Any]) -> None:
    env = q["env"]
    routed = _routed(env)
    assert sorted(routed) == list(range(N)), "every quarantined record routed"
    for offset, outputs in routed.items():
        assert outputs == [(q["expected"][offset], q["ingress"][offset])], f"ingress offset {offset}: {len(outputs)}"
    links = _replay_links(env)
    assert len(links) == N
    by_position = {(link.replay.quarantine_partition, link.replay.quarantine_offset): link for link in links}
    assert sorted(by_position) == sorted(q["quarantine"]), "one link per quarantine record"
    for position, link in by_position.items():
        rec = q["quarantine"][position]
        assert (link.fields.source_topic, link.fields.source_partition, link.fields.source_offset) == (
            q["qtopic"], *position)
        assert (link.replay.ingress_topic, link.replay.ingress_offset) == (env.ingress, rec.source_offset)
        assert link.replay.quarantine_policy_version == rec.policy_version != link.fields.policy_version
        assert link.fields.destination_topic == q["expected"][rec.source_offset]
    assert len(read_topic(env.bootstrap, q["qtopic"])) == N, "nothing new written to the quarantine topic"
    verify = subprocess.run([sys.executable, "-m", "router.cli", "audit", "verify", "--config", str(env.config_path),
                             "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
    report = json.loads(verify.stdout)
    replay_chains = [c for c in report["chains"] if c["kind"] == "replay"]
    assert sum(c["records"] - c["placement_records"] for c in replay_chains) == N, "one decision per replayed record"
    assert all(c["placement_records"] >= 1 for c in replay_chains), "each replay chain holds its placement snapshot"
    assert {c["source_topic"] for c in replay_chains} == {q["qtopic"]}


def _committed_offsets(env: RouterEnv, group: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = sorted(consumer.list_topics(topic, timeout=15).topics[topic].partitions)
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in parts], timeout=15)]
    finally:
        consumer.close()


def test_dry_run_then_replay_routes_each_record_once_and_a_second_replay_routes_none(
    quarantined: dict[str, Any],
) -> None:
    q = quarantined
    env: RouterEnv = q["env"]
    fixed = _fixed(env)
    audit_before = len(read_topic(env.bootstrap, env.audit_topic))
    per_topic = Counter(q["expected"].values())

    dry = _summary(_replay(fixed, "--dry-run"))
    assert dry["dry_run"] and dry["complete"] and dry["read"] == N
    assert dry["replayed"] == N and dry["replayed_by_destination"] == dict(per_topic)
    assert dry["by_reason"] == [{"reason": "UNRESOLVED_JURISDICTION", "outcome": "replayed", "target": topic,
                                 "records": n} for topic, n in sorted(per_topic.items())]
    assert _routed(env) == {}, "a dry run routes nothing"
    assert len(read_topic(env.bootstrap, env.audit_topic)) == audit_before, "a dry run audits nothing"
    group = f"router-{env.suffix}.replay.eu"
    assert all(o < 0 for o in _committed_offsets(env, group, q["qtopic"])), "a dry run commits no offset"

    first = _summary(_replay(fixed))
    assert first["complete"] and first["replayed"] == N
    _assert_routed_exactly_once(q)

    second = _summary(_replay(fixed))
    assert second["complete"] and second["replayed"] == 0
    again = _summary(_replay(fixed, "--from-beginning"))
    assert again["complete"] and again["replayed"] == 0 and again["already_replayed"] == N
    _assert_routed_exactly_once(q)


def test_a_replay_killed_after_a_commit_then_restarted_routes_each_record_exactly_once(
    quarantined: dict[str, Any],
) -> None:
    q = quarantined
    env: RouterEnv = q["env"]
    fixed = _fixed(env, commit_max_records=10)

    killed = _replay(fixed, "--batch-size", "10", fault="after_commit:kill@2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert any(line.startswith("FAULT after_commit #2 kill") for line in killed.stderr.splitlines())
    partial = _routed(env)
    assert 0 < len(partial) < N, "the kill must land after a commit and before the end"
    assert all(len(outputs) == 1 for outputs in partial.values())

    restarted = _summary(_replay(fixed, "--batch-size", "10"))
    assert restarted["complete"] and restarted["replayed"] == N - len(partial)
    _assert_routed_exactly_once(q)
