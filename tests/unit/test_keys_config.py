"""The ``keys:`` config section: strict, secrets hidden, cross-checked with the router config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.errors import ConfigError
from router.keys.config import KeysConfig, OpenBaoProviderConfig
from router.keys.dek import HARD_MAX_RECORDS
from router.keys.factory import build_dek_manager, build_public_keys, build_signer
from router.keys.local import LocalKeyring

pytestmark = pytest.mark.unit


def _keys(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "providers": {
            "bao": {"type": "openbao", "url": "https://127.0.0.1:8200", "token_env": "BAO_TOKEN"},
            "dev": {"type": "local", "keyring": "dev.json"},
        },
        "jurisdictions": {"eu": {"provider": "bao", "key": "rr-eu"}, "us": {"provider": "dev"}},
        "signer": {"keyring": "dev.json"},
    }
    doc.update(over)
    return doc


def _router(keys: dict[str, Any], topics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "clusters": {"main": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": topics if topics is not None else [{"name": "crm.eu.account", "jurisdiction": "eu"}],
        "keys": keys,
    }


def test_a_complete_keys_section_is_accepted_with_defaults() -> None:
    cfg = KeysConfig.model_validate(_keys())
    assert cfg.key_id("eu") == "rr-eu"
    assert cfg.key_id("us") == "us"
    assert cfg.data_keys.max_records == 1 << 20
    assert isinstance(cfg.providers["bao"], OpenBaoProviderConfig)
    assert cfg.providers["bao"].timeout_s == 2.0


def test_router_config_without_keys_still_loads() -> None:
    doc = _router({})
    del doc["keys"]
    assert RouterConfig.model_validate(doc).keys is None


def test_router_config_carries_the_keys_section() -> None:
    assert RouterConfig.model_validate(_router(_keys())).keys is not None


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KeysConfig.model_validate(_keys(signer={"keyring": "k", "algorithm": "rsa"}))


def test_a_jurisdiction_naming_a_missing_provider_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"keys.jurisdictions.eu.provider names 'kms'"):
        KeysConfig.model_validate(_keys(jurisdictions={"eu": {"provider": "kms"}}))


def test_a_topic_jurisdiction_without_a_key_is_rejected() -> None:
    topics = [{"name": "crm.eu.account", "jurisdiction": "eu"}, {"name": "crm.us.account", "jurisdiction": "us"}]
    keys = _keys(jurisdictions={"eu": {"provider": "bao"}})
    with pytest.raises(ValidationError, match=r"crm.us.account.*has no key"):
        RouterConfig.model_validate(_router(keys, topics))


def test_a_key_for_an_undeclared_jurisdiction_is_rejected() -> None:
    keys = _keys(jurisdictions={"eu": {"provider": "bao"}, "fr": {"provider": "bao"}})
    with pytest.raises(ValidationError, match="keys.jurisdictions.fr"):
        RouterConfig.model_validate(_router(keys))


@pytest.mark.parametrize(
    "bao",
    [
        {"type": "openbao", "url": "https://h:1"},
        {"type": "openbao", "url": "https://h:1", "token": "t", "token_env": "BAO_TOKEN"},
    ],
)
def test_openbao_needs_exactly_one_token_source(bao: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of 'token' and 'token_env'"):
        OpenBaoProviderConfig.model_validate(bao)


def test_an_inline_token_is_a_secret_in_repr_and_dumps() -> None:
    cfg = OpenBaoProviderConfig.model_validate({"type": "openbao", "url": "https://h:1", "token": "s.very-secret"})
    assert "very-secret" not in repr(cfg)
    assert "very-secret" not in str(cfg.model_dump())
    assert cfg.resolve_token() == "s.very-secret"


def test_a_token_env_var_is_read_and_its_absence_named(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = OpenBaoProviderConfig.model_validate({"type": "openbao", "url": "https://h:1", "token_env": "RR_TEST_TOK"})
    monkeypatch.delenv("RR_TEST_TOK", raising=False)
    with pytest.raises(ConfigError, match="RR_TEST_TOK"):
        cfg.resolve_token()
    monkeypatch.setenv("RR_TEST_TOK", "abc")
    assert cfg.resolve_token() == "abc"


def test_dek_bounds_above_the_hard_limit_are_rejected() -> None:
    with pytest.raises(ValidationError):
        KeysConfig.model_validate(_keys(data_keys={"max_records": HARD_MAX_RECORDS + 1}))


def test_factory_builds_a_working_stack_from_config(tmp_path: Path) -> None:
    ring = tmp_path / "dev.json"
    LocalKeyring.create(ring, ["eu"])
    cfg = KeysConfig.model_validate(
        {
            "providers": {"dev": {"type": "local", "keyring": str(ring)}},
            "jurisdictions": {"eu": {"provider": "dev"}},
            "signer": {"keyring": str(ring)},
            "data_keys": {"max_records": 2},
        }
    )
    from router.envelope import Opener, SealContext, Sealer

    deks = build_dek_manager(cfg)
    sealer = Sealer(deks, build_signer(cfg))
    ctx = SealContext("e", "in", 0, 1, "crm.eu.a", 0, "eu", "internal", (), "Account", "update")
    rec = sealer.seal(b"payload", ctx)
    opener = Opener(deks._keys, build_public_keys(cfg))
    assert opener.open(rec.value, rec.headers, topic="crm.eu.a", partition=0, expected_jurisdiction="eu").plaintext == (
        b"payload"
    )


def test_a_key_outage_always_stalls_and_on_unavailable_is_no_longer_a_setting() -> None:
    import router.keys.config as keys_config

    assert "on_unavailable" not in KeysConfig.model_fields
    assert not hasattr(keys_config, "KeyUnavailablePolicy")
    with pytest.raises(ConfigError, match=r"keys\.on_unavailable: removed; a key outage always stalls"):
        parse_config(_router(_keys(on_unavailable="stall")))
