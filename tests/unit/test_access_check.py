"""``acls check``'s matching: live bindings against the plan of examples/router.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.access.check import AclReport, changes, check
from router.access.plan import Binding, Operation, PatternType, Permission, ResourceType, layout_of, plan
from router.config.loader import load_config
from router.config.models import RouterConfig

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY
R, W = Operation.READ, Operation.WRITE


@pytest.fixture(scope="module")
def config() -> RouterConfig:
    return load_config(EXAMPLE)


def run_check(config: RouterConfig, live: list[Binding]) -> AclReport:
    assert config.access is not None
    return check(layout_of(config), plan(config), live, config.access)


def grant(principal: str, op: Operation, rtype: ResourceType, ptype: PatternType, name: str,
          permission: Permission = ALLOW, host: str = "*") -> Binding:
    return Binding(principal, op, permission, rtype, ptype, name, host)


def who(report: AclReport, jurisdiction: str, op: Operation) -> set[str]:
    return {a.principal for a in report.accesses[jurisdiction] if a.operation == op}


def test_the_plan_itself_passes_and_names_who_reads_and_writes_each_jurisdiction(config: RouterConfig) -> None:
    report = run_check(config, plan(config))
    assert report.ok
    assert report.excess == [] and report.missing == []
    # eu holds crm.eu.*, quarantine.eu, the ingress topic and the audit topic
    assert who(report, "eu", R) == {"User:router", "User:consumer-eu", "User:sre-eu", "User:auditor"}
    assert who(report, "eu", W) == {"User:router", "User:connector"}
    assert who(report, "us", R) == {"User:router", "User:consumer-us", "User:sre-us"}  # router: replay
    assert {a.topic for a in report.accesses["us"] if a.principal == "User:router" and a.operation == R} == {
        "quarantine.us"}
    assert who(report, "us", W) == {"User:router"}
    eu_reads = {(a.principal, a.topic) for a in report.accesses["eu"] if a.operation == R}
    assert ("User:consumer-eu", "crm.eu.contact") in eu_reads
    assert ("User:consumer-eu", "quarantine.eu") not in eu_reads
    assert ("User:sre-eu", "quarantine.eu") in eu_reads


def test_a_stray_read_for_a_us_principal_on_an_eu_topic_is_named_and_flagged(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, LIT, "crm.eu.contact")
    report = run_check(config, [*plan(config), stray])
    assert not report.ok
    (excess,) = report.excess
    assert excess.binding == stray
    assert [(a.principal, a.operation, a.topic, a.jurisdiction) for a in excess.accesses] == [
        ("User:consumer-us", R, "crm.eu.contact", "eu")]
    assert "User:consumer-us reads us data, but this reaches the topics of eu" in excess.reasons
    assert "User:consumer-us" in who(report, "eu", R)
    # removing the grant clears it
    assert run_check(config, plan(config)).ok


def test_a_wildcard_topic_acl_is_flagged_in_every_jurisdiction(config: RouterConfig) -> None:
    stray = grant("User:analytics", R, T, LIT, "*")
    report = run_check(config, [*plan(config), stray])
    (excess,) = report.excess
    assert "wildcard topic ACL: matches every topic" in excess.reasons
    assert excess.jurisdictions == ["ch", "eu", "uk", "us"]
    assert all("User:analytics" in who(report, j, R) for j in ("eu", "uk", "us", "ch"))


def test_a_prefix_covering_two_jurisdictions_is_flagged_and_removing_it_clears(config: RouterConfig) -> None:
    stray = grant("User:consumer-eu", R, T, PRE, "crm.")
    report = run_check(config, [*plan(config), stray])
    (excess,) = report.excess
    assert "PREFIXED 'crm.' covers the topics of 4 jurisdictions (ch, eu, uk, us)" in excess.reasons
    assert {a.topic for a in excess.accesses} >= {"crm.us.lead", "crm.uk.case", "crm.ch.account", "crm.ingress"}
    assert run_check(config, plan(config)).ok


def test_a_non_router_writer_of_a_regional_topic_is_flagged(config: RouterConfig) -> None:
    stray = grant("User:connector", W, T, LIT, "crm.us.contact")
    (excess,) = run_check(config, [*plan(config), stray]).excess
    assert "only the router writes crm.us.contact" in excess.reasons


def test_all_operations_count_as_read_and_write_and_are_flagged(config: RouterConfig) -> None:
    stray = grant("User:sre-us", Operation.ALL, T, LIT, "quarantine.us")
    report = run_check(config, [*plan(config), stray])
    (excess,) = report.excess
    assert "ALL operations" in excess.reasons
    assert {a.operation for a in excess.accesses} == {R, W}


def test_a_grant_to_every_principal_is_flagged(config: RouterConfig) -> None:
    stray = grant("User:*", R, T, LIT, "audit")
    (excess,) = run_check(config, [*plan(config), stray]).excess
    assert "granted to every principal (User:*)" in excess.reasons


def test_a_deny_for_that_principal_removes_the_access(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, PRE, "crm.eu.")
    deny = grant("User:consumer-us", R, T, LIT, "*", DENY)
    report = run_check(config, [*plan(config), stray, deny])
    assert report.ok
    assert "User:consumer-us" not in who(report, "eu", R)


def test_a_deny_for_everyone_removes_the_access_too(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, LIT, "crm.eu.lead")
    deny = grant("User:*", Operation.ALL, T, PRE, "crm.eu.lead", DENY)
    assert run_check(config, [*plan(config), stray, deny]).ok


def test_a_deny_that_covers_only_part_of_a_prefix_leaves_the_rest_flagged(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, PRE, "crm.eu.")
    deny = grant("User:consumer-us", R, T, LIT, "crm.eu.lead", DENY)
    (excess,) = run_check(config, [*plan(config), stray, deny]).excess
    topics = {a.topic for a in excess.accesses}
    assert "crm.eu.lead" not in topics
    assert topics == {"crm.eu.account", "crm.eu.contact", "crm.eu.case", "crm.eu.opportunity"}


def test_a_deny_from_one_host_removes_nothing(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, LIT, "crm.eu.lead")
    deny = grant("User:consumer-us", R, T, LIT, "crm.eu.lead", DENY, host="10.0.0.7")
    assert not run_check(config, [*plan(config), stray, deny]).ok


def test_a_deny_of_another_operation_removes_nothing(config: RouterConfig) -> None:
    stray = grant("User:consumer-us", R, T, LIT, "crm.eu.lead")
    deny = grant("User:consumer-us", W, T, LIT, "crm.eu.lead", DENY)
    assert not run_check(config, [*plan(config), stray, deny]).ok


def test_grants_on_topics_outside_the_config_are_not_the_checks_business(config: RouterConfig) -> None:
    other = grant("User:billing", Operation.ALL, T, PRE, "billing.")
    report = run_check(config, [*plan(config), other])
    assert report.ok


def test_alter_on_the_cluster_is_flagged(config: RouterConfig) -> None:
    stray = grant("User:ops", Operation.ALTER, C, LIT, "kafka-cluster")
    (excess,) = run_check(config, [*plan(config), stray]).excess
    assert "may change ACLs (ALTER on the cluster), and so grant itself any access" in excess.reasons


def test_missing_planned_bindings_are_listed_but_do_not_fail(config: RouterConfig) -> None:
    live = [b for b in plan(config) if b.principal != "User:auditor"]
    report = run_check(config, live)
    assert report.ok
    assert sorted((b.principal, b.resource_type.value, b.name) for b in report.missing) == [
        ("User:auditor", "GROUP", "residency-router-audit-"), ("User:auditor", "TOPIC", "audit")]


def test_changes_create_only_what_is_missing_and_prune_only_configured_principals(config: RouterConfig) -> None:
    planned = plan(config)
    stray_configured = grant("User:consumer-eu", R, G, LIT, "analytics")
    stray_other = grant("User:billing", R, T, LIT, "billing")
    live = [*planned[:3], stray_configured, stray_other]
    principals = {"User:router", "User:consumer-eu"}
    diff = changes(planned, live, principals, prune=False)
    assert diff.create == planned[3:]
    assert diff.present == planned[:3]
    assert diff.delete == []
    assert changes(planned, live, principals, prune=True).delete == [stray_configured]
