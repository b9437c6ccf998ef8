"""The PolicyEngine façade and the policy outcomes, one per reason code, on a brief-style config."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from router.config.loader import load_config, parse_config
from router.errors import ReasonCode
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.engine import Outcome, PolicyEngine
from router.residency.policy import Quarantine, Route

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


def ev(entity: str = "Account", *, op: Operation = Operation.UPDATE, headers: dict[str, str] | None = None,
       **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, op, ("001xx",), RawRecord(b"{}", "application/json"),
                       values=values, headers=headers or {})


def config(rules: list[dict[str, Any]] | None = None, **residency: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"home": "eu", "countries": {"eu": ["EU", "EEA"], "uk": ["GB"], "us": ["US"], "ch": ["CH"]}}
    res.update(residency)
    return {
        "clusters": {"default": {"bootstrap": "127.0.0.1:9092"}},
        "jurisdictions": {j: {"racks": [f"{j}-*"]} for j in ("eu", "uk", "us", "ch")},
        "residency": res,
        "policy": {"version": "t1", "rules": rules if rules is not None else [
            {"data": "eu", "allow": ["eu"], "max_level": "restricted"},
            {"data": "ch", "allow": ["ch"], "deny_categories": ["SECRET"]},
            {"data": "uk", "allow": ["uk", "eu"], "max_level": "confidential"},
            {"data": "us", "allow": ["us", "eu"]},
        ]},
    }


def engine(**kw: Any) -> PolicyEngine:
    return PolicyEngine.from_config(parse_config(config(**kw)))


E = engine()


def test_outcome_has_the_pinned_fields_in_order() -> None:
    assert [f.name for f in dataclasses.fields(Outcome)] == ["decision", "classification", "resolution",
                                                              "policy_version"]
    out = E.evaluate(ev(BillingCountry="DE"))
    assert isinstance(out.decision, Route)
    assert (out.decision.topic, out.decision.jurisdiction) == ("crm.eu.account", "eu")
    assert out.policy_version == E.version


def test_version_is_label_and_12_hex_and_changes_with_the_policy() -> None:
    label, _, digest = E.version.partition(":")
    assert label == "t1" and len(digest) == 12
    other = engine(rules=[{"data": "eu", "allow": ["eu"]}])
    assert other.version != E.version
    assert engine().version == E.version


def test_home_is_the_residency_home() -> None:
    assert E.home == "eu"


def test_topics_cover_every_routed_destination_and_every_quarantine_topic() -> None:
    topics = E.topics(["Account", "Contact"])
    assert ("crm.eu.account", "eu") in topics and ("crm.uk.contact", "uk") in topics
    assert ("crm.us.account", "us") in topics and ("crm.ch.contact", "ch") in topics
    assert {t for t in topics if t[0].startswith("quarantine.")} == {
        ("quarantine.eu", "eu"), ("quarantine.uk", "uk"), ("quarantine.us", "us"), ("quarantine.ch", "ch")}
    assert topics == sorted(set(topics))


def test_example_config_topics_are_all_declared_under_topics() -> None:
    cfg = load_config(EXAMPLE)
    declared = {(t.name, t.jurisdiction) for t in cfg.topics}
    produced = set(PolicyEngine.from_config(cfg).topics(["Account", "Contact", "Lead", "Case", "Opportunity"]))
    assert produced <= declared, sorted(produced - declared)


def q(out: Outcome) -> Quarantine:
    assert isinstance(out.decision, Quarantine), out.decision
    return out.decision


def test_gap_event_is_quarantined() -> None:
    d = q(E.evaluate(ev(op=Operation.GAP, BillingCountry="DE")))
    assert (d.reason, d.jurisdiction) == (ReasonCode.GAP_EVENT, "eu")


def test_unresolved_goes_to_home() -> None:
    d = q(E.evaluate(ev(Name="Acme")))
    assert (d.reason, d.jurisdiction, d.topic) == (ReasonCode.UNRESOLVED_JURISDICTION, "eu", "quarantine.eu")


def test_no_rule_for_the_data_jurisdiction() -> None:
    e = engine(rules=[{"data": "eu", "allow": ["eu"]}])
    d = q(e.evaluate(ev(BillingCountry="US")))
    assert (d.reason, d.jurisdiction) == (ReasonCode.NO_PERMITTED_DESTINATION, "us")


def test_level_above_max_level_is_denied() -> None:
    assert isinstance(E.evaluate(ev(BillingCountry="GB", Email="x")).decision, Route)  # confidential: allowed
    d = q(E.evaluate(ev(BillingCountry="GB", Iban__c="x")))
    assert (d.reason, d.jurisdiction) == (ReasonCode.POLICY_DENIED, "uk")
    assert "max_level" in d.detail


def test_denied_category_is_denied() -> None:
    d = q(E.evaluate(ev(BillingCountry="CH", Description="key AKIAIOSFODNN7EXAMPLE")))
    assert (d.reason, d.jurisdiction) == (ReasonCode.POLICY_DENIED, "ch")
    assert "AKIA" not in d.detail


def test_two_bindings_route_to_a_destination_allowed_by_both() -> None:
    d = E.evaluate(ev(BillingCountry="US", ShippingCountry="GB")).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "eu"  # us allows [us, eu], uk allows [uk, eu]: only eu serves both


def test_conflict_quarantines_in_the_most_restrictive_bound_jurisdiction() -> None:
    d = q(E.evaluate(ev(BillingCountry="DE", ShippingCountry="CH")))
    assert d.reason is ReasonCode.CONFLICTING_JURISDICTION
    assert d.jurisdiction == "eu"  # first in rule order among the bound {ch, eu}


def test_precedence_overrides_the_rule_order_for_the_conflict_jurisdiction() -> None:
    d = q(engine(precedence=["ch"]).evaluate(ev(BillingCountry="DE", ShippingCountry="CH")))
    assert (d.reason, d.jurisdiction) == (ReasonCode.CONFLICTING_JURISDICTION, "ch")


def test_untrusted_header_adds_a_binding_and_can_only_make_it_stricter() -> None:
    plain = E.evaluate(ev(BillingCountry="US"))
    assert isinstance(plain.decision, Route) and plain.decision.jurisdiction == "us"
    hinted = E.evaluate(ev(headers={"x-data-region": "ch"}, BillingCountry="US"))
    assert hinted.resolution.jurisdictions == ("ch", "us")
    assert q(hinted).reason is ReasonCode.CONFLICTING_JURISDICTION
    assert "untrusted header x-data-region -> ch" in hinted.resolution.evidence


def test_untrusted_header_never_resolves_alone_nor_removes_a_binding() -> None:
    assert q(E.evaluate(ev(headers={"x-data-region": "us"}, Name="Acme"))).reason is \
        ReasonCode.UNRESOLVED_JURISDICTION
    out = E.evaluate(ev(headers={"x-data-region": "eu"}, BillingCountry="DE"))
    assert out.resolution.jurisdictions == ("eu",)


def test_trusted_connector_header_binds_on_its_own() -> None:
    e = engine(trusted_connectors=["sf-eu"])
    out = e.evaluate(ev(headers={"x-data-region": "uk"}, Name="Acme"), connector="sf-eu")
    assert out.resolution.jurisdictions == ("uk",)
    assert out.resolution.evidence == ("trusted header x-data-region -> uk",)
    assert isinstance(out.decision, Route)
