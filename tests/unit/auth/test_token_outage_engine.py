"""``run``'s engine and ``/readyz`` when the OAUTHBEARER token source fails.

A retriable failure (OpenBao unreachable; here: the token file missing) with every broker refusing is
waited out: the run goes on, a producer that cannot get a token is re-created after a back-off, and
the router resumes once tokens come back. A failure that does not pass (a file that is not a token;
for OpenBao: the AppRole refused, the role not allowed) or a broker refusing a token the source
obtained without error ends the run with one line naming the setting.

The clients are the in-memory fakes of tests/unit/fake_kafka.py, their ``error_cb`` (the engine's)
driven by hand with librdkafka's texts; the token source is a real one (a token file) built from the
config, as ``run`` builds it.
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
from router.auth.tokens import TokenSource, TokenUnavailable
from router.config.loader import parse_config
from router.pipeline import engine as engine_mod
from router.pipeline.engine import FatalPipelineError
from router.telemetry.health import RouterHealth
from tests.unit.fake_kafka import FakeCluster, FakeProducer
from tests.unit.test_cli_auth_errors_engine import DOWN, INGRESS, ErrorsOnConsume, _engine
from tests.unit.test_pipeline_engine_errors import Waits, _values

pytestmark = pytest.mark.unit

SETTING = "clusters.default.security.sasl.token_file"
REFUSED = KafkaError(KafkaError._AUTHENTICATION,
                     "sasl_ssl://127.0.0.1:9094/1: SASL authentication error: SASL OAUTHBEARER authentication failed "
                     '(principal=router): {"status":"invalid_token"} (after 4ms in state AUTH_REQ)')
NOT_SET = KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED,
                                    "OAuth token not set within 10 seconds timeout"))


def jwt(exp: float) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'sub': 'router'})}.c2ln"


class TokenFile:
    """The router's token file and the source ``clusters.default`` builds from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.renew()
        doc = {"clusters": {"default": {"bootstrap": "127.0.0.1:1", "security": {
            "protocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER", "token_file": str(path)}}}},
            "jurisdictions": {"eu": {"racks": ["eu-*"]}}}
        source = parse_config(doc).clusters["default"].client_properties()["oauth_cb"]
        assert isinstance(source, TokenSource)
        self.source = source

    def renew(self) -> None:
        self.path.write_text(jwt(time.time() + 600), encoding="utf-8")
        self.path.chmod(0o600)

    def outage(self) -> TokenUnavailable:
        """The file is gone (retriable) and librdkafka has asked the source since."""
        self.path.unlink()
        return self._ask()

    def garbage(self) -> TokenUnavailable:
        """The file holds no token (not retriable) and librdkafka has asked the source since."""
        self.path.write_text("garbage", encoding="utf-8")
        return self._ask()

    def _ask(self) -> TokenUnavailable:
        self.source._cached = None  # the current token has expired: no grace left
        with pytest.raises(TokenUnavailable) as caught:
            self.source()
        return caught.value

    def recover(self) -> None:
        self.renew()
        self.source()
        assert self.source.last_error is None


@pytest.fixture
def token_file(tmp_path: Path) -> Iterator[TokenFile]:
    tokens.reset()
    yield TokenFile(tmp_path / "token")
    tokens.reset()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    c = FakeCluster()
    monkeypatch.setattr(engine_mod, "Producer", c.producer)
    monkeypatch.setattr(engine_mod, "Consumer", lambda conf: ErrorsOnConsume(c, conf))
    return c


def test_a_retriable_token_outage_with_every_broker_refusing_is_waited_out(
    cluster: FakeCluster, token_file: TokenFile, caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    failure = token_file.outage()
    # librdkafka repeats the refusal on every reconnect; the assignment (progress) comes after them
    ErrorsOnConsume.script = {1: [REFUSED, DOWN, REFUSED, DOWN, REFUSED, DOWN]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done(), "the run went on and processed its input"
    waits = [r.getMessage() for r in caplog.records if "token source fails" in r.getMessage()]
    assert len(waits) == 1, "logged once per failure"
    assert str(failure) in waits[0] and "resumes by itself" in waits[0]


def test_a_token_source_failure_that_does_not_pass_ends_the_run_with_its_line(
    cluster: FakeCluster, token_file: TokenFile,
) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    failure = token_file.garbage()
    ErrorsOnConsume.script = {1: [REFUSED, DOWN]}
    with pytest.raises(FatalPipelineError) as caught:
        _engine().run(until=lambda _s: cluster.done())
    msg = str(caught.value)
    assert msg.startswith(f"{failure}; no broker accepts the connection")
    assert msg.startswith(f"{SETTING}: the token obtained is not a JWT")
    assert cluster.committed == []


def test_a_broker_refusing_a_token_the_source_obtained_ends_the_run_naming_security_sasl(
    cluster: FakeCluster, token_file: TokenFile,
) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    token_file.source()  # obtained without error
    ErrorsOnConsume.script = {1: [REFUSED, DOWN]}
    with pytest.raises(FatalPipelineError) as caught:
        _engine().run(until=lambda _s: cluster.done())
    msg = str(caught.value)
    assert msg.startswith("clusters.default.security.sasl: the broker refused the OAUTHBEARER token of FileTokens(")
    assert "invalid_token" in msg


def test_a_producer_without_a_token_is_re_created_after_a_back_off_and_the_router_resumes(
    cluster: FakeCluster, token_file: TokenFile, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster.add_input(INGRESS, 0, _values(6))
    # the first commit fails fatally: the producer must be re-created, while tokens cannot be had
    cluster.fail("commit_transaction", KafkaError._FATAL, [1], fatal=True)
    made: list[str] = []

    def producer(conf: dict[str, Any]) -> FakeProducer:
        if made == ["made"]:
            token_file.outage()  # OpenBao went down since the first producer was made
        if token_file.source.last_error is not None:
            made.append("refused")
            raise NOT_SET  # librdkafka waited for the first token in vain
        made.append("made")
        return cluster.producer(conf)

    def on_wait(n: int) -> None:
        if n == 2:
            token_file.recover()  # OpenBao answers again

    monkeypatch.setattr(engine_mod, "Producer", producer)
    ErrorsOnConsume.script = {}
    waits = Waits(on_wait=on_wait)
    eng = _engine(waits)
    stats = eng.run(until=lambda _s: cluster.done())
    assert cluster.done() and stats.consumed >= 6
    assert made == ["made", "refused", "refused", "made"], "re-created after each back-off until a token came"
    assert len(waits.calls) >= 2


def test_a_producer_without_a_token_at_start_up_is_fatal_with_the_sources_line(
    cluster: FakeCluster, token_file: TokenFile, monkeypatch: pytest.MonkeyPatch,
) -> None:
    failure = token_file.outage()

    def producer(_conf: dict[str, Any]) -> FakeProducer:
        raise NOT_SET

    monkeypatch.setattr(engine_mod, "Producer", producer)
    with pytest.raises(FatalPipelineError) as caught:
        _engine().run(until=lambda _s: True)
    assert str(caught.value) == str(failure)


def test_readiness_names_a_failing_token_source_until_it_recovers(token_file: TokenFile) -> None:
    health = RouterHealth()
    failure = token_file.outage()
    readiness = health.readiness()
    assert not readiness.ready
    assert f"no OAUTHBEARER token for Kafka: {failure}; ready again once a token is obtained" in readiness.reasons
    assert readiness.detail["tokens"] == {"failing": [str(failure)]}
    token_file.recover()
    readiness = health.readiness()
    assert not any("OAUTHBEARER" in r for r in readiness.reasons)
    assert "tokens" not in readiness.detail


def test_readiness_without_token_sources_is_unchanged(token_file: TokenFile, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    tokens.reset()
    readiness = RouterHealth().readiness()
    assert readiness.reasons == ["the engine has not started"]
    assert "tokens" not in readiness.detail


# librdkafka's line when a broker answers a re-authentication's SaslHandshake with ILLEGAL_SASL_STATE
# (Kafka refuses a re-authentication less than a second after the previous one, or on a connection
# whose session has no expiry): librdkafka closes that connection and authenticates a new one.
REAUTH_RACE = KafkaError(
    KafkaError._AUTHENTICATION,
    "sasl_ssl://127.0.0.1:42669/1: SASL OAUTHBEARER mechanism handshake failed: Broker: Request not valid in "
    "current SASL state: broker's supported mechanisms:  (after 0ms in state AUTH_HANDSHAKE)")


def test_a_re_authentication_refused_for_its_sasl_state_is_not_a_token_refusal(
    cluster: FakeCluster, token_file: TokenFile,
) -> None:
    # every connection re-authenticates at the same moment (one shared token), so all fail at once
    cluster.add_input(INGRESS, 0, _values(3))
    token_file.source()
    ErrorsOnConsume.script = {2: [REAUTH_RACE, REAUTH_RACE, DOWN], 3: [REAUTH_RACE]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()


def test_a_connection_dropped_during_a_re_authentication_with_every_broker_down_is_transient(
    cluster: FakeCluster, token_file: TokenFile,
) -> None:
    # As a fresh-clone run of the OpenBao test saw it: the brokers refuse the re-authentications for
    # their SASL state, one then closes its connection mid-handshake (librdkafka reports the handshake
    # failed with a transport failure) and librdkafka counts every broker down before it reconnects.
    cluster.add_input(INGRESS, 0, _values(3))
    token_file.source()
    dropped = KafkaError(
        KafkaError._AUTHENTICATION,
        "sasl_ssl://127.0.0.1:37575/1: SASL OAUTHBEARER mechanism handshake failed: Local: Broker transport "
        "failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)")
    ErrorsOnConsume.script = {2: [REAUTH_RACE, REAUTH_RACE, dropped, DOWN], 3: [dropped, DOWN]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()
