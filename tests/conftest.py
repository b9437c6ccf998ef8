"""Shared test harness.

Every test carries exactly one of the markers ``unit`` (pure logic, no broker) or ``integration``
(real Kafka cluster, real OpenBao where stated); collection fails for a test that has neither.

The Kafka cluster for integration tests, in order of preference:

1. ``ROUTER_TEST_BOOTSTRAP=host:port,...``: an existing cluster (its brokers' racks are read from
   the cluster; tests that need the default rack topology skip if it is not there);
2. ``ROUTER_TEST_CLUSTER=docker``: the project's ``compose.yaml`` through testcontainers, skipped
   when no Docker engine answers;
3. otherwise: the project's own launcher starts a 3-node dev cluster in a temporary state
   directory for the session and stops it at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [i.nodeid for i in items if not ({"unit", "integration"} & {m.name for m in i.iter_markers()})]
    if unmarked:
        raise pytest.UsageError(
            "every test needs the marker 'unit' or 'integration'; unmarked: " + ", ".join(unmarked[:10])
        )


@dataclass(frozen=True)
class KafkaTestCluster:
    bootstrap: str
    racks: dict[int, str | None]
    """broker id -> broker.rack, as the cluster reports it."""
    source: str
    """'external', 'docker' or 'devcluster'."""
    state_dir: Path | None = None

    def brokers_in(self, prefix: str) -> list[int]:
        """Broker ids whose rack starts with ``prefix`` (e.g. 'eu-')."""
        return sorted(b for b, r in self.racks.items() if r and r.startswith(prefix))

    def client_config(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **extra}


def _describe_racks(bootstrap: str) -> dict[int, str | None]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_cluster(request_timeout=15).result()
    return {n.id: n.rack for n in desc.nodes}


def _docker_cluster() -> Iterator[KafkaTestCluster]:
    try:
        import docker  # type: ignore[import-untyped]  # testcontainers brings it; untyped

        docker.from_env().ping()
    except Exception as err:
        pytest.skip(f"ROUTER_TEST_CLUSTER=docker but no Docker engine answers: {err}")
    from testcontainers.compose import DockerCompose

    with DockerCompose(str(REPO), compose_file_name="compose.yaml", services=["kafka-1", "kafka-2", "kafka-3"]) as c:
        ports = [c.get_service_port(f"kafka-{i}", 19092 + i) for i in (1, 2, 3)]
        bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
        yield KafkaTestCluster(bootstrap, _describe_racks(bootstrap), "docker")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTestCluster]:
    """A real Kafka cluster for the whole session (see the module docstring)."""
    if bootstrap := os.environ.get("ROUTER_TEST_BOOTSTRAP"):
        yield KafkaTestCluster(bootstrap, _describe_racks(bootstrap), "external")
        return
    if os.environ.get("ROUTER_TEST_CLUSTER") == "docker":
        yield from _docker_cluster()
        return
    from router.devtools.devcluster.launcher import DevCluster

    state = tmp_path_factory.mktemp("devcluster")
    cluster = DevCluster(state)
    try:
        info = cluster.up()
        yield KafkaTestCluster(info.bootstrap, {n.node_id: n.rack for n in info.nodes}, "devcluster", state)
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def kafka_admin(kafka_cluster: KafkaTestCluster) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_cluster.client_config())


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A factory of names unique to this test run: ``unique_name('crm.eu')`` -> ``crm.eu.<uuid>``."""

    def make(prefix: str) -> str:
        return f"{prefix}.{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def unique_group(unique_name: Callable[[str], str]) -> str:
    return unique_name("test-group")


@pytest.fixture
def create_topic(kafka_admin: Any, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create fresh topics for one test (deleted afterwards).

    ``create_topic('crm.eu', assignment=[[1, 2]])`` places partition 0 on brokers 1 and 2;
    ``create_topic('t', partitions=3)`` lets the cluster place them.
    """
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def make(
        prefix: str = "test",
        *,
        partitions: int = 1,
        assignment: list[list[int]] | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        name = unique_name(prefix)
        if assignment is not None:
            topic = NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment, config=config or {})
        else:
            topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([topic], request_timeout=30)[name].result()
        created.append(name)
        # The controller has accepted the topic; wait until metadata shows every partition.
        want = len(assignment) if assignment is not None else partitions
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = kafka_admin.list_topics(name, timeout=10).topics.get(name)
            if md is not None and md.error is None and len(md.partitions) == want:
                return name
            time.sleep(0.2)
        raise AssertionError(f"topic {name} did not show {want} partitions in metadata within 30 s")

    yield make
    if created:
        with contextlib.suppress(Exception):
            for f in kafka_admin.delete_topics(created, request_timeout=30).values():
                with contextlib.suppress(Exception):
                    f.result()
