"""The ``access:`` config section: which Kafka principals play which role, and what an excess grant does.

Example::

    access:
      router: User:router                       # the router's own principal
      connectors: {User:connector-sf: [crm.ingress]}   # principal -> the ingress topics it writes
      consumers: {eu: [User:consumer-eu], us: [User:consumer-us]}   # jurisdiction -> readers of its topics
      sre: {eu: [User:sre-eu]}                  # jurisdiction -> readers of its quarantine topic
      auditors: [User:auditor]                  # readers of the audit topic
      on_excess_grant: refuse                   # or warn

From it :func:`router.access.plan.plan` derives the least-privilege ACL bindings (``residency-router
acls plan``), and ``acls check`` / ``run`` compare the cluster's live ACLs against them. Principals
are Kafka principals ``User:<name>``; ``<name>`` is what the broker's principal builder yields for the
client (the SCRAM user name, or the TLS distinguished name after ``ssl.principal.mapping.rules``)
and may use letters, digits and ``. _ - @ = , + /``. ``User:*`` (every principal) is refused.

The cross-checks against the rest of the config (jurisdictions, ingress topics, the router's group)
are :func:`check_access`, called by :class:`router.config.models.RouterConfig`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from router.config.base import JurisdictionName, StrictModel

PRINCIPAL_PATTERN = r"^User:[A-Za-z0-9][A-Za-z0-9._@=,+/-]{0,199}$"
Principal = Annotated[str, Field(pattern=PRINCIPAL_PATTERN, description="a Kafka principal, User:<name>")]
TopicName = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]


class OnExcessGrant(StrEnum):
    """What ``run`` does when a live ACL lets a principal reach a jurisdiction's topics beyond the plan."""

    REFUSE = "refuse"  # ConfigError naming principal, operation and topic: the router does not start
    WARN = "warn"  # a WARNING per excess access, then start


def principal_name(principal: str) -> str:
    """``User:consumer-eu`` -> ``consumer-eu`` (the part after the principal type)."""
    return principal.partition(":")[2]


def group_prefix(principal: str) -> str:
    """The consumer-group prefix a consumer principal may use: ``<name>.`` (``consumer-eu.`` for
    ``User:consumer-eu``); its groups are ``consumer-eu.<anything>``."""
    return f"{principal_name(principal)}."


def replay_group_prefix(group_id: str) -> str:
    """The prefix of the router's replay consumer groups: ``<pipeline.group_id>.replay.``."""
    return f"{group_id}.replay."


class AccessConfig(StrictModel):
    """Kafka principals by role. Every role but ``router`` is optional."""

    router: Principal = Field(description="the principal every router instance authenticates as")
    connectors: dict[Principal, list[TopicName]] = Field(
        default_factory=dict,
        description="connector principal -> the ingress topics (pipeline.ingress[].topic) it writes")
    consumers: dict[JurisdictionName, list[Principal]] = Field(
        default_factory=dict, description="jurisdiction -> principals that read its regional topics")
    sre: dict[JurisdictionName, list[Principal]] = Field(
        default_factory=dict, description="jurisdiction -> principals that read its quarantine topic")
    auditors: list[Principal] = Field(default_factory=list, description="principals that read the audit topic")
    on_excess_grant: OnExcessGrant = Field(
        default=OnExcessGrant.REFUSE,
        description="refuse: `run` does not start while a live ACL grants access beyond the plan to a "
        "jurisdiction's topics (or while the cluster runs no authorizer); warn: log a WARNING and start",
    )
    idempotent_write_acl: bool = Field(
        default=False,
        description="also grant IDEMPOTENT_WRITE on the cluster to the router and connectors: only brokers "
        "older than Kafka 2.8 need it (since then WRITE on a topic allows an idempotent producer, and a "
        "transactional producer is authorized by its TransactionalId)",
    )

    @model_validator(mode="after")
    def _roles_apart(self) -> AccessConfig:
        for where, principal in self.principals():
            if where != "access.router" and principal == self.router:
                raise ValueError(f"{where}: {principal} is the router's principal (access.router); give each "
                                 "role its own principal")
        reads: dict[str, tuple[str, str]] = {}
        for role, by_jurisdiction in (("consumers", self.consumers), ("sre", self.sre)):
            for j, principals in by_jurisdiction.items():
                for i, principal in enumerate(principals):
                    seen = reads.get(principal)
                    if seen is not None and seen[1] != j:
                        raise ValueError(
                            f"access.{role}.{j}[{i}]: {principal} already reads jurisdiction {seen[1]!r} "
                            f"({seen[0]}); a principal reads one jurisdiction's data only"
                        )
                    reads[principal] = (f"access.{role}.{j}[{i}]", j)
        for j, principals in self.consumers.items():
            for i, principal in enumerate(principals):
                if principals.index(principal) != i:
                    raise ValueError(f"access.consumers.{j}[{i}]: {principal} is listed twice")
        return self

    def principals(self) -> Iterator[tuple[str, str]]:
        """Every configured principal with the path of the setting that names it."""
        yield "access.router", self.router
        for principal in self.connectors:
            yield f"access.connectors.{principal}", principal
        for role, by_jurisdiction in (("consumers", self.consumers), ("sre", self.sre)):
            for j, principals in by_jurisdiction.items():
                for i, principal in enumerate(principals):
                    yield f"access.{role}.{j}[{i}]", principal
        for i, principal in enumerate(self.auditors):
            yield f"access.auditors[{i}]", principal


def check_access(
    access: AccessConfig, *, jurisdictions: Collection[str], ingress_topics: Collection[str], group_id: str | None,
) -> None:
    """Raise ValueError (naming the setting) unless ``access`` fits the rest of the config.

    Every jurisdiction under ``consumers`` / ``sre`` is configured, every connector topic is an
    ingress topic, and no consumer's group prefix (``<name>.``) can name the router's group, its
    replay groups or another consumer's groups.
    """
    known = ", ".join(sorted(jurisdictions))
    for role, by_jurisdiction in (("consumers", access.consumers), ("sre", access.sre)):
        for j in by_jurisdiction:
            if j not in jurisdictions:
                raise ValueError(f"access.{role}.{j}: {j!r} is not under 'jurisdictions' (known: {known})")
    for principal, topics in access.connectors.items():
        if not topics:
            raise ValueError(f"access.connectors.{principal}: name at least one ingress topic it writes")
        for i, topic in enumerate(topics):
            if topic not in ingress_topics:
                listed = ", ".join(sorted(ingress_topics)) or "none"
                raise ValueError(
                    f"access.connectors.{principal}[{i}]: {topic!r} is not an ingress topic "
                    f"(pipeline.ingress[].topic: {listed}); a connector writes only ingress topics"
                )
    # (setting, name, prefixed): the router's literal group, its replay groups, each consumer's groups
    taken: list[tuple[str, str, bool]] = []
    if group_id is not None:
        taken += [("pipeline.group_id", group_id, False), ("pipeline.group_id", replay_group_prefix(group_id), True)]
    for j, principals in access.consumers.items():
        for i, principal in enumerate(principals):
            mine = group_prefix(principal)
            for where, other, prefixed in taken:
                if other.startswith(mine) or (prefixed and mine.startswith(other)):
                    raise ValueError(
                        f"access.consumers.{j}[{i}]: the groups of {principal} ({mine}*) overlap those of {where} "
                        f"({other}{'*' if prefixed else ''}): a consumer must not be able to join another "
                        "principal's group; rename one principal or pipeline.group_id"
                    )
            taken.append((f"access.consumers.{j}[{i}]", mine, True))
