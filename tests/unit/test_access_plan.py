"""The ACL plan of examples/router.yaml, role by role, against hand-written expected bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.access.plan import READER_GROUPS, Binding, plan
from router.cli import main
from router.config.loader import load_config, parse_config

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"

# The example's topics, written out by hand (not read from the config under test).
REGIONAL = {
    j: [f"crm.{j}.{e}" for e in ("account", "contact", "lead", "case", "opportunity")] for j in ("eu", "uk", "us", "ch")
}
QUARANTINE = ["quarantine.eu", "quarantine.uk", "quarantine.us", "quarantine.ch"]
ALL_CONFIGURED = [t for ts in REGIONAL.values() for t in ts] + QUARANTINE + ["audit"]

def rows_of(bindings: list[Binding], principal: str) -> set[tuple[str, str, str, str]]:
    mine = [b for b in bindings if b.principal == principal]
    assert all(b.permission == "ALLOW" and b.host == "*" for b in mine)
    return {(b.operation.value, b.resource_type.value, b.pattern_type.value, b.name) for b in mine}


@pytest.fixture(scope="module")
def example_plan() -> list[Binding]:
    return plan(load_config(EXAMPLE))


def test_router_reads_ingress_and_its_groups_writes_only_its_outputs(example_plan: list[Binding]) -> None:
    expected = {
        ("READ", "TOPIC", "LITERAL", "crm.ingress"),
        ("READ", "GROUP", "LITERAL", "residency-router"),
        ("READ", "GROUP", "PREFIXED", "residency-router.replay."),
        ("READ", "TOPIC", "LITERAL", "audit"),
        *{("READ", "TOPIC", "LITERAL", q) for q in QUARANTINE},  # quarantine replay
        ("DESCRIBE", "TRANSACTIONAL_ID", "PREFIXED", "residency-router-"),
        ("WRITE", "TRANSACTIONAL_ID", "PREFIXED", "residency-router-"),
        ("DESCRIBE", "CLUSTER", "LITERAL", "kafka-cluster"),
        ("DESCRIBE", "GROUP", "PREFIXED", "residency-router-audit-"),
        ("DESCRIBE", "GROUP", "PREFIXED", "residency-router-replay-audit-"),
        ("DESCRIBE", "GROUP", "PREFIXED", "residency-router-replay-dry-run-"),
        *{("WRITE", "TOPIC", "LITERAL", t) for t in ALL_CONFIGURED},
        *{("DESCRIBE_CONFIGS", "TOPIC", "LITERAL", t) for t in ALL_CONFIGURED},
        ("DESCRIBE_CONFIGS", "TOPIC", "LITERAL", "crm.ingress"),  # its retention, checked at start-up
    }
    assert rows_of(example_plan, "User:router") == expected


def test_connector_writes_only_its_ingress_topic(example_plan: list[Binding]) -> None:
    assert rows_of(example_plan, "User:connector") == {("WRITE", "TOPIC", "LITERAL", "crm.ingress")}


@pytest.mark.parametrize("j", ["eu", "uk", "us", "ch"])
def test_consumers_read_their_jurisdictions_prefix_and_their_own_groups(example_plan: list[Binding], j: str) -> None:
    assert rows_of(example_plan, f"User:consumer-{j}") == {
        ("READ", "TOPIC", "PREFIXED", f"crm.{j}."),
        ("READ", "GROUP", "PREFIXED", f"consumer-{j}."),
    }


@pytest.mark.parametrize("j", ["eu", "uk", "us", "ch"])
def test_sre_reads_only_its_quarantine(example_plan: list[Binding], j: str) -> None:
    assert rows_of(example_plan, f"User:sre-{j}") == {
        ("READ", "TOPIC", "LITERAL", f"quarantine.{j}"),
        ("DESCRIBE", "GROUP", "PREFIXED", "residency-router-quarantine-"),
    }


def test_auditor_reads_only_the_audit_topic(example_plan: list[Binding]) -> None:
    assert rows_of(example_plan, "User:auditor") == {
        ("READ", "TOPIC", "LITERAL", "audit"),
        ("DESCRIBE", "GROUP", "PREFIXED", "residency-router-audit-"),
    }


@pytest.mark.parametrize(("module", "prefix"), [
    ("router/audit/kafka.py", "residency-router-audit"),
    ("router/quarantine/reader.py", "residency-router-quarantine"),
    ("router/quarantine/replay.py", "residency-router-replay-audit"),
    ("router/quarantine/replay.py", "residency-router-replay-dry-run"),
])
def test_reader_group_prefixes_are_the_ones_the_readers_use(module: str, prefix: str) -> None:
    """The throw-away group ids are '<group_prefix>-<uuid>' (router.kafka_read.committed_reader)."""
    source = (Path(__file__).resolve().parents[2] / module).read_text(encoding="utf-8")
    assert f'group_prefix="{prefix}"' in source
    assert f"{prefix}-" in READER_GROUPS.values()


def test_no_other_principal_and_no_wildcard(example_plan: list[Binding]) -> None:
    principals = {b.principal for b in example_plan}
    assert principals == {"User:router", "User:connector", "User:auditor",
                          *(f"User:{r}-{j}" for r in ("consumer", "sre") for j in ("eu", "uk", "us", "ch"))}
    assert all(b.name != "*" and b.operation != "ALL" for b in example_plan)
    assert len(example_plan) == len(set(example_plan))


def _example(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for key, value in changes.items():
        doc[key] = value
    return doc


def test_a_prefix_another_jurisdictions_topic_starts_with_falls_back_to_literal_names() -> None:
    doc = _example()
    # a topic of jurisdiction uk whose name starts with the eu prefix: crm.eu. would reach it
    doc["topics"].append({"name": "crm.eu.shadow", "jurisdiction": "uk"})
    bindings = plan(parse_config(doc))
    eu_topics = rows_of(bindings, "User:consumer-eu")
    assert eu_topics == {("READ", "GROUP", "PREFIXED", "consumer-eu.")} | {
        ("READ", "TOPIC", "LITERAL", t) for t in REGIONAL["eu"]}
    assert ("READ", "TOPIC", "PREFIXED", "crm.us.") in rows_of(bindings, "User:consumer-us")


def test_a_topic_pattern_without_the_jurisdiction_first_lists_topics_literally() -> None:
    doc = _example()
    doc["policy"]["topic"] = "{entity}.{jurisdiction}"
    doc["topics"] = [{"name": "contact.eu", "jurisdiction": "eu"}, {"name": "contact.us", "jurisdiction": "us"},
                     *({"name": q, "jurisdiction": q.split(".")[1]} for q in QUARANTINE),
                     {"name": "audit", "jurisdiction": "eu"}]
    bindings = plan(parse_config(doc))
    assert rows_of(bindings, "User:consumer-eu") == {("READ", "GROUP", "PREFIXED", "consumer-eu."),
                                                      ("READ", "TOPIC", "LITERAL", "contact.eu")}
    assert ("READ", "TOPIC", "LITERAL", "contact.us") in rows_of(bindings, "User:consumer-us")


def test_idempotent_write_acl_adds_the_cluster_grant_to_router_and_connectors() -> None:
    doc = _example()
    doc["access"]["idempotent_write_acl"] = True
    bindings = plan(parse_config(doc))
    for principal in ("User:router", "User:connector"):
        assert ("IDEMPOTENT_WRITE", "CLUSTER", "LITERAL", "kafka-cluster") in rows_of(bindings, principal)
    assert ("IDEMPOTENT_WRITE", "CLUSTER", "LITERAL", "kafka-cluster") not in rows_of(bindings, "User:consumer-eu")


def test_cli_plan_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acls", "plan", "--config", str(EXAMPLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["principal", "operation", "permission", "resource", "type", "pattern", "type", "name"]
    assert "User:consumer-us  READ              ALLOW       TOPIC             PREFIXED      crm.us." in lines
    assert main(["acls", "plan", "--config", str(EXAMPLE), "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    eu = [b for b in doc["bindings"] if b["principal"] == "User:consumer-eu" and b["resource_type"] == "TOPIC"]
    assert [(b["operation"], b["pattern_type"], b["name"]) for b in eu] == [("READ", "PREFIXED", "crm.eu.")]


def test_cli_plan_without_access_section_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _example()
    del doc["access"]
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert main(["acls", "plan", "--config", str(path)]) == 2
    assert "no 'access' section" in capsys.readouterr().err

