"""Settings that did nothing are gone; naming one says what replaced it, with its dotted path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from router.config.base import StrictModel
from router.config.loader import REMOVED_KEYS, format_validation_error, parse_config, removed_key_explanation
from router.errors import ConfigError

pytestmark = pytest.mark.unit

_KEYS = {
    "providers": {"dev": {"type": "local", "keyring": "dev.json"}},
    "jurisdictions": {"eu": {"provider": "dev"}, "us": {"provider": "dev"}},
    "signer": {"keyring": "dev.json"},
}


def _base(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
    }
    cfg.update(over)
    return cfg


def _error(cfg: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    return str(info.value)


def test_keys_on_unavailable_is_removed_because_a_key_outage_always_stalls() -> None:
    msg = _error(_base(keys={**_KEYS, "on_unavailable": "stall"}))
    assert "keys.on_unavailable: removed; a key outage always stalls" in msg
    assert "unknown key" not in msg


def test_audit_partitions_is_removed_because_the_real_count_is_checked() -> None:
    msg = _error(_base(audit={"jurisdiction": "eu", "partitions": 3}))
    assert "audit.partitions: removed; " in msg
    assert "partition count is checked at start-up" in msg


def test_residency_home_is_removed_in_favour_of_the_ingress_jurisdiction() -> None:
    msg = _error(_base(residency={"home": "eu", "countries": {"eu": ["EEA"]}}))
    assert (
        "residency.home: removed; an event whose jurisdiction cannot be known is quarantined in its "
        "ingress topic's jurisdiction (pipeline.ingress[].jurisdiction)"
    ) in msg


def test_residency_trusted_connectors_is_replaced_by_trusted_ingress_topics() -> None:
    msg = _error(_base(residency={"countries": {"eu": ["EEA"]}, "trusted_connectors": ["sf"]}))
    assert "residency.trusted_connectors: removed; " in msg
    assert "pipeline.ingress[].trusted" in msg


def test_every_removed_key_names_its_replacement_or_reason() -> None:
    assert {"keys.on_unavailable", "audit.partitions", "residency.home", "residency.trusted_connectors"} <= set(
        REMOVED_KEYS
    )
    assert all(len(why) > 20 for why in REMOVED_KEYS.values())


def test_removed_keys_under_lists_match_any_index() -> None:
    table = {"pipeline.ingress[].old": "use new"}
    assert removed_key_explanation(("pipeline", "ingress", 3, "old"), table) == "use new"
    assert removed_key_explanation(("pipeline", "ingress", 3, "other"), table) is None
    assert removed_key_explanation(("keys", "on_unavailable")) is not None


class _Inner(StrictModel):
    kept: int = 0


class _Outer(StrictModel):
    items: list[_Inner]


def test_the_message_machinery_reports_removed_keys_with_list_indexes() -> None:
    data = {"items": [{}, {"kept": 1, "old": 2}]}
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate(data)
    msg = format_validation_error(info.value, "t.yaml", data, removed={"items[].old": "use kept"})
    assert "items[1].old: removed; use kept" in msg


def test_unknown_key_in_a_list_entry_names_its_index() -> None:
    cfg = _base(pipeline={"ingress": [{"topic": "a", "jurisdiction": "eu"},
                                      {"topic": "b", "jurisdiction": "eu", "decodr": "auto"}]})
    assert "pipeline.ingress[1].decodr: unknown key" in _error(cfg)


def test_unknown_key_of_a_typed_provider_has_the_path_of_the_document() -> None:
    keys = {**_KEYS, "providers": {"dev": {"type": "local", "keyring": "dev.json", "tokn": "x"}}}
    msg = _error(_base(keys=keys))
    assert "keys.providers.dev.tokn: unknown key" in msg
    assert ".local." not in msg


def test_a_rules_encrypt_list_is_rejected_as_removed() -> None:
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "router.yaml").read_text())
    doc["policy"]["rules"][1]["encrypt"] = ["FINANCIAL"]
    with pytest.raises(ConfigError, match=r"policy\.rules\[1\]\.encrypt: removed; it never took effect"):
        parse_config(doc)


def test_scan_unknown_min_length_is_rejected_as_removed() -> None:
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "router.yaml").read_text())
    doc["classification"]["scan_unknown_min_length"] = 64
    with pytest.raises(ConfigError, match=r"classification\.scan_unknown_min_length: removed; every string"):
        parse_config(doc)
