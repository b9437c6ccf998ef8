"""clusters.<name>.security against a real secured cluster (TLS listeners, SCRAM-SHA-512, mTLS).

The module starts its own secured one-node dev cluster (``DevCluster(...).up(racks, secure=True)``),
writes a router config whose ``security`` section points at the cluster's CA and credential files,
and checks that the properties ``ClusterConfig.client_properties()`` builds authenticate (SCRAM over
SASL_SSL, a client certificate over SSL), and that a wrong password and an untrusted CA are
reported by ``ClientErrorReporter`` naming the setting to fix. Nothing is mocked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from router.config.loader import load_config
from router.config.security import ClientErrorReporter
from router.devtools.devcluster.launcher import ClusterInfo
from tests.integration.secure_cluster import secured_cluster
from tests.unit.tls_util import write_ca

pytestmark = pytest.mark.integration

RACKS = ("eu-west-1a",)
DEADLINE_S = 60.0
PRINCIPAL = "admin"  # the cluster's super user: describing the cluster needs no ACL


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secured_cluster(tmp_path_factory, "devcluster-security", RACKS) as info:
        yield info


def _config(tmp_path: Path, cluster: dict[str, Any]) -> Path:
    doc = {"clusters": {"default": cluster}, "jurisdictions": {"eu": {"racks": ["eu-*"]}}}
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _scram_cluster(info: ClusterInfo, password: dict[str, str], ca: str | None = None) -> dict[str, Any]:
    assert info.security is not None
    cred = info.security.principal(PRINCIPAL)
    return {"bootstrap": info.bootstrap, "security": {
        "protocol": "SASL_SSL", "ca_file": ca or info.security.ca,
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": cred.name, "password": password}}}


def _broker_ids(props: dict[str, str]) -> set[int]:
    admin = AdminClient({**props, "log_level": 0})
    return {int(n.id) for n in admin.describe_cluster(request_timeout=30).result(timeout=DEADLINE_S).nodes}


def _first_reported(props: dict[str, str], reporter: ClientErrorReporter) -> str:
    consumer = Consumer({**props, "group.id": f"security-{uuid.uuid4().hex[:8]}", "error_cb": reporter,
                         "log_level": 0})
    try:
        deadline = time.monotonic() + DEADLINE_S
        while reporter.first is None and time.monotonic() < deadline:
            consumer.poll(0.5)
    finally:
        consumer.close()
    assert reporter.first is not None, "no TLS or authentication error was reported before the deadline"
    return str(reporter.first)


def test_scram_over_sasl_ssl_with_the_password_from_a_file_reaches_the_cluster(
    secured: ClusterInfo, tmp_path: Path
) -> None:
    assert secured.security is not None
    password_file = secured.security.principal(PRINCIPAL).password_file
    config = load_config(_config(tmp_path, _scram_cluster(secured, {"file": password_file})))
    props = config.clusters["default"].client_properties()
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert len(_broker_ids(props)) == len(RACKS)


def test_a_client_certificate_over_ssl_reaches_the_cluster(secured: ClusterInfo, tmp_path: Path) -> None:
    assert secured.security is not None and secured.mtls_bootstrap
    cred = secured.security.principal(PRINCIPAL)
    config = load_config(_config(tmp_path, {"bootstrap": secured.mtls_bootstrap, "security": {
        "protocol": "SSL", "ca_file": secured.security.ca, "cert_file": cred.certificate, "key_file": cred.key}}))
    assert len(_broker_ids(config.clusters["default"].client_properties())) == len(RACKS)


def test_a_wrong_password_is_reported_naming_sasl_password(
    secured: ClusterInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_TEST_KAFKA_PASSWORD", "wrong-" + uuid.uuid4().hex)
    config = load_config(_config(tmp_path, _scram_cluster(secured, {"env": "ROUTER_TEST_KAFKA_PASSWORD"})))
    msg = _first_reported(config.clusters["default"].client_properties(), ClientErrorReporter())
    assert msg.startswith("clusters.default.security.sasl.password: the broker refused the SASL credentials")


def test_a_ca_that_did_not_sign_the_brokers_is_reported_naming_ca_file(secured: ClusterInfo, tmp_path: Path) -> None:
    assert secured.security is not None
    other = write_ca(tmp_path / "other-ca")
    password_file = secured.security.principal(PRINCIPAL).password_file
    config = load_config(_config(tmp_path, _scram_cluster(secured, {"file": password_file}, ca=str(other.cert))))
    msg = _first_reported(config.clusters["default"].client_properties(), ClientErrorReporter())
    assert msg.startswith("clusters.default.security.ca_file: the broker's TLS certificate could not be verified")
