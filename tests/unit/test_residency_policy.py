from pathlib import Path
from typing import Any

import pytest

from router.config.loader import load_config, parse_config
from router.errors import ConfigError, ReasonCode
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.engine import Engine
from router.residency.policy import Quarantine, Route
from router.residency.resolver import Origin, Source

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


IN_EU = Origin("crm.ingress", "eu")
IN_UK = Origin("crm.ingress.uk", "uk")
TRUSTED = Origin("crm.ingress.trusted", "eu", trusted=True)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_config(EXAMPLE))


def ev(entity: str = "Account", *, op: Operation = Operation.UPDATE, tenant: str | None = None,
       headers: dict[str, str] | None = None, **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, op, ("001xx",), RawRecord(b"{}", "application/json"),
                       values=values, tenant_id=tenant, headers=headers or {})


def cfg(**residency: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"countries": {"eu": ["EU"], "us": ["US"], "uk": ["GB"]}}
    base.update(residency)
    return {"clusters": {"default": {"bootstrap": "localhost:9092"}},
            "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}, "uk": {"racks": ["uk-*"]}},
            "residency": base,
            "policy": {"rules": [{"name": "eu", "data": ["eu"], "allow": ["eu"]},
                                 {"name": "us", "data": ["us"], "allow": ["us", "eu"]},
                                 {"name": "uk", "data": ["uk"], "allow": ["uk", "eu"]}]}}


def test_country_field_by_name_routes_to_its_jurisdiction(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="Germany"), IN_EU).decision
    assert isinstance(d, Route)
    assert (d.topic, d.jurisdiction) == ("crm.eu.account", "eu")


def test_nested_compound_country_code(engine: Engine) -> None:
    out = engine.evaluate(ev("Contact", MailingAddress={"Country": "GB"}), IN_EU)
    assert out.resolution.jurisdictions == ("uk",)
    assert out.resolution.bindings[0].name == "MailingAddress.Country"
    assert out.resolution.evidence == ("field MailingAddress.Country -> GB -> uk",)


def test_tenant_map_binds() -> None:
    e = Engine(parse_config(cfg(tenants={"00Dabc": "us"})))
    out = e.evaluate(ev(tenant="00Dabc"), IN_EU)
    assert out.resolution.bindings[0].source is Source.TENANT
    assert out.resolution.evidence == ("tenant tenant_id -> us",)
    assert isinstance(out.decision, Route)
    assert out.decision.jurisdiction == "us"


def test_default_applies_only_when_nothing_resolved() -> None:
    e = Engine(parse_config(cfg(default="us")))
    assert e.evaluate(ev(), IN_EU).resolution.jurisdictions == ("us",)
    assert e.evaluate(ev(BillingCountry="FR"), IN_EU).resolution.jurisdictions == ("eu",)


def test_nothing_resolvable_and_no_default_stays_in_the_ingress_jurisdiction(engine: Engine) -> None:
    for origin in (IN_EU, IN_UK):
        d = engine.evaluate(ev(Name="Acme"), origin).decision
        assert isinstance(d, Quarantine)
        assert (d.reason, d.jurisdiction, d.topic) == (
            ReasonCode.UNRESOLVED_JURISDICTION, origin.jurisdiction, f"quarantine.{origin.jurisdiction}")


def test_unmapped_country_fails_closed(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="Japan"), IN_UK).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.UNRESOLVED_JURISDICTION, "uk")
    assert "BillingCountry" in d.detail
    assert "Japan" not in d.detail


def test_two_jurisdictions_without_common_destination_conflict(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE", ShippingCountry="US", Email="x"), IN_EU).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.CONFLICTING_JURISDICTION
    assert d.jurisdiction == "eu"  # bound to eu, where the record already sits


def test_a_conflict_arriving_outside_its_bindings_goes_to_the_first_by_precedence(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE", ShippingCountry="US", Email="x"), IN_UK).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.CONFLICTING_JURISDICTION, "eu")  # residency.precedence


def test_a_conflict_stays_in_the_ingress_jurisdiction_when_bound_to_it(engine: Engine) -> None:
    in_us = Origin("crm.ingress.us", "us")
    d = engine.evaluate(ev(BillingCountry="DE", ShippingCountry="US", Email="x"), in_us).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.CONFLICTING_JURISDICTION, "us")


def test_two_jurisdictions_with_a_destination_permitted_for_both_route_there() -> None:
    e = Engine(parse_config(cfg()))
    d = e.evaluate(ev(BillingCountry="US", ShippingCountry="GB"), IN_EU).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "eu"


def test_untrusted_header_cannot_move_eu_data_to_us() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    d = e.evaluate(ev(headers={"x-data-region": "us"}, BillingCountry="DE"), IN_EU).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.CONFLICTING_JURISDICTION, "eu")


def test_untrusted_header_turns_a_route_into_a_quarantine_never_the_reverse(engine: Engine) -> None:
    hinted = ev(headers={"x-data-region": "us"}, BillingCountry="DE", Email="x")
    d = engine.evaluate(hinted, IN_UK).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction, d.topic) == (ReasonCode.CONFLICTING_JURISDICTION, "eu", "quarantine.eu")
    unresolved = engine.evaluate(ev(headers={"x-data-region": "eu"}, Name="Acme"), IN_UK).decision
    assert isinstance(unresolved, Quarantine)
    assert (unresolved.reason, unresolved.jurisdiction) == (ReasonCode.UNRESOLVED_JURISDICTION, "uk")


def test_untrusted_header_agreeing_with_the_data_changes_nothing(engine: Engine) -> None:
    d = engine.evaluate(ev(headers={"x-data-region": "eu"}, BillingCountry="DE"), IN_EU).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "eu"


def test_untrusted_header_never_adds_a_binding() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    plain = e.evaluate(ev(BillingCountry="US"), IN_EU)
    hinted = e.evaluate(ev(headers={"x-data-region": "eu"}, BillingCountry="US"), IN_EU)
    assert isinstance(plain.decision, Route)
    assert plain.decision.jurisdiction == "us"
    assert hinted.resolution.jurisdictions == ("us",)
    assert isinstance(hinted.decision, Quarantine)
    assert (hinted.decision.reason, hinted.decision.jurisdiction) == (ReasonCode.CONFLICTING_JURISDICTION, "us")


def test_untrusted_header_alone_does_not_resolve() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    d = e.evaluate(ev(headers={"x-data-region": "us"}), IN_EU).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.UNRESOLVED_JURISDICTION, "eu")


def test_trusted_ingress_header_binds() -> None:
    e = Engine(parse_config(cfg(header="x-data-region")))
    d = e.evaluate(ev(headers={"x-data-region": "US"}), TRUSTED).decision
    assert isinstance(d, Route)
    assert d.jurisdiction == "us"


def test_gap_events_are_quarantined(engine: Engine) -> None:
    d = engine.evaluate(ev(op=Operation.GAP, BillingCountry="DE"), IN_UK).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.GAP_EVENT
    assert d.jurisdiction == "eu"


def test_secrets_are_denied_everywhere(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="US", Description="password=hunter2hunter2"), IN_EU).decision
    assert isinstance(d, Quarantine)
    assert d.reason is ReasonCode.POLICY_DENIED
    assert d.jurisdiction == "us"


def test_no_matching_rule_fails_closed(engine: Engine) -> None:
    d = engine.evaluate(ev("Contact", MailingCountry="GB", Health_Notes__c="x"), IN_EU).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.NO_PERMITTED_DESTINATION, "uk")


def test_a_routed_delete_is_an_erasure(engine: Engine) -> None:
    d = engine.evaluate(ev(op=Operation.DELETE, BillingCountry="DE"), IN_EU).decision
    assert isinstance(d, Route)
    assert (d.topic, d.erasure) == ("crm.eu.account", True)
    upd = engine.evaluate(ev(BillingCountry="DE"), IN_EU).decision
    assert isinstance(upd, Route) and not upd.erasure


def test_a_delete_with_no_binding_is_an_unresolved_erasure_even_with_a_default() -> None:
    e = Engine(parse_config(cfg(default="us")))
    d = e.evaluate(ev(op=Operation.DELETE), IN_UK).decision
    assert isinstance(d, Quarantine)
    assert (d.reason, d.jurisdiction) == (ReasonCode.ERASURE_UNRESOLVED, "uk")


def test_decisions_carry_the_policy_digest(engine: Engine) -> None:
    d = engine.evaluate(ev(BillingCountry="DE"), IN_EU).decision
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


@pytest.mark.parametrize("key", ["home", "trusted_connectors"])
def test_removed_residency_keys_are_rejected_with_what_replaced_them(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"residency.{key}: removed; .*pipeline.ingress"):
        parse_config(cfg(**{key: "eu" if key == "home" else ["sf"]}))


def test_rule_encrypt_is_no_longer_a_key() -> None:
    c = cfg()
    c["policy"]["rules"][0]["encrypt"] = ["FINANCIAL"]
    with pytest.raises(ConfigError, match=r"policy.rules\[0\].encrypt"):
        parse_config(c)
