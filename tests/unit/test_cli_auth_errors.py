"""Every command that talks to the cluster reports a refused TLS handshake or authentication as one
line naming the ``clusters.default.security`` setting to fix, and exits 2.

The Admin clients are fakes whose ``error_cb`` is driven by hand with librdkafka's own texts (the
errors a real broker causes; ``tests/unit/test_config_security_errors.py`` and
``tests/integration/test_cli_auth_errors.py`` meet them for real), so the wiring is checked
command by command without a broker. :func:`router.kafka_read.check_connection` itself is also
run against real librdkafka clients and local endpoints (an untrusted TLS certificate, a listener
that closes on a PLAINTEXT client as a TLS listener does, a closed port).
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.access.kafka import describe_live
from router.cli.main import main
from router.config.security import ClientErrorReporter, attach_reporter, reported_error
from router.errors import ConfigError
from router.kafka_read import check_connection
from router.ops.status import ClusterUnreachableError, sample_offsets
from router.placement.kafka import snapshot
from router.placement.model import PlacementUnavailableError
from tests.unit.test_config_security_errors import _listener, _plain_handler, _tls_handler
from tests.unit.tls_util import write_ca

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"

# librdkafka's texts (rdkafka_sasl_scram.c, rdkafka_ssl.c), as error_cb receives them
SASL_FAILED = (
    "sasl_ssl://127.0.0.1:9092/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 5ms in state AUTH_REQ)"
)
UNTRUSTED = (
    "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
    "failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or "
    "root CA certificates are installed (install ca-certificates package) (after 1ms in state SSL_HANDSHAKE)"
)


def _error(code: int, text: str) -> KafkaError:
    return KafkaError(code, text)


class FakeAdmin:
    """An AdminClient whose calls fail (or answer) as told and whose ``poll()`` serves the errors
    queued for ``error_cb``, as librdkafka's does."""

    def __init__(self, conf: dict[str, Any], *, errors: list[KafkaError], answers: bool = False) -> None:
        self.conf = conf
        self.queued = list(errors)
        self.answers = answers
        self.list_calls = 0
        self.polls = 0

    def poll(self, timeout: float | None = None) -> int:
        self.polls += 1
        served, self.queued = self.queued, []
        for err in served:
            self.conf["error_cb"](err)
        return len(served)

    def list_topics(self, *_a: Any, **_k: Any) -> Any:
        self.list_calls += 1
        if self.answers:
            return object()
        raise KafkaException(_error(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure"))

    def describe_cluster(self, **_k: Any) -> Any:
        raise KafkaException(_error(KafkaError._TIMED_OUT, "Failed while waiting for controller: Local: Timed out"))

    def describe_acls(self, *_a: Any, **_k: Any) -> Any:
        return self.describe_cluster()


def _refusing(*errors: KafkaError) -> tuple[Callable[[dict[str, Any]], FakeAdmin], list[FakeAdmin]]:
    made: list[FakeAdmin] = []

    def factory(conf: dict[str, Any]) -> FakeAdmin:
        admin = FakeAdmin(conf, errors=list(errors))
        made.append(admin)
        return admin

    return factory, made


def _fake_clock() -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: float(next(ticks))


# -- check_connection --------------------------------------------------------------------------------


def test_a_refused_authentication_raises_the_line_naming_sasl_password() -> None:
    factory, made = _refusing(_error(KafkaError._AUTHENTICATION, SASL_FAILED),
                              _error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    with pytest.raises(ConfigError) as caught:
        check_connection({"bootstrap.servers": "x:1"}, client_factory=factory, clock=_fake_clock())
    msg = str(caught.value)
    assert msg.startswith("clusters.default.security.sasl.password: the broker refused the SASL credentials")
    assert msg.endswith(f"(librdkafka: {SASL_FAILED})") and "\n" not in msg
    assert made[0].list_calls == 1, "the first failed round already names the cause"


def test_the_check_names_the_cluster_it_was_given() -> None:
    factory, _ = _refusing(_error(KafkaError._SSL, UNTRUSTED))
    with pytest.raises(ConfigError, match=r"^clusters\.eu\.security\.ca_file: "):
        check_connection({}, cluster="eu", client_factory=factory, clock=_fake_clock())


def test_a_cluster_that_answers_passes_without_polling_errors() -> None:
    made: list[FakeAdmin] = []

    def factory(conf: dict[str, Any]) -> FakeAdmin:
        made.append(FakeAdmin(conf, errors=[_error(KafkaError._SSL, UNTRUSTED)], answers=True))
        return made[-1]

    check_connection({}, client_factory=factory, clock=_fake_clock())
    assert made[0].list_calls == 1


def test_brokers_down_without_a_security_error_is_left_to_the_command() -> None:
    factory, made = _refusing(_error(KafkaError._TRANSPORT, "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 "
                                                            "failed: Connection refused (after 0ms in state CONNECT)"),
                              _error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    check_connection({}, client_factory=factory, clock=_fake_clock())  # returns: no verdict
    assert made[0].list_calls == 1


def test_without_any_answer_the_check_gives_up_at_its_deadline() -> None:
    factory, made = _refusing()
    check_connection({}, timeout=5, client_factory=factory, clock=_fake_clock())
    # the fake clock advances one second per reading: deadline at 5, two readings per round
    assert 1 < made[0].list_calls <= 5


def test_the_check_client_reports_into_its_own_reporter_and_drops_librdkafka_lines() -> None:
    factory, made = _refusing()
    check_connection({"bootstrap.servers": "x:1", "error_cb": print}, timeout=1, client_factory=factory,
                     clock=_fake_clock())
    conf = made[0].conf
    assert isinstance(conf["error_cb"], ClientErrorReporter)
    assert conf["logger"].propagate is False and conf["bootstrap.servers"] == "x:1"


# -- the same, with real librdkafka clients and local endpoints ------------------------------------------


def test_a_real_client_and_a_certificate_of_another_ca_name_the_ca_file(tmp_path: Path) -> None:
    broker = write_ca(tmp_path / "broker-ca", hosts=("localhost",))
    other = write_ca(tmp_path / "other-ca")
    with _listener(_tls_handler(broker.server_cert, broker.server_key)) as port, pytest.raises(ConfigError) as caught:
        check_connection({"bootstrap.servers": f"localhost:{port}", "security.protocol": "SSL",
                          "ssl.ca.location": str(other.cert), "ssl.endpoint.identification.algorithm": "https"},
                         timeout=20)
    assert str(caught.value).startswith("clusters.default.security.ca_file: the broker's TLS certificate could not")


def test_a_real_plaintext_client_closed_on_by_its_first_request_names_the_protocol() -> None:
    # _plain_handler reads the ApiVersion request and closes, as a TLS listener does with a
    # PLAINTEXT client (librdkafka 2.x logs it and raises no error_cb)
    with _listener(_plain_handler) as port, pytest.raises(ConfigError) as caught:
        check_connection({"bootstrap.servers": f"localhost:{port}", "security.protocol": "PLAINTEXT"}, timeout=20)
    assert str(caught.value).startswith("clusters.default.security.protocol: the broker closed a PLAINTEXT connection")


def test_a_real_client_and_a_closed_port_get_no_verdict() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_connection({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout=20)


# -- failure paths of long-lived admin clients -----------------------------------------------------------


def _admin_with_reporter(*errors: KafkaError) -> FakeAdmin:
    reporter = ClientErrorReporter(log=False)
    return attach_reporter(FakeAdmin({"error_cb": reporter}, errors=list(errors)), reporter)  # type: ignore[no-any-return]


def test_reported_error_polls_the_client_and_forgets_what_it_returned() -> None:
    admin = _admin_with_reporter(_error(KafkaError._SSL, UNTRUSTED))
    first = reported_error(admin)
    assert first is not None and str(first).startswith("clusters.default.security.ca_file: ")
    assert admin.polls == 1
    assert reported_error(admin) is None, "an error already reported is not news at the next failure"
    assert reported_error(FakeAdmin({}, errors=[])) is None, "no reporter attached: nothing to say"


def test_a_placement_snapshot_that_times_out_names_the_refused_setting() -> None:
    admin = _admin_with_reporter(_error(KafkaError._AUTHENTICATION, SASL_FAILED))
    with pytest.raises(PlacementUnavailableError) as caught:
        snapshot(admin, ["crm.eu.contact"], timeout=0.1)
    assert "clusters.default.security.sasl.password: the broker refused the SASL credentials" in str(caught.value)
    assert "brokers are up" not in str(caught.value)


def test_a_placement_snapshot_without_a_security_error_keeps_its_own_message() -> None:
    with pytest.raises(PlacementUnavailableError, match="check clusters.default.bootstrap"):
        snapshot(_admin_with_reporter(), ["crm.eu.contact"], timeout=0.1)


def test_reading_acls_that_times_out_names_the_refused_setting() -> None:
    admin = _admin_with_reporter(_error(KafkaError._SSL, UNTRUSTED))
    with pytest.raises(ConfigError, match=r"^clusters\.default\.security\.ca_file: "):
        describe_live(admin, timeout=0.1)


def test_status_offsets_that_cannot_be_read_name_the_refused_setting() -> None:
    admin = _admin_with_reporter(_error(KafkaError._AUTHENTICATION, SASL_FAILED))
    with pytest.raises(ClusterUnreachableError, match=r"^clusters\.default\.security\.sasl\.password: "):
        sample_offsets(admin, ["crm.ingress"], timeout=0.1, clock=lambda: 0.0, bootstrap="x:1")


# -- the commands --------------------------------------------------------------------------------------


COMMANDS = [
    ["placement", "--config", str(EXAMPLE)],
    ["topics", "create", "--config", str(EXAMPLE)],
    ["acls", "check", "--config", str(EXAMPLE)],
    ["acls", "apply", "--config", str(EXAMPLE), "--dry-run"],
    ["audit", "verify", "--config", str(EXAMPLE)],
    ["quarantine", "list", "--config", str(EXAMPLE), "--jurisdiction", "eu"],
    ["quarantine", "stats", "--config", str(EXAMPLE), "--jurisdiction", "eu"],
    ["quarantine", "tail", "--config", str(EXAMPLE), "--jurisdiction", "eu"],
    ["quarantine", "show", "--config", str(EXAMPLE), "--jurisdiction", "eu", "--offset", "0:0"],
    ["quarantine", "replay", "--config", str(EXAMPLE), "--jurisdiction", "eu", "--dry-run"],
    ["status", "--config", str(EXAMPLE), "--sample", "0"],
    ["status", "--config", str(EXAMPLE), "--watch", "--sample", "0"],
    ["consume", "--config", str(EXAMPLE), "--jurisdiction", "eu", "--topic", "crm.eu.contact", "--trust", "t.json"],
    ["run", "--config", str(EXAMPLE)],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]) if a[1] != "--config" else a[0])
@pytest.mark.parametrize(("code", "text", "setting"), [
    (KafkaError._AUTHENTICATION, SASL_FAILED, "sasl.password"),
    (KafkaError._SSL, UNTRUSTED, "ca_file"),
])
def test_each_command_exits_2_with_one_line_naming_the_setting(
    argv: list[str], code: int, text: str, setting: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    factory, made = _refusing(_error(code, text), _error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    monkeypatch.setattr("router.kafka_read._admin", factory)
    monkeypatch.setenv("ROUTER_INSTANCE_ID", "auth-test")
    # `run` installs process-wide logging and OpenTelemetry providers: not in this test process
    monkeypatch.setattr("router.telemetry.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("router.telemetry.configure", lambda *_a, **_k: None)
    assert main(argv) == 2
    assert made, "the command built no client through the connection check"
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("residency-router: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"residency-router: error: clusters.default.security.{setting}: ")
    assert errors[0].endswith(f"(librdkafka: {text})")
