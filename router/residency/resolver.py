"""Which jurisdictions an event's data is bound to, with value-free evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.ingest.event import ChangeEvent, Operation
from router.residency.config import ANY, ResidencyConfig, UnmappedCountry
from router.residency.countries import load_names, to_alpha2


class Source(StrEnum):
    TENANT = "tenant"
    FIELD = "field"
    TRUSTED_HEADER = "trusted_header"
    UNTRUSTED_HEADER = "untrusted_header"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One binding: where it came from (a field or header *name*, never its value)."""

    source: Source
    name: str
    jurisdiction: str
    country: str | None = None
    """The ISO alpha-2 code the value normalised to (a code, not the field's text), if any."""

    def __str__(self) -> str:
        via = f" -> {self.country}" if self.country else ""
        return f"{self.source.value.replace('_', ' ')} {self.name}{via} -> {self.jurisdiction}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The bindings of one event, sorted. Empty ``jurisdictions`` means unresolved.

    ``bindings`` says where each came from; ``evidence`` is the same as value-free text
    (``"field BillingAddress.Country -> DE -> eu"``). ``unmapped`` names country fields whose value is
    no known country or one no jurisdiction lists (fail closed: the event is unresolved).
    """

    jurisdictions: tuple[str, ...]
    bindings: tuple[Evidence, ...] = ()
    unmapped: tuple[str, ...] = ()
    hints: tuple[Evidence, ...] = ()
    """Untrusted header claims: never bindings; a hint outside ``jurisdictions`` quarantines."""

    @property
    def evidence(self) -> tuple[str, ...]:
        return (tuple(str(b) for b in self.bindings) + tuple(f"field {u} -> unmapped" for u in self.unmapped)
                + tuple(str(h) for h in self.hints))

    @property
    def conflicting_hints(self) -> tuple[Evidence, ...]:
        """Hints naming a jurisdiction the data is not bound to."""
        return tuple(h for h in self.hints if h.jurisdiction not in self.jurisdictions)

    @property
    def unresolved(self) -> bool:
        return not self.jurisdictions or bool(self.unmapped)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from, as the deployment declares it (``pipeline.ingress[]``).

    ``jurisdiction`` is where the ingress topic's raw data may sit (its replicas are checked like
    any destination's); a record whose own jurisdiction cannot be known stays there. Only on a
    ``trusted`` topic, whose writers the deployment restricts, may headers bind.
    """

    topic: str
    jurisdiction: str
    trusted: bool = False


def norm_name(name: str) -> str:
    """A field or header name as matched: lower case, without ``_`` and ``-``."""
    return name.replace("_", "").replace("-", "").lower()


def _index(values: Mapping[str, Any]) -> dict[str, str]:
    """Normalised name -> actual key (the first of several keys that normalise alike)."""
    out: dict[str, str] = {}
    for k in values:
        if isinstance(k, str):
            out.setdefault(norm_name(k), k)
    return out


def _lookup(values: Mapping[str, Any], index: dict[str, str], path: tuple[str, ...]) -> Any:
    node: Any = values
    for i, part in enumerate(path):
        if not isinstance(node, Mapping):
            return None
        key = index.get(part) if i == 0 else _index(node).get(part)
        if key is None:
            return None
        node = node.get(key)
    return node


_MAX_SHAPES = 4096
_MAX_SHAPE_KEYS = 256
_Shape = tuple[tuple[tuple[int, str], ...], tuple[tuple[str, tuple[str, ...], tuple[tuple[int, str], ...]], ...]]
"""What an event's key layout says, value-free: ``(image, actual key)`` of the tenant fields in
each image (after-image first), and per country field present in some image, in configuration order, its
name, the rest of its path and ``(image, actual first key)`` for each image holding it."""


class Resolver:
    """Resolves bindings. Rules, all unioned (data bound to several jurisdictions stays bound to all):

    * a tenant id the payload carries (``event.tenant_id`` or a ``tenant_fields`` field) ->
      ``residency.tenants``;
    * country fields per entity, in the after-image and the before-image (dotted paths into
      compound values; names match ignoring case, ``_`` and ``-``);
    * the jurisdiction header and the tenant header, as bindings only when the record came from a
      trusted ingress topic (``origin.trusted``);
    * ``default``, only when none of the above resolved and the event is not a delete (a delete
      must be resolved from what it carries, or its erasure would go to the wrong place).

    On an untrusted topic the headers are *hints*, kept apart in ``Resolution.hints``: the policy
    quarantines an event whose hint names a jurisdiction its data is not bound to, and never
    lets a hint choose where anything is written.
    """

    def __init__(self, config: ResidencyConfig) -> None:
        self.config = config
        self._countries = config.country_table()
        self._jurisdictions = {j.lower(): j for j in config.countries}
        self._fields: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
        self._tenant_fields = tuple(norm_name(f) for f in config.tenant_fields)
        self._header = norm_name(config.header) if config.header else None
        self._tenant_header = norm_name(config.tenant_header) if config.tenant_header else None
        self._shapes: dict[tuple[str, tuple[object, ...], tuple[object, ...]], _Shape] = {}
        self._tenant_evidence = {t: Evidence(Source.TENANT, "tenant_id", j) for t, j in config.tenants.items()}
        self._default = (Evidence(Source.DEFAULT, "residency.default", config.default)
                         if config.default is not None else None)
        load_names()  # country names in every language: built now, not on the first event

    @classmethod
    def from_config(cls, config: ResidencyConfig) -> Resolver:
        return cls(config)

    def _fields_of(self, entity: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(configured name, normalised path) of each country field of ``entity``."""
        cached = self._fields.get(entity)
        if cached is None:
            table = {norm_name(k) if k != ANY else ANY: v for k, v in self.config.country_fields.items()}
            names = dict.fromkeys([*table.get(ANY, []), *table.get(norm_name(entity), [])])
            cached = tuple((name, tuple(norm_name(p) for p in name.split("."))) for name in names)
            if len(self._fields) < 4096:  # entity names come from input: bound the cache
                self._fields[entity] = cached
        return cached

    def _jurisdiction_of(self, value: Any) -> tuple[str | None, str | None]:
        """(jurisdiction, alpha-2 code) of a jurisdiction name or a country name/code."""
        if not isinstance(value, str) or len(value) > 64:
            return None, None  # no country name is longer; never normalise attacker-sized text
        text = value.strip().lower()
        if text in self._jurisdictions:
            return self._jurisdictions[text], None
        code = to_alpha2(value)
        return (None, None) if code is None else (self._countries.get(code), code)

    def _shape(self, entity: str, images: list[Mapping[str, Any]]) -> _Shape:
        """The value-free part of resolving an event of ``entity`` whose images have these keys,
        computed once per (entity, key layout): which keys are tenant and country fields."""
        cacheable = sum(map(len, images)) <= _MAX_SHAPE_KEYS
        layout = (entity, tuple(images[0]), tuple(images[1]) if len(images) > 1 else ()) if cacheable else None
        shape = self._shapes.get(layout) if layout is not None else None
        if shape is not None:
            return shape
        indexes = [_index(v) for v in images]
        tenant_keys = tuple((i, key) for i, index in enumerate(indexes) for f in self._tenant_fields
                            if (key := index.get(f)) is not None)
        country = []
        for name, path in self._fields_of(entity):
            where = tuple((i, key) for i, index in enumerate(indexes) if (key := index.get(path[0])) is not None)
            if where:
                country.append((name, path[1:], where))
        shape = (tenant_keys, tuple(country))
        if layout is not None:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()  # layouts come from input: keep the cache bounded
            self._shapes[layout] = shape
        return shape

    def resolve(self, event: ChangeEvent, origin: Origin | None = None) -> Resolution:  # noqa: PLR0912 - one branch per source
        """Bindings of ``event`` read from ``origin`` (None: an untrusted origin)."""
        cfg = self.config
        trusted = origin is not None and origin.trusted
        evidence: list[Evidence] = []
        hints: list[Evidence] = []
        unmapped: list[str] = []
        values = event.values
        images = [values] if not event.before else [values, event.before]
        tenant_keys, country = self._shape(event.entity, images)
        tenants = [event.tenant_id] if event.tenant_id is not None else []
        for i, key in tenant_keys:
            value = images[i].get(key)
            if isinstance(value, str) and value:
                tenants.append(value)
        tenant_evidence = self._tenant_evidence
        for tenant in dict.fromkeys(tenants) if len(tenants) > 1 else tenants:
            found = tenant_evidence.get(tenant)
            if found is not None:
                evidence.append(found)
        seen: set[tuple[str, str]] = set()
        for name, rest, where in country:
            for i, key in where:
                value = images[i].get(key)
                if rest and value is not None:
                    value = _lookup(value, _index(value) if isinstance(value, Mapping) else {}, rest)
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                j, code = self._jurisdiction_of(value)
                if j is None:
                    if cfg.unmapped_country is UnmappedCountry.QUARANTINE and name not in unmapped:
                        unmapped.append(name)
                elif (name, j) not in seen:
                    seen.add((name, j))
                    evidence.append(Evidence(Source.FIELD, name, j, code))
        headers = {norm_name(k): v for k, v in event.headers.items()} if event.headers else None
        hint = headers.get(self._header) if headers and self._header else None
        if hint:
            hinted, hint_code = self._jurisdiction_of(hint)
            if hinted is not None:
                target = evidence if trusted else hints
                target.append(Evidence(Source.TRUSTED_HEADER if trusted else Source.UNTRUSTED_HEADER,
                                       str(cfg.header), hinted, hint_code))
            elif trusted and cfg.unmapped_country is UnmappedCountry.QUARANTINE:
                unmapped.append(str(cfg.header))
        tenant_hint = headers.get(self._tenant_header) if headers and self._tenant_header else None
        if tenant_hint and tenant_hint in cfg.tenants:
            target = evidence if trusted else hints
            target.append(Evidence(Source.TRUSTED_HEADER if trusted else Source.UNTRUSTED_HEADER,
                                   str(cfg.tenant_header), cfg.tenants[tenant_hint]))
        if not evidence and self._default is not None and event.operation is not Operation.DELETE:
            evidence.append(self._default)
        bound = (evidence[0].jurisdiction,) if len(evidence) == 1 else tuple(sorted({e.jurisdiction for e in evidence}))
        return Resolution(bound, tuple(evidence), tuple(unmapped), tuple(hints))
