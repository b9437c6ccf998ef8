"""``residency-router report`` end to end without a broker: the trail reader, the connection check
and the admin client are replaced at the Kafka edge; the command writes the three files, exits 1
for a broken trail and names the retention the cluster reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from router.cli.main import main
from router.report.kafka import topic_retention
from router.report.model import TopicRetention
from tests.unit.test_report_collect import EXAMPLE, mixed_trail

pytestmark = pytest.mark.unit


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {"records": mixed_trail().records}
    monkeypatch.setattr("router.kafka_read.check_connection", lambda *a, **k: None)
    monkeypatch.setattr("router.audit.kafka.read_audit", lambda props, topic, timeout: iter(seen["records"]))

    def retention(props: Any, topics: Any, *, timeout: float) -> dict[str, TopicRetention]:
        seen["topics"] = sorted(topics)
        return {t: TopicRetention(t, 86_400_000, "delete") for t in seen["topics"]}

    monkeypatch.setattr("router.report.kafka.topic_retention", retention)
    return seen


def test_report_writes_html_json_and_csv(no_cluster: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "--config", str(EXAMPLE), "--out", str(tmp_path / "r")])
    assert code == 0
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["decisions"] == 7
    assert doc["ok"] is True
    rows = list(csv.DictReader((tmp_path / "r" / "summary.csv").open()))
    assert sum(int(r["events"]) for r in rows) == 7
    assert "<svg" in (tmp_path / "r" / "report.html").read_text()
    assert no_cluster["topics"] == ["crm.eu.contact", "crm.us.contact", "quarantine.eu", "quarantine.us"]
    eu = next(p for p in doc["processing"] if p["jurisdiction"] == "eu")
    assert eu["destinations"][0]["retention_ms"] == 86_400_000
    assert eu["key_provider"] == "dev (local), key eu"
    assert "7 verified decision(s), all chains verified" in capsys.readouterr().out


def test_report_of_a_broken_trail_exits_1_and_is_still_written(no_cluster: dict[str, Any], tmp_path: Path) -> None:
    p, o, v = no_cluster["records"][0]
    no_cluster["records"][0] = (p, o, v[:-1] + bytes([v[-1] ^ 1]))
    assert main(["report", "--config", str(EXAMPLE), "--out", str(tmp_path)]) == 1
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["ok"] is False
    assert doc["excluded"] >= 1


def test_from_after_to_is_refused(no_cluster: dict[str, Any], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "--config", str(EXAMPLE), "--out", str(tmp_path), "--from", "2026-11-29",
                 "--to", "2026-11-28"])
    assert code == 2
    assert "--from must be before --to" in capsys.readouterr().err


def test_a_bad_time_is_an_argument_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--config", str(EXAMPLE), "--out", str(tmp_path), "--from", "yesterday"])
    assert exit_info.value.code == 2


class _Entry:
    def __init__(self, value: str) -> None:
        self.value = value


class _Future:
    def __init__(self, result: dict[str, _Entry] | Exception) -> None:
        self._result = result

    def result(self, timeout: float | None = None) -> dict[str, _Entry]:
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


class _Admin:
    """describe_configs as confluent-kafka answers it: a future per ConfigResource."""

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, _Future]:
        answers: dict[str, dict[str, _Entry] | Exception] = {
            "crm.eu.contact": {"retention.ms": _Entry("604800000"), "cleanup.policy": _Entry("delete")},
            "crm.eu.account": {"retention.ms": _Entry("-1"), "cleanup.policy": _Entry("compact")},
            "quarantine.eu": RuntimeError("TOPIC_AUTHORIZATION_FAILED"),
        }
        return {r: _Future(answers[r.name]) for r in resources}


def test_topic_retention_reads_each_topic_and_reports_failures_per_topic() -> None:
    out = topic_retention({}, ["crm.eu.contact", "crm.eu.account", "quarantine.eu"], admin=_Admin())
    assert out["crm.eu.contact"] == TopicRetention("crm.eu.contact", 604_800_000, "delete")
    assert out["crm.eu.account"] == TopicRetention("crm.eu.account", None, "compact")
    assert out["quarantine.eu"].error is not None
    assert "TOPIC_AUTHORIZATION_FAILED" in out["quarantine.eu"].error
