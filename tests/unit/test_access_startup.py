"""``run`` wiring: RouterApp.build runs the ACL check right after the placement check, and only
with an ``access`` section (the Admin API is an in-memory fake; placement is stubbed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from router.access.kafka import to_kafka
from router.access.plan import plan
from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.errors import ConfigError
from router.pipeline.app import RouterApp
from tests.unit.test_access_apply import FakeAclAdmin, stray_us_read_on_eu

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


def _no_topics(_config: Any, _admin: Any) -> Any:
    """A placement report that lists no topic: build stops right after the checks, naming the
    audit topic (what these tests take as 'the ACL check let it through')."""
    return SimpleNamespace(topics={}, brokers={})


def _config(with_access: bool) -> RouterConfig:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    if not with_access:
        del doc["access"]
    return parse_config(doc, str(EXAMPLE))


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAclAdmin:
    fake = FakeAclAdmin()
    monkeypatch.setattr("router.placement.kafka.admin_for", lambda _config, _bootstrap=None: fake)
    monkeypatch.setattr("router.placement.kafka.check_startup", _no_topics)
    return fake


def test_build_refuses_on_a_stray_grant_naming_principal_operation_and_topic(admin: FakeAclAdmin) -> None:
    config = _config(with_access=True)
    admin.acls = [*(to_kafka(b) for b in plan(config)), stray_us_read_on_eu()]
    with pytest.raises(ConfigError, match=r"access: User:consumer-us may READ crm\.eu\.contact \(jurisdiction eu\)"):
        RouterApp(config, instance_id="t").build()


def test_build_goes_past_the_acl_check_on_the_plan(admin: FakeAclAdmin) -> None:
    config = _config(with_access=True)
    admin.acls = [to_kafka(b) for b in plan(config)]
    with pytest.raises(ConfigError, match=r"the audit topic 'audit' must be listed"):
        RouterApp(config, instance_id="t").build()


def test_build_without_access_section_does_not_read_acls(admin: FakeAclAdmin) -> None:
    admin.error = -1  # any describe_acls call would fail
    with pytest.raises(ConfigError, match=r"the audit topic 'audit' must be listed"):
        RouterApp(_config(with_access=False), instance_id="t").build()
