"""The consumer SDK against a real cluster and a real OpenBao that is stopped mid-read: the group's
committed offset never passes the records the caller received, and the record that met the outage
is the first one the group reads next."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from router.consumer import RegionalConsumer, Rejected, Verified
from router.envelope import Opener, SealContext, Sealer
from router.envelope.frame import key_digest
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.openbao import OpenBaoTransitProvider
from router.keys.wrappers import RetryingProvider
from tests.integration.conftest_openbao import OpenBaoServer

pytestmark = pytest.mark.integration

N_RECORDS = 20
DELIVERED_BEFORE_OUTAGE = 6


def _committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=15)
        return int(tp.offset)
    finally:
        c.close()


def _read_until_stopped(c: RegionalConsumer, server: OpenBaoServer, into: list[Verified | Rejected]) -> None:
    for item in c.records(idle_timeout_s=60):
        into.append(item)
        if len(into) == DELIVERED_BEFORE_OUTAGE:
            server.stop()  # OpenBao goes away in the middle of the read


def test_openbao_stopped_mid_read_commits_only_what_was_delivered(
    kafka_cluster: Any, create_topic: Callable[..., str], openbao_factory: Callable[[], OpenBaoServer], tmp_path: Path
) -> None:
    server = openbao_factory()
    server.client().secrets.transit.create_key("rr-eu")
    ring = LocalKeyring.create(tmp_path / "signing.json", ["unused"])
    provider = RetryingProvider(OpenBaoTransitProvider(server.url, server.token, timeout_s=2.0,
                                                       verify=server.ca_file), attempts=2, initial_backoff_s=0.01)
    keys = JurisdictionKeys({"eu": (provider, "rr-eu")})
    # One DEK per record: every record the reader opens needs its own unwrap from OpenBao.
    sealer = Sealer(CachingDekManager(keys, DekPolicy(max_records=1)), LocalSigner(ring))

    topic = create_topic("crm.eu.contact", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap, "enable.idempotence": True})
    payloads: list[bytes] = []
    for i in range(N_RECORDS):
        payload = f'{{"Id": "003{i:03d}", "MailingCountry": "DE"}}'.encode()
        ctx = SealContext(f"evt-{i}", "crm.ingress", 0, i, topic, 0, "eu", "restricted", ("pii.address",),
                          "Contact", "update", None, key_digest(b"k"))  # produced with key b"k"
        sealed = sealer.seal(payload, ctx)
        producer.produce(topic, sealed.value, b"k", partition=0, headers=sealed.headers)
        payloads.append(payload)
    assert producer.flush(30) == 0

    group = f"llm-eu-{uuid.uuid4().hex[:8]}"
    config = {"bootstrap.servers": kafka_cluster.bootstrap, "group.id": group}
    delivered: list[Verified | Rejected] = []
    reader = RegionalConsumer(config, "eu", [topic], Opener(keys, LocalPublicKeys(ring)), key_retry_attempts=2,
                              key_retry_backoff_s=0.05)
    with reader, pytest.raises(KeyUnavailable) as err:
        _read_until_stopped(reader, server, delivered)
    assert err.value.retriable, "a stopped OpenBao is an outage, not a refusal"

    assert [(i.partition, i.offset) for i in delivered] == [(0, o) for o in range(DELIVERED_BEFORE_OUTAGE)]
    assert [i.plaintext for i in delivered if isinstance(i, Verified)] == payloads[:DELIVERED_BEFORE_OUTAGE]
    assert _committed(kafka_cluster.bootstrap, group, topic) == DELIVERED_BEFORE_OUTAGE

    # The next reader of the group starts at the record that met the outage (still down: it raises
    # again before delivering anything), and the committed offset stays where it was.
    again = RegionalConsumer(config, "eu", [topic], Opener(keys, LocalPublicKeys(ring)), key_retry_attempts=1,
                             key_retry_backoff_s=0.05)
    seen: list[Verified | Rejected] = []
    with again, pytest.raises(KeyUnavailable):
        seen.extend(again.records(idle_timeout_s=60))
    assert seen == []
    assert _committed(kafka_cluster.bootstrap, group, topic) == DELIVERED_BEFORE_OUTAGE
