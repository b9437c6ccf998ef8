"""``residency-router simulate``: the decision ``run`` takes, per input line, without Kafka."""

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from router.cli import main
from router.ingest.samples import SampleRecord, generate, write_jsonl

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
KEYS = {"line", "event_id", "level", "categories", "field_names", "jurisdictions", "decision", "topic", "reason",
        "detail", "policy_version"}
SUMMARY_KEYS = {"route", "quarantine", "audit_only", "by_reason", "bad_lines"}


def line(doc: Any, fmt: str = "generic-json", headers: dict[str, str] | None = None) -> str:
    return json.dumps({"format": fmt, "key_b64": None, "headers": headers or {},
                       "value_b64": base64.b64encode(json.dumps(doc).encode()).decode()})


def simulate(events: Path, *args: str, config: Path = EXAMPLE,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], dict[str, Any], str]:
    """Exit code, rows, summary and stderr of ``simulate --json``."""
    code = main(["simulate", "--config", str(config), "--events", str(events), "--json", *args])
    captured = capsys.readouterr()
    out = [json.loads(x) for x in captured.out.splitlines()]
    assert out and set(out[-1]) == {"summary"}
    assert all(set(r) == KEYS for r in out[:-1])
    return code, out[:-1], out[-1]["summary"], captured.err


def config_with(tmp_path: Path, ingress: list[dict[str, Any]], **residency: Any) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc.pop("access")  # its connector writes the example's ingress topic, replaced here
    doc["pipeline"]["ingress"] = ingress
    doc["residency"].update(residency)
    p = tmp_path / "router.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def sf_doc(entity: str, change: str = "UPDATE", **fields: object) -> dict[str, Any]:
    header = {"entityName": entity, "recordIds": ["001XX0000001AAA"], "changeType": change,
              "changeOrigin": "com/salesforce/api/soap/61.0", "transactionKey": "t-1", "sequenceNumber": 1,
              "commitTimestamp": 1_700_000_000_000, "commitNumber": 1, "commitUser": "005XX",
              "nulledFields": [], "diffFields": [], "changedFields": sorted(fields)}
    return {"ChangeEventHeader": header, **fields}


def sf_line(entity: str, change: str = "UPDATE", **fields: object) -> str:
    return line(sf_doc(entity, change, **fields), fmt="salesforce-json")


def dbz_doc(table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
            lsn: int = 1) -> dict[str, Any]:
    return {"before": before, "after": after, "op": op, "ts_ms": 1_700_000_000_000,
            "source": {"connector": "postgresql", "name": "crm", "db": "crm", "schema": "public", "table": table,
                       "lsn": lsn, "ts_ms": 1_700_000_000_000}}


@pytest.fixture
def events(tmp_path: Path) -> Path:
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join([
        line({"entity": "Account", "id": "1", "operation": "update", "BillingCountry": "DE"}),
        line({"entity": "Account", "id": "2", "operation": "update", "Name": "Acme"}),
        "not json",  # a raw record value the ingress decoder cannot read: a quarantined record
        line({"id": "3"}),  # no entity: a decode failure, so a quarantine line
        json.dumps({"format": "generic-json"}),  # lacks value_b64: a bad line
    ]) + "\n")
    return p


def test_simulate_json_lines_have_the_pinned_shape(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, summary, _ = simulate(events, capsys=capsys)
    assert code == 0
    assert [(r["line"], r["decision"], r["reason"]) for r in rows] == [
        (1, "route", "ROUTED"), (2, "quarantine", "UNRESOLVED_JURISDICTION"), (3, "quarantine", "UNSUPPORTED_FORMAT"),
        (4, "quarantine", "MISSING_FIELD")]
    assert rows[0]["topic"] == "crm.eu.account"
    assert all(r["topic"] == "quarantine.eu" for r in rows[1:])  # the ingress topic's jurisdiction
    assert summary == {"route": 1, "quarantine": 3, "audit_only": 0, "bad_lines": 1,
                       "by_reason": {"MISSING_FIELD": 1, "ROUTED": 1, "UNRESOLVED_JURISDICTION": 1,
                                     "UNSUPPORTED_FORMAT": 1}}
    assert set(summary) == SUMMARY_KEYS


def test_simulate_table_reports_bad_lines_and_never_values(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events)]) == 0
    captured = capsys.readouterr()
    assert "crm.eu.account" in captured.out
    assert "UNSUPPORTED_FORMAT -> quarantine.eu" in captured.out
    assert "line 5: lacks value_b64" in captured.err
    assert "line 3" not in captured.err
    assert "Acme" not in captured.out and "not json" not in captured.out


def test_simulate_decides_every_sample_generator_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "samples.jsonl"
    n = write_jsonl(p, generate(24, seed=0))
    code, rows, summary, _ = simulate(p, capsys=capsys)
    assert code == 0
    assert [r["line"] for r in rows] == list(range(1, n + 1))
    assert summary["bad_lines"] == 0
    assert summary["route"] > 0


def test_simulate_salesforce_cdc_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "sf.jsonl"
    p.write_text("\n".join([
        sf_line("Contact", Email="jane@example.org", MailingAddress={"Country": "Germany"}),
        sf_line("Account", BillingCountry="US", Description="wire to GR16 0110 1050 0000 1054 7023 795"),
        sf_line("Account", "GAP_OVERFLOW"),
        '{"format": "salesforce-json", "key_b64": null, "headers": {}, "value_b64": "e30="}',  # {}
        '{"format": "salesforce-json", "value_b64": "%%%"}',
    ]) + "\n")
    code, rows, summary, err = simulate(p, capsys=capsys)
    assert code == 0
    assert rows[0]["decision"] == "route" and rows[0]["topic"] == "crm.eu.contact"
    assert rows[0]["level"] == "confidential" and rows[0]["categories"] == ["PII"]
    assert "Email" in rows[0]["field_names"]
    assert rows[1]["categories"] == ["FINANCIAL"] and rows[1]["jurisdictions"] == ["us"]
    assert rows[2]["reason"] == "GAP_EVENT" and rows[2]["topic"].startswith("quarantine.")
    assert rows[3]["decision"] == "quarantine" and rows[3]["topic"] == "quarantine.eu"  # decode failure: ingress
    assert summary["bad_lines"] == 1 and "line 5: value_b64 is not base64" in err


def test_simulate_never_prints_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "sf.jsonl"
    p.write_text(sf_line("Contact", Email="jane@example.org", MailingAddress={"Country": "Germany"}) + "\n"
                 + json.dumps(sf_doc("Contact", Email="jane@example.org", MailingCountry="Atlantis")) + "\n")
    _, rows, _, _ = simulate(p, capsys=capsys)
    text = json.dumps(rows)
    assert "jane" not in text and "Germany" not in text and "Atlantis" not in text


# -- raw record values, as a connector writes them ------------------------------------------

RAW_DOCS: list[dict[str, Any]] = [
    sf_doc("Contact", Email="jane@example.org", MailingAddress={"Country": "Germany"}),
    sf_doc("Account", BillingCountry="US", Description="wire to GR16 0110 1050 0000 1054 7023 795"),
    sf_doc("Contact", Email="hans@example.ch", MailingCountry="CH"),
    sf_doc("Lead", Email="x@example.org"),  # no country: unresolved
    sf_doc("Account", "GAP_OVERFLOW"),
    dbz_doc("contact", "c", None, {"id": 1, "email": "jo@example.org", "country": "GB"}, lsn=10),
    dbz_doc("account", "u", {"id": 2, "country": "DE"}, {"id": 2, "country": "DE", "name": "Rhein GmbH"}, lsn=11),
    dbz_doc("account", "d", {"id": 3, "country": "FR"}, None, lsn=12),
]


def _formats(doc: dict[str, Any]) -> str:
    return "salesforce-json" if "ChangeEventHeader" in doc else "debezium-json"


def test_raw_connector_lines_decide_like_wrapped_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw, wrapped = tmp_path / "raw.jsonl", tmp_path / "wrapped.jsonl"
    raw.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in RAW_DOCS))
    wrapped.write_text("".join(line(d, _formats(d)) + "\n" for d in RAW_DOCS))
    code_raw, rows_raw, sum_raw, _ = simulate(raw, capsys=capsys)
    code_wrapped, rows_wrapped, sum_wrapped, _ = simulate(wrapped, capsys=capsys)
    assert code_raw == code_wrapped == 0
    assert rows_raw == rows_wrapped
    assert sum_raw == sum_wrapped and sum_raw["bad_lines"] == 0
    assert [r["reason"] for r in rows_raw] == [
        "ROUTED", "ROUTED", "ROUTED", "UNRESOLVED_JURISDICTION", "GAP_EVENT", "ROUTED", "ROUTED", "ROUTED"]
    assert [r["topic"] for r in rows_raw] == [
        "crm.eu.contact", "crm.us.account", "crm.ch.contact", "quarantine.eu", "quarantine.eu", "crm.uk.contact",
        "crm.eu.account", "crm.eu.account"]


def test_raw_generator_values_decide_like_their_wrapped_lines(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    records = [r for r in generate(60, seed=3, formats=("salesforce-json", "debezium-json")) if r.value is not None]
    raw, wrapped = tmp_path / "raw.jsonl", tmp_path / "wrapped.jsonl"
    raw.write_bytes(b"".join(r.value + b"\n" for r in records if r.value is not None))
    write_jsonl(wrapped, [SampleRecord(None, r.value, r.format, r.headers) for r in records])  # raw lines have no key
    _, rows_raw, _, _ = simulate(raw, capsys=capsys)
    _, rows_wrapped, _, _ = simulate(wrapped, capsys=capsys)
    assert len(rows_raw) == len(records)
    assert rows_raw == rows_wrapped


def test_format_option_decodes_raw_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "dbz.jsonl"
    p.write_bytes(orjson.dumps(dbz_doc("contact", "c", None, {"id": 1, "country": "GB", "email": "a@b.org"})) + b"\n")
    _, rows, _, _ = simulate(p, "--format", "debezium-json", capsys=capsys)
    assert [(r["decision"], r["topic"]) for r in rows] == [("route", "crm.uk.contact")]
    _, rows, _, _ = simulate(p, "--format", "salesforce-json", capsys=capsys)
    assert [(r["decision"], r["topic"]) for r in rows] == [("quarantine", "quarantine.eu")]


def test_a_non_utf8_line_is_a_bad_line_and_the_file_goes_on(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "latin1.jsonl"
    sf = json.dumps(sf_doc("Contact", MailingCountry="DE", LastName="M\u00fcller"), ensure_ascii=False)
    wrapped = b'{"format": "salesforce-json", "value_b64": "e30="}'
    p.write_bytes(b"\xff\xfe\x00garbage\n" + sf.encode("latin-1") + b"\n"
                  + orjson.dumps(sf_doc("Account", BillingCountry="DE")) + b"\n" + wrapped + b"\xe9\n")
    code, rows, summary, err = simulate(p, capsys=capsys)
    assert code == 0 and "Traceback" not in err
    assert [(r["line"], r["decision"], r["topic"]) for r in rows] == [(3, "route", "crm.eu.account")]
    assert summary["bad_lines"] == 3
    assert [x for x in err.splitlines() if x.startswith("line ")] == [
        "line 1: not UTF-8 text (byte 1)", f"line 2: not UTF-8 text (byte {sf.index('ü') + 1})",
        f"line 4: not UTF-8 text (byte {len(wrapped) + 1})"]
    assert "M\u00fcller" not in err and "ller" not in err and "garbage" not in err and "\ufffd" not in err


def test_a_wrapped_value_that_is_not_utf8_is_a_record_not_a_bad_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "wrapped.jsonl"
    p.write_text(json.dumps({"format": "salesforce-json", "value_b64": base64.b64encode(b"\xff\xfe").decode()}) + "\n")
    _, rows, summary, _ = simulate(p, capsys=capsys)
    assert [(r["decision"], r["topic"]) for r in rows] == [("quarantine", "quarantine.eu")]
    assert summary["bad_lines"] == 0


def test_a_non_utf8_line_in_the_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b"\x80\x81\x82\n" + orjson.dumps(sf_doc("Account", BillingCountry="DE")) + b"\n")
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(p)]) == 0
    captured = capsys.readouterr()
    assert "line 1: not UTF-8 text (byte 1)" in captured.err
    assert "crm.eu.account" in captured.out and "bad lines 1" in captured.out


def test_a_file_of_nothing_but_non_utf8_lines_reads_no_record(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b"\x80\n\xc3\x28\n")
    code, rows, summary, _ = simulate(p, capsys=capsys)
    assert code == 1 and rows == [] and summary["bad_lines"] == 2


def test_rows_carry_the_input_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "numbered.jsonl"
    p.write_text("\n".join([
        "",
        sf_line("Account", BillingCountry="DE"),
        json.dumps({"format": "salesforce-json"}),  # bad line 3
        "   ",
        sf_line("Account", BillingCountry="US"),
        "garbage",
        sf_line("Account", BillingCountry="GB"),
    ]) + "\n")
    _, rows, summary, err = simulate(p, capsys=capsys)
    assert [(r["line"], r["topic"]) for r in rows] == [
        (2, "crm.eu.account"), (5, "crm.us.account"), (6, "quarantine.eu"), (7, "crm.uk.account")]
    assert summary["bad_lines"] == 1 and "line 3:" in err


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b'{"format": "generic-json"}\n{"value_b64": 7}\n'])
def test_exit_code_is_1_when_no_line_could_be_read(tmp_path: Path, content: bytes,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "none.jsonl"
    p.write_bytes(content)
    code, rows, summary, err = simulate(p, capsys=capsys)
    assert code == 1
    assert rows == [] and summary["route"] == summary["quarantine"] == summary["audit_only"] == 0
    assert "no record could be read" in err


def test_exit_code_is_0_when_every_record_is_quarantined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text("garbage\n")
    assert simulate(p, capsys=capsys)[0] == 0


def test_a_missing_events_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(tmp_path / "nope.jsonl")]) == 2
    assert "--events" in capsys.readouterr().err


def test_destination_not_configured_is_reported_like_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "widget.jsonl"
    p.write_text(sf_line("Widget__c", BillingCountry="DE") + "\n" + sf_line("Account", BillingCountry="DE") + "\n")
    _, rows, summary, _ = simulate(p, capsys=capsys)
    assert [(r["decision"], r["reason"], r["topic"]) for r in rows] == [
        ("quarantine", "DESTINATION_NOT_CONFIGURED", "quarantine.eu"), ("route", "ROUTED", "crm.eu.account")]
    assert "crm.eu.widget__c" in rows[0]["detail"]
    assert summary["by_reason"]["DESTINATION_NOT_CONFIGURED"] == 1


def test_destination_not_configured_is_quarantined_in_the_datas_jurisdiction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "widget.jsonl"
    p.write_text(sf_line("Widget__c", BillingCountry="CH") + "\n")
    _, rows, _, _ = simulate(p, capsys=capsys)
    assert [(r["reason"], r["topic"]) for r in rows] == [("DESTINATION_NOT_CONFIGURED", "quarantine.ch")]


def test_a_tombstone_is_audit_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "tomb.jsonl"
    p.write_text(json.dumps({"format": "debezium-json", "key_b64": base64.b64encode(b'{"id": 7}').decode(),
                             "value_b64": None, "headers": {}}) + "\n")
    _, rows, summary, _ = simulate(p, capsys=capsys)
    assert [(r["decision"], r["reason"], r["topic"]) for r in rows] == [("audit_only", "TOMBSTONE_AUDITED", None)]
    assert summary["audit_only"] == 1 and summary["quarantine"] == 0


def test_topic_selects_the_ingress_jurisdiction_and_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_with(tmp_path, [{"topic": "sf.eu", "jurisdiction": "eu"},
                                 {"topic": "sf.uk", "jurisdiction": "uk"},
                                 {"topic": "sf.trusted", "jurisdiction": "us", "trusted": True}])
    p = tmp_path / "e.jsonl"
    p.write_text(sf_line("Lead", Email="x@example.org") + "\n"
                 + line(sf_doc("Lead", Email="x@example.org"), "salesforce-json", {"x-data-region": "uk"}) + "\n")
    topics = {}
    for topic in ("sf.eu", "sf.uk", "sf.trusted"):
        _, rows, _, _ = simulate(p, "--topic", topic, config=cfg, capsys=capsys)
        topics[topic] = [(r["reason"], r["topic"]) for r in rows]
    assert topics == {
        "sf.eu": [("UNRESOLVED_JURISDICTION", "quarantine.eu")] * 2,
        "sf.uk": [("UNRESOLVED_JURISDICTION", "quarantine.uk")] * 2,
        "sf.trusted": [("UNRESOLVED_JURISDICTION", "quarantine.us"), ("ROUTED", "crm.uk.lead")],
    }
    assert simulate(p, config=cfg, capsys=capsys)[1][0]["topic"] == "quarantine.eu"  # default: the first


def test_an_unknown_topic_is_a_clear_error(capsys: pytest.CaptureFixture[str], events: Path) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events), "--topic", "nope"]) == 2
    assert "--topic nope is not under pipeline.ingress" in capsys.readouterr().err


def test_an_unknown_format_is_a_clear_error(capsys: pytest.CaptureFixture[str], events: Path) -> None:
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(events), "--format", "xml"]) == 2
    assert "format 'xml'" in capsys.readouterr().err


def test_the_table_shows_an_audit_only_row_without_a_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "tomb.jsonl"
    p.write_text(json.dumps({"format": "debezium-json", "key_b64": base64.b64encode(b'{"id": 7}').decode(),
                             "value_b64": None, "headers": {}}) + "\n")
    assert main(["simulate", "--config", str(EXAMPLE), "--events", str(p)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "audit_only" in row and "TOMBSTONE_AUDITED" in row
    assert "None" not in row
