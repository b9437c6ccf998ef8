"""``residency-router report`` on a real cluster: the router routes generated events, then the
report's figures are compared with ground truth read from the routed, quarantine, ingress and audit
topics (not from the report code). A forged record appended to a chain makes the report exit 1 and
exclude it. The page is checked in a real headless browser when one is installed.

Integration: needs the session cluster (tests/conftest.py); the browser test skips with a reason
when Debian's ``chromium-headless-shell`` (or ``chromium``) is not installed.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from router.audit.record import decode_entry, is_placement_record
from router.quarantine.access import is_access_record
from router.quarantine.record import decode_quarantine
from tests.integration.router_env import RouterEnv, make_env
from tests.integration.test_router_e2e import load_samples, run_router
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

KNOWN_RETENTION_MS = 123_456_789


def run_report(env: RouterEnv, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "report", "--config", str(env.config_path), "--out", str(out),
         "--timeout", "120", *extra],
        capture_output=True, text=True, timeout=240, check=False,
    )


def ground_truth(env: RouterEnv) -> dict[str, Any]:
    """Counts read from the topics themselves."""
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    routed: Counter[str] = Counter()
    for topic in env.routed_topics():
        routed[placed[topic]] += len(read_topic(env.bootstrap, topic))  # sealed records and erasure tombstones
    reasons: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    for topic in env.quarantine_topics():
        for m in read_topic(env.bootstrap, topic):
            reasons[decode_quarantine(m.value()).reason] += 1
            quarantined[placed[topic]] += 1
    ingress = read_topic(env.bootstrap, env.ingress)
    audit = [m.value() for m in read_topic(env.bootstrap, env.audit_topic)]
    decisions = [v for v in audit if not is_access_record(v) and not is_placement_record(v)]
    return {
        "routed": routed, "quarantined": quarantined, "reasons": reasons, "inputs": len(ingress),
        "bare_tombstones": sum(1 for m in ingress if m.value() is None), "audit_decisions": len(decisions),
        "audit": audit,
    }


def set_retention(kafka_admin: Any, topic: str, ms: int) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", str(ms), incremental_operation=AlterConfigOpType.SET)])
    for future in kafka_admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def reported(kafka_cluster: Any, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report")
    env = make_env(kafka_cluster, kafka_admin, tmp)
    load_samples(env, n=400, seed=7)
    run_router(env)
    topic = f"crm.eu.contact.{env.suffix}"
    set_retention(kafka_admin, topic, KNOWN_RETENTION_MS)
    proc = run_report(env, tmp / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp / "out" / "report.json").read_text())
    return {"env": env, "out": tmp / "out", "doc": doc, "truth": ground_truth(env), "retention_topic": topic,
            "tmp": tmp}


def assert_counts_equal_the_topics(doc: dict[str, Any], truth: dict[str, Any]) -> None:
    """report.json's decision, route, quarantine and destination counts equal ``truth``
    (:func:`ground_truth`)."""
    assert doc["excluded"] == 0
    assert doc["decisions"] == truth["inputs"] == truth["audit_decisions"]
    assert doc["by_decision"].get("route", 0) == sum(truth["routed"].values())
    assert doc["by_decision"].get("quarantine", 0) == sum(truth["quarantined"].values())
    assert doc["by_decision"].get("audit_only", 0) == truth["bare_tombstones"]
    quarantine_reasons = {r: n for r, n in doc["by_reason"].items() if r not in ("ROUTED", "TOMBSTONE_AUDITED")}
    assert quarantine_reasons == dict(truth["reasons"])
    expected_dest = truth["routed"] + truth["quarantined"]
    if truth["bare_tombstones"]:
        expected_dest["none"] = truth["bare_tombstones"]
    assert doc["destination_jurisdictions"]["totals"] == dict(expected_dest)
    assert doc["quarantine_reasons"]["totals"] == dict(truth["reasons"])


def test_report_counts_equal_the_topics(reported: dict[str, Any]) -> None:
    doc, truth = reported["doc"], reported["truth"]
    assert doc["ok"] is True
    assert_counts_equal_the_topics(doc, truth)


def test_summary_csv_sums_to_the_inputs(reported: dict[str, Any]) -> None:
    rows = list(csv.DictReader((reported["out"] / "summary.csv").open()))
    assert sum(int(r["events"]) for r in rows) == reported["truth"]["inputs"]


def test_retention_is_the_clusters(reported: dict[str, Any]) -> None:
    dests = [d for p in reported["doc"]["processing"] for d in p["destinations"]
             if d["topic"] == reported["retention_topic"]]
    assert dests, "the eu contact topic received events"
    assert {d["retention_ms"] for d in dests} == {KNOWN_RETENTION_MS}


def test_a_forged_record_is_reported_and_excluded(reported: dict[str, Any]) -> None:
    """A copy of a chain's last decision appended to its audit partition (a second writer): the
    chain breaks there (duplicated); every earlier record still counts."""
    env: RouterEnv = reported["env"]
    last: dict[tuple[str, int], tuple[int, bytes]] = {}
    for m in read_topic(env.bootstrap, env.audit_topic):
        value = m.value()
        if is_access_record(value) or is_placement_record(value):
            continue
        rec = decode_entry(value)
        last[(rec.fields.source_topic, rec.fields.source_partition)] = (m.partition(), value)  # type: ignore[union-attr]
    (source, (partition, value)) = sorted(last.items())[0]
    produce_all(env.bootstrap, env.audit_topic, [(f"{source[0]}:{source[1]}".encode(), value)], partition=partition)
    out = reported["tmp"] / "forged"
    proc = run_report(env, out)
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads((out / "report.json").read_text())
    assert doc["ok"] is False
    assert doc["excluded"] == 1
    assert doc["decisions"] == reported["truth"]["inputs"]
    (broken,) = [c for c in doc["chains"] if not c["ok"]]
    assert (broken["chain"], broken["break_kind"]) == (f"{source[0]}[{source[1]}]", "duplicated")
    assert "TRAIL BROKEN" in (out / "report.html").read_text()


def _browser() -> str | None:
    for name in ("chromium-headless-shell", "chromium"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_the_page_renders_in_a_headless_browser_without_console_errors(reported: dict[str, Any]) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser: apt-get install chromium-headless-shell (Debian) to run this check")
    page = (reported["out"] / "report.html").resolve().as_uri()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
              "--window-size=1280,900"]
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 3
    assert 'id="verdict"' in dom.stdout
    assert "CONSOLE" not in dom.stderr, [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    shot = reported["tmp"] / "first-screen.png"
    proc = subprocess.run([*common, f"--screenshot={shot}", page], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CONSOLE" not in proc.stderr
