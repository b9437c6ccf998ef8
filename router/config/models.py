"""Typed configuration of the router, loaded from YAML.

Every model forbids unknown keys, so a typo fails at start-up with the key's path instead of being
silently ignored. Sections for later concepts (ingest, policy, keys, pipeline) live in their own
modules and are attached to :class:`RouterConfig` here.
"""

from __future__ import annotations

import fnmatch

from pydantic import Field, model_validator

from router.access.config import AccessConfig, check_access
from router.audit.config import AuditConfig
from router.classify.config import ClassificationConfig
from router.config.base import ClusterConfig, JurisdictionName, StrictModel
from router.keys.config import KeysConfig
from router.pipeline.config import PipelineConfig, check_record_size
from router.placement.config import PlacementConfig
from router.residency.config import PolicyConfig, ResidencyConfig, check_sections
from router.telemetry.config import TelemetryConfig

__all__ = ["ClusterConfig", "JurisdictionConfig", "JurisdictionName", "RouterConfig", "StrictModel", "TopicConfig"]


class JurisdictionConfig(StrictModel):
    """A jurisdiction and the broker racks that lie inside it."""

    racks: list[str] = Field(min_length=1, description="broker.rack values or glob patterns")
    description: str = ""

    def contains_rack(self, rack: str | None) -> bool:
        """True if the rack lies in this jurisdiction. A broker without a rack lies in none."""
        if not rack:
            return False
        return any(fnmatch.fnmatchcase(rack, pattern) for pattern in self.racks)


class TopicConfig(StrictModel):
    """A topic the router writes to, and the jurisdiction its replicas must sit in."""

    name: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    jurisdiction: JurisdictionName
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class RouterConfig(StrictModel):
    """The root of the router's YAML config."""

    version: int = Field(default=1, ge=1, le=1)
    clusters: dict[str, ClusterConfig] = Field(min_length=1)
    jurisdictions: dict[JurisdictionName, JurisdictionConfig] = Field(min_length=1)
    topics: list[TopicConfig] = Field(default_factory=list)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    keys: KeysConfig | None = None
    audit: AuditConfig | None = None
    pipeline: PipelineConfig | None = None
    classification: ClassificationConfig | None = None
    residency: ResidencyConfig | None = None
    policy: PolicyConfig | None = None
    access: AccessConfig | None = None
    telemetry: TelemetryConfig | None = None

    @model_validator(mode="after")
    def _residency_jurisdictions_known(self) -> RouterConfig:
        check_sections(self.jurisdictions, self.residency, self.policy)
        return self

    @model_validator(mode="after")
    def _access_fits(self) -> RouterConfig:
        if self.access is not None:
            check_access(self.access, jurisdictions=self.jurisdictions,
                         ingress_topics=[i.topic for i in self.pipeline.ingress] if self.pipeline else [],
                         group_id=self.pipeline.group_id if self.pipeline else None)
        return self

    @model_validator(mode="after")
    def _audit_jurisdiction_known(self) -> RouterConfig:
        if self.audit is not None and self.audit.jurisdiction not in self.jurisdictions:
            known = ", ".join(sorted(self.jurisdictions))
            raise ValueError(
                f"audit.jurisdiction {self.audit.jurisdiction!r} is not under 'jurisdictions' (known: {known})"
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> RouterConfig:
        for i, topic in enumerate(self.topics):
            if topic.jurisdiction not in self.jurisdictions:
                known = ", ".join(sorted(self.jurisdictions))
                raise ValueError(
                    f"topics[{i}] ({topic.name}) names jurisdiction {topic.jurisdiction!r}, "
                    f"which is not under 'jurisdictions' (known: {known})"
                )
        seen: dict[str, int] = {}
        for i, topic in enumerate(self.topics):
            if topic.name in seen:
                raise ValueError(f"topics[{i}] repeats topic {topic.name!r} from topics[{seen[topic.name]}]")
            seen[topic.name] = i
        # A rack pattern claimed by two jurisdictions would put a broker in both.
        claimed: dict[str, str] = {}
        for name, j in self.jurisdictions.items():
            for pattern in j.racks:
                if pattern in claimed:
                    raise ValueError(
                        f"rack pattern {pattern!r} is listed under both jurisdictions "
                        f"{claimed[pattern]!r} and {name!r}; a broker must belong to one"
                    )
                claimed[pattern] = name
        if self.keys is not None:
            for name in self.keys.jurisdictions:
                if name not in self.jurisdictions:
                    raise ValueError(f"keys.jurisdictions.{name} is not under 'jurisdictions'")
            for i, topic in enumerate(self.topics):
                if topic.jurisdiction not in self.keys.jurisdictions:
                    raise ValueError(
                        f"topics[{i}] ({topic.name}) is in jurisdiction {topic.jurisdiction!r}, "
                        f"which has no key: add it under keys.jurisdictions"
                    )
        return self

    @model_validator(mode="after")
    def _pipeline_cross_checks(self) -> RouterConfig:
        if self.pipeline is None:
            check_record_size(self.clusters, None)
            return self
        listed = {t.name: (i, t.jurisdiction) for i, t in enumerate(self.topics)}
        for i, ingress in enumerate(self.pipeline.ingress):
            where = f"pipeline.ingress[{i}].jurisdiction"
            if ingress.jurisdiction not in self.jurisdictions:
                known = ", ".join(sorted(self.jurisdictions))
                raise ValueError(
                    f"{where}: {ingress.jurisdiction!r} ({ingress.topic}) is not under 'jurisdictions' (known: {known})"
                )
            if ingress.topic in listed and listed[ingress.topic][1] != ingress.jurisdiction:
                t, j = listed[ingress.topic]
                raise ValueError(
                    f"{where}: {ingress.jurisdiction!r} contradicts topics[{t}] ({ingress.topic}), "
                    f"which places the topic in {j!r}"
                )
        check_record_size(self.clusters, self.pipeline)
        return self

    def jurisdiction_of_rack(self, rack: str | None) -> str | None:
        """The one jurisdiction whose patterns match the rack, or None (no rack, no match, or ambiguous)."""
        matches = [name for name, j in self.jurisdictions.items() if j.contains_rack(rack)]
        return matches[0] if len(matches) == 1 else None
