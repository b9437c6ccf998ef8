"""A version-2 record produced into its partition again is refused (ReplayGuard, and through the SDK)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from router.consumer import RegionalConsumer, Rejected, Verified
from router.envelope import (
    MalformedEnvelope,
    OpenedRecord,
    Opener,
    RecordKeyMismatch,
    Replayed,
    ReplayGuard,
    ReplayReason,
    SealContext,
    Sealer,
    WrongPartition,
)
from router.envelope.frame import key_digest
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.protocol import KeyRef
from tests.unit.fake_kafka import FakeMessage
from tests.unit.test_consumer_offsets import TOPIC, Broker

pytestmark = pytest.mark.unit

KEY = b"k"


def _ctx(source_partition: int, source_offset: int, dest_partition: int = 0) -> SealContext:
    return SealContext(f"evt-{source_partition}-{source_offset}", "crm.ingress", source_partition, source_offset,
                       TOPIC, dest_partition, "eu", "restricted", ("pii.email",), "Contact", "update", None,
                       key_digest(KEY))


def _opened(source_partition: int, source_offset: int, version: int = 2) -> OpenedRecord:
    return OpenedRecord(b"", _ctx(source_partition, source_offset), KeyRef("eu", 1), KeyRef("s", 1), version)


def _verdict(guard: ReplayGuard, offset: int, record: OpenedRecord, partition: int = 0) -> str:
    try:
        guard.check(TOPIC, partition, offset, record)
    except Replayed as err:
        where = (err.topic, err.partition, err.offset)
        return err.reason.value if where == (TOPIC, partition, offset) else f"wrong position {where}"
    return "ok"


def test_the_same_source_position_at_a_later_offset_is_a_duplicate() -> None:
    g = ReplayGuard(window=100)
    assert [_verdict(g, o, _opened(0, s)) for o, s in ((10, 1), (11, 2), (12, 3))] == ["ok", "ok", "ok"]
    assert _verdict(g, 13, _opened(0, 3)) == "DUPLICATE"  # the newest again
    assert _verdict(g, 14, _opened(0, 4)) == "ok"  # the stream goes on


def test_an_older_position_of_a_source_after_a_newer_one_is_out_of_order_when_asked() -> None:
    g = ReplayGuard(window=100, refuse_out_of_order=True)
    for o, s in ((0, 5), (1, 6), (2, 7)):
        assert _verdict(g, o, _opened(0, s)) == "ok"
    assert _verdict(g, 3, _opened(0, 6)) == "DUPLICATE"
    assert _verdict(g, 4, _opened(0, 4)) == "OUT_OF_ORDER"  # never seen here, but older than offset 7
    # Another source's positions are independent (ingress partitions interleave in a destination).
    assert _verdict(g, 5, _opened(1, 4)) == "ok"
    assert _verdict(g, 6, _opened(1, 1)) == "OUT_OF_ORDER"
    # Read again after a seek back, each keeps its verdict.
    assert [_verdict(g, o, _opened(s, x)) for o, s, x in ((3, 0, 6), (4, 0, 4), (5, 1, 4))] == [
        "DUPLICATE", "OUT_OF_ORDER", "ok"]


def test_by_default_an_older_position_never_delivered_here_is_accepted() -> None:
    """``quarantine replay`` writes a record with its original source position after newer
    records of its source: not a copy of anything delivered in this partition."""
    g = ReplayGuard(window=100)
    for o, s in ((0, 5), (1, 6), (2, 7)):
        assert _verdict(g, o, _opened(0, s)) == "ok"
    assert _verdict(g, 3, _opened(0, 4)) == "ok"
    assert _verdict(g, 4, _opened(0, 4)) == "DUPLICATE"
    assert _verdict(g, 5, _opened(0, 6)) == "DUPLICATE"


def test_reading_the_same_offset_again_is_a_redelivery_not_a_replay() -> None:
    g = ReplayGuard(window=100)
    for o in range(5):
        assert _verdict(g, o, _opened(0, o)) == "ok"
    assert _verdict(g, 5, _opened(0, 2)) == "DUPLICATE"
    # The consumer seeks back to offset 1 (rebalance, at-least-once): each record gets its first verdict.
    assert [_verdict(g, o, _opened(0, s)) for o, s in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 2))] == [
        "ok", "ok", "ok", "ok", "DUPLICATE"]
    assert _verdict(g, 6, _opened(0, 5)) == "ok"


def test_a_replay_beyond_the_window_is_not_detected() -> None:
    g2 = ReplayGuard(window=3)
    assert _verdict(g2, 0, _opened(0, 0)) == "ok"
    assert _verdict(g2, 3, _opened(0, 0)) == "DUPLICATE"  # 3 offsets later: inside the window
    g3 = ReplayGuard(window=3)
    assert _verdict(g3, 0, _opened(0, 0)) == "ok"
    assert _verdict(g3, 4, _opened(0, 0)) == "ok"  # 4 offsets later: outside (the documented limit)


def test_a_restarted_source_is_refused_only_until_its_old_positions_leave_the_window() -> None:
    g = ReplayGuard(window=4, refuse_out_of_order=True)
    for o in range(3):
        assert _verdict(g, o, _opened(0, 100 + o)) == "ok"
    # The ingress topic was re-created: its offsets start at 0 again.
    verdicts = [_verdict(g, o, _opened(0, o - 3)) for o in range(3, 10)]
    assert verdicts == ["OUT_OF_ORDER"] * 4 + ["ok"] * 3  # until offset 2 is more than 4 offsets back
    g = ReplayGuard(window=4)  # the default: only positions that collide are refused
    for o in range(3):
        assert _verdict(g, o, _opened(0, o)) == "ok"
    assert [_verdict(g, o, _opened(0, o - 3)) for o in range(3, 10)] == ["DUPLICATE"] * 3 + ["ok"] * 4


def test_partitions_are_independent_and_version_1_is_not_checked() -> None:
    g = ReplayGuard(window=100)
    assert _verdict(g, 0, _opened(0, 1), partition=0) == "ok"
    assert _verdict(g, 0, _opened(0, 1), partition=1) == "ok"  # the opener refuses a moved record; not us
    assert _verdict(g, 1, _opened(0, 1, version=1)) == "ok"
    assert _verdict(g, 2, _opened(0, 1, version=1)) == "ok"
    with pytest.raises(MalformedEnvelope):
        ReplayGuard(window=0)


# -- through the consumer SDK ------------------------------------------------------------------


class Log:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        ring = LocalKeyring.from_keys({"eu": {1: os.urandom(32)}}, {"router-signing": {1: os.urandom(32)}})
        keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
        self.sealer = Sealer(CachingDekManager(keys), LocalSigner(ring))
        self.v1 = Sealer(CachingDekManager(keys), LocalSigner(ring), version=1)
        self.opener = Opener(keys, LocalPublicKeys(ring))
        self.broker = Broker()
        monkeypatch.setattr("confluent_kafka.Consumer", self.broker.factory)

    def append(self, partition: int, value: bytes, headers: list[tuple[str, bytes]], key: bytes | None = KEY) -> None:
        log = self.broker.logs.setdefault(partition, [])
        log.append(FakeMessage(TOPIC, partition, len(log), value, key, list(headers)))

    def read(self, **kw: Any) -> list[Verified | Rejected]:
        with RegionalConsumer({"group.id": "g"}, "eu", [TOPIC], self.opener, **kw) as c:
            return list(c.records(idle_timeout_s=0))


def _summary(items: list[Verified | Rejected]) -> list[str]:
    out = []
    for i in items:
        if isinstance(i, Verified):
            out.append(f"{i.partition}@{i.offset} ok{'' if i.replay_protected else ' v1'}")
        else:
            reason = getattr(i.error, "reason", None)
            out.append(f"{i.partition}@{i.offset} {type(i.error).__name__}{' ' + reason.value if reason else ''}")
    return out


def test_the_consumer_refuses_a_replay_a_moved_record_and_a_changed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log(monkeypatch)
    recs = [log.sealer.seal(f"p{i}".encode(), _ctx(0, i)) for i in range(3)]
    for r in recs:
        log.append(0, r.value, r.headers)
    log.append(0, recs[1].value, recs[1].headers)  # offset 3: record 1 produced again
    log.append(0, recs[2].value, recs[2].headers, key=b"other")  # offset 4: copied under another key
    log.append(1, recs[0].value, recs[0].headers)  # partition 1: moved from partition 0
    old = log.v1.seal(b"old", dataclasses.replace(_ctx(0, 0), record_key_digest=b""))
    log.append(0, old.value, old.headers)  # offset 5: a version 1 record (no key, no replay check)
    log.append(0, old.value, old.headers)  # offset 6: the same, not replay-protected
    items = log.read()
    assert sorted(_summary(items)) == sorted([
        "0@0 ok", "0@1 ok", "0@2 ok", "0@3 Replayed DUPLICATE", "0@4 RecordKeyMismatch", "0@5 ok v1", "0@6 ok v1",
        "1@0 WrongPartition",
    ])
    rejected = {(i.partition, i.offset): i.error for i in items if isinstance(i, Rejected)}
    assert isinstance(rejected[(0, 3)], Replayed) and rejected[(0, 3)].reason is ReplayReason.DUPLICATE
    assert isinstance(rejected[(0, 4)], RecordKeyMismatch)
    assert isinstance(rejected[(1, 0)], WrongPartition)


def test_replay_window_zero_turns_the_check_off(monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log(monkeypatch)
    rec = log.sealer.seal(b"p", _ctx(0, 0))
    log.append(0, rec.value, rec.headers)
    log.append(0, rec.value, rec.headers)
    assert _summary(log.read(replay_window=0)) == ["0@0 ok", "0@1 ok"]
    log2 = Log(monkeypatch)
    rec = log2.sealer.seal(b"p", _ctx(0, 0))
    log2.append(0, rec.value, rec.headers)
    log2.append(0, rec.value, rec.headers)
    assert _summary(log2.read(replay_window=5)) == ["0@0 ok", "0@1 Replayed DUPLICATE"]
