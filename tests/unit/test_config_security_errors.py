"""librdkafka TLS and authentication errors become one line naming the setting to fix.

Where librdkafka can produce the error without a Kafka broker, the test makes it do so: a local TLS
endpoint (Python's ssl module) that presents a certificate of a CA the client does not trust, a
plain TCP endpoint a TLS client talks to, and PEM files librdkafka cannot load. SASL errors need a
broker; their text is librdkafka's own (``rd_kafka_sasl_*``), quoted as it appears in its logs.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer

from router.config.security import ClientErrorReporter, explain_client_error
from router.errors import ConfigError
from tests.unit.tls_util import write_ca

pytestmark = pytest.mark.unit


@contextmanager
def _listener(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener on a free port that passes each connection to ``handle``."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, suppress(OSError):
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        srv.close()


def _tls_handler(cert: Path, key: Path) -> Callable[[socket.socket], None]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        conn.settimeout(2)
        with suppress(ssl.SSLError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    return handle


def _plain_handler(conn: socket.socket) -> None:
    conn.settimeout(2)
    conn.recv(1024)  # a TLS ClientHello, which a PLAINTEXT listener cannot answer: it closes


def _first_reported(props: dict[str, Any], reporter: ClientErrorReporter, deadline_s: float = 20.0) -> ConfigError:
    """Poll a consumer (which serves error_cb) until the reporter has an explained error."""
    consumer = Consumer({**props, "group.id": "security-test", "error_cb": reporter, "log_level": 0})
    try:
        deadline = time.monotonic() + deadline_s
        while reporter.first is None and time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    assert reporter.first is not None, "librdkafka reported no TLS or authentication error before the deadline"
    return reporter.first


def test_a_broker_certificate_of_an_untrusted_ca_names_the_ca_file(tmp_path: Path) -> None:
    broker = write_ca(tmp_path / "broker-ca", hosts=("localhost",))
    other = write_ca(tmp_path / "other-ca")
    with _listener(_tls_handler(broker.server_cert, broker.server_key)) as port:
        err = _first_reported(
            {"bootstrap.servers": f"localhost:{port}", "security.protocol": "SSL", "ssl.ca.location": str(other.cert),
             "ssl.endpoint.identification.algorithm": "https"},
            ClientErrorReporter("eu"),
        )
    msg = str(err)
    assert msg.startswith("clusters.eu.security.ca_file: the broker's TLS certificate could not be verified")
    assert "\n" not in msg


def test_a_certificate_for_another_host_name_names_the_ca_file_and_the_host_names(tmp_path: Path) -> None:
    broker = write_ca(tmp_path, hosts=("kafka-1.eu.example",))
    with _listener(_tls_handler(broker.server_cert, broker.server_key)) as port:
        err = _first_reported(
            {"bootstrap.servers": f"localhost:{port}", "security.protocol": "SSL", "ssl.ca.location": str(broker.cert),
             "ssl.endpoint.identification.algorithm": "https"},
            ClientErrorReporter(),
        )
    assert str(err).startswith("clusters.default.security.ca_file: ")
    assert "host names the certificates name" in str(err)


def test_tls_to_a_plaintext_listener_names_the_protocol(tmp_path: Path) -> None:
    ca = write_ca(tmp_path)
    with _listener(_plain_handler) as port:
        err = _first_reported(
            {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL", "ssl.ca.location": str(ca.cert)},
            ClientErrorReporter(),
        )
    assert str(err).startswith("clusters.default.security.protocol: the client speaks TLS to a listener that does not")


@pytest.mark.parametrize(
    ("prop", "setting"),
    [("ssl.ca.location", "ca_file"), ("ssl.key.location", "key_file"), ("ssl.certificate.location", "cert_file")],
)
def test_a_file_librdkafka_cannot_load_names_its_setting(tmp_path: Path, prop: str, setting: str) -> None:
    ca = write_ca(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM\n", encoding="utf-8")
    props = {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "SSL", "log_level": 0,
             "ssl.certificate.location": str(ca.client_cert), "ssl.key.location": str(ca.client_key), prop: str(junk)}
    with pytest.raises(KafkaException) as info:
        Producer(props)
    explained = explain_client_error(info.value, "eu")
    assert explained is not None
    assert str(explained).startswith(f"clusters.eu.security.{setting}: ")


# librdkafka's own texts for errors that need a broker (rdkafka_broker.c, rdkafka_sasl*.c); the
# SCRAM one carries the broker's SaslAuthenticate message.
_SASL_FAILED = (
    "sasl_ssl://kafka-1.eu.example:9094/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in state AUTH_REQ)"
)
_PLAINTEXT_TO_TLS = (
    "kafka-1.eu.example:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect "
    "security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 "
    "(see api.version.request) (after 5ms in state APIVERSION_QUERY)"
)
_NO_MECHANISM = (
    "sasl_ssl://kafka-1.eu.example:9094/bootstrap: Unsupported SASL mechanism: broker's supported mechanisms: "
    "SCRAM-SHA-512 (after 3ms in state AUTH_HANDSHAKE)"
)
_OIDC = 'Failed to retrieve OIDC token from "https://idp.example/token": Could not resolve host: idp.example (-1)'


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        (_SASL_FAILED, "sasl.password"),
        (_PLAINTEXT_TO_TLS, "protocol"),
        (_NO_MECHANISM, "sasl.mechanism"),
        (_OIDC, "sasl.client_secret"),
    ],
)
def test_broker_side_failures_name_the_setting(text: str, setting: str) -> None:
    explained = explain_client_error(text, "default")
    assert explained is not None
    assert str(explained).startswith(f"clusters.default.security.{setting}: ")
    assert str(explained).endswith(f"(librdkafka: {text})")


@pytest.mark.parametrize(
    "text", ["1/1 brokers are down", "Failed while waiting for controller: Local: Timed out",
             "kafka-1:9092/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"],
)
def test_errors_that_are_not_about_security_are_not_explained(text: str) -> None:
    assert explain_client_error(text) is None


def test_the_reporter_logs_each_setting_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="router.config.security")
    reporter = ClientErrorReporter("eu")
    for text in (_SASL_FAILED, _SASL_FAILED, "1/1 brokers are down", _SASL_FAILED):
        reporter(text)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith("clusters.eu.security.sasl.password: ")
    assert warnings == ["kafka client error cluster=eu code= error=1/1 brokers are down"]
    assert reporter.first is not None and str(reporter.first) == errors[0]
