from pathlib import Path
from typing import Any

import pytest

from router.config.loader import load_config, parse_config
from router.errors import ConfigError, ReasonCode
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.engine import Engine
from router.residency.policy import Quarantine, Route
from router.residency.resolver import Source

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_config(EXAMPLE))


def ev(entity: str = "Account", *, op: Operation = Operation.UPDATE, tenant: str | None = None,
       headers: dict[str, str] | None = None, **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, op, ("001xx",), RawRecord(b"{}", "application/json"),
                       values=values, tenant_id=tenant, headers=headers or {})


def cfg(**residency: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"home": "eu", "countries": {"eu": ["EU"], "us": ["US"], "uk": ["GB"]}}
    base.update(residency)
    return {"clusters": {"default": {"bootstrap": "localhost:9092"}},
            "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}, "uk": {"racks": ["uk-*"]}},
            "residency": base,
            "policy": {"rules": [{"name": "eu", "data": ["eu"], "allow": ["eu"]},
                                 {"name": "us", "data": ["us"], "allow": ["us", "eu"]},
                                 {"name": "uk", "data": ["uk"], "allow": ["uk", "eu"]}]}}


def test_country_field_by_name_routes_to_its_jurisdiction(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="Germany")).decision
    assert isinstance(d, Route)
    assert (d.topic, d.jurisdiction) == ("crm.eu.account", "eu")


def test_nested_compound_country_code(engine: Engine) -> None:
    out = engine.evaluate(ev("Contact", MailingAddress={"Country": "GB"}))
    assert out.resolution.jurisdictions == ("uk",)
    assert out.resolution.bindings[0].name == "MailingAddress.Country"
    assert out.resolution.evidence == ("field MailingAddress.Country -> GB -> uk",)


def test_tenant_map_binds() -> None:
    e = Engine(parse_config(cfg(tenants={"00Dabc": "us"})))
    out = e.evaluate(ev(tenant="00Dabc"))
    assert out.resolution.bindings[0].source is Source.TENANT
    assert out.resolution.evidence == ("tenant tenant_id -> us",)
    assert isinstance(out.decision, Route)
    assert out.decision.jurisdiction == "us"


def test_default_applies_only_when_nothing_resolved() -> None:
    e = Engine(parse_config(cfg(default="us")))
    assert e.evaluate(ev()).resolution.jurisdictions == ("us",)
    assert e.evaluate(ev(BillingCountry="FR")).resolution.jurisdictions == ("eu",)


def test_nothing_resolvable_and_no_default_is_unresolved_in_home(engine: Engine) -> None:
    d = engine.evaluate(ev(Name="Acme")).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction, d.topic) == (ReasonCode.UNRESOLVED_JURISDICTION, "eu", "quarantine.eu")


def test_unmapped_country_fails_closed(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="Japan")).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.UNRESOLVED_JURISDICTION
    assert "BillingCountry" in d.detail
    assert "Japan" not in d.detail


def test_two_jurisdictions_without_common_destination_conflict(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE", ShippingCountry="US", Email="x")).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.CONFLICTING_JURISDICTION
    assert d.jurisdiction == "eu"  # first in residency.precedence


def test_two_jurisdictions_with_a_destination_permitted_for_both_route_there() -> None:
    e = Engine(parse_config(cfg()))
    d = e.evaluate(ev(BillingCountry="US", ShippingCountry="GB")).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "eu"


def test_untrusted_header_cannot_move_eu_data_to_us() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    d = e.evaluate(ev(headers={"x-data-region": "us"}, BillingCountry="DE")).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "eu"


def test_untrusted_header_turns_a_route_into_a_quarantine_never_the_reverse(engine: Engine) -> None:
    hinted = ev(headers={"x-data-region": "us"}, BillingCountry="DE", Email="x")
    d = engine.evaluate(hinted).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.CONFLICTING_JURISDICTION
    unresolved = engine.evaluate(ev(headers={"x-data-region": "eu"}, Name="Acme")).decision
    assert isinstance(unresolved, Quarantine)


def test_untrusted_header_may_add_a_stricter_binding() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    plain = e.evaluate(ev(BillingCountry="US")).decision
    hinted = e.evaluate(ev(headers={"x-data-region": "eu"}, BillingCountry="US")).decision
    assert isinstance(plain, Route)
    assert plain.jurisdiction == "us"
    assert isinstance(hinted, Route)
    assert hinted.jurisdiction == "eu"


def test_untrusted_header_alone_does_not_resolve() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    d = e.evaluate(ev(headers={"x-data-region": "us"})).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.UNRESOLVED_JURISDICTION


def test_trusted_connector_header_binds() -> None:
    e = Engine(parse_config(cfg(header="x-data-region", trusted_connectors=["sf-prod"])))
    d = e.evaluate(ev(headers={"x-data-region": "US"}), connector="sf-prod").decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "us"


def test_gap_events_are_quarantined(engine: Engine) -> None:
    d = engine.evaluate(ev(op=Operation.GAP, BillingCountry="DE")).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.GAP_EVENT
    assert d.jurisdiction == "eu"


def test_secrets_are_denied_everywhere(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="US", Description="password=hunter2hunter2")).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.POLICY_DENIED
    assert d.jurisdiction == "us"


def test_no_matching_rule_fails_closed(engine: Engine) -> None:
    d = engine.evaluate(ev("Contact", MailingCountry="GB", Health_Notes__c="x")).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.NO_PERMITTED_DESTINATION


def test_encrypt_lists_fields_of_named_categories(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE", Description="IBAN GR16 0110 1050 0000 1054 7023 795")).decision
    assert isinstance(d, Route)
    assert d.encrypt_fields == ("Description",)


def test_decisions_carry_the_policy_digest(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE")).decision
    assert d.policy_version == engine.version
    label, _, digest = engine.version.partition(":")
    assert label == "2026-11-28.1"
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_policy_naming_an_unknown_jurisdiction_is_rejected_with_its_key() -> None:
    c = cfg()
    c["policy"]["rules"][0]["allow"] = ["mars"]
    with pytest.raises(ConfigError, match=r"policy.rules\[0\].allow names jurisdiction 'mars'"):
        parse_config(c)


def test_unknown_residency_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="residency.colour: unknown key"):
        parse_config(cfg(colour="red"))
