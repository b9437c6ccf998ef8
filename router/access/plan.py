"""The least-privilege ACL bindings a config implies: pure, no Kafka import.

:func:`plan` turns the ``access`` section and the topics, ingress, audit and pipeline sections into
:class:`Binding` values (the shape of a Kafka ACL: principal, host, operation, permission, resource
type, pattern type, resource name). Every binding is ALLOW from any host (``*``). Per role:

- **router** reads its ingress topics, its group (``pipeline.group_id``, LITERAL) and its replay
  groups (``<group_id>.replay.``, PREFIXED: ``quarantine replay`` uses ``<group_id>.replay.<j>``);
  writes every configured topic that is not an ingress topic (regional, quarantine, audit); reads
  the audit topic (at start-up it reads the chain tails and the recorded chain placement) and the
  configured quarantine topics (``quarantine replay``); DESCRIBE and WRITE on the TransactionalId
  prefix ``<pipeline.transactional_id_prefix>-`` (PREFIXED: each instance's id is
  ``<prefix>-<instance>``, a replay's ``<prefix>-replay-<j>``);
  DESCRIBE_CONFIGS on every configured topic (``max.message.bytes`` at start-up) and ingress topic
  (its retention settings at start-up) and DESCRIBE on the cluster (``describe_acls`` for the
  start-up ACL check). Placement needs nothing more:
  ``describe_topics`` needs DESCRIBE on each topic, which READ or WRITE on it implies, and a broker
  answers ``describe_cluster`` (brokers and racks) to any authenticated client.
- **connectors** write their ingress topics (LITERAL).
- **consumers** of a jurisdiction read its regional topics: one PREFIXED resource (the policy's
  topic pattern up to ``{entity}``, e.g. ``crm.eu.``) when no topic of any other kind or jurisdiction
  the config knows starts with it, else each topic LITERAL; and their own groups, PREFIXED
  ``<principal name>.`` (``consumer-eu.`` for ``User:consumer-eu``).
- **sre** of a jurisdiction read its quarantine topic (LITERAL), with DESCRIBE on the quarantine
  commands' throw-away groups (:data:`READER_GROUPS`).
- **auditors** read the audit topic (LITERAL), with DESCRIBE on ``audit verify``'s throw-away groups.

The router also gets DESCRIBE on its readers' throw-away groups (audit at start-up, replay's audit
and dry-run readers).

With ``access.idempotent_write_acl`` the router and connectors also get IDEMPOTENT_WRITE on the
cluster (brokers older than Kafka 2.8 only).
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from router.access.config import AccessConfig, group_prefix, replay_group_prefix
from router.config.models import RouterConfig
from router.errors import ConfigError

READER_GROUPS = {
    "audit": "residency-router-audit-",
    "quarantine": "residency-router-quarantine-",
    "replay_audit": "residency-router-replay-audit-",
    "replay_dry_run": "residency-router-replay-dry-run-",
}
"""Prefixes of the throw-away group ids of the committed-record readers (``router.kafka_read.
committed_reader``'s ``group_prefix`` plus ``-``): the audit trail readers (start-up, ``audit
verify``), the quarantine commands and replay's audit and dry-run readers. They assign partitions
at explicit offsets and never join or commit, but librdkafka still looks up the coordinator of any
``group.id`` it is given (FindCoordinator, which needs DESCRIBE on the group), and a refusal arrives
as an error event the readers stop on. So the plan grants DESCRIBE, nothing more, on these prefixes."""

CLUSTER_NAME = "kafka-cluster"
"""The one name a Kafka CLUSTER resource has."""
ANY_HOST = "*"
WILDCARD = "*"
"""A LITERAL resource name (or principal name) that matches every name."""


class Operation(StrEnum):
    """Kafka ACL operations (the names Kafka and confluent_kafka use)."""

    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"
    UNKNOWN = "UNKNOWN"


class Permission(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


class ResourceType(StrEnum):
    """Kafka resource types (confluent_kafka calls the cluster ``BROKER``)."""

    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    CLUSTER = "CLUSTER"
    UNKNOWN = "UNKNOWN"


class PatternType(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"
    UNKNOWN = "UNKNOWN"


class Role(StrEnum):
    ROUTER = "router"
    CONNECTOR = "connector"
    CONSUMER = "consumer"
    SRE = "sre"
    AUDITOR = "auditor"


@dataclass(frozen=True, order=True)
class Binding:
    """One ACL binding. Equality is the binding's identity in Kafka (what ``create_acls`` would
    create twice); ``role`` and ``why`` only explain a planned binding."""

    principal: str
    operation: Operation
    permission: Permission
    resource_type: ResourceType
    pattern_type: PatternType
    name: str
    host: str = ANY_HOST
    role: str = field(default="", compare=False)
    why: str = field(default="", compare=False)

    def matches(self, resource_type: ResourceType, name: str) -> bool:
        """True if this binding's resource pattern covers the resource ``name`` of ``resource_type``."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.name in (name, WILDCARD)
        if self.pattern_type == PatternType.PREFIXED:
            return name.startswith(self.name)
        return False

    def as_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal, "host": self.host, "operation": self.operation.value,
            "permission": self.permission.value, "resource_type": self.resource_type.value,
            "pattern_type": self.pattern_type.value, "name": self.name, "role": self.role, "why": self.why,
        }


@dataclass(frozen=True)
class Layout:
    """Which topic is what, per jurisdiction: what the plan and the check both read from the config."""

    jurisdiction_of: dict[str, str]
    """Every topic the config knows (``topics``, ingress topics, the audit topic) -> its jurisdiction."""
    ingress: tuple[str, ...]
    audit: str
    quarantine: dict[str, str]
    """jurisdiction -> its quarantine topic name (by ``policy.quarantine_topic``)."""
    regional: dict[str, tuple[str, ...]]
    """jurisdiction -> its configured topics that are neither ingress, quarantine nor audit."""
    regional_prefix: dict[str, str]
    """jurisdiction -> the policy topic pattern up to the entity (``crm.eu.``), where it has one."""

    def topics_of(self, jurisdiction: str) -> list[str]:
        return sorted(t for t, j in self.jurisdiction_of.items() if j == jurisdiction)


def _prefix_of(pattern: str, jurisdiction: str) -> str | None:
    """The literal start of ``pattern`` formatted for ``jurisdiction`` up to its first field other
    than ``{jurisdiction}``; None unless ``{jurisdiction}`` comes before it (then the prefix tells
    jurisdictions apart)."""
    out: list[str] = []
    seen_jurisdiction = False
    for literal, field_name, _spec, _conv in string.Formatter().parse(pattern):
        out.append(literal)
        if field_name is None:
            break
        if field_name != "jurisdiction":
            break
        out.append(jurisdiction)
        seen_jurisdiction = True
    prefix = "".join(out)
    return prefix if seen_jurisdiction and prefix else None


def layout_of(config: RouterConfig) -> Layout:
    """The topics of ``config`` by kind and jurisdiction. Raises :class:`ConfigError` naming the
    sections an ACL plan needs when one is missing."""
    missing = [s for s in ("access", "pipeline", "audit", "policy") if getattr(config, s) is None]
    if missing:
        raise ConfigError(f"an ACL plan needs the config sections {', '.join(missing)}; see examples/router.yaml")
    assert config.pipeline is not None
    assert config.audit is not None
    assert config.policy is not None
    jurisdiction_of = {t.name: t.jurisdiction for t in config.topics}
    for ingress in config.pipeline.ingress:
        jurisdiction_of.setdefault(ingress.topic, ingress.jurisdiction)
    jurisdiction_of.setdefault(config.audit.topic, config.audit.jurisdiction)
    ingress_topics = tuple(dict.fromkeys(i.topic for i in config.pipeline.ingress))
    quarantine = {j: config.policy.quarantine_topic.format(jurisdiction=j, entity="") for j in config.jurisdictions}
    special = {*ingress_topics, config.audit.topic, *quarantine.values()}
    regional = {
        j: tuple(t.name for t in config.topics if t.jurisdiction == j and t.name not in special)
        for j in config.jurisdictions
    }
    prefixes = {j: p for j in config.jurisdictions if (p := _prefix_of(config.policy.topic, j)) is not None}
    return Layout(jurisdiction_of, ingress_topics, config.audit.topic, quarantine, regional, prefixes)


def _consumer_topics(layout: Layout, jurisdiction: str) -> list[tuple[PatternType, str]]:
    """The topic resources a consumer of ``jurisdiction`` reads: its regional topics, as one
    PREFIXED resource when that prefix matches none of the config's other topics, else LITERAL."""
    mine = layout.regional[jurisdiction]
    if not mine:
        return []
    prefix = layout.regional_prefix.get(jurisdiction)
    if prefix is not None:
        others = [t for t in layout.jurisdiction_of if t not in mine]
        if not any(t.startswith(prefix) for t in others):
            rest = [t for t in mine if not t.startswith(prefix)]
            return [(PatternType.PREFIXED, prefix)] + [(PatternType.LITERAL, t) for t in rest]
    return [(PatternType.LITERAL, t) for t in mine]


@dataclass(frozen=True)
class _Grants:
    """Builds the ALLOW bindings of one principal in one role."""

    principal: str
    role: Role

    def allow(self, op: Operation, rtype: ResourceType, name: str, *, prefixed: bool = False, why: str) -> Binding:
        ptype = PatternType.PREFIXED if prefixed else PatternType.LITERAL
        return Binding(self.principal, op, Permission.ALLOW, rtype, ptype, name, ANY_HOST, self.role.value, why)


_T, _G = ResourceType.TOPIC, ResourceType.GROUP
_PRE_2_8 = "idempotent producer on brokers before Kafka 2.8"


def _router(access: AccessConfig, config: RouterConfig, layout: Layout) -> Iterable[Binding]:
    assert config.pipeline is not None
    r, pipe = _Grants(access.router, Role.ROUTER), config.pipeline
    for topic in layout.ingress:
        yield r.allow(Operation.READ, _T, topic, why="consumes the ingress topic")
    yield r.allow(Operation.READ, _G, pipe.group_id, why="its consumer group (offsets commit in its transactions)")
    yield r.allow(Operation.READ, _G, replay_group_prefix(pipe.group_id), prefixed=True, why="its replay groups")
    for t in config.topics:
        if t.name not in layout.ingress:
            yield r.allow(Operation.WRITE, _T, t.name, why="writes routed, quarantine and audit records")
    if not any(t.name == layout.audit for t in config.topics):
        yield r.allow(Operation.WRITE, _T, layout.audit, why="writes audit records")
    yield r.allow(Operation.READ, _T, layout.audit,
                  why="reads audit chain tails and the recorded chain placement at start-up")
    for reader in ("audit", "replay_audit", "replay_dry_run"):
        yield r.allow(Operation.DESCRIBE, _G, READER_GROUPS[reader], prefixed=True,
                      why="throw-away groups of its committed-record readers (coordinator lookup only)")
    configured = {t.name for t in config.topics}
    for topic in sorted(set(layout.quarantine.values()) & configured):
        yield r.allow(Operation.READ, _T, topic, why="quarantine replay reads it (group <group_id>.replay.<j>)")
    for t in config.topics:
        yield r.allow(Operation.DESCRIBE_CONFIGS, _T, t.name, why="reads max.message.bytes at start-up")
    for topic in layout.ingress:
        if topic not in configured:
            yield r.allow(Operation.DESCRIBE_CONFIGS, _T, topic,
                          why="reads the ingress topic's retention.ms, segment.ms and cleanup.policy at start-up")
    for op in (Operation.DESCRIBE, Operation.WRITE):
        yield r.allow(op, ResourceType.TRANSACTIONAL_ID, f"{pipe.transactional_id_prefix}-", prefixed=True,
                      why="each instance's transactional.id is <prefix>-<instance id>")
    yield r.allow(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME, why="describe_acls: the start-up ACL check")
    if access.idempotent_write_acl:
        yield r.allow(Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME, why=_PRE_2_8)


def plan(config: RouterConfig) -> list[Binding]:
    """Every ACL binding the config implies, sorted and without duplicates.

    Raises :class:`ConfigError` when a section the plan needs (access, pipeline, audit, policy) is missing.
    """
    layout = layout_of(config)
    access = config.access
    assert access is not None
    out: list[Binding] = list(_router(access, config, layout))
    for principal, topics in access.connectors.items():
        c = _Grants(principal, Role.CONNECTOR)
        out += [c.allow(Operation.WRITE, _T, t, why="produces to its ingress topic") for t in dict.fromkeys(topics)]
        if access.idempotent_write_acl:
            out.append(c.allow(Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME, why=_PRE_2_8))
    for j, principals in access.consumers.items():
        resources = _consumer_topics(layout, j)
        for principal in principals:
            c = _Grants(principal, Role.CONSUMER)
            out += [c.allow(Operation.READ, _T, name, prefixed=ptype == PatternType.PREFIXED,
                            why=f"reads {j}'s regional topics") for ptype, name in resources]
            out.append(c.allow(Operation.READ, _G, group_prefix(principal), prefixed=True,
                               why="its own consumer groups"))
    for j, principals in access.sre.items():
        for principal in principals:
            sre = _Grants(principal, Role.SRE)
            out.append(sre.allow(Operation.READ, _T, layout.quarantine[j], why=f"reads {j}'s quarantine"))
            out.append(sre.allow(Operation.DESCRIBE, _G, READER_GROUPS["quarantine"], prefixed=True,
                                 why="throw-away groups of the quarantine commands (coordinator lookup only)"))
    for principal in access.auditors:
        auditor = _Grants(principal, Role.AUDITOR)
        out.append(auditor.allow(Operation.READ, _T, layout.audit, why="reads the audit trail"))
        out.append(auditor.allow(Operation.DESCRIBE, _G, READER_GROUPS["audit"], prefixed=True,
                                 why="throw-away groups of audit verify (coordinator lookup only)"))
    unique: dict[Binding, Binding] = {}
    for b in out:
        unique.setdefault(b, b)
    return sorted(unique.values())
