"""The ``classification`` config section."""

from __future__ import annotations

from typing import Any

import phonenumbers
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from pydantic import Field, field_validator, model_validator

from router.classify.catalog import FieldInfo, parse_compliance_groups
from router.classify.model import Category, Level
from router.classify.prompts import DEFAULT_PROMPT_FIELD_PATTERN
from router.classify.registry import REGISTRY
from router.classify.special import KINDS, LANGUAGES, SpecialSettings, parse_term
from router.config.base import StrictModel
from router.residency.countries import GROUPS

_ID_COUNTRIES: dict[str, tuple[str, ...]] = {
    name: tuple(getattr(factory, "countries", ())) for name, factory in REGISTRY.items()}
"""Detector name -> the countries whose national number it finds (empty: not a national number)."""
NATIONAL_ID_COUNTRIES = frozenset(c for countries in _ID_COUNTRIES.values() for c in countries)
_COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}


def _national_id_countries(tokens: list[str]) -> set[str]:
    """The countries ``classification.national_ids`` names (codes, aliases, EU/EEA groups)."""
    out: set[str] = set()
    for token in tokens:
        key = _COUNTRY_ALIASES.get(token.upper(), token.upper())
        out |= GROUPS.get(key, {key})
    return out


def detectors_for_national_ids(tokens: list[str]) -> list[str]:
    """Every built-in detector, but of the national-number ones only those of ``tokens``."""
    wanted = _national_id_countries(tokens)
    return sorted(name for name, countries in _ID_COUNTRIES.items() if not countries or wanted & set(countries))


class FieldRule(StrictModel):
    """An inline catalog entry, stricter-merged with the catalog file."""

    level: Level | None = None
    categories: list[Category] = Field(default_factory=list)

    def info(self) -> FieldInfo:
        return FieldInfo(self.level, parse_compliance_groups([c.value for c in self.categories], "rule"))


DEFAULT_CATEGORY_LEVELS: dict[Category, Level] = {
    Category.PII: Level.CONFIDENTIAL,
    Category.PROPRIETARY_PROMPT: Level.RESTRICTED,
    Category.FINANCIAL: Level.RESTRICTED,
    Category.GOVERNMENT_ID: Level.RESTRICTED,
    Category.SPECIAL_CATEGORY: Level.RESTRICTED,
    Category.SECRET: Level.RESTRICTED,
}


class SpecialCategoryConfig(StrictModel):
    """``classification.special_category``: the lexicons of the ``special_category`` detector."""

    languages: list[str] = Field(default_factory=lambda: list(LANGUAGES),
                                 description=f"lexicon languages used (of {', '.join(LANGUAGES)})")
    extra_terms: dict[str, list[str]] = Field(
        default_factory=dict, description="kind -> more terms ('word', 'stem*', '*stem*', or a phrase of those)")
    disabled: list[str] = Field(default_factory=list, description=f"kinds not looked for (of {', '.join(KINDS)})")
    person_context: bool = Field(
        default=True, description="a term counts only in a sentence about a person (false: every term counts)")

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, v: list[str]) -> list[str]:
        for lang in v:
            if lang not in LANGUAGES:
                raise ValueError(f"classification.special_category.languages: no lexicon for {lang!r} "
                                 f"(known: {', '.join(LANGUAGES)})")
        return v

    @field_validator("disabled")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        for kind in v:
            if kind not in KINDS:
                raise ValueError(f"classification.special_category.disabled: unknown kind {kind!r} "
                                 f"(known: {', '.join(KINDS)})")
        return v

    @field_validator("extra_terms")
    @classmethod
    def _valid_terms(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, terms in v.items():
            if kind not in KINDS:
                raise ValueError(f"classification.special_category.extra_terms: unknown kind {kind!r} "
                                 f"(known: {', '.join(KINDS)})")
            for i, term in enumerate(terms):
                try:
                    parse_term(term)
                except ValueError as e:
                    raise ValueError(f"classification.special_category.extra_terms.{kind}[{i}]: {e}") from None
        return v

    def settings(self) -> SpecialSettings:
        return SpecialSettings(tuple(self.languages), {k: tuple(t) for k, t in self.extra_terms.items()},
                               tuple(self.disabled), self.person_context)


class ClassificationConfig(StrictModel):
    """How events are classified: catalog, detectors, which fields are scanned."""

    catalog: str | None = Field(default=None, description="FieldDefinition export (.csv or .json)")
    fields: dict[str, FieldRule] = Field(
        default_factory=dict, description="inline catalog: 'Entity.Field' or '*.Field' -> rule")
    detectors: list[str] = Field(
        default_factory=lambda: sorted(REGISTRY),
        description="detectors run on scanned values, by name (default: every built-in one, the national-number "
                    "detectors as national_ids selects)")
    national_ids: list[str] = Field(
        default_factory=lambda: ["EU", "EEA", "GB", "CH", "US"],
        description="whose national personal and tax numbers are looked for, when 'detectors' is left default: "
                    "ISO alpha-2 codes (DE, PL, GB or UK, CH, US, ...) or the groups EU and EEA (default: all)")
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US", "GB", "DE", "FR"],
        description="regions (ISO alpha-2 codes phonenumbers supports, any case) in which national-format phone "
                    "numbers are tried; numbers written with '+' are found whatever the regions (empty: US)")
    free_text_fields: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["Description", "Comments", "Subject", "Body", "Notes__c"]},
        description="entity (or '*') -> fields always scanned by detectors, even when catalogued "
                    "(names match ignoring case and '_')")
    prompt_fields: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["Prompt__c"]},
        description="entity (or '*') -> fields that carry LLM prompts (names match ignoring case and '_')")
    prompt_field_pattern: str | None = Field(
        default=DEFAULT_PROMPT_FIELD_PATTERN,
        description="RE2 pattern over a field name's words (lower case, space-separated: SystemPrompt__c -> "
                    "'system prompt c'); a field it matches carries prompts, like prompt_fields (null: none)")
    special_category: SpecialCategoryConfig = Field(default_factory=SpecialCategoryConfig)
    builtin_catalog: bool = Field(
        default=True, description="classify fields no catalog names by the built-in name catalog (Email, *Iban*, ...)")
    max_scan_chars: int = Field(
        default=1_000_000, ge=1,
        description="most characters of string values scanned per event; more makes the event incomplete "
                    "(restricted, quarantined SCAN_LIMIT)")
    max_depth: int = Field(
        default=32, ge=1,
        description="most nesting levels of maps, lists and JSON strings scanned below a field; deeper makes "
                    "the event incomplete")
    default_level: Level = Level.INTERNAL
    category_levels: dict[Category, Level] = Field(default_factory=lambda: dict(DEFAULT_CATEGORY_LEVELS))

    @model_validator(mode="before")
    @classmethod
    def _detectors_by_country(cls, data: Any) -> Any:
        """Default ``detectors`` to every built-in one, national numbers as ``national_ids`` says."""
        if isinstance(data, dict) and "detectors" not in data and isinstance(data.get("national_ids"), list) \
                and all(isinstance(t, str) for t in data["national_ids"]):
            data = {**data, "detectors": detectors_for_national_ids(data["national_ids"])}
        return data

    @field_validator("national_ids")
    @classmethod
    def _known_countries(cls, v: list[str]) -> list[str]:
        for token in v:
            key = _COUNTRY_ALIASES.get(token.upper(), token.upper())
            if key not in GROUPS and key not in NATIONAL_ID_COUNTRIES:
                known = ", ".join([*sorted(GROUPS), *sorted(NATIONAL_ID_COUNTRIES)])
                raise ValueError(f"classification.national_ids: no national-number detectors for {token!r} "
                                 f"(known: {known})")
        return [token.upper() for token in v]

    @field_validator("phone_regions")
    @classmethod
    def _known_phone_regions(cls, v: list[str]) -> list[str]:
        for region in v:
            if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"classification.phone_regions: unknown region {region!r} (an ISO 3166 alpha-2 "
                                 f"code phonenumbers supports, e.g. US, GB, DE)")
        return [region.upper() for region in v]

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in REGISTRY:
                raise ValueError(f"unknown detector {name!r} (known: {', '.join(sorted(REGISTRY))})")
        return v

    @field_validator("prompt_field_pattern")
    @classmethod
    def _prompt_field_pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re2.compile(v)
            except re2.error as e:
                raise ValueError(f"classification.prompt_field_pattern is not an RE2 pattern: {e}") from None
        return v

    @field_validator("fields")
    @classmethod
    def _field_keys(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for key in v:
            entity, dot, field = key.partition(".")
            if not dot or not entity or not field:
                raise ValueError(f"fields key {key!r} must be 'Entity.Field' or '*.Field'")
        return v
