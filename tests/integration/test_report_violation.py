"""``residency-router report`` on a run with a placement violation window and a cross-border flow
the policy allows, on a real cluster.

The policy keeps EU data in the EU and stores US data in the EU under a named rule (a transfer the
register must list). The router routes generated events; a replica of the EU contact topic is
then moved to a US broker, more events are produced and decided, the replica is put back, and a
last batch is routed. ``report --json`` must then give:

* decision, route, quarantine and destination counts equal to what the routed, quarantine, ingress
  and audit topics hold (per destination jurisdiction and per topic);
* exactly one violation window: the decisions from the first input diverted after the move up to
  the last input before one is routed again (known from the ingress offsets the test produced and
  the probes it watched), holding every record the quarantine topics hold with reason
  PLACEMENT_VIOLATION, and as many routes as the routed topics hold from that range;
* a transfer register equal to the flows computed from the generator's own country of each routed
  record (the configured country table) and the rules of the policy written here, with counts.

Integration: needs the session cluster (tests/conftest.py) with two eu-* brokers and a us-* one,
and the cached Kafka jars and Java to reassign a partition.
"""

from __future__ import annotations

import io
import json
import signal
import struct
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastavro import schemaless_reader

from router.config.loader import parse_config
from router.devtools.samples import SampleRecord
from router.ingest.schema_store import default_schema_store
from router.quarantine.record import decode_quarantine
from tests.integration.placement_moves import (
    PROBE_COUNTRY,
    probe_until_routed,
    probe_value,
    replicas_of,
    wait_for_decisions,
)
from tests.integration.router_env import RouterEnv, make_env, router_cmd
from tests.integration.test_placement import reassign  # noqa: F401 - fixture
from tests.integration.test_report import assert_counts_equal_the_topics, ground_truth, run_report
from tests.integration.test_router_e2e import collect, load_samples
from tests.integration.test_router_resilience import _probe_until_diverted, _wait_for_replicas
from tests.kafka_util import read_topic

pytestmark = pytest.mark.integration

TRANSFER_RULE = "us-stored-in-eu"
RULES: list[dict[str, Any]] = [
    {"name": "no-secrets", "data": ["*"], "when": {"categories_any": ["SECRET"]}, "action": "deny"},
    {"name": "eu-stays-in-eu", "data": ["eu"], "allow": ["eu"]},
    {"name": TRANSFER_RULE, "data": ["us"], "allow": ["eu"]},
]
"""Every routed event is EU or US data (the other countries are unmapped: quarantined); both are
stored in the EU, the US data under a rule the transfer register must name."""


def with_rules(env: RouterEnv, rules: list[dict[str, Any]]) -> RouterEnv:
    """``env`` with its policy's rules replaced (same topics, same suffix), config file rewritten."""
    doc = yaml.safe_load(env.config_path.read_text())
    doc["policy"]["rules"] = rules
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return RouterEnv(parse_config(doc, str(env.config_path)), env.config_path, env.suffix, env.bootstrap,
                     env.ingress)


def expected_flow(jurisdiction: str) -> tuple[str, str]:
    """(rule, destination jurisdiction) of routed data bound to ``jurisdiction`` under :data:`RULES`:
    the first allowing rule that names it (the deny rule only matches data that is never routed)."""
    rule = next(r for r in RULES if r.get("action", "allow") == "allow" and jurisdiction in r["data"])
    (dest,) = rule["allow"]
    return rule["name"], dest


def is_gap(record: SampleRecord) -> bool:
    """Whether the generator made ``record`` a Salesforce gap event (read from its own payload:
    CDC JSON, or Confluent-framed Avro decoded with fastavro and the shipped schemas)."""
    if record.value is None or record.format == "debezium-json":
        return False
    if record.format == "salesforce-json":
        doc = json.loads(record.value)
    else:
        (schema_id,) = struct.unpack(">I", record.value[1:5])
        doc = schemaless_reader(io.BytesIO(record.value[5:]), default_schema_store().get(schema_id).parsed, None)
    change: str = doc["ChangeEventHeader"]["changeType"]
    return change.startswith("GAP_")


@pytest.fixture
def violation_run(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, reassign: Any,  # noqa: F811
) -> dict[str, Any]:
    eu, us = kafka_cluster.brokers_in("eu-"), kafka_cluster.brokers_in("us-")
    if len(eu) < 2 or not us:
        pytest.skip("needs two eu-* brokers and one us-* broker")
    env = with_rules(make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1), RULES)
    moved = f"crm.eu.contact.{env.suffix}"
    placed = replicas_of(kafka_admin, moved, 0)
    first = load_samples(env, n=150, seed=13)
    router = subprocess.Popen(router_cmd(env, "a", 120), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_decisions(env, len(first))
        reassign(moved, 0, [eu[0], us[0]])
        _wait_for_replicas(kafka_admin, moved, 0, [eu[0], us[0]])
        diverted = _probe_until_diverted(env, first_offset=len(first))
        second_at = len(first) + diverted
        second = load_samples(env, n=100, seed=14)
        wait_for_decisions(env, second_at + len(second))
        reassign(moved, 0, placed)
        _wait_for_replicas(kafka_admin, moved, 0, placed)
        restored = probe_until_routed(env, moved, first_offset=second_at + len(second))
        third_at = second_at + len(second) + restored
        third = load_samples(env, n=100, seed=15)
        wait_for_decisions(env, third_at + len(third))
    finally:
        if router.poll() is None:
            router.send_signal(signal.SIGTERM)
        try:
            _out, err = router.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            router.kill()
            _out, err = router.communicate()
    assert router.returncode == 0, err[-2000:]
    out = tmp_path / "report"
    proc = run_report(env, out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc == json.loads((out / "report.json").read_text())
    probes = {*range(len(first), second_at), *range(second_at + len(second), third_at)}
    return {
        "env": env, "doc": doc, "out": out, "moved": moved, "us_broker": us[0],
        "batches": [(first, False), (second, True), (third, False)],
        "records": {r.value: r for r in (*first, *second, *third) if r.value is not None},
        "probes": probes,
        # Decided while the placement check failed: the probe that was diverted, the second batch,
        # and every probe after the replica was put back but the one that was routed.
        "window": range(second_at - 1, third_at - 1),
    }


def test_a_report_of_a_run_with_a_violation_window_and_a_transfer_equals_the_topics(
    violation_run: dict[str, Any],
) -> None:
    env: RouterEnv = violation_run["env"]
    doc = violation_run["doc"]
    truth = ground_truth(env)
    outputs = collect(env)
    assert doc["ok"] is True

    # Counts: per destination jurisdiction, and per topic written (routed and quarantine topics).
    assert_counts_equal_the_topics(doc, truth)
    written: Counter[str] = Counter()
    for p in doc["processing"]:
        for d in p["destinations"]:
            written[d["topic"]] += d["events"]
    for topic in env.routed_topics() + env.quarantine_topics():
        assert written.get(topic, 0) == len(read_topic(env.bootstrap, topic)), topic

    # The violation window: the inputs decided under the failed check, and what it quarantined.
    violations = [decode_quarantine(m.value()) for topic in env.quarantine_topics()
                  for m in read_topic(env.bootstrap, topic)]
    violations = [q for q in violations if q.reason == "PLACEMENT_VIOLATION"]
    assert violations, "EU contacts decided while the replica was abroad are quarantined"
    window = violation_run["window"]
    assert {q.source_offset for q in violations} <= set(window)
    routed_in_window = [o for _p, o, _t, _j in outputs["routed"] if o in window]
    (found,) = doc["violation_windows"]
    assert found["decisions"] == len(window)
    assert found["quarantined"] == len(violations) == truth["reasons"]["PLACEMENT_VIOLATION"]
    assert sorted(found["quarantined_events"]) == sorted(
        f"{q.source_topic}[{q.source_partition}]@{q.source_offset}" for q in violations)
    assert found["routed"] == len(routed_in_window)
    assert found["start_ms"] <= found["end_ms"]
    snapshots = {s["sha256"]: s for s in doc["snapshots"]}
    assert found["snapshots"], "the window names the snapshots its decisions relied on"
    for h in found["snapshots"]:
        assert snapshots[h]["verdict"] == "violation"
        assert f"{violation_run['moved']}[0] on broker {violation_run['us_broker']}" in snapshots[h]["violations"]
    assert any(s["verdict"] == "ok" for s in doc["snapshots"]), "snapshots from before the move and after the fix"

    # The transfer register, predicted from the generator alone: its country of each record, the
    # configured country table, the rule of RULES for that jurisdiction; gap events and the second
    # batch's contacts (decided while the contact topic had a replica abroad) are not routed.
    table = env.config.residency.country_table()  # type: ignore[union-attr]
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    expected: Counter[tuple[str, str, str]] = Counter()
    for batch, in_window in violation_run["batches"]:
        for record in batch:
            jurisdiction = table.get(record.country) if record.country is not None else None
            if jurisdiction is None or is_gap(record) or (in_window and record.entity == "Contact"):
                continue
            rule, dest = expected_flow(jurisdiction)
            if jurisdiction != dest:
                expected[(jurisdiction, dest, rule)] += 1
    assert expected.get(("us", "eu", TRANSFER_RULE), 0) > 0, "US data is routed to the EU"
    # The same flows from what the routed topics hold (opened), each record's country again the
    # generator's: the router routed exactly the predicted records, each where its rule allows.
    landed: Counter[tuple[str, str, str]] = Counter()
    topics: dict[tuple[str, str, str], set[str]] = {}
    for p, o, topic, _j in outputs["routed"]:
        plaintext = outputs["plaintexts"][(p, o)]
        generated = violation_run["records"].get(plaintext)
        if generated is not None:
            country = generated.country
        else:
            assert o in violation_run["probes"] and plaintext == probe_value(), f"routed input @{o} was not produced"
            country = PROBE_COUNTRY
        jurisdiction = table.get(country)
        assert jurisdiction is not None, f"data of {country}, which no jurisdiction lists, was routed to {topic}"
        rule, dest = expected_flow(jurisdiction)
        assert placed[topic] == dest, (country, topic)
        if jurisdiction != dest:
            landed[(jurisdiction, dest, rule)] += 1
            topics.setdefault((jurisdiction, dest, rule), set()).add(topic)
    assert landed == expected
    register = doc["transfers"]
    assert {(t["data_jurisdiction"], t["destination_jurisdiction"], t["rule"]): t["events"] for t in register} \
        == dict(expected)
    for t in register:
        key = (t["data_jurisdiction"], t["destination_jurisdiction"], t["rule"])
        assert t["rule_basis"].startswith("derived from policy test:"), t["rule_basis"]
        assert t["replayed"] == 0
        assert set(t["topics"]) == topics[key]
    page = (violation_run["out"] / "report.html").read_text()
    assert TRANSFER_RULE in page and "PLACEMENT_VIOLATION" in page
