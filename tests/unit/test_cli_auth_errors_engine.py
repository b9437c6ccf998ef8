"""``run``'s engine: a TLS or authentication refusal that persists (every broker down, and such an
error reported since the last progress) ends the run with a FatalPipelineError naming the setting,
at start-up and while running; the same errors followed by progress are transient and change nothing.

The clients are the in-memory fakes of tests/unit/fake_kafka.py; their ``error_cb`` (the engine's)
is driven by hand with librdkafka's texts at chosen ``consume()`` calls or after a failed
``init_transactions``, as librdkafka serves it from ``consume()`` and ``poll()``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.pipeline import engine as engine_mod
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import FatalPipelineError, TransactionalEngine
from tests.unit.fake_kafka import FakeCluster, FakeConsumer, FakeProducer
from tests.unit.test_cli_auth_errors import SASL_FAILED, UNTRUSTED
from tests.unit.test_pipeline_engine_errors import Waits, _settings, _values

pytestmark = pytest.mark.unit

INGRESS = "ingress"
DOWN = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")


class ErrorsOnConsume(FakeConsumer):
    """A fake consumer whose ``consume()`` call number N first serves ``script[N]`` to ``error_cb``."""

    script: ClassVar[dict[int, list[KafkaError]]] = {}

    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        super().__init__(cluster, config)
        self.calls = 0

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.calls += 1
        for err in self.script.get(self.calls, []):
            self.config["error_cb"](err)
        return super().consume(num_messages, timeout)


class RefusedProducer(FakeProducer):
    """A producer whose ``init_transactions`` times out (as librdkafka's does when no broker accepts
    the connection) and whose ``poll()`` then serves the refusal to ``error_cb``."""

    queued: ClassVar[list[KafkaError]] = []

    def init_transactions(self, timeout: float | None = None) -> None:
        self.cluster.calls.append(("init_transactions", 0))
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out waiting for operation to finish",
                                        retriable=True))

    def poll(self, timeout: float | None = None) -> int:
        served, RefusedProducer.queued = RefusedProducer.queued, []
        for err in served:
            self.config["error_cb"](err)
        return len(served)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    c = FakeCluster()
    monkeypatch.setattr(engine_mod, "Producer", c.producer)
    monkeypatch.setattr(engine_mod, "Consumer", lambda conf: ErrorsOnConsume(c, conf))
    return c


def _engine(waits: Waits | None = None) -> TransactionalEngine:
    waits = waits or Waits()
    eng = TransactionalEngine(_settings(), CopyProcessor("out"), wait=waits, sleep=lambda _s: None, environ={})
    waits.engine = eng
    return eng


def test_a_refused_authentication_with_every_broker_down_stops_the_run_naming_the_setting(
    cluster: FakeCluster,
) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    ErrorsOnConsume.script = {1: [KafkaError(KafkaError._AUTHENTICATION, SASL_FAILED), DOWN]}
    with pytest.raises(FatalPipelineError) as caught:
        _engine().run(until=lambda _s: cluster.done())
    msg = str(caught.value)
    assert msg.startswith("clusters.default.security.sasl.password: the broker refused the SASL credentials")
    assert "no broker accepts the connection" in msg and "\n" not in msg
    assert cluster.committed == [], "nothing was processed"


def test_the_refusal_may_come_after_every_broker_went_down(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    # call 1 assigns the partitions (progress); then every broker down, then the refusal
    ErrorsOnConsume.script = {2: [DOWN, KafkaError(KafkaError._SSL, UNTRUSTED)]}
    with pytest.raises(FatalPipelineError, match=r"^clusters\.default\.security\.ca_file: "):
        _engine().run(until=lambda _s: cluster.done())


def test_a_refusal_while_some_broker_still_answers_is_only_logged(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    ErrorsOnConsume.script = {1: [KafkaError(KafkaError._SSL, UNTRUSTED)]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()
    explained = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clusters.default.security.")]
    assert len(explained) == 1 and explained[0].startswith("clusters.default.security.ca_file: ")


def test_progress_makes_an_earlier_refusal_transient(cluster: FakeCluster) -> None:
    # a TLS error, then the assignment (progress), then every broker down (a restart): not fatal
    cluster.add_input(INGRESS, 0, _values(3))
    ErrorsOnConsume.script = {1: [KafkaError(KafkaError._SSL, UNTRUSTED)], 3: [DOWN]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()


def test_every_broker_down_alone_is_not_an_authentication_failure(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(3))
    ErrorsOnConsume.script = {1: [DOWN], 2: [KafkaError(KafkaError._TRANSPORT, "1/1 brokers are down")]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()


def test_a_producer_that_cannot_authenticate_at_start_up_is_fatal_at_once(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_mod, "Producer", lambda conf: RefusedProducer(cluster, conf))
    RefusedProducer.queued = [KafkaError(KafkaError._AUTHENTICATION, SASL_FAILED), DOWN]
    with pytest.raises(FatalPipelineError, match=r"^clusters\.default\.security\.sasl\.password: "):
        _engine().run(until=lambda _s: True)
    assert cluster.calls.count(("init_transactions", 0)) == 1, "not retried: the refusal persists"


def test_a_producer_timing_out_without_a_refusal_keeps_the_existing_error(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_mod, "Producer", lambda conf: RefusedProducer(cluster, conf))
    RefusedProducer.queued = [DOWN]
    with pytest.raises(FatalPipelineError, match="^init_transactions failed: "):
        _engine().run(until=lambda _s: True)
    assert cluster.calls.count(("init_transactions", 0)) == 3, "retried max_retries (2) times"


SASL_STATE = ("sasl_ssl://127.0.0.1:42669/1: SASL SCRAM-SHA-512 mechanism handshake failed: Broker: Request not "
              "valid in current SASL state: broker's supported mechanisms:  (after 0ms in state AUTH_HANDSHAKE)")


def test_a_re_authentication_refused_for_its_sasl_state_with_every_broker_down_is_transient(
    cluster: FakeCluster,
) -> None:
    # Kafka answers a re-authentication it does not accept now (less than a second after the last one)
    # with ILLEGAL_SASL_STATE; librdkafka drops the connection and authenticates a new one. Call 1
    # assigned the partitions: the clients had authenticated.
    cluster.add_input(INGRESS, 0, _values(3))
    race = KafkaError(KafkaError._AUTHENTICATION, SASL_STATE)
    ErrorsOnConsume.script = {2: [race, DOWN], 3: [race]}
    stats = _engine().run(until=lambda _s: cluster.done())
    assert stats.consumed == 3 and cluster.done()


def test_a_sasl_state_refusal_before_any_progress_stops_the_run_naming_the_protocol(cluster: FakeCluster) -> None:
    # never authenticated: a SASL client on a listener that takes no SASL
    cluster.add_input(INGRESS, 0, _values(3))
    ErrorsOnConsume.script = {1: [KafkaError(KafkaError._AUTHENTICATION, SASL_STATE), DOWN]}
    with pytest.raises(FatalPipelineError, match=r"^clusters\.default\.security\.protocol: .*takes no SASL"):
        _engine().run(until=lambda _s: cluster.done())
    assert cluster.committed == []
