"""clusters.<name>.security: parsing, checks that name the field, and the librdkafka properties built.

Secrets in these tests are made up per test; certificates and keys are generated per test.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from router.config.loader import load_config, parse_config
from router.errors import ConfigError
from tests.unit.tls_util import write_ca

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-" + uuid.uuid4().hex  # a value that must never appear outside the client properties


def _doc(cluster: dict[str, Any], name: str = "default") -> dict[str, Any]:
    return {
        "clusters": {name: {"bootstrap": "broker-1.example:9093", **cluster}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
    }


def _error(cluster: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(cluster))
    return str(info.value)


def _props(cluster: dict[str, Any], name: str = "default", config_dir: Path | None = None) -> dict[str, str]:
    return parse_config(_doc(cluster, name), config_dir=config_dir).clusters[name].client_properties(name)


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _scram(password: Any, **over: Any) -> dict[str, Any]:
    sasl = {"mechanism": "SCRAM-SHA-512", "username": "router", "password": password, **over}
    return {"security": {"protocol": "SASL_SSL", "sasl": sasl}}


# -- inline secrets and removed / misplaced settings -------------------------------------------------


@pytest.mark.parametrize(
    ("security", "field"),
    [
        ({"protocol": "SASL_SSL", "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password": SECRET}},
         "clusters.default.security.sasl.password"),
        ({"protocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER", "token_endpoint_url": "https://idp/t",
                                            "client_id": "router", "client_secret": SECRET}},
         "clusters.default.security.sasl.client_secret"),
        ({"protocol": "SSL", "cert_file": "c.pem", "key_file": "k.pem", "key_password": SECRET},
         "clusters.default.security.key_password"),
    ],
)
def test_an_inline_secret_is_refused_naming_the_field_and_how_to_pass_it(security: dict[str, Any], field: str) -> None:
    msg = _error({"security": security})
    assert f"{field}: an inline secret is not accepted" in msg
    assert "{env: VARIABLE}" in msg and "{file: /path/to/file}" in msg
    assert SECRET not in msg


def test_a_secret_names_exactly_one_source() -> None:
    msg = _error(_scram({"env": "ROUTER_KAFKA_PASSWORD", "file": "/run/secrets/pw"}))
    assert "clusters.default.security.sasl.password: give exactly one of 'env'" in msg


def test_the_secrets_map_is_removed_naming_what_replaced_it() -> None:
    msg = _error({"secrets": {"sasl.password": SECRET}})
    assert "clusters.default.secrets: removed; " in msg
    assert "clusters.<name>.security" in msg and "{env: VARIABLE}" in msg
    assert SECRET not in msg


def test_the_secrets_map_is_removed_under_any_cluster_name() -> None:
    with pytest.raises(ConfigError, match=r"clusters\.eu-west\.secrets: removed; secrets are no longer written"):
        parse_config(_doc({"secrets": {}}, name="eu-west"))


@pytest.mark.parametrize(
    ("key", "replacement"),
    [
        ("security.protocol", "clusters.<name>.security.protocol"),
        ("ssl.ca.location", "clusters.<name>.security.ca_file"),
        ("ssl.key.location", "clusters.<name>.security.key_file"),
        ("sasl.password", "clusters.<name>.security.sasl.password ({env: VARIABLE} or {file: path})"),
        ("sasl.oauthbearer.client.secret", "clusters.<name>.security.sasl.client_secret"),
        ("ssl.endpoint.identification.algorithm", "clusters.<name>.security.dev_disable_hostname_verification"),
        ("ssl.cipher.suites", "clusters.<name>.security,"),
        ("sasl.kerberos.service.name", "clusters.<name>.security,"),
    ],
)
def test_a_security_property_in_the_client_map_names_its_replacement(key: str, replacement: str) -> None:
    msg = _error({"client": {key: "x"}})
    assert f"clusters.default.client: client property {key!r} belongs under {replacement}" in msg


def test_the_client_map_keeps_tuning_properties() -> None:
    props = _props({"allow_plaintext": True, "client": {"message.max.bytes": "2000000", "socket.timeout.ms": "5000"}})
    assert props["message.max.bytes"] == "2000000"
    assert props["socket.timeout.ms"] == "5000"


# -- combinations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "expected"),
    [
        ({"protocol": "SASL_SSL"}, "protocol SASL_SSL needs 'sasl'"),
        ({"protocol": "SSL", "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password": {"env": "P"}}},
         "'sasl' needs protocol SASL_SSL (protocol is SSL)"),
        ({"protocol": "PLAINTEXT", "ca_file": "ca.pem"}, "ca_file need protocol SSL or SASL_SSL"),
        ({"protocol": "PLAINTEXT", "dev_disable_hostname_verification": True},
         "dev_disable_hostname_verification need protocol SSL or SASL_SSL"),
        ({"protocol": "SSL", "cert_file": "c.pem"}, "cert_file and key_file go together"),
        ({"protocol": "SSL", "key_password": {"env": "P"}}, "key_password needs key_file"),
    ],
)
def test_contradictory_security_settings_are_refused(security: dict[str, Any], expected: str) -> None:
    msg = _error({"security": security})
    assert f"clusters.default.security: {expected}" in msg


def test_an_unknown_protocol_is_refused_naming_the_choices() -> None:
    msg = _error({"security": {"protocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "SCRAM-SHA-256"}}})
    assert "clusters.default.security.protocol: Input should be 'SASL_SSL', 'SSL' or 'PLAINTEXT'" in msg


def test_an_unknown_sasl_mechanism_is_refused() -> None:
    msg = _error({"security": {"protocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN"}}})
    assert "clusters.default.security.sasl: " in msg
    assert "'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'" in msg


def test_an_oidc_token_endpoint_must_use_https() -> None:
    sasl = {"mechanism": "OAUTHBEARER", "token_endpoint_url": "http://idp.example/token", "client_id": "r",
            "client_secret": {"env": "S"}}
    msg = _error({"security": {"protocol": "SASL_SSL", "sasl": sasl}})
    assert "clusters.default.security.sasl.token_endpoint_url: must be an https:// URL" in msg


def test_allow_plaintext_contradicts_a_tls_protocol() -> None:
    msg = _error({"security": {"protocol": "SSL"}, "allow_plaintext": True})
    assert "clusters.default: allow_plaintext: true contradicts security.protocol SSL" in msg


# -- PLAINTEXT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", [{}, {"security": {"protocol": "PLAINTEXT"}}])
def test_plaintext_is_refused_without_the_opt_in_when_clients_are_built(cluster: dict[str, Any]) -> None:
    config = parse_config(_doc(cluster))  # loads: a command that never connects (simulate) can use it
    with pytest.raises(ConfigError) as info:
        config.clusters["default"].client_properties("default")
    msg = str(info.value)
    assert msg.startswith("clusters.default.security.protocol: the connection would be PLAINTEXT")
    assert "clusters.default.allow_plaintext: true" in msg


def test_plaintext_with_the_opt_in_warns_once_per_process_naming_the_cluster(caplog: pytest.LogCaptureFixture) -> None:
    name = f"dev-{uuid.uuid4().hex[:8]}"  # a name no other test has built clients for in this process
    caplog.set_level(logging.WARNING, logger="router.config.security")
    config = parse_config(_doc({"security": {"protocol": "PLAINTEXT"}, "allow_plaintext": True}, name))
    for _ in range(3):
        props = config.clusters[name].client_properties(name)
    assert props == {"bootstrap.servers": "broker-1.example:9093", "security.protocol": "PLAINTEXT"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"cluster {name!r}: connecting in PLAINTEXT" in warnings[0]


# -- TLS and SASL properties -------------------------------------------------------------------------


def test_ssl_with_a_client_certificate_verifies_host_names(tmp_path: Path) -> None:
    ca = write_ca(tmp_path)
    props = _props({"security": {"protocol": "SSL", "ca_file": str(ca.cert), "cert_file": str(ca.client_cert),
                                 "key_file": str(ca.client_key)}})
    assert props == {
        "bootstrap.servers": "broker-1.example:9093",
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca.cert),
        "ssl.certificate.location": str(ca.client_cert),
        "ssl.key.location": str(ca.client_key),
    }


def test_librdkafka_accepts_the_properties_of_every_mechanism(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = write_ca(tmp_path)
    monkeypatch.setenv("ROUTER_TEST_PW", SECRET)
    for security in (
        {"protocol": "SSL", "ca_file": str(ca.cert), "cert_file": str(ca.client_cert), "key_file": str(ca.client_key)},
        {"protocol": "SASL_SSL", "ca_file": str(ca.cert),
         "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password": {"env": "ROUTER_TEST_PW"}}},
        {"protocol": "SASL_SSL", "ca_file": str(ca.cert),
         "sasl": {"mechanism": "OAUTHBEARER", "token_endpoint_url": "https://127.0.0.1:1/token",
                  "client_id": "router", "client_secret": {"env": "ROUTER_TEST_PW"}, "scope": "kafka"}},
    ):
        props = _props({"security": security, "client": {"socket.connection.setup.timeout.ms": "1000"}})
        # librdkafka checks property names and values and loads the PEM files when the client is made
        Producer({**props, "bootstrap.servers": "127.0.0.1:1", "log_level": 0}).flush(0)


def test_scram_reads_the_password_from_the_environment_and_the_user_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_KAFKA_PASSWORD", SECRET)
    user = tmp_path / "username"
    user.write_text("router-eu\n", encoding="utf-8")
    props = _props(_scram({"env": "ROUTER_KAFKA_PASSWORD"}, username={"file": str(user)}))
    assert props == {
        "bootstrap.servers": "broker-1.example:9093",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "router-eu",
        "sasl.password": SECRET,
    }


def test_oauthbearer_uses_the_oidc_client_credentials_flow(tmp_path: Path) -> None:
    secret = _private(tmp_path / "client-secret", SECRET + "\n")
    sasl = {"mechanism": "OAUTHBEARER", "token_endpoint_url": "https://idp.example/oauth2/token",
            "client_id": "residency-router", "client_secret": {"file": str(secret)}, "scope": "kafka.produce"}
    props = _props({"security": {"protocol": "SASL_SSL", "sasl": sasl}})
    assert props == {
        "bootstrap.servers": "broker-1.example:9093",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/oauth2/token",
        "sasl.oauthbearer.client.id": "residency-router",
        "sasl.oauthbearer.client.secret": SECRET,
        "sasl.oauthbearer.scope": "kafka.produce",
    }


def test_an_encrypted_client_key_gets_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = write_ca(tmp_path)
    monkeypatch.setenv("ROUTER_KEY_PW", SECRET)
    props = _props({"security": {"protocol": "SSL", "cert_file": str(ca.client_cert), "key_file": str(ca.client_key),
                                 "key_password": {"env": "ROUTER_KEY_PW"}}})
    assert props["ssl.key.password"] == SECRET


def test_hostname_verification_is_off_only_with_the_development_flag_which_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"dev-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.WARNING, logger="router.config.security")
    cluster = {"security": {"protocol": "SSL", "dev_disable_hostname_verification": True}}
    props = _props(cluster, name)
    _props(cluster, name)
    assert props["ssl.endpoint.identification.algorithm"] == "none"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"cluster {name!r}: broker host names are not verified" in warnings[0]


# -- files and environment variables -----------------------------------------------------------------


def test_relative_files_resolve_against_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confdir = tmp_path / "conf"
    ca = write_ca(confdir / "tls")
    _private(confdir / "kafka-password", SECRET)
    doc = _doc({"security": {"protocol": "SASL_SSL", "ca_file": "tls/ca.pem",
                             "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u",
                                      "password": {"file": "kafka-password"}}}})
    path = confdir / "router.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    props = load_config(path).clusters["default"].client_properties()
    assert props["ssl.ca.location"] == str(ca.cert)
    assert props["sasl.password"] == SECRET


def test_a_missing_environment_variable_names_the_field_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.sasl\.password: environment variable "
                                          r"ROUTER_TEST_UNSET is not set or empty$"):
        _props(_scram({"env": "ROUTER_TEST_UNSET"}))


def test_a_missing_file_names_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=rf"^clusters\.default\.security\.ca_file: file {missing} does not exist$"):
        _props({"security": {"protocol": "SSL", "ca_file": str(missing)}})


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_password_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    pw = _private(tmp_path / "pw", SECRET)
    pw.chmod(mode)
    with pytest.raises(ConfigError) as info:
        _props(_scram({"file": str(pw)}))
    msg = str(info.value)
    assert msg.startswith(f"clusters.default.security.sasl.password: file {pw} is accessible to group or others")
    assert f"chmod 600 {pw}" in msg
    assert SECRET not in msg


def test_a_private_key_others_can_read_is_refused_but_certificates_may_be_public(tmp_path: Path) -> None:
    ca = write_ca(tmp_path)
    ca.cert.chmod(0o644)
    ca.client_cert.chmod(0o644)
    ca.client_key.chmod(0o644)
    cluster = {"security": {"protocol": "SSL", "ca_file": str(ca.cert), "cert_file": str(ca.client_cert),
                            "key_file": str(ca.client_key)}}
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.key_file: file .* is accessible"):
        _props(cluster)
    ca.client_key.chmod(0o600)
    assert _props(cluster)["ssl.key.location"] == str(ca.client_key)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_names_the_field(tmp_path: Path) -> None:
    pw = _private(tmp_path / "pw", SECRET)
    pw.chmod(0o000)
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.sasl\.password: file .* cannot be read"):
        _props(_scram({"file": str(pw)}))


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    pw = _private(tmp_path / "pw", "\n")
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.sasl\.password: file .* is empty$"):
        _props(_scram({"file": str(pw)}))


def test_the_cluster_name_is_in_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match=r"^clusters\.eu\.security\.sasl\.password: "):
        _props(_scram({"env": "ROUTER_TEST_UNSET"}), name="eu")


# -- secrets stay secret -----------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_KAFKA_PASSWORD", SECRET)
    key = tmp_path / "client.key"
    key.write_text("not a key", encoding="utf-8")
    key.chmod(0o644)  # refused while the password is in the environment
    cluster = {"security": {"protocol": "SASL_SSL", "cert_file": str(key), "key_file": str(key),
                            "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u",
                                     "password": {"env": "ROUTER_KAFKA_PASSWORD"}}}}
    config = parse_config(_doc(cluster))
    assert SECRET not in repr(config) and SECRET not in str(config)
    with pytest.raises(ConfigError) as info:
        config.clusters["default"].client_properties()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    key.chmod(0o600)
    props = config.clusters["default"].client_properties()
    assert props["sasl.password"] == SECRET  # revealed only to the Kafka client
    assert SECRET not in repr(config)
