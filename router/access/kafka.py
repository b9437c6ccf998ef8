"""The Admin API shell of access control: read the live ACLs, create the plan, prune, check at start-up.

``describe_acls`` with a match-any filter reads every binding (the caller needs DESCRIBE on the
cluster); ``create_acls`` creates only the planned bindings the cluster lacks, so a second ``apply``
creates nothing; ``delete_acls`` runs only with ``prune``, one exact filter per binding, and only for
the configured principals. A broker without an authorizer answers ``describe_acls`` with
SECURITY_DISABLED: then every client may read and write every topic, which :class:`AclUnavailableError`
says (``reason`` NO_AUTHORIZER).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
)
from confluent_kafka.admin import ResourceType as KafkaResourceType

from router.access.check import AclReport, Changes, changes, check
from router.access.config import OnExcessGrant
from router.access.plan import Binding, Operation, PatternType, Permission, ResourceType, layout_of, plan
from router.config.models import RouterConfig
from router.config.security import reported_error
from router.errors import ConfigError, RouterError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0

_TO_KAFKA_TYPE = {ResourceType.TOPIC: KafkaResourceType.TOPIC, ResourceType.GROUP: KafkaResourceType.GROUP,
                  ResourceType.TRANSACTIONAL_ID: KafkaResourceType.TRANSACTIONAL_ID,
                  ResourceType.CLUSTER: KafkaResourceType.BROKER}
_FROM_KAFKA_TYPE = {v.name: k for k, v in _TO_KAFKA_TYPE.items()}


class AclUnavailableReason(StrEnum):
    NO_AUTHORIZER = "NO_AUTHORIZER"
    """The brokers run no authorizer (SECURITY_DISABLED): every principal can read and write everything."""
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    """The client's principal may not DESCRIBE the cluster (CLUSTER_AUTHORIZATION_FAILED)."""
    UNREACHABLE = "UNREACHABLE"
    """The cluster did not answer."""


class AclUnavailableError(RouterError):
    """The live ACLs cannot be read; ``reason`` says why."""

    def __init__(self, reason: AclUnavailableReason, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


def to_kafka(b: Binding) -> AclBinding:
    return AclBinding(_TO_KAFKA_TYPE[b.resource_type], b.name, ResourcePatternType[b.pattern_type.value],
                      b.principal, b.host, AclOperation[b.operation.value], AclPermissionType[b.permission.value])


def _filter(b: Binding) -> AclBindingFilter:
    return AclBindingFilter(_TO_KAFKA_TYPE[b.resource_type], b.name, ResourcePatternType[b.pattern_type.value],
                            b.principal, b.host, AclOperation[b.operation.value],
                            AclPermissionType[b.permission.value])


def _member(enum: type[StrEnum], value: Any) -> Any:
    name = getattr(value, "name", str(value))
    return enum[name] if name in enum.__members__ else enum["UNKNOWN"]


def from_kafka(acl: Any) -> Binding:
    """A :class:`Binding` from a confluent_kafka ``AclBinding``; kinds this module does not know
    become UNKNOWN (never matched, never flagged)."""
    rtype = _FROM_KAFKA_TYPE.get(getattr(acl.restype, "name", ""), ResourceType.UNKNOWN)
    permission = Permission.DENY if getattr(acl.permission_type, "name", "") == "DENY" else Permission.ALLOW
    return Binding(str(acl.principal), _member(Operation, acl.operation), permission, rtype,
                   _member(PatternType, acl.resource_pattern_type), str(acl.name), str(acl.host))


def _unavailable(err: KafkaException) -> AclUnavailableError:
    first = err.args[0] if err.args else None
    code = first.code() if isinstance(first, KafkaError) else None
    if code == KafkaError.SECURITY_DISABLED:
        return AclUnavailableError(
            AclUnavailableReason.NO_AUTHORIZER,
            "the cluster runs no authorizer (SECURITY_DISABLED): every client can read and write every topic, "
            "so no jurisdiction's topics are restricted; set authorizer.class.name on every broker and "
            "controller (docs/security.md, Access control)",
        )
    if code == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        return AclUnavailableError(
            AclUnavailableReason.NOT_AUTHORIZED,
            "this client's principal may not read the cluster's ACLs (CLUSTER_AUTHORIZATION_FAILED): it needs "
            "ALLOW DESCRIBE on the CLUSTER resource (the plan grants it to access.router)",
        )
    return AclUnavailableError(AclUnavailableReason.UNREACHABLE, f"could not read the cluster's ACLs: {err}")


def describe_live(admin: Any, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[Binding]:
    """Every ACL binding of the cluster (a match-any filter). Raises :class:`AclUnavailableError`, or
    the :class:`ConfigError` naming the ``clusters.default.security`` setting when the client's TLS or
    authentication was refused."""
    # None name, principal and host match any (AclBindingFilter's documented semantics; its hints say str)
    any_: Any = None
    match_any = AclBindingFilter(KafkaResourceType.ANY, any_, ResourcePatternType.ANY, any_, any_,
                                 AclOperation.ANY, AclPermissionType.ANY)
    try:
        acls = admin.describe_acls(match_any, request_timeout=timeout).result()
    except KafkaException as err:
        explained = reported_error(admin)  # a TLS or authentication failure behind the time-out
        if explained is not None:
            raise explained from None
        raise _unavailable(err) from None
    return sorted(from_kafka(a) for a in acls)


@dataclass(frozen=True)
class Applied:
    changes: Changes
    dry_run: bool


def apply(config: RouterConfig, admin: Any, *, dry_run: bool = False, prune: bool = False,
          timeout: float = DEFAULT_TIMEOUT_S) -> Applied:
    """Create the planned bindings the cluster lacks (and, with ``prune``, delete the configured
    principals' bindings the plan does not contain). Raises :class:`AclUnavailableError` when the
    live ACLs cannot be read and :class:`RouterError` naming the binding when one is refused."""
    assert config.access is not None
    planned = plan(config)
    live = describe_live(admin, timeout=timeout)
    principals = {p for _where, p in config.access.principals()}
    todo = changes(planned, live, principals, prune=prune)
    if dry_run:
        return Applied(todo, dry_run=True)
    if todo.create:
        futures = admin.create_acls([to_kafka(b) for b in todo.create], request_timeout=timeout)
        _settle("creating", todo.create, futures, to_kafka)
    if todo.delete:
        futures = admin.delete_acls([_filter(b) for b in todo.delete], request_timeout=timeout)
        _settle("deleting", todo.delete, futures, _filter)
    return Applied(todo, dry_run=False)


def _settle(doing: str, bindings: Sequence[Binding], futures: Mapping[Any, Any], key: Callable[[Binding], Any]) -> None:
    """Wait for each binding's future (found under ``key(binding)``) in order; the first the broker
    refuses raises :class:`RouterError` naming the binding and what was being done to it."""
    for b in bindings:
        try:
            futures[key(b)].result()
        except KafkaException as err:
            raise RouterError(f"{doing} ACL {b.permission} {b.operation} on {b.resource_type} "
                              f"{b.pattern_type} {b.name!r} for {b.principal} failed: {err}") from None


def check_cluster(config: RouterConfig, admin: Any, *, timeout: float = DEFAULT_TIMEOUT_S) -> AclReport:
    """The live ACLs compared with the plan. Raises :class:`AclUnavailableError`."""
    assert config.access is not None
    return check(layout_of(config), plan(config), describe_live(admin, timeout=timeout), config.access)


def check_startup(config: RouterConfig, admin: Any, *, timeout: float = DEFAULT_TIMEOUT_S) -> AclReport | None:
    """``run``'s start-up check (only with an ``access`` section): refuse to start
    (:class:`ConfigError` naming principal, operation and topic) when a live grant outside the plan
    lets a principal read or write a jurisdiction's topics, or when the ACLs cannot be read (no
    authorizer, or the router may not DESCRIBE the cluster); with ``access.on_excess_grant: warn``
    log a WARNING per problem instead and start."""
    access = config.access
    if access is None:
        return None
    warn = access.on_excess_grant == OnExcessGrant.WARN
    try:
        report = check_cluster(config, admin, timeout=timeout)
    except AclUnavailableError as err:
        if not warn:
            raise ConfigError(f"access: the start-up ACL check failed: {err} (access.on_excess_grant: warn "
                              "starts anyway)") from None
        log.warning("access: the start-up ACL check could not run: %s", err)
        return None
    problems = []
    for excess in report.excess:
        first = excess.accesses[0] if excess.accesses else None
        where = (f"{first.principal} may {first.operation} {first.topic} (jurisdiction {first.jurisdiction})"
                 if first is not None else f"{excess.binding.principal} may change ACLs")
        more = f" and {len(excess.accesses) - 1} more topic operations" if len(excess.accesses) > 1 else ""
        problems.append(f"{where}{more}, outside the ACL plan: {excess.message()}")
    if problems and not warn:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ConfigError(f"access: {shown}. Remove the grants (`residency-router acls check` lists every one, "
                          "`acls apply --prune` removes those of configured principals) or set "
                          "access.on_excess_grant: warn")
    for text in problems:
        log.warning("access: %s", text)
    return report
