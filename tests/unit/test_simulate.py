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
    assert summary == {"route": 1, "quarantine": 2, "bad_lines": 2,
                       "by_reason": {"MISSING_FIELD": 1, "ROUTED": 1, "UNRESOLVED_JURISDICTION": 1}}


def test_simulate_table_reports_bad_lines_and_never_values(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events)]) == 0
    captured = capsys.readouterr()
    assert "crm.eu.account" in captured.out
    assert "line 3: not JSON" in captured.err
    assert "line 5: lacks value_b64" in captured.err
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
    assert summary["bad_lines"] == 0
    assert summary["route"] > 0


def sf_line(entity: str, change: str = "UPDATE", **fields: object) -> str:
    header = {"entityName": entity, "recordIds": ["001XX0000001AAA"], "changeType": change,
              "changeOrigin": "com/salesforce/api/soap/61.0", "transactionKey": "t-1", "sequenceNumber": 1,
              "commitTimestamp": 1_700_000_000_000, "commitNumber": 1, "commitUser": "005XX",
              "nulledFields": [], "diffFields": [], "changedFields": sorted(fields)}
    return line({"ChangeEventHeader": header, **fields}, fmt="salesforce-json")


def test_simulate_salesforce_cdc_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("router.ingest", reason="the ingest decoders (router.ingest.decoder_for) are not installed")
    p = tmp_path / "sf.jsonl"
    p.write_text("\n".join([
        sf_line("Contact", Email="jane@example.org", MailingAddress={"Country": "Germany"}),
        sf_line("Account", BillingCountry="US", Description="wire to GR16 0110 1050 0000 1054 7023 795"),
        sf_line("Account", "GAP_OVERFLOW"),
        '{"format": "salesforce-json", "key_b64": null, "headers": {}, "value_b64": "e30="}',  # {}
        "[1, 2]",
    ]) + "\n")
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(p), "--json"]) == 0
    captured = capsys.readouterr()
    out = [json.loads(x) for x in captured.out.splitlines()]
    rows, summary = out[:-1], out[-1]["summary"]
    assert set(out[-1]) == {"summary"}
    assert set(summary) == {"route", "quarantine", "by_reason", "bad_lines"}
    assert all(set(r) == KEYS for r in rows)
    assert rows[0]["decision"] == "route" and rows[0]["topic"] == "crm.eu.contact"
    assert rows[0]["level"] == "confidential" and rows[0]["categories"] == ["PII"]
    assert rows[1]["categories"] == ["FINANCIAL"] and rows[1]["jurisdictions"] == ["us"]
    assert rows[2]["reason"] == "GAP_EVENT" and rows[2]["topic"].startswith("quarantine.")
    assert rows[3]["decision"] == "quarantine" and rows[3]["topic"] == "quarantine.eu"  # decode failure: home
    assert summary["bad_lines"] == 1 and "line 5:" in captured.err
    assert "jane" not in captured.out and "GR16" not in captured.out and "Germany" not in captured.out
