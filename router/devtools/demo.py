"""``residency-router demo``: the main job on a local cluster, end to end.

1. starts (or reuses) the dev cluster: racks in the EU, the UK and the US;
2. creates a development keyring and a config derived from the example config;
3. creates the configured topics (replicas only in their jurisdiction) plus one deliberately
   misplaced topic, and shows the placement report that flags it;
4. produces generated CRM change events (Salesforce CDC JSON and Avro, Debezium) to the ingress
   topic;
5. runs the router until the ingress topic is drained;
6. prints where everything went: routed per jurisdiction and topic, quarantined per reason;
7. reads an EU topic with the consumer SDK: the EU key verifies and decrypts; the US key does not.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Frankfurt and Ireland (eu), Virginia (us), London (uk), Zurich (ch): AWS-style zone names, so the
# rack -> jurisdiction mapping in the config is what decides, not the name.
DEMO_RACKS = ("eu-west-1a", "eu-central-1a", "us-east-1a", "eu-west-2a", "eu-central-2a")
DEMO_METRICS = "127.0.0.1:9464"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run the router demo on a local dev cluster")
    p.add_argument("--config", required=True, help="router YAML config to start from (e.g. examples/router.yaml)")
    p.add_argument("--state-dir", help="dev cluster state directory (default as for `devcluster`)")
    p.add_argument("--events", type=int, default=3000, help="generated events to route (default: %(default)s)")
    p.set_defaults(handler=_demo)


def _bar(done: int, total: int, width: int = 40) -> str:
    filled = int(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _demo(args: argparse.Namespace) -> int:  # noqa: PLR0915 - a narrated script, step by step
    import uuid  # noqa: PLC0415

    import yaml  # noqa: PLC0415
    from confluent_kafka import Producer  # noqa: PLC0415
    from confluent_kafka.admin import NewTopic  # noqa: PLC0415

    from router.config.loader import parse_config  # noqa: PLC0415
    from router.devtools.devcluster.launcher import DevCluster  # noqa: PLC0415
    from router.devtools.samples import generate  # noqa: PLC0415
    from router.keys.local import LocalKeyring  # noqa: PLC0415
    from router.pipeline.app import RouterApp  # noqa: PLC0415
    from router.placement.kafka import admin_for, create_topics, snapshot, wait_for_topics  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    print("== 1. the local Apache Kafka cluster (the first run fetches Kafka with Maven)", flush=True)
    cluster = DevCluster(args.state_dir)
    info = cluster.up(DEMO_RACKS, heap_mb=384)
    base = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    base["clusters"] = {"default": {"bootstrap": info.bootstrap, "security": {"protocol": "PLAINTEXT"},
                                    "allow_plaintext": True}}  # the local development cluster has no TLS
    base.pop("access", None)  # the demo's cluster runs no authorizer and its ingress topic is renamed
    config0 = parse_config({k: v for k, v in base.items() if k in ("clusters", "jurisdictions")}, args.config)
    print(
        f"bootstrap {info.bootstrap}  (Kafka {info.kafka_version}; "
        f"{'cache used' if info.artifacts_from_cache else 'fetched from Maven Central'})"
    )
    print(f"{'broker':>6}  {'rack':<14} jurisdiction")
    for n in info.nodes:
        print(f"{n.node_id:>6}  {n.rack:<14} {config0.jurisdiction_of_rack(n.rack) or '(none)'}")

    run_id = uuid.uuid4().hex[:6]
    work = Path(info.state_dir) / f"demo-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    keyring = work / "dev-keyring.json"
    jurisdictions = list(base["jurisdictions"])
    LocalKeyring.create(keyring, jurisdictions)
    base["keys"] = {
        "providers": {"dev": {"type": "local", "keyring": str(keyring)}},
        "jurisdictions": {j: {"provider": "dev"} for j in jurisdictions},
        "signer": {"keyring": str(keyring)},
    }
    ingress = f"crm.ingress.demo-{run_id}"
    base.setdefault("pipeline", {})
    base["pipeline"].update(
        {
            "ingress": [{"topic": ingress, "jurisdiction": "eu", "decoder": "auto"}],
            "group_id": f"residency-router-demo-{run_id}",
            "transactional_id_prefix": f"residency-router-demo-{run_id}",
        }
    )
    # The ingress topic holds raw CDC of every jurisdiction: it is placed in eu like any eu topic.
    base["topics"] = [*base.get("topics", []),
                      {"name": ingress, "jurisdiction": "eu", "partitions": 3, "replication_factor": 2}]
    base["telemetry"] = {"metrics_address": DEMO_METRICS}  # a busy port: a warning, the demo goes on
    config = parse_config(base, args.config)
    config_path = work / "router.yaml"
    config_path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
    print(f"\n== 2. development keyring {keyring} (for development only) and config {config_path}")
    from router.keys.factory import build_trust_bundle  # noqa: PLC0415

    trust = work / "trust.json"
    assert config.keys is not None
    build_trust_bundle(config.keys).save(trust)  # what readers get: public keys only, no keyring
    print(f"   trust bundle for readers {trust} (keys export-trust: the signer's public keys)")

    print("\n== 3. topics: every replica inside its jurisdiction, plus one deliberately misplaced")
    admin = admin_for(config)
    for o in create_topics(config, admin):
        print(f"  {o.action:<8} {o.topic:<24} jurisdiction {o.jurisdiction:<3} replicas per partition {o.assignment}")
    brokers = {n.rack: n.node_id for n in info.nodes}
    misplaced = f"crm.eu.misplaced.demo-{run_id}"
    admin.create_topics(
        [NewTopic(misplaced, num_partitions=1, replica_assignment=[[brokers["eu-west-1a"], brokers["us-east-1a"]]])],
        request_timeout=30,
    )[misplaced].result()
    names = [t.name for t in config.topics] + [misplaced]
    wait_for_topics(admin, names, timeout=30)
    reqs = {**requirements_of(config), misplaced: "eu"}
    report = verify(snapshot(admin, list(reqs)), reqs, config.jurisdiction_of_rack)
    for t in sorted(report.topics.values(), key=lambda t: t.topic):
        mark = "ok  " if t.ok else "FAIL"
        print(f"  {mark} {t.topic:<40} needs {t.required:<3} replicas in {sorted(j or '-' for j in t.jurisdictions)}")
    print(f"  -> the router refuses to start with {misplaced} as a destination; the demo leaves it out.")

    print(f"\n== 4. producing {args.events} generated CRM change events to {ingress}")
    producer = Producer({"bootstrap.servers": info.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    formats: Counter[str] = Counter()
    for i, rec in enumerate(generate(args.events, seed=42)):
        producer.produce(ingress, rec.value, rec.key, headers=list(rec.headers.items()))
        formats[rec.format] += 1
        if i % 200 == 0 or i == args.events - 1:
            producer.poll(0)
            print(f"\r  {_bar(i + 1, args.events)}", end="", file=sys.stderr, flush=True)
    producer.flush(60)
    print(file=sys.stderr)
    print("  formats: " + ", ".join(f"{f} {c}" for f, c in sorted(formats.items())))

    print("\n== 5. running the router until the ingress topic is drained")
    started = time.monotonic()
    print(f"  metrics and health while it runs: http://{DEMO_METRICS}/metrics, /healthz, /readyz")
    app = RouterApp(config, instance_id=f"demo-{run_id}", config_dir=Path(args.config).resolve().parent,
                    metrics_required=False)
    stats = app.run(max_idle_s=5)
    took = time.monotonic() - started
    print(f"  consumed {stats.consumed} events in {took:.1f}s ({stats.commits} transactions, {stats.aborts} aborted)")

    print("\n== 6. where everything went (read back with read_committed)")
    _summary(config, info.bootstrap)

    print("\n== 7. a regional LLM consumer reads an EU topic")
    _consumer_demo(config, info.bootstrap, trust)
    print("\nThe cluster keeps running; stop it with `make demo-down` (residency-router devcluster down).")
    return 0


def _count(bootstrap: str, topic: str) -> list[Any]:
    from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: PLC0415

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "demo-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        done: set[int] = set()
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while len(done) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                if (err := m.error()) is not None:
                    if err.code() == KafkaError._PARTITION_EOF and (eof_partition := m.partition()) is not None:
                        done.add(eof_partition)
                    continue
                out.append(m)
        return out
    finally:
        c.close()


def _summary(config: Any, bootstrap: str) -> None:
    from router.quarantine.record import decode_quarantine  # noqa: PLC0415

    print(f"  {'routed to':<44} {'jurisdiction':<13} events")
    total_routed = 0
    audit_count = 0
    reasons: Counter[tuple[str, str]] = Counter()
    ingress = {i.topic for i in config.pipeline.ingress} if config.pipeline is not None else set()
    for t in config.topics:
        if t.name in ingress:
            continue  # raw input, placed in its jurisdiction; not an output
        msgs = _count(bootstrap, t.name)
        if t.name.startswith("quarantine."):
            for m in msgs:
                reasons[(t.jurisdiction, decode_quarantine(m.value()).reason)] += 1
        elif config.audit is not None and t.name == config.audit.topic:
            audit_count = len(msgs)
        elif msgs:
            total_routed += len(msgs)
            print(f"  {t.name:<44} {t.jurisdiction:<13} {len(msgs)}")
    print(f"  {'quarantined (jurisdiction, reason)':<44} {'':<13} events")
    for (j, reason), n in sorted(reasons.items()):
        print(f"  {'quarantine.' + j + '  ' + reason:<58} {n}")
    quarantined = sum(reasons.values())
    print(f"  total: {total_routed} routed, {quarantined} quarantined, "
          f"{audit_count - total_routed - quarantined} audited only (bare tombstones), {audit_count} audit records")


def _consumer_demo(config: Any, bootstrap: str, trust: Path) -> None:
    import uuid  # noqa: PLC0415

    from router.consumer import RegionalConsumer, Verified  # noqa: PLC0415
    from router.keys.trust import TrustBundle  # noqa: PLC0415

    eu_topic = next(
        t.name
        for t in config.topics
        if t.jurisdiction == "eu" and t.name.startswith("crm.")
        and t.name not in {i.topic for i in config.pipeline.ingress}
        and _count(bootstrap, t.name)
    )
    public = TrustBundle.load(trust)  # the bundle alone: the reader never opens the signer's keyring
    for j in ("eu", "us"):
        with RegionalConsumer.from_config(
            config,
            jurisdiction=j,
            topics=[eu_topic],
            group_id=f"demo-{uuid.uuid4().hex}",
            trust=public,
            bootstrap=bootstrap,
        ) as c:
            items = list(c.records(max_records=20, idle_timeout_s=5))
        ok = [i for i in items if isinstance(i, Verified)]
        bad = [i for i in items if not isinstance(i, Verified)]
        print(
            f"  with the {j.upper()} key: {len(ok)} verified and decrypted, {len(bad)} rejected"
            + (f" ({type(bad[0].error).__name__})" if bad else "")
        )
        if ok:
            print(
                f"    e.g. {ok[0].ctx.entity} {ok[0].ctx.operation} {ok[0].ctx.event_id}: "
                f"{len(ok[0].plaintext)} bytes of plaintext, classification {ok[0].ctx.classification_level}"
            )
