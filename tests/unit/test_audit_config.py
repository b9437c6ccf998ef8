"""The ``audit:`` config section and the ``audit verify`` command line."""

from __future__ import annotations

from typing import Any

import pytest

from router.cli import build_parser
from router.config.loader import parse_config
from router.errors import ConfigError

pytestmark = pytest.mark.unit


def _base(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
    }
    cfg.update(over)
    return cfg


def test_audit_section_is_optional() -> None:
    assert parse_config(_base()).audit is None


def test_audit_section_defaults() -> None:
    audit = parse_config(_base(audit={"jurisdiction": "eu"})).audit
    assert audit is not None
    assert (audit.topic, audit.jurisdiction) == ("audit", "eu")


def test_audit_jurisdiction_is_required() -> None:
    with pytest.raises(ConfigError, match=r"audit\.jurisdiction: required key is missing"):
        parse_config(_base(audit={"topic": "audit"}))


def test_audit_jurisdiction_must_be_configured() -> None:
    with pytest.raises(ConfigError, match=r"audit\.jurisdiction 'uk' is not under 'jurisdictions'"):
        parse_config(_base(audit={"jurisdiction": "uk"}))


def test_audit_unknown_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"audit\.partition: unknown key"):
        parse_config(_base(audit={"jurisdiction": "eu", "partition": 2}))


def test_audit_partitions_is_removed_the_topics_real_count_is_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"audit\.partitions: removed; .*partition count is checked at start-up"):
        parse_config(_base(audit={"jurisdiction": "eu", "partitions": 3}))


def test_audit_verify_is_a_subcommand() -> None:
    args = build_parser().parse_args(["audit", "verify", "--config", "c.yaml", "--topic", "t", "--json"])
    assert (args.config, args.topic, args.json, args.bootstrap) == ("c.yaml", "t", True, None)
