"""The field catalog: per entity and field, a sensitivity level and data categories.

Sources:

* Salesforce field metadata as exported from ``FieldDefinition`` (CSV from Data Loader / the
  CLI, or the JSON of a REST/Tooling query): ``SecurityClassification`` (Public, Internal,
  Confidential, Restricted, MissionCritical) and ``ComplianceGroup`` (PII, HIPAA, GDPR, PCI,
  COPPA, CCPA, semicolon-separated);
* field attributes in an Avro schema (``classification``, ``pii``, ``compliance``,
  ``categories``), through :func:`catalog_from_avro`.

Lookups ignore case and ``_`` in entity and field names (:func:`fold_name`: ``Contact.Email``,
``contact.email`` and ``CONTACT.E_MAIL`` are one field), with ``"*"`` as an entity wildcard.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.classify.model import Category, Level
from router.errors import ConfigError

ANY_ENTITY = "*"
_MAX_CACHED_ENTITIES = 1024


def fold_name(name: str) -> str:
    """The form in which entity and field names are compared: case-folded, without ``_``.

    Debezium tables and columns (``contact``, ``first_name``) then match Salesforce API names
    (``Contact``, ``FirstName``); ``Prompt_Template__c`` matches ``prompttemplate__c``."""
    return name.replace("_", "").casefold()

SECURITY_CLASSIFICATION: Mapping[str, Level] = {
    "public": Level.PUBLIC,
    "internal": Level.INTERNAL,
    "confidential": Level.CONFIDENTIAL,
    "restricted": Level.RESTRICTED,
    "missioncritical": Level.RESTRICTED,
}
"""Salesforce ``SecurityClassification`` picklist values (lower-cased) to levels.

MissionCritical is Salesforce's highest value; it maps to the router's highest level."""

COMPLIANCE_GROUP: Mapping[str, Category] = {
    "pii": Category.PII,
    "gdpr": Category.PII,
    "ccpa": Category.PII,
    "coppa": Category.PII,
    "hipaa": Category.SPECIAL_CATEGORY,  # health data: GDPR Art. 9
    "pci": Category.FINANCIAL,
}
"""Salesforce ``ComplianceGroup`` values (lower-cased) to categories."""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the catalog says about one field. ``level`` None means "not stated"."""

    level: Level | None = None
    categories: frozenset[Category] = frozenset()

    def merge(self, other: FieldInfo) -> FieldInfo:
        """The stricter union of two statements about the same field."""
        if self.level is None:
            level = other.level
        elif other.level is None:
            level = self.level
        else:
            level = Level.highest((self.level, other.level), Level.PUBLIC)
        return FieldInfo(level, self.categories | other.categories)


class FieldCatalog:
    """An immutable-by-convention map ``(entity, field) -> FieldInfo``.

    :meth:`for_entity` merges the wildcard entries with the entity's own (stricter wins) and
    caches the result (for a bounded number of entities), so per-event lookups are one dict
    access. Entity names match by :func:`fold_name`.
    """

    def __init__(self, entries: Mapping[tuple[str, str], FieldInfo] | None = None) -> None:
        self._entries: dict[tuple[str, str], FieldInfo] = dict(entries or {})
        self._by_entity: dict[str, dict[str, FieldInfo]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entity: str, field: str, info: FieldInfo) -> None:
        """Add or tighten one entry."""
        key = (entity, field)
        old = self._entries.get(key)
        self._entries[key] = info if old is None else old.merge(info)
        self._by_entity.clear()

    def merged(self, other: FieldCatalog) -> FieldCatalog:
        """A new catalog holding both; where both name a field the stricter statement wins."""
        out = FieldCatalog(self._entries)
        for (entity, field), info in other._entries.items():
            out.add(entity, field, info)
        return out

    def for_entity(self, entity: str) -> Mapping[str, FieldInfo]:
        """Every catalogued field of ``entity`` (wildcard entries included), keyed as written."""
        key = fold_name(entity)
        cached = self._by_entity.get(key)
        if cached is not None:
            return cached
        fields: dict[str, FieldInfo] = {}
        for (ent, field), info in self._entries.items():
            if ent == ANY_ENTITY or fold_name(ent) == key:
                old = fields.get(field)
                fields[field] = info if old is None else old.merge(info)
        if len(self._by_entity) >= _MAX_CACHED_ENTITIES:
            self._by_entity.clear()  # entity names come from events: keep the cache bounded
        self._by_entity[key] = fields
        return fields

    def folded(self, entity: str) -> dict[str, FieldInfo]:
        """:meth:`for_entity` keyed by :func:`fold_name`; spellings of one field merge stricter."""
        out: dict[str, FieldInfo] = {}
        for field, info in self.for_entity(entity).items():
            key = fold_name(field)
            old = out.get(key)
            out[key] = info if old is None else old.merge(info)
        return out


def parse_security_classification(text: str | None, where: str) -> Level | None:
    """Map a SecurityClassification value; empty means not stated."""
    if not text or not text.strip():
        return None
    try:
        return SECURITY_CLASSIFICATION[text.strip().replace(" ", "").lower()]
    except KeyError:
        known = ", ".join(sorted(SECURITY_CLASSIFICATION))
        raise ConfigError(f"{where}: unknown SecurityClassification {text.strip()!r} (known: {known})") from None


def parse_compliance_groups(text: str | Iterable[str] | None, where: str) -> frozenset[Category]:
    """Map ComplianceGroup values (``"PII;GDPR"`` or a list); also accepts router category names."""
    if not text:
        return frozenset()
    parts = text.split(";") if isinstance(text, str) else list(text)
    out: set[Category] = set()
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        if part.lower() in COMPLIANCE_GROUP:
            out.add(COMPLIANCE_GROUP[part.lower()])
        elif part.upper() in Category.__members__:
            out.add(Category[part.upper()])
        else:
            known = ", ".join(sorted([*COMPLIANCE_GROUP, *(c.value for c in Category)]))
            raise ConfigError(f"{where}: unknown ComplianceGroup/category {part!r} (known: {known})")
    return frozenset(out)


_ENTITY_KEYS = ("entitydefinition.qualifiedapiname", "entitydefinitionid", "entityqualifiedapiname",
                "entity", "sobject", "object")
_FIELD_KEYS = ("qualifiedapiname", "field", "fieldname", "developername", "name")


def _pick(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    for key in keys:
        if lowered.get(key) not in (None, ""):
            return lowered[key]
    return None


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten REST query records: ``{"EntityDefinition": {"QualifiedApiName": x}}`` -> dotted."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping):
            for sub, subvalue in value.items():
                if sub != "attributes":
                    out[f"{key}.{sub}"] = subvalue
        else:
            out[key] = value
    return out


def catalog_from_rows(rows: Iterable[Mapping[str, Any]], source: str) -> FieldCatalog:
    """Build a catalog from FieldDefinition-shaped rows (CSV dict rows or JSON records)."""
    catalog = FieldCatalog()
    for i, row in enumerate(rows, start=1):
        flat = _flatten(row)
        where = f"{source} row {i}"
        entity, field = _pick(flat, _ENTITY_KEYS), _pick(flat, _FIELD_KEYS)
        if not entity or not field:
            raise ConfigError(f"{where}: needs an entity column (EntityDefinition.QualifiedApiName) "
                              "and a field column (QualifiedApiName)")
        level = parse_security_classification(_pick(flat, ("securityclassification", "level")), where)
        categories = parse_compliance_groups(_pick(flat, ("compliancegroup", "categories")), where)
        if level is not None or categories:
            catalog.add(str(entity), str(field), FieldInfo(level, categories))
    return catalog


def load_catalog(path: str | Path) -> FieldCatalog:
    """Load a FieldDefinition export: ``.csv``, or ``.json`` (a list of records or ``{"records": [...]}``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError(f"classification.catalog: cannot read {p}: {err.strerror}") from None
    if p.suffix.lower() == ".csv":
        return catalog_from_rows(csv.DictReader(text.splitlines()), str(p))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"classification.catalog: {p} is not valid JSON (line {err.lineno})") from None
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ConfigError(f"classification.catalog: {p} must hold a list of field records or "
                          "a query result with 'records'")
    return catalog_from_rows(records, str(p))


def _avro_attrs(node: Mapping[str, Any], where: str) -> FieldInfo:
    level = None
    raw_level = node.get("classification", node.get("securityClassification"))
    if isinstance(raw_level, str):
        level = parse_security_classification(raw_level, where)
    categories = set(parse_compliance_groups(node.get("compliance", node.get("complianceGroup")), where))
    categories |= parse_compliance_groups(node.get("categories"), where)
    if node.get("pii") is True:
        categories.add(Category.PII)
    return FieldInfo(level, frozenset(categories))


def _nested_records(schema: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(schema, list):
        for branch in schema:
            yield from _nested_records(branch)
    elif isinstance(schema, Mapping):
        if schema.get("type") == "record":
            yield schema
        elif schema.get("type") in ("array", "map"):
            yield from _nested_records(schema.get("items", schema.get("values")))


def catalog_from_avro(schema: Mapping[str, Any], entity: str | None = None) -> FieldCatalog:
    """Extract a catalog from a parsed ``.avsc`` record schema.

    Recognised field attributes: ``"classification"`` (a SecurityClassification value),
    ``"pii": true``, ``"compliance"`` (ComplianceGroup string or list) and ``"categories"``.
    Attributes inside a nested record (a compound field such as an address) are attributed to the
    top-level field, the unit in which the value travels. ``entity`` defaults to the schema's
    ``name`` without the ``ChangeEvent`` suffix Salesforce appends.
    """
    name = entity or str(schema.get("name", ""))
    if entity is None and name.endswith("ChangeEvent"):
        name = name.removesuffix("ChangeEvent")
        name = name.removesuffix("__") + "__c" if name.endswith("__") else name
    if not name:
        raise ConfigError("catalog_from_avro: the schema has no 'name'; pass entity=")
    catalog = FieldCatalog()
    for field in schema.get("fields", []):
        fname = str(field.get("name", ""))
        where = f"avro schema {name}.{fname}"
        info = _avro_attrs(field, where)
        for record in _nested_records(field.get("type")):
            for sub in record.get("fields", []):
                info = info.merge(_avro_attrs(sub, f"{where}.{sub.get('name')}"))
        if info.level is not None or info.categories:
            catalog.add(name, fname, info)
    return catalog


# -- the built-in name catalog -----------------------------------------------------------------
# Used for fields that neither the catalog file nor the inline ``classification.fields`` names, so
# that classification works with no file. Standard Salesforce person fields by exact name; other
# names by their words (``BankIBAN__c`` -> bank, iban), so ``BusinessName`` is not an "ssn".

_PII = frozenset({Category.PII})
DEFAULT_PII_FIELDS: frozenset[str] = frozenset({
    "Email", "PersonEmail", "Phone", "MobilePhone", "HomePhone", "OtherPhone", "AssistantPhone", "Fax",
    "PersonMobilePhone", "PersonHomePhone", "PersonOtherPhone", "FirstName", "LastName", "MiddleName",
    "Suffix", "Salutation", "AssistantName", "Birthdate", "PersonBirthdate",
    "MailingAddress", "MailingStreet", "MailingCity", "MailingPostalCode", "MailingState",
    "OtherAddress", "OtherStreet", "OtherCity", "OtherPostalCode", "OtherState",
    "PersonMailingAddress", "PersonMailingStreet", "PersonMailingCity", "PersonMailingPostalCode",
})
"""Salesforce standard person fields (Contact, Lead, Person Account). ``Name`` counts only when it
is the compound person name (a mapping: FirstName, LastName, ...), not an account's name. Matched
by :func:`fold_name`, so the columns ``first_name`` and ``mobilephone`` count too."""
_DEFAULT_PII_FOLDED = frozenset(fold_name(f) for f in DEFAULT_PII_FIELDS)
COMPOUND_NAME = fold_name("Name")

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_NAME_WORDS: tuple[tuple[Category, tuple[tuple[str, ...], ...]], ...] = (
    (Category.FINANCIAL, (("iban",), ("bic",), ("swift",), ("credit", "card"), ("card", "number"),
                          ("bank", "account"), ("routing", "number"))),  # not Account.AccountNumber
    (Category.GOVERNMENT_ID, (("ssn",), ("passport",), ("nino",), ("idnr",), ("nir",), ("dni",),
                              ("codice", "fiscale"), ("tax", "id"), ("vat", "number"), ("national", "id"),
                              ("social", "security"), ("driver", "license"), ("drivers", "license"))),
    (Category.SECRET, (("password",), ("passwd",), ("secret",), ("apikey",), ("api", "key"),
                       ("access", "token"), ("auth", "token"), ("private", "key"))),
    (Category.SPECIAL_CATEGORY, (("health",), ("medical",), ("diagnosis",), ("religion",), ("ethnicity",),
                                 ("biometric",), ("genetic",), ("sexual", "orientation"), ("trade", "union"),
                                 ("political", "opinion"))),
    (Category.PII, (("email",), ("phone",), ("birthdate",), ("birth", "date"), ("date", "of", "birth"))),
)


def name_words(field: str) -> tuple[str, ...]:
    """``"BankIBAN__c"`` -> ``("bank", "iban", "c")``."""
    return tuple(w.lower() for w in _WORD.findall(field))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


def name_categories(field: str) -> frozenset[Category]:
    """The categories the built-in name catalog gives ``field`` by its name alone (not cached:
    callers cache per entity, and names may come from events)."""
    if fold_name(field) in _DEFAULT_PII_FOLDED:
        return _PII
    words = name_words(field)
    return frozenset(cat for cat, phrases in _NAME_WORDS if any(_contains(words, p) for p in phrases))


def default_field_info(field: str, value: Any) -> FieldInfo | None:
    """What the built-in name catalog says about ``field`` (level left to the categories), or None."""
    if fold_name(field) == COMPOUND_NAME:
        return FieldInfo(None, _PII) if isinstance(value, Mapping) else None
    cats = name_categories(field)
    return FieldInfo(None, cats) if cats else None
