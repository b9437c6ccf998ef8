import base64
import json
from pathlib import Path

import pytest

from router.cli import main

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
KEYS = {"event_id", "level", "categories", "jurisdictions", "decision", "topic", "reason", "policy_version"}


def line(doc: dict[str, object], fmt: str = "generic-json") -> str:
    return json.dumps({"format": fmt, "key_b64": None, "headers": {},
                       "value_b64": base64.b64encode(json.dumps(doc).encode()).decode()})


@pytest.fixture
def events(tmp_path: Path) -> Path:
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join([
        line({"entity": "Account", "id": "1", "operation": "update", "BillingCountry": "DE"}),
        line({"entity": "Account", "id": "2", "operation": "update", "Name": "Acme"}),
        "not json",
        line({"id": "3"}),  # no entity: a decode failure, so a quarantine line
        json.dumps({"format": "generic-json"}),  # lacks value_b64: a bad line
    ]) + "\n")
    return p


def test_simulate_json_lines_have_the_pinned_shape(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events), "--json"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    rows, summary = out[:-1], out[-1]["summary"]
    assert all(set(r) == KEYS for r in rows)
    assert [(r["decision"], r["reason"]) for r in rows] == [
        ("route", "ROUTED"), ("quarantine", "UNRESOLVED_JURISDICTION"), ("quarantine", "MISSING_FIELD")]
    assert rows[0]["topic"] == "crm.eu.account"
    assert summary["bad_lines"] == [3, 5]
    assert summary["decisions"] == {"route": 1, "quarantine": 2}


def test_simulate_table_reports_bad_lines_and_never_values(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events)]) == 0
    captured = capsys.readouterr()
    assert "crm.eu.account" in captured.out
    assert "line 3:" in captured.err
    assert "Acme" not in captured.out


def test_simulate_decides_every_sample_generator_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from router.ingest.samples import generate, write_jsonl

    p = tmp_path / "samples.jsonl"
    n = write_jsonl(p, generate(24, seed=0))
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(p), "--json"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    rows, summary = out[:-1], out[-1]["summary"]
    assert len(rows) == n
    assert all(set(r) == KEYS for r in rows)
    assert summary["bad_lines"] == []
    assert summary["decisions"].get("route", 0) > 0
