"""A secured dev cluster (``devcluster up --secure``) authenticates every client and authorises by ACL.

The module starts its own 3-node secured cluster and stops it at the end. Refusals are read from
librdkafka's errors (``error_cb`` and the exceptions of the calls), waited for with deadlines.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from router.devtools.devcluster import tls
from router.devtools.devcluster.launcher import ClusterInfo
from tests.integration.secure_cluster import quiet_librdkafka, secured_cluster
from tests.unit.devcluster_util import devcluster_cli

pytestmark = pytest.mark.integration

RACKS = ("eu-west-1a", "eu-central-1a", "us-east-1a")
PRINCIPALS = ("router", "consumer-eu", "auditor")
DEADLINE_S = 60.0

_quiet = quiet_librdkafka("tests.devcluster_secure.librdkafka")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secured_cluster(tmp_path_factory, "devcluster-secure", RACKS, principals=PRINCIPALS) as info:
        yield info


class Client:
    """An admin client that records every error librdkafka reports through ``error_cb``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.errors: list[KafkaError] = []
        self.admin = AdminClient({**conf, "error_cb": self.errors.append, "logger": _quiet, "log_level": 0})

    def metadata(self) -> Any:
        return self.admin.list_topics(timeout=15)

    def wait_for_error(self, codes: set[int]) -> KafkaError:
        """The first reported error with one of ``codes``; fails after the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self.admin.poll(0.5)
            for e in self.errors:
                if e.code() in codes:
                    return e
        raise AssertionError(f"no error with code in {codes} within {DEADLINE_S}s; saw {self.errors}")

    def refused(self) -> None:
        """The cluster answers no metadata request of this client."""
        with pytest.raises(KafkaException) as caught:
            self.metadata()
        assert caught.value.args[0].code() in {KafkaError._TRANSPORT, KafkaError._TIMED_OUT}


def _create(client: Client, name: str) -> None:
    client.admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=3)], request_timeout=15)[
        name
    ].result()


def _wait_for_topic(client: Client, name: str) -> Any:
    """The topic's metadata once the broker asked knows it (creation reaches brokers asynchronously)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        md = client.admin.list_topics(name, timeout=15).topics.get(name)
        if md is not None and md.error is None and md.partitions:
            return md
        client.admin.poll(0.2)
    raise AssertionError(f"topic {name} did not appear in metadata within {DEADLINE_S}s")


def test_admin_creates_a_topic_over_scram(secured: ClusterInfo) -> None:
    admin = Client(secured.client_config("admin", via="scram"))
    name = f"secure-admin-{uuid.uuid4().hex[:8]}"
    _create(admin, name)
    md = _wait_for_topic(admin, name)
    assert sorted(md.partitions[0].replicas) == [1, 2, 3]
    assert not [e for e in admin.errors if e.code() == KafkaError._AUTHENTICATION]


def test_admin_over_mtls_sees_every_broker(secured: ClusterInfo) -> None:
    admin = Client(secured.client_config("admin", via="mtls"))
    assert sorted(admin.metadata().brokers) == [1, 2, 3]


def test_scram_with_a_wrong_password_is_refused(secured: ClusterInfo) -> None:
    conf = {**secured.client_config("router", via="scram"), "sasl.password": "not-" + uuid.uuid4().hex}
    client = Client(conf)
    client.refused()
    error = client.wait_for_error({KafkaError._AUTHENTICATION})
    assert "SCRAM-SHA-512" in error.str()


def test_client_without_credentials_is_refused_on_both_listeners(secured: ClusterInfo) -> None:
    ca_only = {"ssl.ca.location": str(secured.security.ca) if secured.security else ""}
    no_sasl = Client({"bootstrap.servers": secured.bootstrap, "security.protocol": "SSL", **ca_only})
    no_sasl.refused()
    assert secured.mtls_bootstrap is not None
    no_cert = Client({"bootstrap.servers": secured.mtls_bootstrap, "security.protocol": "SSL", **ca_only})
    no_cert.refused()
    # The broker ends the handshake with a TLS alert about the missing certificate.
    assert "certificate" in no_cert.wait_for_error({KafkaError._TRANSPORT, KafkaError._SSL}).str()


def test_certificate_from_another_ca_is_refused(secured: ClusterInfo, tmp_path: Path) -> None:
    foreign = tls.new_ca("another CA")
    key, cert = tls.client_certificate(foreign, "router")
    tls.write_private(tmp_path / "client.crt", tls.cert_pem(cert))
    tls.write_private(tmp_path / "client.key", tls.key_pem(key))
    conf = {
        **secured.client_config("router", via="mtls"),
        "ssl.certificate.location": str(tmp_path / "client.crt"),
        "ssl.key.location": str(tmp_path / "client.key"),
    }
    client = Client(conf)
    client.refused()
    assert "alert" in client.wait_for_error({KafkaError._TRANSPORT, KafkaError._SSL}).str()


def test_plaintext_to_the_tls_listeners_is_refused(secured: ClusterInfo) -> None:
    assert secured.mtls_bootstrap is not None
    for bootstrap in (secured.bootstrap, secured.mtls_bootstrap):
        client = Client({"bootstrap.servers": bootstrap, "security.protocol": "PLAINTEXT"})
        client.refused()
        client.wait_for_error({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})


@pytest.mark.parametrize("via", ["mtls", "scram"])
def test_client_is_its_principal_and_needs_an_acl(secured: ClusterInfo, via: str) -> None:
    router = Client(secured.client_config("router", via=via))  # type: ignore[arg-type]
    name = f"secure-{via}-{uuid.uuid4().hex[:8]}"
    # Authenticated (metadata answers), but nothing is allowed without an ACL.
    assert sorted(router.metadata().brokers) == [1, 2, 3]
    with pytest.raises(KafkaException) as denied:
        _create(router, name)
    assert denied.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    admin = Client(secured.client_config("admin"))
    acl = AclBinding(
        ResourceType.TOPIC,
        name,
        ResourcePatternType.LITERAL,
        "User:router",
        "*",
        AclOperation.CREATE,
        AclPermissionType.ALLOW,
    )
    admin.admin.create_acls([acl], request_timeout=15)[acl].result()
    # ACLs reach every broker through the metadata log: retry until the one asked has it.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            _create(router, name)
            break
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED or time.monotonic() > deadline:
                raise
    _wait_for_topic(admin, name)


def test_status_json_lists_listeners_and_credential_paths_never_secrets(secured: ClusterInfo) -> None:
    out = devcluster_cli(secured.state_dir, "status", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["security_protocol"] == "SASL_SSL"
    for broker, node in zip(doc["brokers"], secured.nodes, strict=True):
        protocols = {(lst["name"], lst["protocol"], lst["address"]) for lst in broker["listeners"]}
        assert protocols == {
            ("SASL_SSL", "SASL_SSL", f"127.0.0.1:{node.port}"),
            ("SSL", "SSL", f"127.0.0.1:{node.mtls_port}"),
            ("CONTROLLER", "SSL", f"127.0.0.1:{node.controller_port}"),
        }
    principals = {p["name"]: p for p in doc["security"]["principals"]}
    assert set(principals) == {"admin", *PRINCIPALS}
    for p in principals.values():
        password = Path(p["password_file"]).read_text(encoding="utf-8").strip()
        assert password and password not in out.stdout and password not in out.stderr
        assert Path(p["certificate"]).is_file() and Path(p["key"]).is_file()
    assert Path(doc["security"]["ca"]).is_file()
