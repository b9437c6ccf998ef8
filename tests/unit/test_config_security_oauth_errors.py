"""OAUTHBEARER failures become one line naming the setting: a token source's own failure wins over
librdkafka's generic "OAuth token not set" / "SASL authentication error", a broker refusing the
token names ``security.sasl`` and keeps the broker's reason.

The token source here is a token file (no OpenBao needed); librdkafka's texts for errors that need
a broker are quoted as librdkafka writes them (rdkafka_sasl_oauthbearer.c). One test builds a real
AdminClient, whose constructor waits for the first token as measured with librdkafka 2.x.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.auth import tokens
from router.auth.tokens import RECOVERY_GRACE_S, TokenSource, TokenUnavailable
from router.config.loader import parse_config
from router.config.security import ClientErrorReporter, explain_client_error, token_outage
from router.errors import ConfigError
from router.kafka_read import check_connection

pytestmark = pytest.mark.unit

NOT_SET = KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED,
                                    "OAuth token not set within 10 seconds timeout"))
REFUSED = ('sasl_ssl://kafka-1.eu.example:9094/1: SASL authentication error: SASL OAUTHBEARER authentication '
           'failed (principal=router): {"status":"invalid_token"} (after 4ms in state AUTH_REQ)')


@pytest.fixture(autouse=True)
def _fresh_sources() -> Iterator[None]:
    tokens.reset()
    yield
    tokens.reset()


def jwt(exp: float, **claims: Any) -> str:
    """An unsigned compact JWT with ``exp`` (clients read claims; only brokers verify signatures)."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'sub': 'router', **claims})}.c2ln"


def _file_source(tmp_path: Path, cluster: str = "default") -> tuple[TokenSource, Path]:
    path = tmp_path / "token"
    path.write_text(jwt(time.time() + 600), encoding="utf-8")
    path.chmod(0o600)
    doc = {"clusters": {cluster: {"bootstrap": "127.0.0.1:1", "security": {
        "protocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER", "token_file": str(path)}}}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}}}
    props = parse_config(doc).clusters[cluster].client_properties(cluster)
    source = props["oauth_cb"]
    assert isinstance(source, TokenSource)
    return source, path


def _fail(source: TokenSource) -> TokenUnavailable:
    with pytest.raises(TokenUnavailable) as info:
        source()
    assert source.last_error is info.value
    return info.value


def test_the_sources_failure_wins_over_oauth_token_not_set(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path, "eu")
    path.unlink()
    failure = _fail(source)
    explained = explain_client_error(NOT_SET, "eu")
    assert explained is not None
    assert str(explained) == str(failure)
    assert str(explained).startswith(f"clusters.eu.security.sasl.token_file: file {path} does not exist")


def test_the_sources_failure_wins_over_a_sasl_authentication_error(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path)
    path.write_text("not a token", encoding="utf-8")
    failure = _fail(source)
    explained = explain_client_error(KafkaError(KafkaError._AUTHENTICATION, REFUSED), "default")
    assert explained is not None and str(explained) == str(failure)
    assert str(explained).startswith("clusters.default.security.sasl.token_file: the token obtained is not a JWT")


def test_a_broker_refusing_a_token_the_source_obtained_names_security_sasl_and_the_reason(tmp_path: Path) -> None:
    source, _ = _file_source(tmp_path)
    source()  # obtained without error
    explained = explain_client_error(KafkaError(KafkaError._AUTHENTICATION, REFUSED), "default")
    assert explained is not None
    msg = str(explained)
    assert msg.startswith("clusters.default.security.sasl: the broker refused the OAUTHBEARER token of FileTokens(")
    assert "invalid_token" in msg and "expected.audience" in msg and "\n" not in msg


def test_with_librdkafkas_own_oidc_flow_a_refused_token_names_security_sasl() -> None:
    explained = explain_client_error(REFUSED, "default")  # no token source for this cluster
    assert explained is not None
    assert str(explained).startswith("clusters.default.security.sasl: the broker refused the OAUTHBEARER token")
    assert str(explained).endswith(f"(librdkafka: {REFUSED})")


def test_with_librdkafkas_own_oidc_flow_a_missing_token_names_the_client_secret() -> None:
    explained = explain_client_error(NOT_SET, "default")
    assert explained is not None
    assert str(explained).startswith("clusters.default.security.sasl.client_secret: the OAUTHBEARER token could not")


# librdkafka's line when a connection drops during the SASL handshake (here: a broker closed it after
# refusing a re-authentication for its SASL state): the cause is the transport, not the credentials.
HANDSHAKE_DROPPED = ("sasl_ssl://127.0.0.1:37575/1: SASL OAUTHBEARER mechanism handshake failed: Local: Broker "
                     "transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)")


@pytest.mark.parametrize("with_source", [True, False])
def test_a_handshake_that_failed_because_the_connection_dropped_is_not_a_refusal(
    tmp_path: Path, with_source: bool,
) -> None:
    if with_source:
        source, _ = _file_source(tmp_path)
        source()  # obtained without error
    assert explain_client_error(KafkaError(KafkaError._AUTHENTICATION, HANDSHAKE_DROPPED), "default") is None
    assert explain_client_error(HANDSHAKE_DROPPED, "default") is None


def test_errors_that_are_not_about_authentication_stay_unexplained(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path)
    path.unlink()
    _fail(source)
    assert explain_client_error("1/1 brokers are down", "default") is None


def test_the_outage_is_retriable_only_for_a_failure_that_may_pass(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path)
    assert token_outage() is None
    path.unlink()
    missing = _fail(source)
    assert missing.retriable and token_outage() is missing
    path.write_text("garbage", encoding="utf-8")
    path.chmod(0o600)
    garbage = _fail(source)
    assert not garbage.retriable and token_outage() is None
    path.write_text(jwt(time.time() + 600), encoding="utf-8")
    source()
    # tokens are back; for a grace period clients that still hold an expired one count as the outage
    assert source.last_error is None
    grace = token_outage()
    assert grace is not None and grace.retriable and "until just now" in str(grace)
    real = source._clock
    source._clock = lambda: real() + RECOVERY_GRACE_S + 1
    assert token_outage() is None


def test_the_reporter_logs_the_sources_line_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="router.config.security")
    source, path = _file_source(tmp_path)
    path.unlink()
    _fail(source)
    reporter = ClientErrorReporter()
    for _ in range(3):
        reporter(KafkaError(KafkaError._AUTHENTICATION, REFUSED))
    errors = [r.getMessage() for r in caplog.records
              if r.name == "router.config.security" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("clusters.default.security.sasl.token_file: ")


def test_check_connection_raises_the_sources_line_when_the_client_cannot_get_a_token(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path)
    path.unlink()
    props = {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
             "oauth_cb": source, "log_level": 0}
    # librdkafka's AdminClient waits for the first token, then raises "OAuth token not set"
    with pytest.raises(ConfigError) as info:
        check_connection(props, timeout=1)
    assert str(info.value).startswith(f"clusters.default.security.sasl.token_file: file {path} does not exist")


def test_check_connection_maps_a_client_that_cannot_be_built_with_a_fake(tmp_path: Path) -> None:
    source, path = _file_source(tmp_path, "eu")
    path.write_text("garbage", encoding="utf-8")
    failure = _fail(source)

    def factory(_conf: dict[str, Any]) -> Any:
        raise NOT_SET

    with pytest.raises(ConfigError) as info:
        check_connection({"oauth_cb": source}, cluster="eu", client_factory=factory)
    assert str(info.value) == str(failure)
