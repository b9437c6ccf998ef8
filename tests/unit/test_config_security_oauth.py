"""clusters.<name>.security.sasl with mechanism OAUTHBEARER: the three token sources (openbao,
token_file, librdkafka's OIDC flow), exactly one of them, and the properties built (``oauth_cb``
shared by every client of the process, no secret in a repr).

No OpenBao is needed here: building the properties only checks files and creates the source; the
sources against a real OpenBao are in tests/unit/auth/.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from router.auth import tokens
from router.auth.tokens import FileTokens, OpenBaoIdentityTokens
from router.config.loader import parse_config
from router.config.security import token_source
from router.errors import ConfigError
from router.keys.config import OpenBaoProviderConfig

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-" + uuid.uuid4().hex  # stands for a secret id: must never appear outside its file


@pytest.fixture(autouse=True)
def _fresh_sources() -> Iterator[None]:
    tokens.reset()
    yield
    tokens.reset()


def _doc(sasl: dict[str, Any], name: str = "default") -> dict[str, Any]:
    return {
        "clusters": {name: {"bootstrap": "broker-1.example:9093", "security": {"protocol": "SASL_SSL", "sasl": sasl}}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
    }


def _error(sasl: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(sasl))
    return str(info.value)


def _props(sasl: dict[str, Any], name: str = "default", config_dir: Path | None = None) -> dict[str, Any]:
    return parse_config(_doc(sasl, name), config_dir=config_dir).clusters[name].client_properties(name)


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _approle(tmp_path: Path) -> dict[str, Any]:
    role_id = _private(tmp_path / "role-id", "role-" + uuid.uuid4().hex)
    secret_id = _private(tmp_path / "secret-id", SECRET)
    return {"role_id_file": str(role_id), "secret_id_file": str(secret_id)}


def _openbao(tmp_path: Path, **over: Any) -> dict[str, Any]:
    bao = {"address": "https://bao.eu.example:8200", "role": "router", "approle": _approle(tmp_path), **over}
    return {"mechanism": "OAUTHBEARER", "openbao": bao}


_OIDC = {"token_endpoint_url": "https://idp.example/token", "client_id": "router",
         "client_secret": {"env": "ROUTER_TEST_OIDC_SECRET"}}


# -- parsing ------------------------------------------------------------------------------------------


def test_the_openbao_form_parses_with_its_defaults(tmp_path: Path) -> None:
    config = parse_config(_doc(_openbao(tmp_path)))
    sasl = config.clusters["default"].security.sasl  # type: ignore[union-attr] - SASL_SSL has sasl
    assert sasl.form == "openbao"  # type: ignore[union-attr] - OAUTHBEARER here
    bao = sasl.openbao  # type: ignore[union-attr]
    assert bao is not None
    assert (bao.principal_claim, bao.allow_insecure_dev, bao.ca_file) == ("sub", False, None)
    assert (bao.approle.secret_id_wrapped, bao.approle.mount) == (False, "approle")


def test_the_token_file_form_parses(tmp_path: Path) -> None:
    config = parse_config(_doc({"mechanism": "OAUTHBEARER", "token_file": str(tmp_path / "token")}))
    assert config.clusters["default"].security.sasl.form == "token_file"  # type: ignore[union-attr]


def test_the_oidc_form_parses_unchanged() -> None:
    config = parse_config(_doc({"mechanism": "OAUTHBEARER", **_OIDC, "scope": "kafka"}))
    assert config.clusters["default"].security.sasl.form == "oidc"  # type: ignore[union-attr]


def test_no_token_source_is_refused_naming_the_three_forms() -> None:
    msg = _error({"mechanism": "OAUTHBEARER"})
    # the loader names the model by its discriminator (mechanism)
    assert "clusters.default.security.sasl.OAUTHBEARER: mechanism OAUTHBEARER needs one token source" in msg
    for name in ("'openbao'", "'token_file'", "token_endpoint_url, client_id and client_secret"):
        assert name in msg


@pytest.mark.parametrize(
    ("extra", "given"),
    [
        ({"token_file": "/run/token"}, "openbao, token_file"),
        (_OIDC, "openbao, token_endpoint_url/client_id/client_secret"),
        ({"scope": "kafka"}, "openbao, token_endpoint_url/client_id/client_secret"),
    ],
)
def test_two_token_sources_are_refused_naming_them(tmp_path: Path, extra: dict[str, Any], given: str) -> None:
    msg = _error({**_openbao(tmp_path), **extra})
    assert f"give only one OAUTHBEARER token source; given: {given}" in msg


def test_a_token_file_with_oidc_fields_is_refused() -> None:
    msg = _error({"mechanism": "OAUTHBEARER", "token_file": "/run/token", "client_id": "router"})
    assert "given: token_file, token_endpoint_url/client_id/client_secret" in msg


def test_an_incomplete_oidc_form_names_what_is_missing() -> None:
    msg = _error({"mechanism": "OAUTHBEARER", "client_id": "router"})
    assert "needs token_endpoint_url, client_id and client_secret (missing: token_endpoint_url, client_secret)" in msg


def test_an_inline_client_secret_is_still_refused() -> None:
    msg = _error({"mechanism": "OAUTHBEARER", **_OIDC, "client_secret": SECRET})
    assert "clusters.default.security.sasl.client_secret: an inline secret is not accepted" in msg
    assert SECRET not in msg


def test_an_inline_secret_id_is_refused_as_an_unknown_field(tmp_path: Path) -> None:
    sasl = _openbao(tmp_path)
    sasl["openbao"]["approle"]["secret_id"] = SECRET
    msg = _error(sasl)
    assert "clusters.default.security.sasl.openbao.approle.secret_id" in msg
    assert SECRET not in msg


def test_openbao_over_http_is_refused_without_allow_insecure_dev(tmp_path: Path) -> None:
    msg = _error(_openbao(tmp_path, address="http://bao.eu.example:8200"))
    assert "clusters.default.security.sasl.openbao" in msg
    assert "must be https://" in msg and "allow_insecure_dev: true" in msg


def test_openbao_over_http_is_accepted_with_allow_insecure_dev_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    sasl = _openbao(tmp_path, address="http://127.0.0.1:8200", allow_insecure_dev=True)
    first = _props(sasl, name="devhttp")
    second = _props(sasl, name="devhttp")
    assert first["oauth_cb"] is second["oauth_cb"]
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1 and "clusters.devhttp.security.sasl.openbao.allow_insecure_dev" in warnings[0]


def test_the_key_providers_https_rule_is_the_same(tmp_path: Path) -> None:
    # One rule for both: keys.providers.<name>.url reports the same sentence.
    with pytest.raises(ValueError, match="must be https://") as keys_err:
        OpenBaoProviderConfig(type="openbao", url="http://bao:8200", token_env="X")
    sasl_msg = _error(_openbao(tmp_path, address="http://bao:8200"))
    assert "must be https:// (tokens and data keys cross this connection)" in str(keys_err.value)
    assert "must be https:// (tokens and data keys cross this connection)" in sasl_msg


# -- properties ---------------------------------------------------------------------------------------


def test_the_openbao_form_sets_oauth_cb_to_an_openbao_source_naming_the_full_setting(tmp_path: Path) -> None:
    props = _props(_openbao(tmp_path, principal_claim="kafka_principal"), name="eu")
    assert props["sasl.mechanism"] == "OAUTHBEARER"
    assert not any(k.startswith("sasl.oauthbearer.") for k in props), "librdkafka's own OIDC flow is not used"
    source = props["oauth_cb"]
    assert isinstance(source, OpenBaoIdentityTokens)
    assert source.setting == "clusters.eu.security.sasl.openbao"
    assert source.role == "router"
    assert token_source("eu") is source


def test_every_client_of_the_process_shares_one_source(tmp_path: Path) -> None:
    sasl = _openbao(tmp_path)
    config = parse_config(_doc(sasl))
    a = config.clusters["default"].client_properties()
    b = config.clusters["default"].client_properties()
    c = parse_config(_doc(sasl)).clusters["default"].client_properties()  # the config loaded again
    assert a["oauth_cb"] is b["oauth_cb"] is c["oauth_cb"]


def test_other_credentials_get_their_own_source(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    a = _props(_openbao(tmp_path))["oauth_cb"]
    b = _props(_openbao(tmp_path, role="audit"))["oauth_cb"]
    c = _props(_openbao(tmp_path / "other"))["oauth_cb"]
    assert a is not b and a is not c and b is not c


def test_the_token_file_form_sets_oauth_cb_to_a_file_source(tmp_path: Path) -> None:
    token = _private(tmp_path / "token", "x.y.z")
    props = _props({"mechanism": "OAUTHBEARER", "token_file": "token"}, config_dir=tmp_path)
    source = props["oauth_cb"]
    assert isinstance(source, FileTokens)
    assert source.path == token
    assert source.setting == "clusters.default.security.sasl.token_file"


def test_a_token_file_others_can_read_is_refused_when_clients_are_built(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x.y.z", encoding="utf-8")
    token.chmod(0o644)
    config = parse_config(_doc({"mechanism": "OAUTHBEARER", "token_file": str(token)}))
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.sasl\.token_file: file .* is accessible"):
        config.clusters["default"].client_properties()


def test_a_secret_id_file_others_can_read_is_refused_when_clients_are_built(tmp_path: Path) -> None:
    sasl = _openbao(tmp_path)
    Path(sasl["openbao"]["approle"]["secret_id_file"]).chmod(0o640)
    config = parse_config(_doc(sasl))
    with pytest.raises(ConfigError) as info:
        config.clusters["default"].client_properties()
    assert str(info.value).startswith("clusters.default.security.sasl.openbao.approle.secret_id_file: file ")
    assert SECRET not in str(info.value)


def test_a_missing_role_id_file_names_its_setting(tmp_path: Path) -> None:
    sasl = _openbao(tmp_path)
    Path(sasl["openbao"]["approle"]["role_id_file"]).unlink()
    config = parse_config(_doc(sasl))
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.sasl\.openbao\.approle\.role_id_file: "):
        config.clusters["default"].client_properties()


def test_approle_files_resolve_against_the_config_files_directory(tmp_path: Path) -> None:
    _approle(tmp_path)
    sasl = {"mechanism": "OAUTHBEARER", "openbao": {
        "address": "https://bao:8200", "role": "router", "ca_file": "bao-ca.pem",
        "approle": {"role_id_file": "role-id", "secret_id_file": "secret-id"}}}
    (tmp_path / "bao-ca.pem").write_text("not checked by this test", encoding="utf-8")
    config = parse_config(_doc(sasl), config_dir=tmp_path)
    bao = config.clusters["default"].security.sasl.openbao  # type: ignore[union-attr]
    assert bao is not None
    assert bao.approle.role_id_file == tmp_path / "role-id"
    assert bao.approle.secret_id_file == tmp_path / "secret-id"
    assert bao.ca_file == tmp_path / "bao-ca.pem"


def test_no_secret_appears_in_the_repr_of_the_config_or_the_properties(tmp_path: Path) -> None:
    sasl = _openbao(tmp_path)
    config = parse_config(_doc(sasl))
    props = config.clusters["default"].client_properties()
    role_id = Path(sasl["openbao"]["approle"]["role_id_file"]).read_text(encoding="utf-8")
    for text in (repr(config), str(config), repr(props), str(props)):
        assert SECRET not in text and role_id not in text
    assert repr(props["oauth_cb"]) == "OpenBaoIdentityTokens(url='https://bao.eu.example:8200', role='router')"


def test_librdkafka_accepts_the_oauth_cb_properties(tmp_path: Path) -> None:
    # A token the source can serve at once (the constructor waits for the first one).
    payload = '{"exp": 4102444800, "sub": "router"}'  # 2100-01-01
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    _private(tmp_path / "token", f"eyJhbGciOiJub25lIn0.{body}.sig")
    props = _props({"mechanism": "OAUTHBEARER", "token_file": str(tmp_path / "token")})
    producer = Producer({**props, "bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    producer.flush(0)
    assert props["oauth_cb"].fetched >= 1, "librdkafka asked the source for its first token"
