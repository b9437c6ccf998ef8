"""What classification produces: a sensitivity level and the categories found, by field name.

A :class:`Classification` never holds a field value: only field names and the source that
flagged them (the catalog, a named detector, or the prompt-field configuration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """Sensitivity levels, ordered ``public < internal < confidential < restricted``."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        """Position in the order; higher is more sensitive."""
        return _RANK[self]

    def at_least(self, other: Level) -> bool:
        """True if this level is as sensitive as ``other`` or more."""
        return _RANK[self] >= _RANK[other]

    @staticmethod
    def highest(levels: Iterable[Level], floor: Level) -> Level:
        """The most sensitive of ``levels``, never below ``floor``."""
        best = floor
        for level in levels:
            if _RANK[level] > _RANK[best]:
                best = level
        return best


_RANK = {Level.PUBLIC: 0, Level.INTERNAL: 1, Level.CONFIDENTIAL: 2, Level.RESTRICTED: 3}


class Category(StrEnum):
    """Kinds of sensitive data the router recognises."""

    PII = "PII"
    """Data about an identifiable person: names, emails, phone numbers, addresses."""
    SPECIAL_CATEGORY = "SPECIAL_CATEGORY"
    """GDPR Art. 9 data: health, biometric, genetic, religion, political opinion, ..."""
    FINANCIAL = "FINANCIAL"
    """Bank accounts (IBAN) and payment cards."""
    GOVERNMENT_ID = "GOVERNMENT_ID"
    """National identity and tax numbers (SSN, NIR, DNI, Steuer-ID, VAT ids, ...)."""
    SECRET = "SECRET"  # noqa: S105 -- a category name, not a password
    """Credentials: API keys, tokens, private keys, passwords."""
    PROPRIETARY_PROMPT = "PROPRIETARY_PROMPT"
    """LLM prompt templates and prompt-bearing fields."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a category applies: the field that triggered it and what flagged it.

    ``source`` is ``"catalog"``, ``"prompt_field"`` or ``"detector:<name>"``. No value is kept.
    """

    category: Category
    field: str
    source: str


@dataclass(frozen=True, slots=True)
class Classification:
    """The sensitivity of one event. Immutable and value-free.

    ``findings`` is sorted (category, field, source) so equal inputs give equal results.

    ``incomplete`` is None when every value classification had to read was read. Otherwise it is
    a value-free reason naming the limit that stopped the scan (``classification.max_scan_chars``
    or ``classification.max_depth``): the level is then RESTRICTED, ``findings`` holds what was
    found before the stop, and the event must not be routed as if it had been scanned (the
    policy quarantines it with ``ReasonCode.SCAN_LIMIT``).
    """

    level: Level
    findings: tuple[Finding, ...] = ()
    incomplete: str | None = None

    @property
    def categories(self) -> frozenset[Category]:
        """Every category found in the event."""
        return frozenset(f.category for f in self.findings)

    def fields(self, category: Category) -> tuple[str, ...]:
        """Names of the fields that carry ``category``, sorted, without repeats."""
        return tuple(sorted({f.field for f in self.findings if f.category is category}))

    def by_category(self) -> dict[str, list[str]]:
        """``{category: [field, ...]}`` for reports (JSON-ready, value-free)."""
        return {c.value: list(self.fields(c)) for c in sorted(self.categories)}
