"""One test per resolution rule: tenant, country fields (names, alpha-2, alpha-3, nested, both row
images), headers (bindings only on a trusted ingress, hints elsewhere), default."""

from typing import Any

import pytest

from router.config.loader import parse_config
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.countries import EEA, EU, to_alpha2
from router.residency.resolve import Resolver, Source
from router.residency.resolver import Origin

pytestmark = pytest.mark.unit

UNTRUSTED = Origin("crm.ingress", "eu")
TRUSTED = Origin("crm.ingress.trusted", "eu", trusted=True)


def resolver(**residency: Any) -> Resolver:
    res: dict[str, Any] = {"countries": {"eu": ["EU", "EEA"], "uk": ["GB"], "us": ["US"]}}
    res.update(residency)
    cfg = parse_config({"clusters": {"default": {"bootstrap": "127.0.0.1:9092"}},
                        "jurisdictions": {j: {"racks": [f"{j}-*"]} for j in ("eu", "uk", "us")},
                        "residency": res})
    assert cfg.residency is not None
    return Resolver.from_config(cfg.residency)


def ev(entity: str = "Account", *, op: Operation = Operation.UPDATE, tenant: str | None = None,
       headers: dict[str, str] | None = None, before: dict[str, Any] | None = None, **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, op, ("001xx",),
                       RawRecord(b"{}", "application/json"), values=values, before=before or {}, tenant_id=tenant,
                       headers=headers or {})


R = resolver()


@pytest.mark.parametrize("value", ["DE", "DEU", "Germany", "germany", " de "])
def test_country_names_and_codes_normalise(value: str) -> None:
    res = R.resolve(ev(BillingCountry=value), UNTRUSTED)
    assert res.jurisdictions == ("eu",)
    assert res.evidence == ("field BillingCountry -> DE -> eu",)
    assert "ermany" not in "".join(res.evidence)


def test_evidence_names_the_configured_field_not_its_normalised_match_key() -> None:
    assert R.resolve(ev(BillingCountry="DE"), UNTRUSTED).evidence == ("field BillingCountry -> DE -> eu",)
    assert R.resolve(ev(billing_country="DE"), UNTRUSTED).evidence == ("field BillingCountry -> DE -> eu",)
    nested = R.resolve(ev("Contact", mailing_address={"country": "United States"}), UNTRUSTED)
    assert nested.evidence == ("field MailingAddress.Country -> US -> us",)


def test_unmapped_names_the_configured_field() -> None:
    assert R.resolve(ev(billing_country="Atlantis"), UNTRUSTED).unmapped == ("BillingCountry",)


def test_aliases_and_eea_members() -> None:
    assert to_alpha2("UK") == "GB" and to_alpha2("United Kingdom") == "GB" and to_alpha2("USA") == "US"
    assert len(EU) == 27 and {"IS", "LI", "NO"} == EEA - EU
    assert R.resolve(ev(Country__c="Norway"), UNTRUSTED).jurisdictions == ("eu",)


def test_nested_compound_address() -> None:
    res = R.resolve(ev("Contact", MailingAddress={"Street": "1 Main St", "Country": "United States"}), UNTRUSTED)
    assert res.jurisdictions == ("us",)
    assert res.evidence == ("field MailingAddress.Country -> US -> us",)
    assert "Main" not in "".join(res.evidence)


def test_per_entity_country_fields() -> None:
    r = resolver(country_fields={"Lead": ["Region__c"]})
    assert r.resolve(ev("Lead", Region__c="FR"), UNTRUSTED).jurisdictions == ("eu",)
    assert r.resolve(ev("Account", Region__c="FR"), UNTRUSTED).unresolved


@pytest.mark.parametrize("column", ["billing_country", "billingcountry", "BILLING_COUNTRY", "billing-country",
                                    "country", "COUNTRY", "country_code"])
def test_column_names_match_ignoring_case_underscore_and_dash(column: str) -> None:
    row: dict[str, Any] = {column: "DE"}
    res = R.resolve(ev("customers", **row), UNTRUSTED)
    assert res.jurisdictions == ("eu",)
    assert res.bindings[0].source is Source.FIELD


def test_nested_field_names_match_ignoring_case_and_underscore() -> None:
    res = R.resolve(ev("Contact", mailing_address={"country": "GB"}), UNTRUSTED)
    assert res.jurisdictions == ("uk",)


def test_tenant_map() -> None:
    res = resolver(tenants={"00Dabc": "uk"}).resolve(ev(tenant="00Dabc"), UNTRUSTED)
    assert res.jurisdictions == ("uk",) and not res.unresolved
    assert res.bindings[0].source is Source.TENANT


@pytest.mark.parametrize("field", ["OrgId", "org_id", "TenantId", "tenant_id"])
def test_tenant_fields_in_the_payload_bind(field: str) -> None:
    row: dict[str, Any] = {field: "00Dabc"}
    res = resolver(tenants={"00Dabc": "uk"}).resolve(ev(**row), UNTRUSTED)
    assert res.jurisdictions == ("uk",)
    assert res.evidence == ("tenant tenant_id -> uk",)


def test_tenant_fields_are_configurable() -> None:
    r = resolver(tenants={"acme": "us"}, tenant_fields=["Customer__c"])
    assert r.resolve(ev(Customer__c="acme"), UNTRUSTED).jurisdictions == ("us",)
    assert r.resolve(ev(OrgId="acme"), UNTRUSTED).unresolved


def test_every_binding_is_kept() -> None:
    res = resolver(tenants={"00Dabc": "uk"}).resolve(ev(tenant="00Dabc", BillingCountry="US"), UNTRUSTED)
    assert res.jurisdictions == ("uk", "us")


def test_before_image_counts_like_the_after_image() -> None:
    res = R.resolve(ev(before={"BillingCountry": "DE"}, BillingCountry="US"), UNTRUSTED)
    assert res.jurisdictions == ("eu", "us")


def test_a_delete_resolves_from_its_before_image() -> None:
    res = R.resolve(ev(op=Operation.DELETE, before={"country": "FR", "email": "x"}), UNTRUSTED)
    assert res.jurisdictions == ("eu",)


def test_default_only_when_nothing_else_resolved() -> None:
    r = resolver(default="us")
    assert r.resolve(ev(), UNTRUSTED).jurisdictions == ("us",)
    assert r.resolve(ev(BillingCountry="FR"), UNTRUSTED).jurisdictions == ("eu",)


def test_default_never_applies_to_a_delete() -> None:
    res = resolver(default="us").resolve(ev(op=Operation.DELETE), UNTRUSTED)
    assert res.jurisdictions == () and res.unresolved


def test_nothing_and_no_default_is_unresolved() -> None:
    res = R.resolve(ev(Name="Acme"), UNTRUSTED)
    assert res.unresolved and res.jurisdictions == ()


def test_unknown_country_value_is_unresolved_fail_closed() -> None:
    res = R.resolve(ev(BillingCountry="Atlantis", ShippingCountry="DE"), UNTRUSTED)
    assert res.unresolved
    assert res.unmapped == ("BillingCountry",) and res.jurisdictions == ("eu",)
    assert "Atlantis" not in "".join(res.evidence)


def test_over_long_country_value_is_not_a_country() -> None:
    res = R.resolve(ev(BillingCountry="Germany" + " " * 60 + "x"), UNTRUSTED)
    assert res.jurisdictions == ()
    assert res.unmapped == ("BillingCountry",)


def test_header_on_an_untrusted_ingress_is_a_hint_not_a_binding() -> None:
    r = resolver(header="x-region")
    res = r.resolve(ev(headers={"x-region": "GB"}, BillingCountry="US"), UNTRUSTED)
    assert res.jurisdictions == ("us",)
    assert [(h.source, h.name, h.jurisdiction) for h in res.hints] == [(Source.UNTRUSTED_HEADER, "x-region", "uk")]
    assert res.conflicting_hints == res.hints
    assert r.resolve(ev(headers={"x-region": "GB"}), UNTRUSTED).unresolved


def test_header_binds_on_a_trusted_ingress() -> None:
    res = resolver(header="x-region").resolve(ev(headers={"x-region": "GB"}), TRUSTED)
    assert res.jurisdictions == ("uk",) and not res.hints
    assert res.evidence == ("trusted header x-region -> GB -> uk",)


def test_no_origin_is_untrusted() -> None:
    assert R.resolve(ev(headers={"x-data-region": "uk"})).unresolved


def test_tenant_header_is_a_hint_unless_trusted() -> None:
    r = resolver(tenants={"00Dus": "us"})
    hinted = r.resolve(ev(headers={"sf-org-id": "00Dus"}), UNTRUSTED)
    assert hinted.unresolved
    assert [(h.name, h.jurisdiction) for h in hinted.hints] == [("sf-org-id", "us")]
    assert r.resolve(ev(headers={"sf-org-id": "00Dus"}), TRUSTED).jurisdictions == ("us",)


def test_header_names_are_configurable_or_off() -> None:
    r = resolver(header=None, tenant_header=None, tenants={"00Dus": "us"})
    res = r.resolve(ev(headers={"x-data-region": "uk", "sf-org-id": "00Dus"}), TRUSTED)
    assert res.unresolved and not res.hints


@pytest.mark.parametrize(("value", "code"), [("Deutschland", "DE"), ("España", "ES"), ("Schweiz", "CH"),
                                             ("Österreich", "AT"), ("Suisse", "CH")])
def test_common_endonyms_normalise(value: str, code: str) -> None:
    assert to_alpha2(value) == code
