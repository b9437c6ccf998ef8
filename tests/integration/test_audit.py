"""The audit trail on a real cluster: transactional chains (one per ingress partition, several in
one audit partition), their committed tails, ``audit verify``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from router.audit.chain import AuditChain, ChainTail
from router.audit.kafka import TAIL_WINDOW, read_audit, read_chain_tails, read_recorded_placements
from router.audit.record import AuditFields, ChainId, chain_key, chain_partition
from tests.conftest import REPO, KafkaTestCluster
from tests.kafka_util import produce_all
from tests.unit.test_audit_record import fields

AUDIT_PARTITIONS = 3
A0, A1, B0, C0 = ("A", 0), ("A", 1), ("B", 0), ("C", 0)
"""Over 3 audit partitions A[0] and A[1] are placed in partition 0, B[0] in 1, C[0] in 2."""

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

    def transaction(self, topic: str, records: list[tuple[int, bytes, bytes | None]], *, commit: bool = True) -> None:
        self.producer.begin_transaction()
        for partition, value, key in records:
            self.producer.produce(topic, value, key=key, partition=partition)
        if commit:
            self.producer.commit_transaction(30)
        else:
            self.producer.flush(30)
            self.producer.abort_transaction(30)


def _consumer_config(cluster: KafkaTestCluster) -> dict[str, Any]:
    return cluster.client_config()


def _f(source: tuple[str, int], i: int) -> AuditFields:
    return fields(i, source_topic=source[0], source_partition=source[1])


def _rec(chain: AuditChain, source: tuple[str, int], i: int) -> tuple[int, bytes, bytes]:
    """A chained record as the router produces it: to the chain's audit partition, keyed by chain."""
    return chain_partition(*source, chain.audit_partitions), chain.append(source, _f(source, i)), chain_key(*source)


def _write_chains(cluster: KafkaTestCluster, topic: str) -> AuditChain:
    """A[0]: 12 records over 3 transactions, interleaved with A[1]'s 4 (same audit partition), then
    an aborted transaction of A[0] longer than the tail window; B[0] and C[0]: 3 records each; D[0]
    nothing. Returns the committed chain state."""
    assert [chain_partition(*s, AUDIT_PARTITIONS) for s in (A0, A1, B0, C0)] == [0, 0, 1, 2]
    writer = _TxnWriter(cluster.bootstrap)
    chain = AuditChain(audit_partitions=AUDIT_PARTITIONS)
    n = 0
    for size in (5, 4, 3):
        batch = [_rec(chain, A0, n + i) for i in range(size)]
        batch.insert(2, _rec(chain, A1, 50 + n))
        writer.transaction(topic, batch)
        n += size
    writer.transaction(topic, [_rec(chain, A1, 99)])
    writer.transaction(topic, [_rec(chain, s, 100 + i) for i in range(3) for s in (B0, C0)])
    committed = chain.checkpoint()
    aborted = [_rec(chain, A0, 200 + i) for i in range(TAIL_WINDOW * 2)]
    writer.transaction(topic, aborted, commit=False)
    chain.rollback(committed)
    return chain


def _tails(cluster: KafkaTestCluster, topic: str, sources: list[tuple[str, int]], **kw: Any) -> dict[Any, Any]:
    conf = _consumer_config(cluster)
    out: dict[Any, Any] = {}
    for p in sorted({chain_partition(*s, AUDIT_PARTITIONS) for s in sources}):
        out.update(read_chain_tails(conf, topic, p, [s for s in sources if chain_partition(*s, AUDIT_PARTITIONS) == p],
                                    **kw))
    return out


def _config(tmp_path: Path, cluster: KafkaTestCluster, topic: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "clusters": {"default": {"bootstrap": cluster.bootstrap, "allow_plaintext": True}},
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


def test_chain_tails_are_the_last_committed_records_despite_markers_aborts_and_other_chains(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str]
) -> None:
    topic = create_topic("audit", partitions=AUDIT_PARTITIONS)
    chain = _write_chains(kafka_cluster, topic)
    tails = _tails(kafka_cluster, topic, [A0, B0, A1, C0, ("D", 0)])
    assert tails == {ChainId(*s): chain.tail(s) for s in (A0, B0, A1, C0)} | {ChainId("D", 0): None}
    assert tails[ChainId(*A0)] == ChainTail(11, chain.tail(A0).hash)  # type: ignore[union-attr]
    assert tails[ChainId(*A1)].seq == 3  # type: ignore[union-attr]
    assert set(read_recorded_placements(_consumer_config(kafka_cluster), topic).values()) == {AUDIT_PARTITIONS}


def test_chains_without_a_committed_ingress_offset_are_not_read(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str], unique_group: str
) -> None:
    """With the router's group id, a chain whose ingress partition has no committed offset in the
    group has no committed record (offsets and audit records commit together), so it is answered
    None without a scan. Here both chains have records but only ingress[0]'s offset is committed,
    which shows the answer came from the offsets."""
    topic = create_topic("audit", partitions=1)
    ingress = create_topic("ingress", partitions=2)
    chain = AuditChain(audit_partitions=1)
    sources = [(ingress, 0), (ingress, 1)]
    _TxnWriter(kafka_cluster.bootstrap).transaction(topic, [_rec(chain, s, i) for i in range(3) for s in sources])
    committer = Consumer({"bootstrap.servers": kafka_cluster.bootstrap, "group.id": unique_group,
                          "enable.auto.commit": False})
    try:
        committer.commit(offsets=[TopicPartition(ingress, 0, 3)], asynchronous=False)
    finally:
        committer.close()
    conf = _consumer_config(kafka_cluster)
    assert read_chain_tails(conf, topic, 0, sources, group_id=unique_group) == {
        ChainId(ingress, 0): chain.tail((ingress, 0)), ChainId(ingress, 1): None}
    assert read_chain_tails(conf, topic, 0, sources) == {ChainId(*s): chain.tail(s) for s in sources}


def test_resumed_chains_continue_and_verify(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = create_topic("audit", partitions=AUDIT_PARTITIONS)
    _write_chains(kafka_cluster, topic)
    sources = [A0, B0, A1, C0, ("D", 0)]
    restarted = AuditChain(audit_partitions=AUDIT_PARTITIONS)  # a new router instance learns the tails
    for s, tail in _tails(kafka_cluster, topic, sources).items():
        restarted.set_tail((s.source_topic, s.partition), tail)
    _TxnWriter(kafka_cluster.bootstrap).transaction(topic, [_rec(restarted, s, 300 + i) for i, s in enumerate(sources)])

    done = _verify_cli(_config(tmp_path, kafka_cluster, topic), kafka_cluster, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] is True
    assert out["records"] == 12 + 4 + 3 + 3 + len(sources)
    assert {c["chain"]: c["tail"]["seq"] for c in out["chains"]} == {
        "A[0]": 12, "A[1]": 4, "B[0]": 3, "C[0]": 3, "D[0]": 0}
    assert {c["chain"]: c["partition"] for c in out["chains"]} == {
        f"{t}[{p}]": chain_partition(t, p, AUDIT_PARTITIONS) for t, p in sources}


def _is(value: bytes, source: tuple[str, int]) -> bool:
    from router.audit.record import decode_audit

    f = decode_audit(value).fields
    return (f.source_topic, f.source_partition) == source


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
    original = [v for p, _, v in read_audit(_consumer_config(kafka_cluster), source)
                if p == 0 and v is not None and _is(v, A0)]
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
    (a0,) = [c for c in out["chains"] if c["chain"] == "A[0]"]
    assert a0["break"]["offset"] == offset
    assert a0["break"]["kind"] == kind
    assert as_text.returncode == 1
    assert f"break: partition 0 offset {offset}: {kind}" in as_text.stdout


def test_verify_of_a_missing_topic_is_a_clear_error(
    kafka_cluster: KafkaTestCluster, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    missing = unique_name("audit-missing")
    done = _verify_cli(_config(tmp_path, kafka_cluster, missing), kafka_cluster)
    assert done.returncode == 2
    assert f"audit topic {missing!r} cannot be read" in done.stderr


def test_verify_reports_two_writers_on_one_chain(
    kafka_cluster: KafkaTestCluster, create_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The defect this layout removes, as verify sees it: two writers each believing they hold
    A[0]'s tail (seq 0 twice) are reported as a duplicated record of chain A[0]."""
    topic = create_topic("audit", partitions=AUDIT_PARTITIONS)
    one, two = AuditChain(audit_partitions=AUDIT_PARTITIONS), AuditChain(audit_partitions=AUDIT_PARTITIONS)
    writer = _TxnWriter(kafka_cluster.bootstrap)
    writer.transaction(topic, [_rec(one, A0, 0), _rec(one, A1, 1)])
    writer.transaction(topic, [_rec(two, A0, 2)])

    done = _verify_cli(_config(tmp_path, kafka_cluster, topic), kafka_cluster)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "duplicated: seq 0 after seq 0 (chain A[0])" in done.stdout
    assert "chain A[1] in partition 0: 1 records" in done.stdout
