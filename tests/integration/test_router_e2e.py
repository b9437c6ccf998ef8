"""End to end on the real cluster: generated CDC events in, each lands exactly once in a permitted
regional topic or an in-jurisdiction quarantine, sealed, with one chained audit record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from router.audit.chain import verify_chain
from router.audit.record import decode_audit, is_placement_record
from router.envelope import Opener
from router.keys.factory import build_jurisdiction_keys, build_public_keys
from router.quarantine.record import decode_quarantine
from tests.integration.router_env import RouterEnv, make_env, router_cmd
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

N_EVENTS = 600


def run_router(env: RouterEnv, instance: str = "a", idle: float = 6.0, timeout: float = 240) -> dict[str, Any]:
    proc = subprocess.run(
        router_cmd(env, instance, idle),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def load_samples(env: RouterEnv, n: int = N_EVENTS, seed: int = 1) -> list[Any]:
    from router.ingest.samples import generate

    records = list(generate(n, seed=seed))
    produce_all(env.bootstrap, env.ingress, ((r.key, r.value) for r in records))
    return records


def collect(env: RouterEnv, client: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every committed output, opened or decoded, keyed by source position (``client``: extra
    client properties of a secured cluster)."""
    keys = build_jurisdiction_keys(env.config.keys)  # type: ignore[arg-type]
    opener = Opener(keys, build_public_keys(env.config.keys))  # type: ignore[arg-type]
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    routed: list[tuple[int, int, str, str]] = []
    quarantined: list[tuple[int, int, str, str]] = []
    plaintexts: dict[tuple[int, int], bytes] = {}
    for topic in env.routed_topics():
        for m in read_topic(env.bootstrap, topic, client=client):
            if m.value() is None:
                continue  # an erasure tombstone: no data, audited with its source position
            opened = opener.open(
                m.value(), m.headers(), topic=topic, partition=m.partition(), expected_jurisdiction=placed[topic]
            )
            routed.append((opened.ctx.source_partition, opened.ctx.source_offset, topic, opened.ctx.jurisdiction))
            plaintexts[(opened.ctx.source_partition, opened.ctx.source_offset)] = opened.plaintext
    for topic in env.quarantine_topics():
        for m in read_topic(env.bootstrap, topic, client=client):
            rec = decode_quarantine(m.value())
            if not rec.sealed_payload:  # OVERSIZED: metadata and a keyed digest only
                quarantined.append((rec.source_partition, rec.source_offset, topic, rec.reason))
                continue
            opener.open(
                rec.sealed_payload,
                list(rec.envelope_headers),
                topic=topic,
                partition=m.partition(),
                expected_jurisdiction=placed[topic],
            )
            quarantined.append((rec.source_partition, rec.source_offset, topic, rec.reason))
    audit = [(m.partition(), m.offset(), m.value()) for m in read_topic(env.bootstrap, env.audit_topic, client=client)]
    decisions = [(p, o, v) for p, o, v in audit if not is_placement_record(v)]  # without the placement records
    audit_only = []  # bare tombstones: an audit record and nothing else
    for _p, _o, value in decisions:
        fields = decode_audit(value).fields
        if fields.decision == "audit_only":
            audit_only.append((fields.source_partition, fields.source_offset))
    return {"routed": routed, "quarantined": quarantined, "audit": audit, "plaintexts": plaintexts,
            "audit_only": audit_only, "decisions": decisions}


@pytest.fixture(scope="module")
def routed_run(kafka_cluster: Any, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = make_env(kafka_cluster, kafka_admin, tmp_path_factory.mktemp("e2e"))
    records = load_samples(env)
    stats = run_router(env)
    inputs = {(m.partition(), m.offset()) for m in read_topic(env.bootstrap, env.ingress)}
    return {"env": env, "records": records, "stats": stats, "inputs": inputs, **collect(env)}


def test_every_input_lands_exactly_once(routed_run: dict[str, Any]) -> None:
    outputs = Counter((p, o) for p, o, *_ in routed_run["routed"] + routed_run["quarantined"])
    audit_only = set(routed_run["audit_only"])
    env = routed_run["env"]
    tombstones = {(m.partition(), m.offset()) for m in read_topic(env.bootstrap, env.ingress) if m.value() is None}
    assert audit_only == tombstones, "bare tombstones, and only they, are audited without an output"
    assert set(outputs) | audit_only == routed_run["inputs"] and not set(outputs) & audit_only
    assert max(outputs.values()) == 1
    assert len(routed_run["inputs"]) == N_EVENTS


def test_events_of_each_source_format_are_routed(routed_run: dict[str, Any]) -> None:
    formats = Counter(r.format for r in routed_run["records"])
    assert len(formats) >= 3, formats
    assert len(routed_run["routed"]) > N_EVENTS // 3
    assert {j for *_, j in routed_run["routed"]} == {"eu", "us"}


def test_routed_topics_hold_only_their_jurisdictions_data(routed_run: dict[str, Any]) -> None:
    """Ground truth: the generator's country of each routed record, mapped by the configured
    country table, is the jurisdiction of the topic it landed in (not the router's own choice)."""
    env = routed_run["env"]
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    table = env.config.residency.country_table()  # type: ignore[union-attr]
    by_value: dict[bytes, Any] = {r.value: r for r in routed_run["records"] if r.value is not None}
    checked = 0
    for p, o, topic, _j in routed_run["routed"]:
        record = by_value.get(routed_run["plaintexts"][(p, o)])
        assert record is not None, "every routed plaintext is one of the generated inputs"
        assert record.country is not None, f"{topic}: a record without a country was routed"
        assert table.get(record.country) == placed[topic], (record.country, topic)
        checked += 1
    assert checked == len(routed_run["routed"]) > 0


def test_quarantines_sit_in_the_datas_jurisdiction_or_the_ingress_one(routed_run: dict[str, Any]) -> None:
    env = routed_run["env"]
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    table = env.config.residency.country_table()  # type: ignore[union-attr]
    ingress_j = env.config.pipeline.ingress[0].jurisdiction  # type: ignore[union-attr]
    by_pos = {(m.partition(), m.offset()): m.value() for m in read_topic(env.bootstrap, env.ingress)}
    by_value = {r.value: r for r in routed_run["records"] if r.value is not None}
    for p, o, topic, _reason in routed_run["quarantined"]:
        record = by_value[by_pos[(p, o)]]
        allowed = {ingress_j} | ({table[record.country]} if record.country in table else set())
        assert placed[topic] in allowed, (record.country, topic)


def test_simulate_decides_every_record_as_run_did(routed_run: dict[str, Any], tmp_path: Path) -> None:
    from router.ingest.samples import write_jsonl

    env = routed_run["env"]
    events = tmp_path / "events.jsonl"
    write_jsonl(events, routed_run["records"])
    proc = subprocess.run(
        [sys.executable, "-m", "router.cli", "simulate", "--config", str(env.config_path), "--events", str(events),
         "--json"], capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in proc.stdout.splitlines()][:-1]
    assert len(rows) == len(routed_run["records"])
    simulated = {routed_run["records"][row["line"] - 1].value: (row["reason"], row["topic"]) for row in rows}
    by_pos = {(m.partition(), m.offset()): m.value() for m in read_topic(env.bootstrap, env.ingress)}
    for _p, _o, value in routed_run["decisions"]:
        fields = decode_audit(value).fields
        ran = (fields.reason, fields.destination_topic or None)
        assert simulated[by_pos[(fields.source_partition, fields.source_offset)]] == ran


def test_quarantine_carries_reason_codes(routed_run: dict[str, Any]) -> None:
    reasons = Counter(r for *_, r in routed_run["quarantined"])
    assert reasons, "the sample set includes events no policy routes"
    assert "UNRESOLVED_JURISDICTION" in reasons or "GAP_EVENT" in reasons


def test_one_intact_audit_record_per_input(routed_run: dict[str, Any]) -> None:
    audit, decisions = routed_run["audit"], routed_run["decisions"]
    assert len(decisions) == N_EVENTS
    assert verify_chain(audit).ok
    assert all(decode_audit(v).fields.placement_snapshot is not None for _, _, v in decisions)
    sources = Counter(
        (decode_audit(v).fields.source_partition, decode_audit(v).fields.source_offset) for _, _, v in decisions
    )
    assert set(sources) == routed_run["inputs"] and max(sources.values()) == 1


def test_audit_verify_command_accepts_the_trail(routed_run: dict[str, Any]) -> None:
    env = routed_run["env"]
    proc = subprocess.run(
        [sys.executable, "-m", "router.cli", "audit", "verify", "--config", str(env.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_poison_input_is_quarantined_and_the_loop_goes_on(kafka_cluster: Any, kafka_admin: Any, tmp_path: Path) -> None:
    """Each of these crashed or hung the router before (reliability review §3.2, §4.5)."""
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)

    def sf(entity: str, **fields: Any) -> bytes:
        header = {"entityName": entity, "changeType": "UPDATE", "recordIds": ["003A"], "changedFields": list(fields)}
        return json.dumps({"ChangeEventHeader": header, **fields}).encode()

    poison = [
        (b"p1", b"\x00\x00\x00\x03\xe7garbage"),
        (b"p2", b"{not json"),
        (b"p3", bytes(range(1, 256))),
        (b"p4", sf("Contact", MailingCountry="DE", Description="x" * 960_000)),  # > max_record_bytes
        (b"p5", sf("Contact", MailingCountry="DE", Description="y" * 880_000)),  # just under the limit: routed
        (b"p6", sf("X" * 300, MailingCountry="DE")),  # entity longer than the envelope allows
        (b"p7", sf("Contact", MailingCountry="DE", Description="system" + "\n" * 32_000)),  # regex bomb
    ]
    _produce_large(env, poison, {"message.max.bytes": 2_000_000})
    load_samples(env, n=50, seed=9)
    run_router(env)
    out = collect(env)
    by_offset = {o: r for _p, o, _t, r in out["quarantined"]}
    assert by_offset[0] == "UNKNOWN_SCHEMA"
    assert by_offset[1] in ("DECODE_ERROR", "UNSUPPORTED_FORMAT")
    assert by_offset[2] in ("DECODE_ERROR", "UNSUPPORTED_FORMAT")
    assert by_offset[3] == "OVERSIZED"
    assert any(o == 4 for _p, o, *_ in out["routed"]), "a record under max_record_bytes is sealed and routed"
    assert by_offset[5] == "FIELD_TOO_LONG"
    assert 6 in by_offset or any(o == 6 for _p, o, *_ in out["routed"])
    assert len(out["routed"]) + len(out["quarantined"]) == 57


def _produce_large(env: RouterEnv, records: list[tuple[bytes, bytes]], props: dict[str, Any]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": env.bootstrap, "enable.idempotence": True, **props})
    for key, value in records:
        producer.produce(env.ingress, value, key)
    assert producer.flush(60) == 0


def test_consumer_sdk_verifies_its_jurisdiction_and_rejects_others(routed_run: dict[str, Any]) -> None:
    from router.consumer import RegionalConsumer, Rejected, Verified
    from router.envelope import WrongJurisdiction, WrongTopic

    env = routed_run["env"]
    eu_topic = next(t for _p, _o, t, j in routed_run["routed"] if j == "eu")
    public = build_public_keys(env.config.keys)  # type: ignore[arg-type]

    def read(jurisdiction: str, topic: str, limit: int = 10) -> list[Any]:
        with RegionalConsumer.from_config(
            env.config,
            jurisdiction=jurisdiction,
            topics=[topic],
            group_id=f"sdk-{jurisdiction}-{topic}",
            public_keys=public,
        ) as c:
            return list(c.records(max_records=limit, idle_timeout_s=5))

    own = read("eu", eu_topic)
    assert own and all(isinstance(i, Verified) for i in own)
    assert all(i.plaintext and i.ctx.jurisdiction == "eu" for i in own)
    foreign = read("us", eu_topic)
    assert foreign and all(isinstance(i, Rejected) and isinstance(i.error, WrongJurisdiction) for i in foreign)
    # A record copied, headers and all, to another topic of the same jurisdiction fails its topic binding.
    from confluent_kafka import Producer

    other = next(t for t in env.routed_topics() if t != eu_topic and t.startswith("crm.eu."))
    producer = Producer({"bootstrap.servers": env.bootstrap})
    for m in read_topic(env.bootstrap, eu_topic)[:3]:
        producer.produce(other, m.value(), m.key(), partition=m.partition(), headers=m.headers())
    assert producer.flush(30) == 0
    everything = read("eu", other, limit=100_000)
    copied = [i for i in everything if isinstance(i, Rejected)]
    assert len(copied) == 3, "only the three copies are rejected; the topic's own records verify"
    assert all(isinstance(i.error, WrongTopic) for i in copied)


def test_a_record_over_the_destination_topics_limit_is_quarantined_without_its_payload(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path
) -> None:
    """The broker refuses batches over a topic's max.message.bytes: the router reads the limit at
    start-up and quarantines a record whose sealed form exceeds it, instead of failing its batch."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    contact = f"crm.eu.contact.{env.suffix}"
    resource = ConfigResource(
        ResourceType.TOPIC, contact,
        incremental_configs=[ConfigEntry("max.message.bytes", "100000", incremental_operation=AlterConfigOpType.SET)],
    )
    kafka_admin.incremental_alter_configs([resource])[resource].result()

    def sf(**fields: Any) -> bytes:
        header = {"entityName": "Contact", "changeType": "UPDATE", "recordIds": ["003A"], "changedFields": list(fields)}
        return json.dumps({"ChangeEventHeader": header, **fields}).encode()

    produce_all(env.bootstrap, env.ingress, [(b"big", sf(MailingCountry="DE", Description="z" * 150_000)),
                                            (b"small", sf(MailingCountry="DE", Description="fine"))])
    run_router(env)
    out = collect(env)
    assert [(o, r) for _p, o, _t, r in out["quarantined"]] == [(0, "OVERSIZED")]
    assert [(o, t) for _p, o, t, _j in out["routed"]] == [(1, contact)]
