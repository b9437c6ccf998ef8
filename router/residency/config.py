"""The ``residency`` and ``policy`` config sections and their cross-checks against ``jurisdictions``."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from router.classify.model import Category, Level
from router.config.base import StrictModel
from router.residency.countries import GROUPS, to_alpha2

ANY = "*"


class UnmappedCountry(StrEnum):
    """What a country field naming no configured jurisdiction (or no country at all) does."""

    QUARANTINE = "quarantine"  # fail closed: UNRESOLVED_JURISDICTION
    IGNORE = "ignore"


class ResidencyConfig(StrictModel):
    """How the jurisdictions an event's data is bound to are found."""

    default: str | None = Field(default=None, description="binding when no rule resolves; none -> quarantine")
    countries: dict[str, list[str]] = Field(
        description="jurisdiction -> ISO alpha-2 codes or the tokens EU / EEA")
    tenants: dict[str, str] = Field(default_factory=dict, description="org/tenant id -> jurisdiction")
    country_fields: dict[str, list[str]] = Field(
        default_factory=lambda: {ANY: ["BillingCountry", "BillingCountryCode", "ShippingCountry",
                                       "MailingCountry", "MailingCountryCode", "Country",
                                       "CountryCode", "Country__c", "BillingAddress.Country",
                                       "ShippingAddress.Country", "MailingAddress.Country", "Address.Country",
                                       "OtherAddress.Country"]},
        description="entity (or '*') -> fields (dotted for compound values) holding a country; names match "
                    "ignoring case, '_' and '-' (a 'billing_country' column matches 'BillingCountry')")
    header: str | None = Field(default="x-data-region",
                               description="connector header naming a jurisdiction or country (null: none); "
                                           "binds only on a trusted ingress topic, elsewhere it can only "
                                           "turn a route into a quarantine")
    tenant_header: str | None = Field(default="sf-org-id",
                                      description="connector header carrying a tenant id looked up in 'tenants'; "
                                                  "binds only on a trusted ingress topic")
    tenant_fields: list[str] = Field(default_factory=lambda: ["OrgId", "TenantId"],
                                     description="payload fields holding a tenant id (names match ignoring case "
                                                 "and '_')")
    unmapped_country: UnmappedCountry = UnmappedCountry.QUARANTINE
    precedence: list[str] = Field(default_factory=list,
                                  description="most restrictive first: chooses the quarantine jurisdiction "
                                              "among several (default: order of first mention in policy rules)")

    @field_validator("countries")
    @classmethod
    def _codes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for j, codes in v.items():
            for code in codes:
                if code.upper() not in GROUPS and to_alpha2(code) != code.upper():
                    raise ValueError(f"countries.{j}: {code!r} is not an ISO alpha-2 code or EU / EEA")
        return v

    def country_table(self) -> dict[str, str]:
        """alpha-2 -> jurisdiction. A country listed under two jurisdictions is rejected."""
        table: dict[str, str] = {}
        for j, codes in self.countries.items():
            for code in codes:
                for c in GROUPS.get(code.upper(), frozenset({code.upper()})):
                    if table.get(c, j) != j:
                        raise ValueError(f"country {c} is listed under both residency.countries.{table[c]} "
                                         f"and residency.countries.{j}")
                    table[c] = j
        return table

    def named(self) -> Iterable[tuple[str, str]]:
        if self.default:
            yield "residency.default", self.default
        for j in self.countries:
            yield f"residency.countries.{j}", j
        for t, j in self.tenants.items():
            yield f"residency.tenants.{t}", j
        for j in self.precedence:
            yield "residency.precedence", j

    @model_validator(mode="after")
    def _table(self) -> ResidencyConfig:
        self.country_table()
        return self


class When(StrictModel):
    """Classification conditions of a rule; all given conditions must hold (empty: always)."""

    min_level: Level | None = None
    max_level: Level | None = None
    categories_any: list[Category] = Field(default_factory=list)
    categories_none: list[Category] = Field(default_factory=list)


class Rule(StrictModel):
    """One policy rule. The first rule matching a data jurisdiction and classification applies.

    ``when`` decides whether the rule applies at all; ``max_level`` and ``deny_categories`` are
    limits of an applying rule: data above the level, or carrying a denied category, is
    POLICY_DENIED rather than passed on to later rules.
    """

    name: str = Field(default="", description="shown in decisions; default 'rules[<index>]'")
    data: list[str] = Field(min_length=1, description="data jurisdictions (one name or a list), or '*'")
    when: When = Field(default_factory=When)
    action: Literal["allow", "deny"] = "allow"
    allow: list[str] = Field(default_factory=list, description="permitted destination jurisdictions")
    max_level: Level | None = Field(default=None, description="above this level: POLICY_DENIED")
    deny_categories: list[Category] = Field(default_factory=list, description="any of these: POLICY_DENIED")

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _allow_needs_destinations(self) -> Rule:
        if self.action == "allow" and not self.allow:
            raise ValueError(f"rule {self.name!r}: action allow needs a non-empty 'allow' list")
        if self.action == "deny" and self.allow:
            raise ValueError(f"rule {self.name!r}: action deny contradicts its 'allow' list")
        return self


class PolicyConfig(StrictModel):
    """The declarative routing policy. Anything no rule allows is quarantined."""

    version: str = Field(default="1", description="a human label; decisions carry the sha256 too")
    topic: str = "crm.{jurisdiction}.{entity}"
    quarantine_topic: str = "quarantine.{jurisdiction}"
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rule_names(self) -> PolicyConfig:
        for i, rule in enumerate(self.rules):
            if not rule.name:
                object.__setattr__(rule, "name", f"rules[{i}]")
        return self

    @field_validator("topic", "quarantine_topic")
    @classmethod
    def _pattern(cls, v: str) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f}
        if not names <= {"jurisdiction", "entity"}:
            raise ValueError(f"topic pattern {v!r} may use only {{jurisdiction}} and {{entity}}")
        return v

    def named(self) -> Iterable[tuple[str, str]]:
        for i, rule in enumerate(self.rules):
            for j in rule.data:
                if j != ANY:
                    yield f"policy.rules[{i}].data", j
            for j in rule.allow:
                yield f"policy.rules[{i}].allow", j


def check_sections(jurisdictions: Iterable[str], residency: ResidencyConfig | None,
                   policy: PolicyConfig | None) -> None:
    """Raise ValueError naming the key of any jurisdiction not under the root ``jurisdictions``."""
    known = set(jurisdictions)
    for section in (residency, policy):
        if section is None:
            continue
        for where, j in section.named():
            if j not in known:
                raise ValueError(f"{where} names jurisdiction {j!r}, which is not under 'jurisdictions' "
                                 f"(known: {', '.join(sorted(known))})")
    if policy is not None and residency is None:
        raise ValueError("'policy' needs a 'residency' section (country table, tenants, default)")


def policy_version(*sections: Any) -> str:
    """``<policy.version label>:<first 12 hex of canonical_digest(sections)>``; the label is taken
    from the last section when it is a :class:`PolicyConfig`."""
    label = sections[-1].version if sections and isinstance(sections[-1], PolicyConfig) else "policy"
    return f"{label}:{canonical_digest(*sections).removeprefix('sha256:')[:12]}"


def canonical_digest(*sections: Any) -> str:
    """``sha256:<hex>`` of the sections' canonical JSON (sorted keys, no whitespace)."""
    dumped = [s.model_dump(mode="json") if isinstance(s, StrictModel) else s for s in sections]
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
