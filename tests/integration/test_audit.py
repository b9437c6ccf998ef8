"""The audit trail on a real cluster: transactional chains, the committed tail, ``audit verify``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from router.audit.chain import AuditChain, ChainTail
from router.audit.kafka import TAIL_WINDOW, read_audit, read_chain_tail
from tests.conftest import REPO, KafkaTestCluster
from tests.kafka_util import produce_all
from tests.unit.test_audit_record import fields

pytestmark = pytest.mark.integration


class _TxnWriter:
    """A transactional producer with a transactional.id unique to the test."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "transactional.id": f"test-audit-{uuid.uuid4().hex}",
            "linger.ms": 5,
        })
        self.producer.init_transactions(30)

    def transaction(self, topic: str, records: list[tuple[int, bytes]], *, commit: bool = True) -> None:
        self.producer.begin_transaction()
        for partition, value in records:
            self.producer.produce(topic, value, partition=partition)
        if commit:
            self.producer.commit_transaction(30)
        else:
            self.producer.flush(30)
            self.producer.abort_transaction(30)


def _consumer_config(cluster: KafkaTestCluster) -> dict[str, Any]:
    return cluster.client_config()


def _write_chains(cluster: KafkaTestCluster, topic: str) -> AuditChain:
    """Partition 0: 12 records over 3 transactions, then an aborted transaction longer than the
    tail window; partition 1: 3 records; partition 2: nothing. Returns the committed chain state."""
    writer = _TxnWriter(cluster.bootstrap)
    chain = AuditChain()
    n = 0
    for size in (5, 4, 3):
        writer.transaction(topic, [(0, chain.append(0, fields(n + i))) for i in range(size)])
        n += size
    writer.transaction(topic, [(1, chain.append(1, fields(100 + i))) for i in range(3)])
    committed = chain.checkpoint()
    aborted = [(0, chain.append(0, fields(200 + i))) for i in range(TAIL_WINDOW * 2)]
    writer.transaction(topic, aborted, commit=False)
    chain.rollback(committed)
    return chain


def _config(tmp_path: Path, cluster: KafkaTestCluster, topic: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "clusters": {"default": {"bootstrap": cluster.bootstrap}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "audit": {"topic": topic, "jurisdiction": "eu"},
    }))
    return path


def _verify_cli(config: Path, cluster: KafkaTestCluster, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "audit", "verify", "--config", str(config),
         "--bootstrap", cluster.bootstrap, "--timeout", "60", *extra],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )


def test_chain_tail_is_the_last_committed_record_despite_markers_and_aborts(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str]
) -> None:
    topic = create_topic("audit", partitions=3)
    chain = _write_chains(kafka_cluster, topic)
    conf = _consumer_config(kafka_cluster)
    assert read_chain_tail(conf, topic, 0) == chain.tail(0)
    assert read_chain_tail(conf, topic, 0) == ChainTail(11, chain.tail(0).hash)  # type: ignore[union-attr]
    assert read_chain_tail(conf, topic, 1) == chain.tail(1)
    assert read_chain_tail(conf, topic, 2) is None


def test_resumed_chain_continues_and_verifies(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = create_topic("audit", partitions=3)
    _write_chains(kafka_cluster, topic)
    conf = _consumer_config(kafka_cluster)
    restarted = AuditChain()  # a new router instance learns the tails from the topic
    for p in range(3):
        restarted.set_tail(p, read_chain_tail(conf, topic, p))
    _TxnWriter(kafka_cluster.bootstrap).transaction(
        topic, [(p, restarted.append(p, fields(300 + p))) for p in range(3)]
    )

    done = _verify_cli(_config(tmp_path, kafka_cluster, topic), kafka_cluster, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] is True
    assert out["records"] == 12 + 3 + 3
    assert [(p["partition"], p["tail"]["seq"]) for p in out["partitions"]] == [(0, 12), (1, 3), (2, 0)]


def _tampered(records: list[bytes], how: str) -> tuple[list[bytes], int, str]:
    """A tampered copy of a partition's records, the offset of the expected break and its kind."""
    if how == "edited":
        edited = bytearray(records[4])
        edited[-3] ^= 0x20
        return [*records[:4], bytes(edited), *records[5:]], 4, "edited"
    if how == "deleted":
        return [*records[:6], *records[7:]], 6, "deleted"
    assert how == "reordered"
    return [*records[:2], records[3], records[2], *records[4:]], 2, "reordered"


@pytest.mark.parametrize("how", ["edited", "deleted", "reordered"])
def test_tampered_copy_fails_verification_naming_the_break(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str], tmp_path: Path, how: str
) -> None:
    source = create_topic("audit", partitions=3)
    _write_chains(kafka_cluster, source)
    original = [v for p, _, v in read_audit(_consumer_config(kafka_cluster), source) if p == 0]
    assert len(original) == 12
    copy, offset, kind = _tampered(original, how)
    target = create_topic("audit-tampered", partitions=1)
    produce_all(kafka_cluster.bootstrap, target, [(None, v) for v in copy], partition=0)
    config = _config(tmp_path, kafka_cluster, source)

    as_json = _verify_cli(config, kafka_cluster, "--topic", target, "--json")
    as_text = _verify_cli(config, kafka_cluster, "--topic", target)

    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    out = json.loads(as_json.stdout)
    assert out["ok"] is False
    assert out["partitions"][0]["break"]["offset"] == offset
    assert out["partitions"][0]["break"]["kind"] == kind
    assert as_text.returncode == 1
    assert f"break: partition 0 offset {offset}: {kind}" in as_text.stdout


def test_verify_of_a_missing_topic_is_a_clear_error(
    kafka_cluster: KafkaTestCluster, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    missing = unique_name("audit-missing")
    done = _verify_cli(_config(tmp_path, kafka_cluster, missing), kafka_cluster)
    assert done.returncode == 2
    assert f"audit topic {missing!r} cannot be read" in done.stderr
