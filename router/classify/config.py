"""The ``classification`` config section."""

from __future__ import annotations

from pydantic import Field, field_validator

from router.classify.catalog import FieldInfo, parse_compliance_groups
from router.classify.model import Category, Level
from router.classify.registry import REGISTRY
from router.config.base import StrictModel


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


class ClassificationConfig(StrictModel):
    """How events are classified: catalog, detectors, which fields are scanned."""

    catalog: str | None = Field(default=None, description="FieldDefinition export (.csv or .json)")
    fields: dict[str, FieldRule] = Field(
        default_factory=dict, description="inline catalog: 'Entity.Field' or '*.Field' -> rule")
    detectors: list[str] = Field(default_factory=lambda: sorted(REGISTRY))
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR"])
    free_text_fields: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["Description", "Comments", "Subject", "Body", "Notes__c"]},
        description="entity (or '*') -> fields always scanned by detectors, even when catalogued "
                    "(names match ignoring case and '_')")
    prompt_fields: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["Prompt__c"]},
        description="entity (or '*') -> fields that carry LLM prompts (names match ignoring case and '_')")
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

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in REGISTRY:
                raise ValueError(f"unknown detector {name!r} (known: {', '.join(sorted(REGISTRY))})")
        return v

    @field_validator("fields")
    @classmethod
    def _field_keys(cls, v: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for key in v:
            entity, dot, field = key.partition(".")
            if not dot or not entity or not field:
                raise ValueError(f"fields key {key!r} must be 'Entity.Field' or '*.Field'")
        return v
