"""What the integration tests on a secured dev cluster (TLS, SCRAM, StandardAuthorizer) share: a
module's own secured cluster, a librdkafka logger that keeps the refusals a test provokes out of
the output, and a consumer read that stops at the first record or authorization error.

Each module starts its own cluster (``DevCluster(...).up(racks, secure=True)``) in a state
directory of its own and stops it at the end::

    @pytest.fixture(scope="module")
    def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
        with secured_cluster(tmp_path_factory, "devcluster-acls", RACKS) as info:
            yield info
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError

from router.devtools.devcluster.launcher import ClusterInfo, DevCluster


def quiet_librdkafka(name: str) -> logging.Logger:
    """A logger for librdkafka's ``logger`` setting that goes nowhere (no propagation)."""
    quiet = logging.getLogger(name)
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return quiet


def _secure_api_missing() -> str | None:
    if "secure" not in inspect.signature(DevCluster.up).parameters:
        return "DevCluster.up has no secure=True (the secured dev cluster is not in this tree)"
    if not hasattr(ClusterInfo, "client_config"):
        return "ClusterInfo.client_config(principal, via) is missing (the secured dev cluster is not in this tree)"
    return None


@contextlib.contextmanager
def secured_cluster(
    tmp_path_factory: pytest.TempPathFactory, name: str, racks: tuple[str, ...], **up_options: Any
) -> Iterator[ClusterInfo]:
    """A secured dev cluster on ``racks`` (heap 384 MB a node) in a new state directory named after
    ``name``, stopped when the block ends; ``up_options`` go to ``DevCluster.up`` (e.g. principals).
    Skips when this tree has no secured dev cluster."""
    missing = _secure_api_missing()
    if missing:
        pytest.skip(missing)
    cluster = DevCluster(tmp_path_factory.mktemp(name))
    try:
        yield cluster.up(racks, secure=True, heap_mb=384, **up_options)
    finally:
        cluster.down()


def read_first(conf: dict[str, Any], topic: str, group: str, *, deadline_s: float) -> tuple[list[bytes], set[int]]:
    """What a consumer of ``group`` reads from the start of ``topic`` within the deadline: values,
    and the error codes it got (it stops at the first value or authorization error)."""
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    values: list[bytes] = []
    errors: set[int] = set()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and not values:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if (err := msg.error()) is not None:
                errors.add(err.code())
                if err.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
                    break
                continue
            values.append(msg.value())
    finally:
        consumer.close()
    return values, errors
