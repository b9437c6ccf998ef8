"""Which jurisdictions an event's data is bound to, with value-free evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.ingest.event import ChangeEvent
from router.residency.config import ANY, ResidencyConfig, UnmappedCountry
from router.residency.countries import to_alpha2


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

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(str(b) for b in self.bindings) + tuple(f"field {u} -> unmapped" for u in self.unmapped)

    @property
    def unresolved(self) -> bool:
        return not self.jurisdictions or bool(self.unmapped)


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


class Resolver:
    """Resolves bindings. Rules, all unioned (data bound to several jurisdictions stays bound to all):

    * tenant id -> jurisdiction (``residency.tenants``);
    * country fields per entity (dotted paths into compound values);
    * the connector header, as a binding only if ``connector`` is in ``trusted_connectors``;
    * ``default``, only when none of the above resolved.

    An untrusted header is a hint that can only add a binding to an already resolved set: more
    bindings never permit more destinations, so a hint can make a decision stricter, never looser,
    and it never resolves an otherwise unresolved event.
    """

    def __init__(self, config: ResidencyConfig) -> None:
        self.config = config
        self._countries = config.country_table()
        self._fields: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_config(cls, config: ResidencyConfig) -> Resolver:
        return cls(config)

    def _fields_of(self, entity: str) -> tuple[str, ...]:
        cached = self._fields.get(entity)
        if cached is None:
            table = self.config.country_fields
            cached = tuple(dict.fromkeys([*table.get(ANY, []), *table.get(entity, [])]))
            self._fields[entity] = cached
        return cached

    def _jurisdiction_of(self, value: Any) -> tuple[str | None, str | None]:
        """(jurisdiction, alpha-2 code) of a jurisdiction name or a country name/code."""
        if not isinstance(value, str):
            return None, None
        if value.strip().lower() in self.config.countries:
            return value.strip().lower(), None
        code = to_alpha2(value)
        return (None, None) if code is None else (self._countries.get(code), code)

    def resolve(self, event: ChangeEvent, connector: str | None = None) -> Resolution:
        """Bindings of ``event``. ``connector`` is the ingress identity the shell established."""
        cfg = self.config
        evidence: list[Evidence] = []
        unmapped: list[str] = []
        if event.tenant_id is not None and event.tenant_id in cfg.tenants:
            evidence.append(Evidence(Source.TENANT, "tenant_id", cfg.tenants[event.tenant_id]))
        for path in self._fields_of(event.entity):
            value = _lookup(event.values, path)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            j, code = self._jurisdiction_of(value)
            if j is None:
                if cfg.unmapped_country is UnmappedCountry.QUARANTINE:
                    unmapped.append(path)
            else:
                evidence.append(Evidence(Source.FIELD, path, j, code))
        hint = event.headers.get(cfg.header) if cfg.header else None
        trusted = connector is not None and connector in cfg.trusted_connectors
        hinted, hint_code = self._jurisdiction_of(hint) if hint else (None, None)
        if hinted is not None and trusted:
            evidence.append(Evidence(Source.TRUSTED_HEADER, str(cfg.header), hinted, hint_code))
        elif hint and hinted is None and trusted and cfg.unmapped_country is UnmappedCountry.QUARANTINE:
            unmapped.append(str(cfg.header))
        if not evidence and cfg.default is not None:
            evidence.append(Evidence(Source.DEFAULT, "residency.default", cfg.default))
        if hinted is not None and not trusted and evidence:
            evidence.append(Evidence(Source.UNTRUSTED_HEADER, str(cfg.header), hinted, hint_code))
        bound = tuple(sorted({e.jurisdiction for e in evidence}))
        return Resolution(bound, tuple(evidence), tuple(unmapped))
