"""Classification of one :class:`ChangeEvent`: catalog by field name first, then detectors on text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from router.classify.catalog import ANY_ENTITY, FieldCatalog, FieldInfo, default_field_info, load_catalog
from router.classify.config import ClassificationConfig
from router.classify.detectors import Detector, build_detectors
from router.classify.model import Category, Classification, Finding, Level
from router.ingest.event import ChangeEvent


@dataclass(frozen=True, slots=True)
class _EntityPlan:
    catalog: Mapping[str, FieldInfo]
    free_text: frozenset[str]
    prompt: frozenset[str]


class Classifier:
    """Classifies events. Build once from config; :meth:`classify` is pure and thread-safe.

    Guarantees: a field's value is read only to scan it (free-text fields, or uncatalogued string
    fields at least ``scan_unknown_min_length`` long) and never stored; findings hold field names.
    Null values carry no data and are skipped. The level is the highest of ``default_level``, the
    catalog levels of present fields and the levels implied by the categories found.
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
        self.detectors: tuple[Detector, ...] = build_detectors(config.detectors, phone_regions=config.phone_regions)
        self._plans: dict[str, _EntityPlan] = {}

    @classmethod
    def from_config(cls, config: ClassificationConfig | None, base_dir: Path | None = None) -> Classifier:
        """``base_dir`` resolves a relative ``catalog`` path (default: the working directory)."""
        return cls(config or ClassificationConfig(), base_dir=base_dir)

    def _plan(self, entity: str) -> _EntityPlan:
        plan = self._plans.get(entity)
        if plan is None:
            cfg = self.config

            def names(table: Mapping[str, list[str]]) -> frozenset[str]:
                return frozenset(table.get(ANY_ENTITY, [])) | frozenset(table.get(entity, []))

            plan = _EntityPlan(self.catalog.for_entity(entity), names(cfg.free_text_fields), names(cfg.prompt_fields))
            self._plans[entity] = plan
        return plan

    def classify(self, event: ChangeEvent) -> Classification:
        """The classification of ``event``'s present, non-null fields."""
        plan = self._plan(event.entity)
        findings: set[Finding] = set()
        levels: list[Level] = []
        min_len = self.config.scan_unknown_min_length
        for name, value in event.values.items():
            if value is None:
                continue
            info = plan.catalog.get(name)
            if info is None and self.config.builtin_catalog:
                info = default_field_info(name, value)
            if info is not None:
                if info.level is not None:
                    levels.append(info.level)
                findings.update(Finding(c, name, "catalog") for c in info.categories)
            if name in plan.prompt:
                findings.add(Finding(Category.PROPRIETARY_PROMPT, name, "prompt_field"))
            if isinstance(value, str) and (name in plan.free_text or (info is None and len(value) >= min_len)):
                for d in self.detectors:
                    if d.prefilter(value) and d.confirm(value):
                        findings.add(Finding(d.category, name, f"detector:{d.name}"))
        cat_levels = self.config.category_levels
        levels.extend(cat_levels[f.category] for f in findings if f.category in cat_levels)
        ordered = tuple(sorted(findings, key=lambda f: (f.category.value, f.field, f.source)))
        return Classification(Level.highest(levels, self.config.default_level), ordered)
