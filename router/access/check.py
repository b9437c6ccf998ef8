"""Live ACLs against the plan: who can read or write each jurisdiction's topics, and which grants
the plan does not imply. Pure: bindings in, report out (``router.access.kafka`` reads them).

Matching follows Kafka's authorizer, simplified where noted:

- an ALLOW binding on a TOPIC resource gives its principal the operation on every topic the config
  knows (``topics``, ingress topics, the audit topic) that its pattern matches: LITERAL by name,
  the LITERAL name ``*`` every topic, PREFIXED by prefix. ``ALL`` counts as READ and WRITE. The
  principal ``User:*`` is every principal;
- a DENY binding from any host (``*``) for that principal (or ``User:*``) and that operation (or
  ``ALL``) on a matching resource removes the access. A DENY limited to some hosts removes nothing
  (the access remains from the other hosts);
- super users (the brokers' ``super.users``) bypass ACLs and are invisible to ``describe_acls``:
  they are not reported.

An *excess* grant is a live ALLOW binding that is not in the plan and still gives someone READ or
WRITE on a configured topic after the denies (a US consumer reading ``crm.eu.*``, a wildcard topic
ACL, a PREFIXED resource covering two jurisdictions, a non-router principal writing a regional
topic, ALL operations), or that lets a principal change ACLs (ALTER or ALL on the cluster). Each
one is named with its reasons and what it gives.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from router.access.config import AccessConfig
from router.access.plan import (
    ANY_HOST,
    CLUSTER_NAME,
    WILDCARD,
    Binding,
    Layout,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

EVERYONE = "User:*"
_DATA_OPS = {Operation.READ: (Operation.READ,), Operation.WRITE: (Operation.WRITE,),
             Operation.ALL: (Operation.READ, Operation.WRITE)}


@dataclass(frozen=True, order=True)
class Access:
    """A principal may READ or WRITE one topic of a jurisdiction, through one live ALLOW binding."""

    jurisdiction: str
    principal: str
    operation: Operation
    topic: str
    via: Binding = field(compare=False)
    planned: bool = field(compare=False)


@dataclass(frozen=True)
class Excess:
    """A live grant the plan does not imply, why it is flagged and what it gives."""

    binding: Binding
    reasons: tuple[str, ...]
    accesses: tuple[Access, ...]

    @property
    def jurisdictions(self) -> list[str]:
        return sorted({a.jurisdiction for a in self.accesses})

    def message(self) -> str:
        b = self.binding
        what = f"{b.permission} {b.operation} on {b.resource_type} {b.pattern_type} {b.name!r} for {b.principal}"
        if b.host != ANY_HOST:
            what += f" from host {b.host}"
        return f"{what}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class AclReport:
    """What the live ACLs allow on the config's topics, measured against the plan."""

    accesses: dict[str, list[Access]]
    """jurisdiction -> every (principal, READ|WRITE, topic) the live ACLs allow, sorted."""
    excess: list[Excess]
    missing: list[Binding]
    """Planned bindings the cluster does not have (``acls apply`` creates them)."""

    @property
    def ok(self) -> bool:
        return not self.excess


def _denied(principal: str, op: Operation, topic: str, denies: Iterable[Binding]) -> bool:
    return any(
        d.host == ANY_HOST and d.principal in (principal, EVERYONE) and d.operation in (op, Operation.ALL)
        and d.matches(ResourceType.TOPIC, topic)
        for d in denies
    )


def _role_of(principal: str, plan: Iterable[Binding]) -> str | None:
    roles = sorted({b.role for b in plan if b.principal == principal})
    return ", ".join(roles) if roles else None


def _reasons(
    b: Binding, accesses: list[Access], layout: Layout, plan: list[Binding], access: AccessConfig,
) -> list[str]:
    reasons: list[str] = []
    if b.principal == EVERYONE:
        reasons.append("granted to every principal (User:*)")
    if b.resource_type == ResourceType.TOPIC and b.name == WILDCARD:
        reasons.append("wildcard topic ACL: matches every topic")
    if b.operation == Operation.ALL:
        reasons.append("ALL operations")
    spanned = sorted({a.jurisdiction for a in accesses})
    if b.pattern_type == PatternType.PREFIXED and len(spanned) > 1:
        reasons.append(f"PREFIXED {b.name!r} covers the topics of {len(spanned)} jurisdictions ({', '.join(spanned)})")
    reads_of = {j for role in (access.consumers, access.sre) for j, ps in role.items() if b.principal in ps}
    foreign = sorted({a.jurisdiction for a in accesses} - reads_of) if reads_of else []
    if foreign:
        reasons.append(f"{b.principal} reads {', '.join(sorted(reads_of))} data, but this reaches the topics of "
                       f"{', '.join(foreign)}")
    written = sorted({a.topic for a in accesses if a.operation == Operation.WRITE and a.topic not in layout.ingress})
    if written and b.principal != access.router:
        more = f" (and {len(written) - 1} more)" if len(written) > 1 else ""
        reasons.append(f"only the router writes {written[0]}{more}")
    if b.resource_type == ResourceType.CLUSTER and b.operation in (Operation.ALTER, Operation.ALL):
        reasons.append("may change ACLs (ALTER on the cluster), and so grant itself any access")
    if not reasons:
        role = _role_of(b.principal, plan)
        reasons.append(f"not in the plan ({'role ' + role if role else 'principal not in access'})")
    return reasons


def check(layout: Layout, plan: list[Binding], live: Collection[Binding], access: AccessConfig) -> AclReport:
    """Compare ``live`` bindings with ``plan`` over the topics of ``layout`` (see the module docstring)."""
    planned = set(plan)
    denies = [b for b in live if b.permission == Permission.DENY]
    by_jurisdiction: dict[str, list[Access]] = {j: [] for j in sorted(set(layout.jurisdiction_of.values()))}
    excess: list[Excess] = []
    for b in sorted(set(live)):
        if b.permission != Permission.ALLOW:
            continue
        accesses: list[Access] = []
        if b.resource_type == ResourceType.TOPIC and b.operation in _DATA_OPS:
            for topic, j in sorted(layout.jurisdiction_of.items()):
                if not b.matches(ResourceType.TOPIC, topic):
                    continue
                for op in _DATA_OPS[b.operation]:
                    if not _denied(b.principal, op, topic, denies):
                        accesses.append(Access(j, b.principal, op, topic, b, b in planned))
        for a in accesses:
            by_jurisdiction[a.jurisdiction].append(a)
        changes_acls = (b.resource_type == ResourceType.CLUSTER and b.name == CLUSTER_NAME
                        and b.operation in (Operation.ALTER, Operation.ALL))
        if b not in planned and (accesses or changes_acls):
            excess.append(Excess(b, tuple(_reasons(b, accesses, layout, plan, access)), tuple(accesses)))
    live_set = set(live)
    missing = [b for b in plan if b not in live_set]
    return AclReport({j: sorted(v) for j, v in by_jurisdiction.items()}, excess, missing)


@dataclass(frozen=True)
class Changes:
    """What ``acls apply`` does: bindings to create, already present, and (with prune) to delete."""

    create: list[Binding]
    present: list[Binding]
    delete: list[Binding]


def changes(plan: list[Binding], live: Collection[Binding], principals: Collection[str], *, prune: bool) -> Changes:
    """The difference between ``plan`` and ``live``. With ``prune``, every live binding of a
    configured principal (``principals``) that the plan does not contain is to be deleted; the
    bindings of other principals are never touched."""
    live_set, planned = set(live), set(plan)
    create = [b for b in plan if b not in live_set]
    present = [b for b in plan if b in live_set]
    delete = sorted(b for b in live_set if prune and b.principal in principals and b not in planned)
    return Changes(create, present, delete)
