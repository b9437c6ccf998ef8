"""``residency-router status`` output: the text screen and the JSON document from statuses the tests
build field by field, key material never printed, and the command's exit codes, ``--json`` and
``--watch`` over fake clients."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.cli.main import main
from router.keys.local import LocalKeyProvider, LocalKeyring
from router.ops.model import (
    GroupView,
    JurisdictionRow,
    KeyHealth,
    KeysView,
    LagRow,
    LagView,
    Member,
    PlacementRow,
    PlacementView,
    QuarantineView,
    Status,
    TopicRoles,
)
from router.ops.render import render_text, status_json
from router.ops.status import KeyProbe, QuarantineCounter, StatusCollector
from router.quarantine.reader import QuarantineStats
from tests.unit.fake_status_kafka import FakeAdmin, FakeLog, config_doc, in_place_cluster, kafka_error

pytestmark = pytest.mark.unit

T0 = 1_795_000_000_000
VIOLATION = ("topic crm.eu.contact must have every replica in jurisdiction eu, but:\n"
             "  partition 1 has a replica on broker 3 (rack us-east-1a, jurisdiction us)")


def _stats(by_reason: dict[str, int], undecodable: int = 0) -> QuarantineStats:
    s = QuarantineStats()
    s.by_reason = Counter(by_reason)
    s.records = sum(by_reason.values()) + undecodable
    s.undecodable = undecodable
    return s


def sample_status(**overrides: Any) -> Status:
    fields: dict[str, Any] = {
        "taken_at_ms": T0,
        "bootstrap": "kafka-1:9092",
        "sample_s": 2.0,
        "jurisdictions": (
            JurisdictionRow("eu", 5, 1234, 20.0, "quarantine.eu", 56, 2.5, 35),
            JurisdictionRow("us", 5, 99, 0.0, "quarantine.us", 0, 0.0, None),
        ),
        "quarantine": (
            QuarantineView("eu", "quarantine.eu", _stats({"UNRESOLVED_JURISDICTION": 40, "GAP_EVENT": 10}, 1)),
            QuarantineView("us", "quarantine.us", _stats({})),
        ),
        "quarantine_since_ms": None,
        "lag": LagView("router-g", (
            LagRow("crm.ingress", 0, "eu", 100, 100, 0),
            LagRow("crm.ingress", 1, "eu", 45, 50, 5),
            LagRow("crm.ingress", 2, "eu", None, 70, 30),
        )),
        "placement": PlacementView((
            PlacementRow("crm.eu.contact", "eu", "violation", VIOLATION),
            PlacementRow("quarantine.eu", "eu", "ok"),
            PlacementRow("crm.us.contact", "us", "ok"),
        )),
        "keys": KeysView((
            KeyHealth("eu", "dev", "eu", True, 4.2),
            KeyHealth("us", "bao", "rr-us", False, 2001.0, "KEY_UNAVAILABLE key 'rr-us' (retriable): OpenBao down"),
        )),
        "group": GroupView("router-g", "stable", "range", 2, (
            Member("router-g-a-1f2e", "router-g-a", "/10.0.0.1", None, (("crm.ingress", 0), ("crm.ingress", 1))),
            Member("router-g-b-9c8d", "router-g-b", "/10.0.0.2", None, (("crm.ingress", 2),)),
        )),
    }
    fields.update(overrides)
    return Status(**fields)


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


# -- text ------------------------------------------------------------------------------------------


def test_overview_row_per_jurisdiction() -> None:
    text = render_text(sample_status())
    assert "ROUTED off/s" in text
    assert "QUARANTINED off/s" in text
    assert _line(text, "eu ").split() == ["eu", "20.0", "2.5", "1234", "56", "35", "1", "NOT", "OK", "ok", "4", "ms"]
    assert _line(text, "us ").split() == ["us", "0.0", "0.0", "99", "0", "-", "ok", "ERROR"]
    assert "rates over the last 2.0 s; rates are offsets per second" in text
    assert "transaction markers" in text
    assert "[NOT HEALTHY]" in text


def test_quarantine_reasons_lag_placement_keys_and_instances() -> None:
    text = render_text(sample_status())
    assert _line(text, "eu            quarantine.eu").split()[2:] == [
        "51", "UNRESOLVED_JURISDICTION", "40,", "GAP_EVENT", "10,", "UNDECODABLE", "1"]
    assert "all retained records" in text
    assert _line(text, "crm.ingress").split() == ["crm.ingress", "eu", "35", "0:0", "1:5", "2:30*"]
    assert "PLACEMENT: 2 of 3 topics ok" in text
    assert "VIOLATION: topic crm.eu.contact must have every replica in jurisdiction eu" in text
    assert "partition 1 has a replica on broker 3 (rack us-east-1a, jurisdiction us)" in text
    assert "ERROR: KEY_UNAVAILABLE key 'rr-us' (retriable): OpenBao down" in text
    assert "group router-g: stable, 2 member(s), assignor range, coordinator broker 2" in text
    assert _line(text, "router-g-a ").split() == ["router-g-a", "/10.0.0.1", "crm.ingress[0],", "crm.ingress[1]",
                                                 "router-g-a-1f2e"]


def test_no_rates_without_a_sample_and_a_window_when_since_is_set() -> None:
    text = render_text(sample_status(sample_s=None, quarantine_since_ms=T0 - 900_000))
    assert "rates: not sampled (totals only" in text
    assert "quarantined since 2026-" in text


def test_a_section_error_is_shown_in_its_place() -> None:
    text = render_text(sample_status(group=GroupView("router-g", error="could not describe group 'router-g': x"),
                                     lag=LagView("router-g", (), "could not read the committed offsets: y")))
    assert "ROUTER INSTANCES (group router-g)\n  ERROR: could not describe group 'router-g': x" in text
    assert "  ERROR: could not read the committed offsets: y" in text
    assert "PLACEMENT: 2 of 3 topics ok" in text, "the other sections still show"


def test_a_cluster_error_replaces_the_kafka_sections_and_keeps_key_health() -> None:
    err = "could not read the cluster's metadata from kafka-1:9092 (clusters.default.bootstrap, or --bootstrap)"
    status = sample_status(error=err, jurisdictions=(), quarantine=(), lag=LagView("router-g", (), err),
                           placement=PlacementView((), {}, err), group=GroupView("router-g", error=err))
    text = render_text(status)
    assert f"CLUSTER ERROR: {err}" in text
    assert "JURISDICTION  ROUTED" not in text
    assert "KEY PROVIDERS" in text
    assert _line(text, "eu            dev").split() == ["eu", "dev", "eu", "4.2", "ms", "ok"]


def test_a_healthy_status_says_nothing_is_wrong() -> None:
    status = sample_status(placement=PlacementView((PlacementRow("quarantine.eu", "eu", "ok"),)),
                           keys=KeysView((KeyHealth("eu", "dev", "eu", True, 1.0),)))
    assert status.healthy
    text = render_text(status)
    assert "NOT HEALTHY" not in text
    assert "PLACEMENT: 1 of 1 topics ok" in text


# -- JSON ------------------------------------------------------------------------------------------


def test_json_document_carries_the_same_facts() -> None:
    doc = json.loads(json.dumps(status_json(sample_status())))
    assert doc["healthy"] is False
    assert doc["taken_at_ms"] == T0
    eu = doc["jurisdictions"][0]
    assert (eu["jurisdiction"], eu["routed_offsets_per_s"], eu["quarantined_offsets_per_s"], eu["ingress_lag"]) == (
        "eu", 20.0, 2.5, 35)
    assert doc["quarantine"]["topics"][0]["by_reason"] == {"UNRESOLVED_JURISDICTION": 40, "GAP_EVENT": 10}
    assert doc["quarantine"]["topics"][0]["undecodable"] == 1
    assert doc["lag"]["total"] == 35
    assert doc["lag"]["partitions"][2] == {"topic": "crm.ingress", "partition": 2, "jurisdiction": "eu",
                                           "committed": None, "end": 70, "lag": 30}
    assert doc["placement"]["ok"] is False
    assert doc["placement"]["topics"][0]["verdict"] == "violation"
    assert "broker 3" in doc["placement"]["topics"][0]["detail"]
    assert doc["keys"]["jurisdictions"][1]["ok"] is False
    assert doc["group"]["state"] == "stable"
    assert [m["client_id"] for m in doc["group"]["members"]] == ["router-g-a", "router-g-b"]
    assert doc["group"]["members"][1]["partitions"] == [{"topic": "crm.ingress", "partition": 2}]


def test_key_material_is_never_printed(tmp_path: Path) -> None:
    from router.config.loader import parse_config

    keyring = tmp_path / "keyring.json"
    ring = LocalKeyring.create(keyring, ["eu", "us"])
    config = parse_config(config_doc(keyring), str(tmp_path / "router.yaml"))
    keys = KeyProbe(config.keys).check()
    assert keys.ok
    status = sample_status(keys=keys)
    printed = render_text(status) + json.dumps(status_json(status))
    provider = LocalKeyProvider(ring)
    for j in ("eu", "us"):
        secret = provider.digest_key(j)
        kek = ring.keks[j].versions[1]
        for raw in (secret, kek):
            assert raw.hex() not in printed
            assert base64.b64encode(raw).decode() not in printed


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A config file and the fake cluster ``status`` reads through its collector."""
    keyring = tmp_path / "keyring.json"
    LocalKeyring.create(keyring, ["eu", "us"])
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config_doc(keyring)))
    admin, log = in_place_cluster(), FakeLog()
    made: list[StatusCollector] = []

    def from_config(config: Any, **kw: Any) -> StatusCollector:
        roles = TopicRoles.from_config(config)
        c = StatusCollector(config, admin=admin, quarantine=QuarantineCounter(roles.quarantine, log.reader),
                            keys=KeyProbe(config.keys), bootstrap="127.0.0.1:9092", timeout=kw["timeout"])
        made.append(c)
        return c

    monkeypatch.setattr(StatusCollector, "from_config", staticmethod(from_config))
    return {"config": str(path), "admin": admin, "made": made}


def test_status_prints_the_screen_and_exits_0_when_healthy(deployment: dict[str, Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["status", "--config", deployment["config"], "--sample", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "PLACEMENT: 8 of 8 topics ok" in out
    assert "router-g-a" in out


def test_status_exits_1_when_a_topic_is_out_of_place(deployment: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    admin: FakeAdmin = deployment["admin"]
    admin.replicas["quarantine.us"][0] = [1]
    code = main(["status", "--config", deployment["config"], "--sample", "0", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["placement"]["ok"] is False
    bad = [t for t in doc["placement"]["topics"] if t["verdict"] != "ok"]
    assert [t["topic"] for t in bad] == ["quarantine.us"]
    assert "broker 1 (rack eu-west-1a, jurisdiction eu)" in bad[0]["detail"]


def test_an_unreachable_cluster_exits_2_naming_the_setting(deployment: dict[str, Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    deployment["admin"].failures["list_topics"] = kafka_error()
    code = main(["status", "--config", deployment["config"], "--sample", "0", "--timeout", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "clusters.default.bootstrap" in err
    assert "within 3 s (--timeout)" in err
    assert "Traceback" not in err


def test_watch_prints_one_json_document_per_refresh_and_ctrl_c_exits_0(
        deployment: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    admin: FakeAdmin = deployment["admin"]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        admin.high[("crm.eu.contact", 0)] += 30  # what the router routed while the command waited
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("router.cli.status.time.sleep", sleep)
    code = main(["status", "--config", deployment["config"], "--watch", "--json", "--interval", "1",
                 "--sample", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 3
    assert [d["jurisdictions"][0]["routed_offsets"] for d in docs] == [0, 30, 60]
    assert docs[0]["jurisdictions"][0]["routed_offsets_per_s"] is None
    assert all(d["jurisdictions"][0]["routed_offsets_per_s"] > 0 for d in docs[1:])
    assert len(deployment["made"]) == 1, "one collector (and its cached quarantine counts) for the whole watch"


def test_bad_since_exits_2_naming_the_option(deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["status", "--config", deployment["config"], "--since", "yesterday"])
    assert code == 2
    assert "--since" in capsys.readouterr().err
