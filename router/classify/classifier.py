"""Classification of one :class:`ChangeEvent`: catalog by field name first, then detectors on text.

What counts: both images of the change (``values``, the after-image, and ``before``) and the
names in ``nulled_fields``. A field is looked up by name (catalog file, inline ``fields``, the
built-in name catalog, ``prompt_fields``; names compared by :func:`fold_name`); its value is
scanned by the detectors when it is a free-text field or no catalog covers it. Scanning descends
into maps, lists and strings holding a JSON object or array; whatever is found there is reported
under the top-level field, never under a nested key (keys may be data, and are scanned as such).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from router.classify.catalog import (
    COMPOUND_NAME,
    FieldCatalog,
    FieldInfo,
    fold_name,
    load_catalog,
    name_categories,
    name_words,
)
from router.classify.config import ClassificationConfig
from router.classify.detectors import Detector, Pattern, Scanner, linear
from router.classify.model import Category, Classification, Finding, Level
from router.classify.prompts import prompt_field_name, prompt_pair
from router.classify.registry import build_detectors
from router.classify.secrets import credential_pair
from router.ingest.event import ChangeEvent

_MAX_ENTITY_PLANS = 1024
_MAX_FIELD_PLANS = 4096  # per entity
_MAX_CACHED_NAME = 256  # a longer field name is resolved again on each event rather than kept
_MAX_HIT_TEXT = 128  # a longer string is scanned each time it occurs
_MAX_HIT_TEXTS = 8192  # remembered short strings per classifier; the memory is cleared when full
_JSON_START = ("{", "[")
_JSON_FIRST = frozenset("{[")


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    """What a field's name says, resolved once per entity and spelling of the name."""

    level: Level | None
    catalog: tuple[Finding, ...]
    """Findings by the catalog file, inline ``fields`` or the built-in name catalog."""
    prompt: Finding | None
    """The PROPRIETARY_PROMPT finding when the field is a configured prompt field."""
    scan: bool
    """Scan the value: a free-text field, or one no catalog covers."""
    free_text: bool
    compound_name: bool
    """The built-in compound ``Name``: PII (and not scanned unless free text) when a mapping."""
    found: dict[Detector, Finding]
    """The finding of each detector that has hit in this field, made once (at most one per detector)."""


class _EntityPlan:
    """Per-entity lookups, precomputed: the folded catalog and field lists, and a bounded cache
    of resolved field names."""

    __slots__ = ("_fields", "builtin", "catalog", "free_text", "known", "prompt", "prompt_pattern")

    def __init__(self, catalog: Mapping[str, FieldInfo], free_text: frozenset[str], prompt: frozenset[str],
                 builtin: bool, prompt_pattern: Pattern | None = None) -> None:
        self.catalog = catalog
        self.free_text = free_text
        self.prompt = prompt
        self.prompt_pattern = prompt_pattern
        """``classification.prompt_field_pattern``, matched against a name's words."""
        self.builtin = builtin
        self._fields: dict[str, _FieldPlan] = {}
        self.known = self._fields
        """Field plans resolved so far, for a direct lookup before :meth:`field`."""

    def field(self, name: str) -> _FieldPlan:
        plan = self._fields.get(name)
        if plan is None:
            plan = self._resolve(name)
            if len(name) <= _MAX_CACHED_NAME and len(self._fields) < _MAX_FIELD_PLANS:
                self._fields[name] = plan
        return plan

    def _resolve(self, name: str) -> _FieldPlan:
        key = fold_name(name)
        info = self.catalog.get(key)
        compound = False
        if info is None and self.builtin:
            if key == COMPOUND_NAME:
                compound = True
            else:
                cats = name_categories(name)
                info = FieldInfo(None, cats) if cats else None
        catalog = tuple(Finding(c, name, "catalog") for c in sorted(info.categories)) if info else ()
        pattern = self.prompt_pattern
        is_prompt = key in self.prompt or (
            pattern is not None and prompt_field_name(" ".join(name_words(name)), pattern))
        prompt = Finding(Category.PROPRIETARY_PROMPT, name, "prompt_field") if is_prompt else None
        free_text = key in self.free_text
        return _FieldPlan(info.level if info else None, catalog, prompt, free_text or info is None, free_text,
                          compound, {})


_UNSCANNED = frozenset({int, float, bool})
"""Types of top-level values no detector reads (numbers inside JSON text are read as digits)."""


_finding_order = attrgetter("category", "field", "source")
"""The order of findings: category, field, source (a :class:`Category` is the str of its value)."""


def _json_container(text: str) -> Any:
    """The parsed object or array when ``text`` is one in JSON, else None."""
    first = text[:1]
    if first not in _JSON_START and not (first.isspace() and text.lstrip()[:1] in _JSON_START):
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:  # not JSON after all (or nested beyond orjson's 1024): plain text
        return None
    return parsed if isinstance(parsed, dict | list) else None


class _TextMemory:
    """What the scan of a short string found, remembered across events.

    CRM values repeat: picklist values, country and city names, titles, the same name or address
    in every update of a record. The detectors that hit in a string of at most
    :data:`_MAX_HIT_TEXT` characters are remembered, at most :data:`_MAX_HIT_TEXTS` strings (all
    forgotten when full). The memory holds no value: an entry is keyed by a keyed BLAKE2b-128
    digest of the string's code points (a random key per classifier, never written anywhere) and
    holds only which detectors hit. A plain string's scan is a pure function of its text, and so is
    the walk of a JSON string that is a field's whole value (depth 0) and stays within
    ``max_depth``: the answer remembered is the one a scan would give (short of a collision of the
    digest, ~2^-100 among the entries kept).
    """

    __slots__ = ("_hash", "_known")

    def __init__(self) -> None:
        self._hash = blake2b(key=os.urandom(32), digest_size=16)
        self._known: dict[bytes, tuple[Detector, ...]] = {}

    def key(self, text: str) -> bytes:
        h = self._hash.copy()
        h.update(text.encode("utf-8", "surrogatepass"))  # one byte string per string, lone surrogates too
        return h.digest()

    def get(self, key: bytes) -> tuple[Detector, ...] | None:
        return self._known.get(key)

    def put(self, key: bytes, hits: tuple[Detector, ...]) -> None:
        known = self._known
        if len(known) >= _MAX_HIT_TEXTS:
            known.clear()
        known[key] = hits

    def __len__(self) -> int:
        return len(self._known)


class _EventScan:
    """The scan of one event: each distinct string scanned once, a budget of characters, a depth
    limit. ``incomplete`` holds the value-free reason once a limit stopped the scan."""

    __slots__ = ("_left", "_max_chars", "_seen", "incomplete", "max_depth", "memory", "min_length", "prompt",
                 "scan", "secret")

    def __init__(self, scanner: Scanner, memory: _TextMemory, max_chars: int, max_depth: int, *,
                 secret: Detector | None, prompt: Detector | None = None) -> None:
        self.scan = scanner.hits
        self.memory = memory
        self.min_length = scanner.min_length
        self.max_depth = max_depth
        self.secret = secret
        self.prompt = prompt
        self.incomplete: str | None = None
        self._left = max_chars
        self._max_chars = max_chars
        self._seen: dict[str, tuple[Detector, ...]] = {}

    @property
    def _scan_reason(self) -> str:
        return f"scanned text exceeds classification.max_scan_chars ({self._max_chars})"

    @property
    def _depth_reason(self) -> str:
        return f"value nesting exceeds classification.max_depth ({self.max_depth})"

    def value(self, value: Any) -> tuple[Detector, ...] | set[Detector]:
        """The detectors that hit anywhere in ``value`` (a field's value, depth 0)."""
        if isinstance(value, str):
            return self._string(value, 0, counted=True)
        hits: set[Detector] = set()
        self._walk(value, 0, False, hits)
        return hits

    def _string(self, text: str, depth: int, *, counted: bool) -> tuple[Detector, ...]:
        if len(text) < self.min_length:
            return ()  # shorter than anything a detector can confirm
        seen = self._seen.get(text)
        if seen is not None:
            return seen
        if counted:  # strings inside a JSON string were counted with it
            if len(text) > self._left:
                self.incomplete = self.incomplete or self._scan_reason
                return ()
            self._left -= len(text)
        first = text[:1]
        maybe_json = first in _JSON_FIRST or first.isspace()
        key = None
        if len(text) <= _MAX_HIT_TEXT and (depth == 0 or not maybe_json):
            key = self.memory.key(text)
            known = self.memory.get(key)
            if known is not None:
                self._seen[text] = known
                return known
        parsed = _json_container(text) if maybe_json else None
        if parsed is None:
            result = self.scan(text)
        else:
            hits: set[Detector] = set()
            self._walk(parsed, depth, True, hits)
            result = tuple(hits)
        if key is not None and self.incomplete is None:  # a walk stopped by max_depth is not remembered
            self.memory.put(key, result)
        self._seen[text] = result
        return result

    def _walk(self, root: Any, depth: int, in_json: bool, hits: set[Detector]) -> None:
        """Scan every string below ``root`` (iteratively: the depth limit, not Python's, applies)."""
        stack: list[tuple[Any, int]] = [(root, depth)]
        while stack and self.incomplete is None:
            item, level = stack.pop()
            if isinstance(item, str):
                hits.update(self._string(item, level, counted=not in_json))
            elif isinstance(item, Mapping):
                if item and level >= self.max_depth:
                    self.incomplete = self._depth_reason
                    return
                for key, sub in item.items():
                    if isinstance(key, str):
                        stack.append((key, level + 1))
                        if self.secret is not None and credential_pair(key, sub):
                            hits.add(self.secret)
                        if self.prompt is not None and prompt_pair(key, sub):
                            hits.add(self.prompt)
                    stack.append((sub, level + 1))
            elif isinstance(item, list | tuple):
                if item and level >= self.max_depth:
                    self.incomplete = self._depth_reason
                    return
                stack.extend((sub, level + 1) for sub in item)
            elif in_json and isinstance(item, int) and not isinstance(item, bool):
                # A number inside a JSON string was text: scan it as the digits it was written as.
                hits.update(self._string(str(item), level, counted=False))


class Classifier:
    """Classifies events. Build once from config; :meth:`classify` is pure and thread-safe.

    Guarantees: a field's value is read only to scan it and never stored (short strings are
    remembered by a keyed digest with the detectors that hit, see :class:`_TextMemory`); findings hold
    top-level field names. Scanned are free-text fields and fields no catalog covers, in both
    images, at any depth, every string at least :attr:`scan_min_length` long (the shortest match
    of any enabled detector), each distinct string once per event. Null values carry no data and
    are skipped; names in ``nulled_fields`` count by their catalog entry. The level is the highest
    of ``default_level``, the catalog levels of present fields and the levels implied by the
    categories found, and RESTRICTED when a scan limit made the classification ``incomplete``.
    """

    def __init__(self, config: ClassificationConfig, catalog: FieldCatalog | None = None,
                 base_dir: Path | None = None) -> None:
        self.config = config
        if catalog is None and config.catalog:
            path = Path(config.catalog)
            catalog = load_catalog(path if path.is_absolute() or base_dir is None else base_dir / path)
        base = catalog if catalog is not None else FieldCatalog()
        inline = FieldCatalog()
        for key, rule in config.fields.items():
            entity, _, field = key.partition(".")
            inline.add(entity, field, rule.info())
        self.catalog = base.merged(inline)
        self.detectors: tuple[Detector, ...] = build_detectors(
            config.detectors, phone_regions=config.phone_regions, special=config.special_category.settings())
        self._scanner = Scanner(self.detectors)
        self.scan_min_length = self._scanner.min_length
        """Strings shorter than this are not scanned: no enabled detector can match them."""
        self._memory = _TextMemory()
        self._secret = next((d for d in self.detectors if d.category is Category.SECRET), None)
        self._prompt_detector = next((d for d in self.detectors if d.category is Category.PROPRIETARY_PROMPT), None)
        self._sources = {d: f"detector:{d.name}" for d in self.detectors}
        self._free_text = self._folded_names(config.free_text_fields)
        self._prompt = self._folded_names(config.prompt_fields)
        self._prompt_pattern = linear(config.prompt_field_pattern) if config.prompt_field_pattern else None
        self._plans: dict[str, _EntityPlan] = {}

    @classmethod
    def from_config(cls, config: ClassificationConfig | None, base_dir: Path | None = None) -> Classifier:
        """``base_dir`` resolves a relative ``catalog`` path (default: the working directory)."""
        return cls(config or ClassificationConfig(), base_dir=base_dir)

    @staticmethod
    def _folded_names(table: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for entity, names in table.items():
            out.setdefault(entity if entity == "*" else fold_name(entity), set()).update(map(fold_name, names))
        return {entity: frozenset(names) for entity, names in out.items()}

    def _plan(self, entity: str) -> _EntityPlan:
        key = fold_name(entity)
        plan = self._plans.get(key)
        if plan is None:
            empty: frozenset[str] = frozenset()
            free_text = self._free_text.get("*", empty) | self._free_text.get(key, empty)
            prompt = self._prompt.get("*", empty) | self._prompt.get(key, empty)
            plan = _EntityPlan(self.catalog.folded(entity), free_text, prompt, self.config.builtin_catalog,
                               self._prompt_pattern)
            if len(self._plans) >= _MAX_ENTITY_PLANS:
                self._plans.clear()  # entity names come from events: keep the cache bounded
            self._plans[key] = plan
        return plan

    def forget_texts(self) -> None:
        """Empty the memory of scanned short strings (:class:`_TextMemory`), so that the next
        events are scanned as if met for the first time; for measurements (``make eval``)."""
        self._memory = _TextMemory()

    def classify(self, event: ChangeEvent) -> Classification:  # noqa: PLR0912, PLR0915 - one pass, inline
        """The classification of ``event``'s non-null fields in both images and its nulled fields."""
        cfg = self.config
        plan = self._plan(event.entity)
        known = plan.known
        findings: set[Finding] = set()
        levels: list[Level] = []
        detectors = bool(self.detectors)
        min_length = self.scan_min_length
        scan: _EventScan | None = None
        after = event.values
        for image in (after, event.before) if event.before else (after,):
            before = image is not after
            for name, value in image.items():
                if value is None:
                    continue
                if before and name in after:
                    current = after[name]
                    if current is value or (isinstance(value, str) and current == value):
                        continue  # the same value under the same name: classified with the after-image
                fp = known.get(name) or plan.field(name)
                if fp.level is not None:
                    levels.append(fp.level)
                if fp.catalog:
                    findings.update(fp.catalog)
                if fp.prompt is not None:
                    findings.add(fp.prompt)
                scan_it = fp.scan
                if fp.compound_name and isinstance(value, Mapping):
                    findings.add(Finding(Category.PII, name, "catalog"))
                    scan_it = fp.free_text
                if not scan_it or not detectors:
                    continue
                kind = type(value)
                if kind in _UNSCANNED or (kind is str and len(value) < min_length):
                    continue  # a number, a boolean or a string too short for any detector: nothing to find
                if scan is None:
                    scan = _EventScan(self._scanner, self._memory, cfg.max_scan_chars, cfg.max_depth,
                                      secret=self._secret, prompt=self._prompt_detector)
                if scan.incomplete is None:
                    hits = scan.value(value)
                    if hits:
                        found = fp.found
                        for d in hits:
                            finding = found.get(d)
                            if finding is None:
                                finding = found[d] = Finding(d.category, name, self._sources[d])
                            findings.add(finding)
        for nulled in event.nulled_fields:
            # A compound's part ("MailingAddress.Street") counts for the compound field.
            name, dot, _ = nulled.partition(".")
            fp = plan.field(name)
            if fp.level is not None:
                levels.append(fp.level)
            findings.update(fp.catalog)
            if fp.compound_name and dot:
                findings.add(Finding(Category.PII, name, "catalog"))
        if findings:
            cat_levels = cfg.category_levels
            levels.extend(cat_levels[f.category] for f in findings if f.category in cat_levels)
        incomplete = scan.incomplete if scan is not None else None
        level = Level.RESTRICTED if incomplete else Level.highest(levels, cfg.default_level)
        ordered = tuple(sorted(findings, key=_finding_order)) if findings else ()
        return Classification(level, ordered, incomplete)
