"""Signer config, OpenBao transport rules, the transit signature format and when the token keeper
renews or logs in again. No OpenBao here: tests/integration/test_openbao_signer.py runs the real one."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hvac.exceptions
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from router.config.loader import parse_config
from router.errors import ConfigError
from router.keys.approle import AppRoleLogin, TokenKeeper
from router.keys.config import KeysConfig
from router.keys.errors import KeyUnavailable
from router.keys.factory import build_session, build_signer
from router.keys.local import LocalKeyring, LocalSigner
from router.keys.protocol import KeyRef
from router.keys.signer import parse_transit_signature

pytestmark = pytest.mark.unit

REF = KeyRef("router-signing", 3)


def _router(keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "clusters": {"main": {"bootstrap": "localhost:9092", "security": {"protocol": "PLAINTEXT"},
                              "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
        "topics": [{"name": "crm.eu.account", "jurisdiction": "eu"}],
        "keys": keys,
    }


def _keys(bao: dict[str, Any] | None = None, signer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "providers": {"bao": {"type": "openbao", "url": "https://bao.eu.internal:8200", "token_env": "T",
                              **(bao or {})}},
        "jurisdictions": {"eu": {"provider": "bao"}},
        "signer": signer or {"provider": "bao", "key": "router-signing"},
    }


def _config_error(keys: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(_router(keys), "router.yaml")
    return str(err.value)


# -- transport ---------------------------------------------------------------------------------
def test_an_http_openbao_url_is_refused_naming_the_setting() -> None:
    msg = _config_error(_keys({"url": "http://bao.eu.internal:8200"}))
    assert "keys.providers.bao.url" in msg and "https" in msg
    assert "allow_insecure_dev" in msg


def test_turning_off_certificate_verification_is_refused_naming_the_setting() -> None:
    msg = _config_error(_keys({"verify_tls": False}))
    assert "keys.providers.bao.verify_tls" in msg and "ca_file" in msg


def test_the_development_flag_permits_http_and_is_logged_as_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("T", "dev-token-value")
    cfg = parse_config(_router(_keys({"url": "http://127.0.0.1:8200", "allow_insecure_dev": True})))
    assert cfg.keys is not None
    bao = cfg.keys.providers["bao"]
    with caplog.at_level(logging.WARNING, logger="router.keys.factory"):
        build_session(bao)  # type: ignore[arg-type]
    assert any("allow_insecure_dev" in r.getMessage() for r in caplog.records)
    assert all("dev-token-value" not in r.getMessage() for r in caplog.records)


def test_an_https_url_with_verification_logs_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder; not read until a request is made\n")
    monkeypatch.setenv("T", "x")
    cfg = parse_config(_router(_keys({"ca_file": str(ca)})))
    assert cfg.keys is not None
    with caplog.at_level(logging.WARNING, logger="router.keys.factory"):
        session = build_session(cfg.keys.providers["bao"])  # type: ignore[arg-type]
    assert not caplog.records
    assert session.client.adapter._kwargs["verify"] == str(ca)


def test_a_missing_ca_file_is_a_config_error_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T", "x")
    cfg = parse_config(_router(_keys({"ca_file": str(tmp_path / "absent.pem")})))
    assert cfg.keys is not None
    with pytest.raises(ConfigError, match="ca_file"):
        build_session(cfg.keys.providers["bao"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "auth",
    [
        {"token_env": None},
        {"approle": {"role_id_file": "r", "secret_id_file": "s"}},
    ],
)
def test_exactly_one_way_to_authenticate(auth: dict[str, Any]) -> None:
    bao = {"type": "openbao", "url": "https://h:1", "token_env": "T", **auth}
    bao = {k: v for k, v in bao.items() if v is not None}
    keys = {**_keys(), "providers": {"bao": bao}}
    assert "exactly one of 'token' and 'token_env'" in _config_error(keys)


def test_approle_alone_is_accepted() -> None:
    bao = {"type": "openbao", "url": "https://h:1",
           "approle": {"role_id_file": "/run/r", "secret_id_file": "/run/s", "secret_id_wrapped": True}}
    cfg = KeysConfig.model_validate({**_keys(), "providers": {"bao": bao}})
    provider = cfg.providers["bao"]
    assert provider.type == "openbao" and provider.approle is not None
    assert provider.approle.secret_id_wrapped


# -- signer config -----------------------------------------------------------------------------
def test_the_signer_names_a_provider_that_must_exist() -> None:
    msg = _config_error(_keys(signer={"provider": "kms"}))
    assert "keys.signer.provider names 'kms'" in msg


def test_the_signer_takes_a_provider_or_a_keyring_not_both() -> None:
    assert "exactly one of 'provider'" in _config_error(_keys(signer={"provider": "bao", "keyring": "k.json"}))
    assert "exactly one of 'provider'" in _config_error(_keys(signer={"key": "router-signing"}))


def test_revoked_versions_are_positive() -> None:
    assert "revoked_versions" in _config_error(_keys(signer={"provider": "bao", "revoked_versions": [0]}))


def test_the_older_keyring_form_still_builds_a_local_signer(tmp_path: Path) -> None:
    ring_path = tmp_path / "k.json"
    ring = LocalKeyring.create(ring_path, ["eu"])
    for form in ({"keyring": str(ring_path)}, {"type": "local", "keyring": str(ring_path), "key_id": "router-signing"}):
        cfg = KeysConfig.model_validate(
            {"providers": {"dev": {"type": "local", "keyring": str(ring_path)}},
             "jurisdictions": {"eu": {"provider": "dev"}}, "signer": form}
        )
        signer = build_signer(cfg)
        assert isinstance(signer, LocalSigner)
        assert signer.public_bytes() == ring.signing_public_keys("router-signing")[1]


# -- the transit signature ---------------------------------------------------------------------
def test_a_transit_signature_is_the_plain_ed25519_signature_after_the_version_prefix() -> None:
    private = Ed25519PrivateKey.generate()
    message = b"residency-router/manifest/v1\x00" + bytes(36)
    raw = private.sign(message)
    parsed = parse_transit_signature(f"vault:v3:{base64.b64encode(raw).decode()}", REF)
    assert parsed == raw
    private.public_key().verify(parsed, message)


@pytest.mark.parametrize(
    "value",
    [
        "vault:v2:" + base64.b64encode(bytes(64)).decode(),  # another version than the header names
        "vault:v3:" + base64.b64encode(bytes(63)).decode(),  # not 64 bytes
        "vault:v3:not base64!",
        base64.b64encode(bytes(64)).decode(),  # no prefix
        None,
    ],
)
def test_a_malformed_or_mismatched_transit_signature_is_refused(value: Any) -> None:
    with pytest.raises(KeyUnavailable) as err:
        parse_transit_signature(value, REF)
    assert not err.value.retriable


# -- token keeper ------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _FakeBao:
    """Just enough of hvac.Client for TokenKeeper: counts logins, renewals and unwraps."""

    def __init__(self, lease: float = 60.0) -> None:
        self.token = ""
        self.lease = lease
        self.logins: list[tuple[str, str]] = []
        self.renewals = 0
        self.unwraps = 0
        self.renew_fails = False
        self.renew_lease: float | None = None
        self.auth = SimpleNamespace(
            approle=SimpleNamespace(login=self._login),
            token=SimpleNamespace(renew_self=self._renew_self, lookup_self=self._lookup_self),
        )
        self.sys = SimpleNamespace(unwrap=self._unwrap)

    def _login(self, role_id: str, secret_id: str, mount_point: str) -> dict[str, Any]:
        self.logins.append((role_id, secret_id))
        self.token = f"t{len(self.logins)}"
        return {"auth": {"client_token": self.token, "lease_duration": self.lease, "renewable": True}}

    def _renew_self(self) -> dict[str, Any]:
        self.renewals += 1
        if self.renew_fails:
            raise hvac.exceptions.Forbidden("permission denied")
        return {"auth": {"lease_duration": self.renew_lease or self.lease, "renewable": True}}

    def _lookup_self(self) -> dict[str, Any]:
        return {"data": {"ttl": 0, "renewable": False}}

    def _unwrap(self) -> dict[str, Any]:
        self.unwraps += 1
        return {"data": {"secret_id": "unwrapped-secret"}}


def _keeper(tmp_path: Path, bao: _FakeBao, clock: _Clock, *, wrapped: bool = False) -> TokenKeeper:
    (tmp_path / "role").write_text("role-1\n")
    (tmp_path / "secret").write_text("wrapping-token\n" if wrapped else "secret-1\n")
    creds = AppRoleLogin(tmp_path / "role", tmp_path / "secret", secret_id_wrapped=wrapped)
    return TokenKeeper(bao, approle=creds, clock=clock, new_client=lambda _token: bao)  # type: ignore[arg-type,return-value]


@pytest.fixture
def bao() -> _FakeBao:
    return _FakeBao()


def test_the_first_call_logs_in_and_renewal_waits_for_two_thirds_of_the_lease(tmp_path: Path, bao: _FakeBao) -> None:
    clock = _Clock()
    keeper = _keeper(tmp_path, bao, clock)
    keeper.ensure()
    assert bao.logins == [("role-1", "secret-1")] and bao.renewals == 0
    clock.now += 39.0  # 2/3 of 60 s is 40 s
    keeper.ensure()
    assert bao.renewals == 0
    clock.now += 1.0
    keeper.ensure()
    assert bao.renewals == 1 and len(bao.logins) == 1
    keeper.ensure()  # the renewed lease starts again
    assert bao.renewals == 1


def test_a_failed_renewal_logs_in_again(tmp_path: Path, bao: _FakeBao) -> None:
    clock = _Clock()
    keeper = _keeper(tmp_path, bao, clock)
    keeper.ensure()
    bao.renew_fails = True
    clock.now += 41.0
    keeper.ensure()
    assert bao.renewals == 1 and len(bao.logins) == 2


def test_a_token_at_its_max_ttl_is_replaced_by_a_login(tmp_path: Path, bao: _FakeBao) -> None:
    clock = _Clock()
    keeper = _keeper(tmp_path, bao, clock)
    keeper.ensure()
    bao.renew_lease = 3.0  # renewal capped by the role's token_max_ttl
    clock.now += 41.0
    keeper.ensure()
    assert bao.renewals == 1 and len(bao.logins) == 2


def test_a_wrapped_secret_id_is_unwrapped_once_and_kept_for_later_logins(tmp_path: Path, bao: _FakeBao) -> None:
    clock = _Clock()
    keeper = _keeper(tmp_path, bao, clock, wrapped=True)
    keeper.ensure()
    assert keeper.relogin()
    assert bao.logins == [("role-1", "unwrapped-secret"), ("role-1", "unwrapped-secret")]
    assert bao.unwraps == 1  # a wrapping token works once


def test_a_static_token_is_never_replaced(bao: _FakeBao) -> None:
    keeper = TokenKeeper(bao, token="static")  # type: ignore[arg-type]
    assert bao.token == "static"
    assert keeper.relogin() is False
    assert bao.logins == []


def test_a_missing_role_id_file_names_the_setting(tmp_path: Path, bao: _FakeBao) -> None:
    creds = AppRoleLogin(tmp_path / "absent", tmp_path / "secret")
    keeper = TokenKeeper(bao, approle=creds)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="approle.role_id_file"):
        keeper.ensure()
