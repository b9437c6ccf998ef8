"""The ``access`` section: principals, jurisdictions and topics are validated; errors name the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config.loader import parse_config
from router.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


def _with_access(**access: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["access"] = {"router": "User:router", **access}
    return doc


def test_the_examples_access_section_loads() -> None:
    config = parse_config(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert config.access is not None
    assert config.access.router == "User:router"
    assert config.access.on_excess_grant == "refuse"


@pytest.mark.parametrize("principal", ["router", "User:", "User:*", "Group:x", "User:a b", "User:-x"])
def test_a_principal_that_is_not_user_name_is_refused_naming_the_field(principal: str) -> None:
    with pytest.raises(ConfigError, match=r"access\.auditors\[0\]"):
        parse_config(_with_access(auditors=[principal]))


def test_a_bad_router_principal_names_access_router() -> None:
    with pytest.raises(ConfigError, match=r"access\.router"):
        parse_config(_with_access(router="User:*"))


def test_a_consumer_jurisdiction_not_configured_is_named() -> None:
    with pytest.raises(ConfigError, match=r"access\.consumers\.de: 'de' is not under 'jurisdictions'"):
        parse_config(_with_access(consumers={"de": ["User:consumer-de"]}))


def test_an_sre_jurisdiction_not_configured_is_named() -> None:
    with pytest.raises(ConfigError, match=r"access\.sre\.apac: 'apac' is not under 'jurisdictions'"):
        parse_config(_with_access(sre={"apac": ["User:sre-apac"]}))


def test_a_connector_topic_that_is_not_an_ingress_topic_is_named() -> None:
    with pytest.raises(ConfigError, match=r"access\.connectors\.User:connector\[0\]: 'crm\.eu\.contact' is not an "
                                          r"ingress topic"):
        parse_config(_with_access(connectors={"User:connector": ["crm.eu.contact"]}))


def test_a_connector_without_topics_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"access\.connectors\.User:connector: name at least one ingress topic"):
        parse_config(_with_access(connectors={"User:connector": []}))


def test_the_router_principal_in_another_role_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"access\.consumers\.eu\[0\]: User:router is the router's principal"):
        parse_config(_with_access(consumers={"eu": ["User:router"]}))


def test_a_principal_reading_two_jurisdictions_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"access\.consumers\.us\[0\]: User:reader already reads jurisdiction 'eu'"):
        parse_config(_with_access(consumers={"eu": ["User:reader"], "us": ["User:reader"]}))
    with pytest.raises(ConfigError, match=r"access\.sre\.us\[0\]: User:x already reads jurisdiction 'eu'"):
        parse_config(_with_access(consumers={"eu": ["User:x"]}, sre={"us": ["User:x"]}))


def test_an_sre_may_also_consume_in_the_same_jurisdiction() -> None:
    config = parse_config(_with_access(consumers={"eu": ["User:x"]}, sre={"eu": ["User:x"]}))
    assert config.access is not None


def test_consumer_groups_that_could_join_the_routers_groups_are_refused() -> None:
    # User:residency-router's groups residency-router.* include the router's replay groups
    with pytest.raises(ConfigError, match=r"access\.consumers\.eu\[0\]: the groups of User:residency-router "
                                          r"\(residency-router\.\*\) overlap those of pipeline\.group_id"):
        parse_config(_with_access(consumers={"eu": ["User:residency-router"]}))


def test_consumer_groups_of_two_consumers_must_not_overlap() -> None:
    with pytest.raises(ConfigError, match=r"access\.consumers\.us\[0\]: the groups of User:a\.b \(a\.b\.\*\) "
                                          r"overlap those of access\.consumers\.eu\[0\]"):
        parse_config(_with_access(consumers={"eu": ["User:a"], "us": ["User:a.b"]}))


def test_a_name_that_only_starts_like_the_routers_group_is_fine() -> None:
    config = parse_config(_with_access(consumers={"eu": ["User:residency-router-eu"]}))
    assert config.access is not None


def test_on_excess_grant_takes_only_refuse_or_warn() -> None:
    with pytest.raises(ConfigError, match=r"access\.on_excess_grant"):
        parse_config(_with_access(on_excess_grant="ignore"))


def test_unknown_access_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"access\.consumer: unknown key"):
        parse_config(_with_access(consumer={"eu": ["User:x"]}))
