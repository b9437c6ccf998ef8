"""``residency-router quarantine`` against a real deployment: the router quarantines records this test
wrote (no country, undecodable, a denied secret, an unresolvable delete) and the commands, run as
subprocesses, must show exactly those, without a value, and disclose a payload only with its key and
after an access record that ``audit verify`` accepts."""

from __future__ import annotations

import getpass
import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.quarantine.access import decode_access, is_access_record
from router.quarantine.record import decode_quarantine
from tests.integration.router_env import RouterEnv, make_env
from tests.integration.test_router_e2e import run_router
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

PLANTED = ("Zyxwvut", "Qwertzu", "zyxw@example.org", "Zyxw Corp", "wJalrXUtnFEMI")
"""Values in the events: they may appear only in a --decrypt payload."""


def _sf(entity: str, change: str = "UPDATE", **fields: Any) -> bytes:
    header = {"entityName": entity, "changeType": change, "recordIds": ["003A"], "changedFields": list(fields)}
    return json.dumps({"ChangeEventHeader": header, **fields}).encode()


EVENTS: list[bytes] = [
    _sf("Contact", MailingCountry="DE", Email="ada.zyxw@example.org", LastName="Zyxwvut"),  # 0: routed (eu)
    _sf("Contact", Email="bea.zyxw@example.org", LastName="Qwertzu"),  # 1: no country
    _sf("Lead", Email="cy.zyxw@example.org", Company="Zyxw Corp"),  # 2: no country
    b"{not json",  # 3: undecodable
    _sf("Contact", MailingCountry="US",
        Description="aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),  # 4: a secret, us: denied
    _sf("Account", BillingCountry="FR", Name="Zyxw SA"),  # 5: routed (eu)
    _sf("Contact", "DELETE"),  # 6: a delete with nothing to resolve
]
EU_QUARANTINED = {1: {"UNRESOLVED_JURISDICTION"}, 2: {"UNRESOLVED_JURISDICTION"},
                  3: {"UNSUPPORTED_FORMAT", "DECODE_ERROR"}, 6: {"ERASURE_UNRESOLVED"}}
"""Ingress offset -> the reasons it may be quarantined in eu with (the ingress topic's jurisdiction)."""
US_QUARANTINED = {4: {"POLICY_DENIED"}}


def _cli(env: RouterEnv, verb: str, jurisdiction: str, *rest: str, config: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "router.cli", "quarantine", verb, "--config", str(config or env.config_path),
           "--jurisdiction", jurisdiction, *rest]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _rows(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _variant(env: RouterEnv, name: str, change: Any) -> Path:
    """A copy of the deployment's config with ``change(doc)`` applied."""
    doc = yaml.safe_load(env.config_path.read_text())
    change(doc)
    path = env.config_path.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _no_values(text: str) -> None:
    for value in PLANTED:
        assert value not in text, f"a value of an event ({value[:4]}...) was printed"


@pytest.fixture(scope="module")
def deployment(kafka_cluster: Any, kafka_admin: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = make_env(kafka_cluster, kafka_admin, tmp_path_factory.mktemp("qcli"), ingress_partitions=1)
    produce_all(env.bootstrap, env.ingress, [(f"k{i}".encode(), v) for i, v in enumerate(EVENTS)])
    run_router(env)
    # Ground truth from the topics, read without the commands under test.
    truth: dict[str, dict[int, tuple[int, int, Any]]] = {}
    for j in ("eu", "us"):
        topic = f"quarantine.{j}.{env.suffix}"
        truth[j] = {}
        for m in read_topic(env.bootstrap, topic):
            rec = decode_quarantine(m.value())
            truth[j][rec.source_offset] = (m.partition(), m.offset(), rec)
    assert {o: r.reason for o, (_p, _q, r) in truth["eu"].items()}.keys() == EU_QUARANTINED.keys()
    assert truth["us"].keys() == US_QUARANTINED.keys()
    return {"env": env, "truth": truth}


def test_list_shows_each_quarantined_record_once_with_its_metadata_and_no_value(deployment: dict[str, Any]) -> None:
    env, truth = deployment["env"], deployment["truth"]
    proc = _cli(env, "list", "eu", "--json")
    _no_values(proc.stdout + proc.stderr)
    rows = _rows(proc)
    assert sorted(r["source"]["offset"] for r in rows) == sorted(EU_QUARANTINED)
    for r in rows:
        src = r["source"]["offset"]
        assert r["reason"] in EU_QUARANTINED[src]
        partition, offset, rec = truth["eu"][src]
        assert r["position"] == f"{partition}:{offset}"
        assert r["source"]["topic"] == env.ingress and r["source"]["partition"] == 0
        assert r["policy_version"] == rec.policy_version and r["detail"] == rec.detail
    by_src = {r["source"]["offset"]: r for r in rows}
    assert by_src[1]["entity"].lower() == "contact" and by_src[2]["entity"].lower() == "lead"
    assert "Email" in by_src[1]["field_names"] and set(by_src[1]["field_names"]) <= {"Email", "LastName"}
    assert "Email" in by_src[2]["field_names"] and set(by_src[2]["field_names"]) <= {"Email", "Company"}

    text = _cli(env, "list", "eu")
    assert text.returncode == 0, text.stderr
    _no_values(text.stdout)
    lines = text.stdout.splitlines()
    assert len(lines) == len(EU_QUARANTINED)
    for src in EU_QUARANTINED:
        partition, offset, rec = truth["eu"][src]
        line = next(x for x in lines if f"{env.ingress}[0]@{src} " in x)
        assert f"  {partition}:{offset}  " in line and rec.reason in line

    us = _rows(_cli(env, "list", "us", "--json"))
    assert [(r["source"]["offset"], r["reason"]) for r in us] == [(4, "POLICY_DENIED")]


def test_list_filters_by_reason_and_time(deployment: dict[str, Any]) -> None:
    env = deployment["env"]
    unresolved = _rows(_cli(env, "list", "eu", "--json", "--reason", "unresolved_jurisdiction"))
    assert sorted(r["source"]["offset"] for r in unresolved) == [1, 2]
    assert _rows(_cli(env, "list", "eu", "--json", "--since", "2999-01-01T00:00:00Z")) == []
    everything = _rows(_cli(env, "list", "eu", "--json", "--since", "1970-01-02"))
    assert sorted(r["source"]["offset"] for r in everything) == sorted(EU_QUARANTINED)


def test_stats_count_what_the_router_quarantined(deployment: dict[str, Any]) -> None:
    env, truth = deployment["env"], deployment["truth"]
    proc = _cli(env, "stats", "eu", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    reasons = [rec.reason for _p, _o, rec in truth["eu"].values()]
    assert stats["records"] == len(EU_QUARANTINED) and stats["undecodable"] == 0
    assert stats["by_reason"] == {r: reasons.count(r) for r in set(reasons)}
    assert stats["by_reason"]["UNRESOLVED_JURISDICTION"] == 2
    assert stats["by_policy_version"] == {truth["eu"][1][2].policy_version: len(EU_QUARANTINED)}
    assert sum(stats["by_entity"].values()) == len(EU_QUARANTINED)
    times = {f"{p}:{o}": rec.quarantined_at_ms for p, o, rec in truth["eu"].values()}
    assert stats["oldest"]["quarantined_at_ms"] == min(times.values())
    assert stats["newest"]["quarantined_at_ms"] == max(times.values())
    assert times[stats["oldest"]["position"]] == min(times.values())
    text = _cli(env, "stats", "eu")
    assert text.returncode == 0 and f"{len(EU_QUARANTINED)} records" in text.stdout


def test_show_prints_one_records_metadata(deployment: dict[str, Any]) -> None:
    env, truth = deployment["env"], deployment["truth"]
    partition, offset, rec = truth["eu"][2]
    proc = _cli(env, "show", "eu", "--offset", f"{partition}:{offset}", "--json")
    assert proc.returncode == 0, proc.stderr
    _no_values(proc.stdout)
    shown = json.loads(proc.stdout)
    assert shown["reason"] == rec.reason and shown["source"]["offset"] == 2 and "payload" not in shown
    text = _cli(env, "show", "eu", "--offset", f"{partition}:{offset}")
    assert text.returncode == 0 and f"reason: {rec.reason}" in text.stdout
    _no_values(text.stdout)


def _access_records(env: RouterEnv) -> list[tuple[int, int, Any]]:
    return [(m.partition(), m.offset(), decode_access(m.value())) for m in read_topic(env.bootstrap, env.audit_topic)
            if is_access_record(m.value())]


def test_decrypt_prints_the_original_after_recording_the_access_and_audit_verify_accepts_it(
    deployment: dict[str, Any],
) -> None:
    env, truth = deployment["env"], deployment["truth"]
    partition, offset, _rec = truth["eu"][1]
    before = _access_records(env)
    proc = _cli(env, "show", "eu", "--offset", f"{partition}:{offset}", "--decrypt", "--actor", "TICKET-1", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["payload"] == json.loads(EVENTS[1]), "the payload is the event the test produced"
    after = _access_records(env)
    assert len(after) == len(before) + 1
    where = shown["access_record"]
    new = next(a for p, o, a in after if (p, o) == (where["partition"], where["offset"]))
    assert where["topic"] == env.audit_topic
    assert (new.action, new.actor, new.os_user, new.jurisdiction) == ("decrypt", "TICKET-1", getpass.getuser(), "eu")
    assert (new.quarantine_topic, new.quarantine_partition, new.quarantine_offset) == (
        f"quarantine.eu.{env.suffix}", partition, offset)
    assert (new.source_topic, new.source_offset) == (env.ingress, 1)
    _no_values(repr(new))

    raw = _cli(env, "show", "eu", "--offset", "{}:{}".format(*truth["eu"][3][:2]), "--decrypt")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.rstrip().endswith("payload:\n{not json")

    verify = subprocess.run([sys.executable, "-m", "router.cli", "audit", "verify", "--config", str(env.config_path),
                             "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["access_records"] == len(_access_records(env)) >= 2, \
        "access records are counted apart, not verified as chain links"


def test_a_key_that_cannot_open_the_record_is_refused_and_nothing_is_printed_or_recorded(
    deployment: dict[str, Any],
) -> None:
    env, truth = deployment["env"], deployment["truth"]
    partition, offset, _rec = truth["eu"][1]

    def eu_holds_the_us_key(doc: dict[str, Any]) -> None:
        doc["keys"]["jurisdictions"]["eu"]["key"] = "us"

    wrong = _variant(env, "wrong-key", eu_holds_the_us_key)
    before = _access_records(env)
    proc = _cli(env, "show", "eu", "--offset", f"{partition}:{offset}", "--decrypt", config=wrong)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--decrypt" in proc.stderr and "cannot open the record" in proc.stderr and "nothing was disclosed" in \
        proc.stderr
    _no_values(proc.stderr)
    assert _access_records(env) == before


def test_errors_name_the_option_and_exit_2(deployment: dict[str, Any]) -> None:
    env, truth = deployment["env"], deployment["truth"]
    unknown = _cli(env, "list", "xx")
    assert unknown.returncode == 2 and "--jurisdiction: 'xx'" in unknown.stderr
    malformed = _cli(env, "show", "eu", "--offset", "one:two")
    assert malformed.returncode == 2 and "--offset: 'one:two' is not PARTITION:OFFSET" in malformed.stderr
    partition, _offset, _rec = truth["eu"][1]
    beyond = _cli(env, "show", "eu", "--offset", f"{partition}:999999")
    assert beyond.returncode == 2 and "--offset" in beyond.stderr
    no_partition = _cli(env, "show", "eu", "--offset", "7:0")
    assert no_partition.returncode == 2 and "has no partition 7" in no_partition.stderr

    def missing_topic(doc: dict[str, Any]) -> None:
        doc["policy"]["quarantine_topic"] = "quarantine.{jurisdiction}.missing-" + env.suffix

    missing = _cli(env, "list", "eu", config=_variant(env, "missing", missing_topic), timeout=60)
    assert missing.returncode == 2
    assert f"quarantine topic 'quarantine.eu.missing-{env.suffix}' cannot be read" in missing.stderr
    for proc in (unknown, malformed, beyond, no_partition, missing):
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_tail_since_prints_the_backlog_and_stops_when_idle(deployment: dict[str, Any]) -> None:
    env = deployment["env"]
    rows = _rows(_cli(env, "tail", "eu", "--json", "--since", "1970-01-02", "--max-idle-s", "5"))
    assert sorted(r["source"]["offset"] for r in rows) == sorted(EU_QUARANTINED)


def test_tail_follows_records_quarantined_after_it_started(kafka_cluster: Any, kafka_admin: Any,
                                                           tmp_path: Path) -> None:
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)  # its own: it adds records
    produce_all(env.bootstrap, env.ingress, [(b"k1", EVENTS[1])])
    run_router(env)  # one record quarantined before tail starts
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "quarantine", "tail", "--config", str(env.config_path),
         "--jurisdiction", "eu", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    threading.Thread(target=lambda: [err.put(x) for x in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        while not (line := err.get(timeout=60)).startswith("following "):
            pass  # client log lines may come first
        assert "from the end" in line  # positioned at the end: what comes now is new
        new_events = [_sf("Contact", Email="dee.zyxw@example.org"), _sf("Case", Subject="Zyxwvut")]
        produce_all(env.bootstrap, env.ingress, [(b"n0", new_events[0]), (b"n1", new_events[1])])
        run_router(env)
        rows = [json.loads(out.get(timeout=120)) for _ in new_events]
        assert sorted(r["source"]["offset"] for r in rows) == [1, 2]
        assert {r["reason"] for r in rows} == {"UNRESOLVED_JURISDICTION"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert out.empty(), "nothing from before tail started, nothing twice"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
