"""``acls apply`` / ``acls check`` / ``run``'s start-up ACL check against an in-memory Admin API."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from router.access.kafka import AclUnavailableError, AclUnavailableReason, apply, check_startup, to_kafka
from router.access.plan import plan
from router.cli import main
from router.config.loader import load_config, parse_config
from router.config.models import RouterConfig
from router.errors import ConfigError, RouterError
from tests.unit.fake_kafka import done

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


class FakeAclAdmin:
    """The ACL calls of confluent_kafka's AdminClient over an in-memory set of bindings."""

    def __init__(self, acls: list[AclBinding] | None = None, *, error: int | None = None) -> None:
        self.acls: list[AclBinding] = list(acls or [])
        self.error = error
        self.created: list[AclBinding] = []
        self.deleted: list[AclBindingFilter] = []

    def describe_acls(self, acl_filter: AclBindingFilter, **_kw: Any) -> Future[Any]:
        assert acl_filter.restype == ResourceType.ANY and acl_filter.name is None
        assert acl_filter.resource_pattern_type == ResourcePatternType.ANY and acl_filter.principal is None
        if self.error is not None:
            return done(error=KafkaException(KafkaError(self.error)))
        return done(list(self.acls))

    def create_acls(self, acls: list[AclBinding], **_kw: Any) -> dict[AclBinding, Future[Any]]:
        for acl in acls:
            if acl not in self.acls:
                self.acls.append(acl)
            self.created.append(acl)
        return {acl: done() for acl in acls}

    def delete_acls(self, filters: list[AclBindingFilter], **_kw: Any) -> dict[AclBindingFilter, Future[Any]]:
        out = {}
        for f in filters:
            gone = [a for a in self.acls if (a.restype, a.name, a.resource_pattern_type, a.principal, a.host,
                                             a.operation, a.permission_type)
                    == (f.restype, f.name, f.resource_pattern_type, f.principal, f.host, f.operation,
                        f.permission_type)]
            self.acls = [a for a in self.acls if a not in gone]
            self.deleted.append(f)
            out[f] = done(gone)
        return out


def stray_us_read_on_eu() -> AclBinding:
    return AclBinding(ResourceType.TOPIC, "crm.eu.contact", ResourcePatternType.LITERAL, "User:consumer-us", "*",
                      AclOperation.READ, AclPermissionType.ALLOW)


@pytest.fixture
def config() -> RouterConfig:
    return load_config(EXAMPLE)


def test_apply_creates_the_plan_and_a_second_apply_creates_nothing(config: RouterConfig) -> None:
    admin = FakeAclAdmin()
    first = apply(config, admin)
    planned = plan(config)
    assert first.changes.create == planned
    assert sorted(admin.acls, key=str) == sorted((to_kafka(b) for b in planned), key=str)
    admin.created.clear()
    second = apply(config, admin)
    assert second.changes.create == []
    assert second.changes.present == planned
    assert admin.created == []


def test_dry_run_changes_nothing(config: RouterConfig) -> None:
    admin = FakeAclAdmin()
    done = apply(config, admin, dry_run=True)
    assert done.dry_run and len(done.changes.create) == len(plan(config))
    assert admin.acls == [] and admin.created == []


def test_apply_deletes_only_with_prune_and_only_configured_principals(config: RouterConfig) -> None:
    other = AclBinding(ResourceType.TOPIC, "billing", ResourcePatternType.LITERAL, "User:billing", "*",
                       AclOperation.READ, AclPermissionType.ALLOW)
    admin = FakeAclAdmin([stray_us_read_on_eu(), other])
    apply(config, admin)
    assert stray_us_read_on_eu() in admin.acls and admin.deleted == []
    done = apply(config, admin, prune=True)
    assert [(b.principal, b.name) for b in done.changes.delete] == [("User:consumer-us", "crm.eu.contact")]
    assert stray_us_read_on_eu() not in admin.acls
    assert other in admin.acls


def test_no_authorizer_is_reported_as_such(config: RouterConfig) -> None:
    with pytest.raises(AclUnavailableError) as err:
        apply(config, FakeAclAdmin(error=KafkaError.SECURITY_DISABLED))
    assert err.value.reason == AclUnavailableReason.NO_AUTHORIZER
    assert "every client can read and write every topic" in str(err.value)


def test_startup_check_refuses_naming_principal_operation_and_topic(config: RouterConfig) -> None:
    admin = FakeAclAdmin([*(to_kafka(b) for b in plan(config)), stray_us_read_on_eu()])
    with pytest.raises(ConfigError, match=r"User:consumer-us may READ crm\.eu\.contact \(jurisdiction eu\)"):
        check_startup(config, admin)


def test_startup_check_passes_on_the_plan(config: RouterConfig) -> None:
    report = check_startup(config, FakeAclAdmin([to_kafka(b) for b in plan(config)]))
    assert report is not None and report.ok


def _warn_config() -> RouterConfig:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["access"]["on_excess_grant"] = "warn"
    return parse_config(doc)


def test_startup_check_warns_and_starts_with_on_excess_grant_warn(caplog: pytest.LogCaptureFixture) -> None:
    config = _warn_config()
    admin = FakeAclAdmin([*(to_kafka(b) for b in plan(config)), stray_us_read_on_eu()])
    with caplog.at_level(logging.WARNING, logger="router.access.kafka"):
        report = check_startup(config, admin)
    assert report is not None and not report.ok
    assert any("User:consumer-us may READ crm.eu.contact" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("code", "says"), [
    (KafkaError.SECURITY_DISABLED, "runs no authorizer"),
    (KafkaError.CLUSTER_AUTHORIZATION_FAILED, "may not read the cluster's ACLs"),
])
def test_startup_check_refuses_when_acls_cannot_be_read(config: RouterConfig, code: int, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        check_startup(config, FakeAclAdmin(error=code))


def test_startup_check_warns_when_acls_cannot_be_read_with_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="router.access.kafka"):
        assert check_startup(_warn_config(), FakeAclAdmin(error=KafkaError.SECURITY_DISABLED)) is None
    assert any("runs no authorizer" in r.getMessage() for r in caplog.records)


def test_startup_check_does_nothing_without_an_access_section() -> None:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    del doc["access"]
    assert check_startup(parse_config(doc), FakeAclAdmin(error=KafkaError.SECURITY_DISABLED)) is None


@pytest.fixture
def cli_admin(monkeypatch: pytest.MonkeyPatch) -> FakeAclAdmin:
    admin = FakeAclAdmin()
    monkeypatch.setattr("router.placement.kafka.admin_for", lambda _config, _bootstrap=None: admin)
    return admin


def test_cli_check_flags_a_stray_grant_and_passes_after_removal(
    cli_admin: FakeAclAdmin, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["acls", "apply", "--config", str(EXAMPLE)]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["acls", "apply", "--config", str(EXAMPLE)]) == 0
    assert "\n0 created," in capsys.readouterr().out
    cli_admin.acls.append(stray_us_read_on_eu())
    assert main(["acls", "check", "--config", str(EXAMPLE)]) == 1
    out = capsys.readouterr().out
    assert "EXCESS ALLOW READ on TOPIC LITERAL 'crm.eu.contact' for User:consumer-us" in out
    assert main(["acls", "check", "--config", str(EXAMPLE), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [e["binding"]["principal"] for e in doc["excess"]] == ["User:consumer-us"]
    assert doc["excess"][0]["jurisdictions"] == ["eu"]
    cli_admin.acls.remove(stray_us_read_on_eu())
    assert main(["acls", "check", "--config", str(EXAMPLE)]) == 0


def test_cli_check_without_authorizer_says_so_and_exits_1(
    cli_admin: FakeAclAdmin, capsys: pytest.CaptureFixture[str],
) -> None:
    cli_admin.error = KafkaError.SECURITY_DISABLED
    assert main(["acls", "check", "--config", str(EXAMPLE)]) == 1
    assert "runs no authorizer" in capsys.readouterr().out
    assert main(["acls", "check", "--config", str(EXAMPLE), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["authorizer"] is False


def test_cli_check_not_allowed_to_describe_is_an_error_naming_the_grant(
    cli_admin: FakeAclAdmin, capsys: pytest.CaptureFixture[str],
) -> None:
    cli_admin.error = KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert main(["acls", "check", "--config", str(EXAMPLE)]) == 2
    assert "ALLOW DESCRIBE on the CLUSTER resource" in capsys.readouterr().err


class RefusingAclAdmin(FakeAclAdmin):
    """Refuses every binding it is asked to create or delete, as a broker does for a client
    without ALTER on the cluster."""

    @staticmethod
    def _refused() -> Future[Any]:
        return done(error=KafkaException(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED)))

    def create_acls(self, acls: list[AclBinding], **_kw: Any) -> dict[AclBinding, Future[Any]]:
        return {acl: self._refused() for acl in acls}

    def delete_acls(self, filters: list[AclBindingFilter], **_kw: Any) -> dict[AclBindingFilter, Future[Any]]:
        return {f: self._refused() for f in filters}


def test_a_refused_binding_is_named_with_what_was_being_done_to_it(config: RouterConfig) -> None:
    with pytest.raises(RouterError, match=r"^creating ACL ALLOW \S+ on \S+ \S+ '[^']+' for User:\S+ failed: "):
        apply(config, RefusingAclAdmin())
    planned = [to_kafka(b) for b in plan(config)]
    with pytest.raises(RouterError) as err:
        apply(config, RefusingAclAdmin([*planned, stray_us_read_on_eu()]), prune=True)
    assert str(err.value).startswith(
        "deleting ACL ALLOW READ on TOPIC LITERAL 'crm.eu.contact' for User:consumer-us failed: "
    )
