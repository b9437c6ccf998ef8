"""The consumer SDK never commits past what it delivered.

A fake librdkafka consumer (below) models what matters here: ``consume`` hands out a batch and, if
``enable.auto.offset.store`` is on, stores each returned record's offset at once (librdkafka's
default); an auto-commit may fire at any moment, so the fake commits the stored offsets on every
``consume`` call and on ``close``. The records are real envelopes sealed with the development
keyring; the key provider can be switched off to model a key outage (retriable errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition

from router.consumer import RegionalConsumer, Rejected, Verified
from router.envelope import BadSignature, Opener, SealContext, Sealer
from router.envelope.frame import key_digest
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.protocol import DataKey, KeyRef
from tests.unit.fake_kafka import FakeMessage

pytestmark = pytest.mark.unit

TOPIC = "crm.eu.contact"


class Broker:
    """Logs per partition and the committed offsets of each group."""

    def __init__(self) -> None:
        self.logs: dict[int, list[FakeMessage]] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.consumers: list[LibConsumer] = []

    def factory(self, config: dict[str, Any]) -> LibConsumer:
        c = LibConsumer(self, config)
        self.consumers.append(c)
        return c


class LibConsumer:
    """The parts of ``confluent_kafka.Consumer`` the SDK uses, with librdkafka's offset semantics."""

    def __init__(self, broker: Broker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.config = config
        self.group = config["group.id"]
        self.auto_store = config.get("enable.auto.offset.store", True) in (True, "true")
        self.auto_commit = config.get("enable.auto.commit", True) in (True, "true")
        self.positions: dict[int, int] = {}
        self.stored: dict[int, int] = {}
        self.closed = False

    def subscribe(self, topics: list[str], **_kw: Any) -> None:
        assert topics == [TOPIC]
        for p in self.broker.logs:
            self.positions[p] = self.broker.committed.get((self.group, p), 0)

    def _auto_commit(self) -> None:
        if self.auto_commit:
            for p, o in self.stored.items():
                self.broker.committed[(self.group, p)] = o

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        assert not self.closed
        self._auto_commit()  # an auto-commit can fire at any poll
        out: list[FakeMessage] = []
        for p, log in sorted(self.broker.logs.items()):
            take = log[self.positions[p] : self.positions[p] + num_messages - len(out)]
            out += take
            self.positions[p] += len(take)
        if self.auto_store:
            for m in out:
                self.stored[m.partition()] = m.offset() + 1
        return out

    def store_offsets(self, message: Any = None, offsets: list[TopicPartition] | None = None) -> None:
        if message is not None:
            self.stored[message.partition()] = message.offset() + 1
        for tp in offsets or ():
            assert tp.topic == TOPIC
            self.stored[tp.partition] = tp.offset

    def seek(self, tp: TopicPartition) -> None:
        if self.closed:
            raise RuntimeError("Consumer closed")  # what confluent_kafka raises
        self.positions[tp.partition] = tp.offset

    def commit(self, message: Any = None, offsets: Any = None, asynchronous: bool = True) -> None:
        for p, o in self.stored.items():
            self.broker.committed[(self.group, p)] = o

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.broker.committed.get((self.group, tp.partition),
                                                                                 OFFSET_INVALID)) for tp in partitions]

    def close(self) -> None:
        self._auto_commit()
        self.closed = True


class SwitchableProvider:
    """The local key provider, with an off switch: while off, every call fails as a provider outage."""

    def __init__(self, ring: LocalKeyring) -> None:
        self.inner = LocalKeyProvider(ring)
        self.down = False
        self.calls = 0

    @property
    def name(self) -> str:
        return "switchable"

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise KeyUnavailable("provider unreachable", retriable=True)

    def new_data_key(self, key_id: str) -> DataKey:
        return self.inner.new_data_key(key_id)

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        self._check()
        return self.inner.unwrap(kek, wrapped)

    def digest_key(self, key_id: str) -> bytes:
        return self.inner.digest_key(key_id)


def _ctx(partition: int, i: int) -> SealContext:
    return SealContext(f"evt-{partition}-{i}", "crm.ingress", 0, i, TOPIC, partition, "eu", "restricted",
                       ("pii.email",), "Contact", "update", None, key_digest(b"k"))  # produced with key b"k"


class World:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_partition: dict[int, int]) -> None:
        ring = LocalKeyring.create(tmp_path / "ring.json", ["eu"])
        seal_keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
        # One DEK per record: every open needs the provider (no DEK cached from an earlier record).
        sealer = Sealer(CachingDekManager(seal_keys, DekPolicy(max_records=1)), LocalSigner(ring))
        self.broker = Broker()
        self.payloads: dict[tuple[int, int], bytes] = {}
        for p, n in per_partition.items():
            log = self.broker.logs.setdefault(p, [])
            for i in range(n):
                payload = f'{{"n": {i}, "p": {p}}}'.encode()
                sealed = sealer.seal(payload, _ctx(p, i))
                log.append(FakeMessage(TOPIC, p, i, sealed.value, b"k", list(sealed.headers)))
                self.payloads[(p, i)] = payload
        self.provider = SwitchableProvider(ring)
        self.public = LocalPublicKeys(ring)
        self.provider_keys = JurisdictionKeys({"eu": (self.provider, "eu")})
        monkeypatch.setattr("confluent_kafka.Consumer", self.broker.factory)

    def consumer(self, **kw: Any) -> RegionalConsumer:
        opener = Opener(self.provider_keys, self.public)
        return RegionalConsumer({"group.id": "llm-eu", **kw.pop("config", {})}, "eu", [TOPIC], opener,
                                key_retry_attempts=kw.pop("key_retry_attempts", 2), key_retry_backoff_s=0.0, **kw)

    def committed(self, partition: int) -> int | None:
        return self.broker.committed.get(("llm-eu", partition))


def _positions(items: list[Verified | Rejected]) -> list[tuple[int, int]]:
    return [(i.partition, i.offset) for i in items]


def _read_until_the_kms_fails(w: World, c: RegionalConsumer, into: list[Verified | Rejected], *, after: int) -> None:
    """Read, switching the key provider off once ``after`` records were delivered."""
    for item in c.records(idle_timeout_s=0):
        into.append(item)
        if len(into) == after:
            w.provider.down = True  # the KMS goes away in the middle of the read


def test_records_fetched_but_not_delivered_are_not_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(tmp_path, monkeypatch, {0: 10})
    with w.consumer() as c:
        first = list(c.records(max_records=3, idle_timeout_s=0))
    assert _positions(first) == [(0, 0), (0, 1), (0, 2)]
    assert w.committed(0) == 3, "only the three delivered records are committed"
    with w.consumer() as c:
        rest = list(c.records(idle_timeout_s=0))
    assert _positions(rest) == [(0, i) for i in range(3, 10)]
    assert [v.plaintext for v in rest if isinstance(v, Verified)] == [w.payloads[(0, i)] for i in range(3, 10)]


def test_the_same_consumer_continues_after_max_records_without_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 6, 1: 4})
    with w.consumer() as c:
        a = list(c.records(max_records=4, idle_timeout_s=0))
        b = list(c.records(idle_timeout_s=0))
    got = _positions(a + b)
    assert sorted(got) == sorted(w.payloads) and len(got) == len(set(got)) == 10
    assert (w.committed(0), w.committed(1)) == (6, 4)


def test_a_key_outage_raises_and_commits_nothing_past_the_delivered_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 8})
    delivered: list[Verified | Rejected] = []
    with w.consumer() as c, pytest.raises(KeyUnavailable) as err:
        _read_until_the_kms_fails(w, c, delivered, after=3)
    assert err.value.retriable
    assert _positions(delivered) == [(0, 0), (0, 1), (0, 2)]
    assert all(isinstance(i, Verified) for i in delivered)
    assert w.committed(0) == 3, "the record that met the outage, and everything after it, stays uncommitted"

    w.provider.down = False
    with w.consumer() as c:
        after = list(c.records(idle_timeout_s=0))
    assert _positions(after) == [(0, i) for i in range(3, 8)]
    assert all(isinstance(i, Verified) for i in after)
    assert w.committed(0) == 8


def test_after_an_outage_the_same_consumer_delivers_the_failed_record_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 5, 1: 5})
    with w.consumer() as c:
        seen: list[Verified | Rejected] = []
        with pytest.raises(KeyUnavailable):
            _read_until_the_kms_fails(w, c, seen, after=2)
        w.provider.down = False
        seen += list(c.records(idle_timeout_s=0))
    got = _positions(seen)
    assert sorted(got) == sorted(w.payloads) and len(got) == 10, "no record skipped, none twice"
    assert all(isinstance(i, Verified) for i in seen)
    assert (w.committed(0), w.committed(1)) == (5, 5)


def test_a_short_outage_is_retried_and_the_record_delivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(tmp_path, monkeypatch, {0: 3})
    outage = {"left": 2}
    real = w.provider._check

    def flaky() -> None:
        if outage["left"] > 0:
            outage["left"] -= 1
            w.provider.calls += 1
            raise KeyUnavailable("provider unreachable", retriable=True)
        real()

    monkeypatch.setattr(w.provider, "_check", flaky)
    with w.consumer(key_retry_attempts=3) as c:
        items = list(c.records(idle_timeout_s=0))
    assert _positions(items) == [(0, 0), (0, 1), (0, 2)]
    assert all(isinstance(i, Verified) for i in items)
    assert outage["left"] == 0 and w.committed(0) == 3


def test_a_record_that_fails_verification_is_rejected_visibly_and_then_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 3})
    bad = w.broker.logs[0][1]
    value = bytearray(bad._value or b"")
    value[-1] ^= 0x01  # the signature's last byte
    bad._value = bytes(value)
    with w.consumer() as c:
        items = list(c.records(idle_timeout_s=0))
    assert [type(i).__name__ for i in items] == ["Verified", "Rejected", "Verified"]
    rejected = items[1]
    assert isinstance(rejected, Rejected) and isinstance(rejected.error, BadSignature)
    assert w.committed(0) == 3


def test_the_caller_cannot_turn_automatic_offset_storing_back_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 4})
    with w.consumer(config={"enable.auto.offset.store": True}) as c:
        items = list(c.records(max_records=1, idle_timeout_s=0))
    assert len(items) == 1
    assert w.broker.consumers[-1].config["enable.auto.offset.store"] is False
    assert w.committed(0) == 1


def test_a_record_the_caller_stops_at_is_delivered_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At least once: a ``break`` means the caller may not have finished with the record it holds."""
    w = World(tmp_path, monkeypatch, {0: 4})
    with w.consumer() as c:
        for item in c.records(idle_timeout_s=0):
            if item.offset == 1:
                break
    assert w.committed(0) == 1
    with w.consumer() as c:
        assert _positions(list(c.records(idle_timeout_s=0))) == [(0, 1), (0, 2), (0, 3)]


def test_commit_commits_what_was_delivered_when_auto_commit_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 5})
    c = w.consumer(config={"enable.auto.commit": False})
    got = list(c.records(max_records=2, idle_timeout_s=0))
    assert w.committed(0) is None, "nothing is committed before commit() when auto-commit is off"
    c.commit()
    assert len(got) == 2 and w.committed(0) == 2
    c.close()


def test_a_generator_finalised_after_close_neither_fails_nor_commits_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, monkeypatch, {0: 4})
    c = w.consumer()
    it = c.records(idle_timeout_s=0)
    first = next(it)
    c.close()
    it.close()  # what garbage collection does later: no seek on a closed consumer
    assert first.offset == 0 and w.committed(0) is None
    assert w.broker.consumers[-1].closed
