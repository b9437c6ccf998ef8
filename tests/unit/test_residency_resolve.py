"""One test per resolution rule: tenant, country fields (names, alpha-2, alpha-3, nested), header, default."""

from typing import Any

import pytest

from router.config.loader import parse_config
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.countries import EEA, EU, to_alpha2
from router.residency.resolve import Resolver

pytestmark = pytest.mark.unit


def resolver(**residency: Any) -> Resolver:
    res: dict[str, Any] = {"home": "eu", "countries": {"eu": ["EU", "EEA"], "uk": ["GB"], "us": ["US"]}}
    res.update(residency)
    cfg = parse_config({"clusters": {"default": {"bootstrap": "127.0.0.1:9092"}},
                        "jurisdictions": {j: {"racks": [f"{j}-*"]} for j in ("eu", "uk", "us")},
                        "residency": res})
    assert cfg.residency is not None
    return Resolver.from_config(cfg.residency)


def ev(entity: str = "Account", *, tenant: str | None = None, headers: dict[str, str] | None = None,
       **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, Operation.UPDATE, ("001xx",),
                       RawRecord(b"{}", "application/json"), values=values, tenant_id=tenant, headers=headers or {})


R = resolver()


@pytest.mark.parametrize("value", ["DE", "DEU", "Germany", "germany", " de "])
def test_country_names_and_codes_normalise(value: str) -> None:
    res = R.resolve(ev(BillingCountry=value))
    assert res.jurisdictions == ("eu",)
    assert res.evidence == ("field BillingCountry -> DE -> eu",)
    assert value.strip() not in ("Germany", "germany") or "ermany" not in "".join(res.evidence)


def test_aliases_and_eea_members() -> None:
    assert to_alpha2("UK") == "GB" and to_alpha2("United Kingdom") == "GB" and to_alpha2("USA") == "US"
    assert len(EU) == 27 and {"IS", "LI", "NO"} == EEA - EU
    assert R.resolve(ev(Country__c="Norway")).jurisdictions == ("eu",)


def test_nested_compound_address() -> None:
    res = R.resolve(ev("Contact", MailingAddress={"Street": "1 Main St", "Country": "United States"}))
    assert res.jurisdictions == ("us",)
    assert res.evidence == ("field MailingAddress.Country -> US -> us",)
    assert "Main" not in "".join(res.evidence)


def test_per_entity_country_fields() -> None:
    r = resolver(country_fields={"Lead": ["Region__c"]})
    assert r.resolve(ev("Lead", Region__c="FR")).jurisdictions == ("eu",)
    assert r.resolve(ev("Account", Region__c="FR")).unresolved


def test_tenant_map() -> None:
    res = resolver(tenants={"00Dabc": "uk"}).resolve(ev(tenant="00Dabc"))
    assert res.jurisdictions == ("uk",) and not res.unresolved


def test_every_binding_is_kept() -> None:
    res = resolver(tenants={"00Dabc": "uk"}).resolve(ev(tenant="00Dabc", BillingCountry="US"))
    assert res.jurisdictions == ("uk", "us")


def test_default_only_when_nothing_else_resolved() -> None:
    r = resolver(default="us")
    assert r.resolve(ev()).jurisdictions == ("us",)
    assert r.resolve(ev(BillingCountry="FR")).jurisdictions == ("eu",)


def test_nothing_and_no_default_is_unresolved() -> None:
    res = R.resolve(ev(Name="Acme"))
    assert res.unresolved and res.jurisdictions == ()


def test_unknown_country_value_is_unresolved_fail_closed() -> None:
    res = R.resolve(ev(BillingCountry="Atlantis", ShippingCountry="DE"))
    assert res.unresolved
    assert res.unmapped == ("BillingCountry",)
    assert "Atlantis" not in "".join(res.evidence)


def test_header_name_is_configurable_and_untrusted_by_default() -> None:
    r = resolver(header="x-region")
    assert r.resolve(ev(headers={"x-region": "GB"}, BillingCountry="US")).jurisdictions == ("uk", "us")
    assert r.resolve(ev(headers={"x-region": "GB"})).unresolved
    assert r.resolve(ev(headers={"x-region": "GB"}), "trusted").unresolved  # not in trusted_connectors
    assert resolver(header="x-region", trusted_connectors=["trusted"]).resolve(
        ev(headers={"x-region": "GB"}), "trusted").jurisdictions == ("uk",)


@pytest.mark.parametrize(("value", "code"), [("Deutschland", "DE"), ("España", "ES"), ("Schweiz", "CH"),
                                             ("Österreich", "AT"), ("Suisse", "CH")])
def test_common_endonyms_normalise(value: str, code: str) -> None:
    assert to_alpha2(value) == code
