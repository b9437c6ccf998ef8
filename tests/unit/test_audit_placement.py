"""Placement snapshots in the audit trail (format 4): the router writes a placement record into a
chain before the first decision that relies on a snapshot the chain does not hold, decisions
reference it by hash, and ``verify_chain`` proves residency from the trail alone.

The placement is the real :class:`router.placement.kafka.PlacementWatch` behind the router's own
adapter (``_WatchPlacement``), fed by a fake cluster description (brokers, racks, replica lists)
on a hand-driven clock; the expected replicas and jurisdictions below are that description's.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import pytest

from router.audit.chain import AuditChain, BreakKind, verify_chain
from router.audit.kafka import scan_chain_tails
from router.audit.record import (
    ZERO_HASH,
    AuditRecord,
    NotADecisionRecord,
    PlacementRecord,
    PlacementSnapshot,
    ReplayLink,
    canonical_bytes,
    chain_hash,
    chain_key,
    chain_partition,
    decode_audit,
    decode_entry,
    encode_decision,
    encode_placement,
    encode_v4_fastavro,
    is_placement_record,
)
from router.config.loader import parse_config
from router.errors import ReasonCode
from router.pipeline.app import _WatchPlacement
from router.pipeline.engine import StallError
from router.pipeline.processor import RouterProcessor
from router.placement.kafka import PlacementWatch
from router.placement.model import ClusterSnapshot, canonical_json, jurisdictions_sha256, snapshot_content, verify
from tests.unit.fake_kafka import FakeMessage
from tests.unit.test_audit_record import fields, format1_records
from tests.unit.test_audit_tails import TOPIC, FakeAuditPartition
from tests.unit.test_pipeline_processor import DIGESTS, _keys, _route, settings

pytestmark = pytest.mark.unit

EU_BROKERS = {1: "eu-a", 2: "eu-b", 3: "eu-c"}
US_BROKERS = {4: "us-a", 5: "us-b", 6: "us-c"}
REQUIRED = {"crm.eu.contact": "eu", "quarantine.eu": "eu", "quarantine.us": "us", "audit": "eu", "ingress": "eu"}
JURISDICTIONS = {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}}


def _config() -> Any:
    return parse_config({
        "clusters": {"default": {"bootstrap": "fake:9092"}},
        "jurisdictions": JURISDICTIONS,
        "topics": [{"name": t, "jurisdiction": j} for t, j in REQUIRED.items() if t != "ingress"],
    }, "test.yaml")


def _replicas(j: str, p: int) -> tuple[int, ...]:
    ids = sorted(EU_BROKERS if j == "eu" else US_BROKERS)
    return tuple(ids[(p + i) % 3] for i in range(3))


class Cluster:
    """What the fake cluster reports: every required topic with 3 partitions on its jurisdiction's
    three brokers (rotated), until a test moves a replica."""

    def __init__(self) -> None:
        self.brokers: dict[int, str | None] = {**EU_BROKERS, **US_BROKERS}
        self.topics = {t: {p: _replicas(j, p) for p in range(3)} for t, j in REQUIRED.items()}
        self.now = 100.0

    def snapshot_fn(self, _admin: Any, topics: Iterable[str], *, timeout: float, clock: Any) -> ClusterSnapshot:
        del timeout
        wanted = set(topics)
        return ClusterSnapshot(dict(self.brokers), {t: dict(p) for t, p in self.topics.items() if t in wanted}, clock())

    def clock(self) -> float:
        return self.now


def _placement(cluster: Cluster) -> tuple[PlacementWatch, _WatchPlacement]:
    config = _config()
    watch = PlacementWatch(None, REQUIRED, config.jurisdiction_of_rack, clock=cluster.clock,
                           snapshot_fn=cluster.snapshot_fn, recheck_interval_s=5, max_verdict_age_s=30)
    watch.refresh()
    return watch, _WatchPlacement(watch, jurisdiction_of_rack=config.jurisdiction_of_rack,
                                  jurisdictions_sha256=jurisdictions_sha256(config))


def _processor(cluster: Cluster) -> tuple[RouterProcessor, PlacementWatch]:
    sealer, _eu, _us = _keys()
    watch, placement = _placement(cluster)
    proc = RouterProcessor(_route(), placement, sealer, AuditChain(), settings(), DIGESTS[0])
    return proc, watch


def _batch(proc: RouterProcessor, partition: int, start: int, n: int) -> list[bytes]:
    """Process ``n`` records of ingress[partition]; returns the audit records written, in order."""
    msgs = [FakeMessage("ingress", partition, start + i, f"payload-{start + i}".encode()) for i in range(n)]
    return [o.value for o in proc.process(msgs) if o.topic == "audit"]  # type: ignore[arg-type, misc]


def _trail(values: list[bytes], partition: int = 0) -> list[tuple[int, int, bytes]]:
    return [(partition, i, v) for i, v in enumerate(values)]


def test_the_first_batch_writes_the_snapshot_before_the_decisions_that_reference_it() -> None:
    cluster = Cluster()
    proc, _watch = _processor(cluster)
    audit = _batch(proc, 0, 0, 4)
    assert len(audit) == 5
    first, decisions = decode_entry(audit[0]), [decode_entry(v) for v in audit[1:]]
    assert isinstance(first, PlacementRecord) and is_placement_record(audit[0])
    assert all(isinstance(d, AuditRecord) and not is_placement_record(v) for d, v in zip(decisions, audit[1:],
                                                                                        strict=True))
    assert [r.seq for r in (first, *decisions)] == [0, 1, 2, 3, 4]  # one chain, the placement record a link of it
    assert (first.source_topic, first.source_partition) == ("ingress", 0)
    snap = first.snapshot
    assert snap.sha256 == hashlib.sha256(snap.content).digest() == first.snapshot_sha256
    for d in decisions:
        assert isinstance(d, AuditRecord)
        assert d.fields.placement_snapshot == snap.sha256
        assert (d.fields.destination_topic, d.fields.destination_jurisdiction) == ("crm.eu.contact", "eu")
    # the snapshot says what the cluster said, and what the config maps its racks to
    content = json.loads(snap.content)
    for t, j in REQUIRED.items():
        assert content["topics"][t]["jurisdiction"] == j
        assert content["topics"][t]["partitions"] == {str(p): list(_replicas(j, p)) for p in range(3)}
    assert content["brokers"]["2"] == {"rack": "eu-b", "jurisdiction": "eu"}
    assert content["brokers"]["5"] == {"rack": "us-b", "jurisdiction": "us"}
    assert content["verdict"] == "ok" and content["violations"] == []
    section = json.dumps({j: {**v, "description": ""} for j, v in JURISDICTIONS.items()}, sort_keys=True,
                         separators=(",", ":"))
    assert content["jurisdictions_sha256"] == hashlib.sha256(section.encode()).hexdigest()
    assert isinstance(content["taken_at_ms"], int)  # when the check was taken (wall-clock ms)
    # bytes are canonical: sorted keys, no spaces
    assert snap.content == json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    report = verify_chain(_trail(audit, chain_partition("ingress", 0, 3)))
    assert report.ok
    (chain,) = report.sorted_chains()
    assert (chain.placement_records, chain.referenced, chain.unreferenced) == (1, 4, 0)


def test_an_unchanged_recheck_writes_no_placement_record_and_a_change_writes_one() -> None:
    cluster = Cluster()
    proc, watch = _processor(cluster)
    audit = _batch(proc, 0, 0, 2)
    cluster.now += 6  # a later check that sees the same placement
    watch.refresh()
    audit += _batch(proc, 0, 2, 2)
    assert [is_placement_record(v) for v in audit] == [True, False, False, False, False]
    first = decode_entry(audit[0])
    assert isinstance(first, PlacementRecord)
    assert {decode_audit(v).fields.placement_snapshot for v in audit[1:]} == {first.snapshot.sha256}

    cluster.now += 6
    cluster.topics["crm.eu.contact"][1] = (1, 2, 4)  # a replica moved abroad, to us-a
    watch.refresh()
    later = _batch(proc, 0, 4, 3)
    assert [is_placement_record(v) for v in later] == [True, False, False, False]
    moved = decode_entry(later[0])
    assert isinstance(moved, PlacementRecord) and moved.snapshot.sha256 != first.snapshot.sha256
    content = json.loads(moved.snapshot.content)
    assert content["verdict"] == "violation"
    assert content["violations"] == [{"topic": "crm.eu.contact", "partition": 1, "broker": 4}]
    assert content["topics"]["crm.eu.contact"]["partitions"]["1"] == [1, 2, 4]
    for v in later[1:]:
        f = decode_audit(v).fields
        assert f.reason == ReasonCode.PLACEMENT_VIOLATION.value  # the destination is not usable now
        assert (f.destination_topic, f.destination_jurisdiction) == ("quarantine.eu", "eu")
        assert f.placement_snapshot == moved.snapshot.sha256
    report = verify_chain(_trail(audit + later))
    assert report.ok, report.breaks
    (chain,) = report.sorted_chains()
    assert (chain.placement_records, chain.referenced) == (2, 7)


def test_each_chain_gets_the_snapshot_and_again_after_its_tail_is_read_back() -> None:
    cluster = Cluster()
    proc, _watch = _processor(cluster)
    a0, a1 = _batch(proc, 0, 0, 2), _batch(proc, 1, 0, 2)
    assert is_placement_record(a0[0]) and is_placement_record(a1[0])
    assert not any(is_placement_record(v) for v in _batch(proc, 0, 2, 2))
    # a reassignment: the tail is read back, so the chain's next batch records the snapshot again
    last = decode_entry(a0[-1])
    proc.chain.set_tail(("ingress", 0), (last.seq + 2, b"\x01" * 32))
    again = _batch(proc, 0, 4, 1)
    assert [is_placement_record(v) for v in again] == [True, False]


def test_an_aborted_placement_record_is_written_again() -> None:
    cluster = Cluster()
    proc, _watch = _processor(cluster)
    committed = proc.checkpoint()
    aborted = _batch(proc, 0, 0, 2)
    proc.rollback(committed)
    again = _batch(proc, 0, 0, 2)
    assert is_placement_record(aborted[0]) and is_placement_record(again[0])
    assert decode_entry(again[0]).seq == 0
    assert verify_chain(_trail(again)).ok


def test_a_batch_decided_while_the_verdict_changed_is_decided_again_under_the_new_one() -> None:
    cluster = Cluster()
    proc, watch = _processor(cluster)
    _batch(proc, 0, 0, 1)  # the chain holds the first snapshot
    real_route = proc.evaluate
    calls = []

    def evaluate_then_move(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the check that sees the move lands while the first record is decided
            cluster.topics["crm.eu.contact"][0] = (1, 2, 5)
            cluster.now += 6
            watch.refresh()
        return real_route(*args)

    proc.evaluate = evaluate_then_move
    audit = _batch(proc, 0, 1, 2)
    assert len(calls) == 4  # two records, decided twice
    assert [is_placement_record(v) for v in audit] == [True, False, False]
    moved = decode_entry(audit[0])
    assert isinstance(moved, PlacementRecord) and moved.snapshot.verdict == "violation"
    for v in audit[1:]:
        f = decode_audit(v).fields
        assert (f.reason, f.placement_snapshot) == (ReasonCode.PLACEMENT_VIOLATION.value, moved.snapshot.sha256)


def test_a_verdict_that_keeps_changing_stalls_the_batch() -> None:
    cluster = Cluster()
    proc, watch = _processor(cluster)
    real_route = proc.evaluate
    moves = iter(range(10, 100))

    def evaluate_then_move(*args: Any) -> Any:
        cluster.topics["crm.eu.contact"][0] = (1, 2, next(moves))  # another broker at every check
        cluster.now += 6
        watch.refresh()
        return real_route(*args)

    proc.evaluate = evaluate_then_move
    with pytest.raises(StallError, match="kept changing"):
        _batch(proc, 0, 0, 1)
    assert proc.chain.tail(("ingress", 0)) is None  # nothing was chained


# -- verification against forged trails ------------------------------------------------------------


def _routed_trail() -> list[bytes]:
    cluster = Cluster()
    proc, _watch = _processor(cluster)
    return _batch(proc, 0, 0, 6)


def _rechain(entries: list[AuditRecord | PlacementRecord]) -> list[bytes]:
    """Encode ``entries`` again as one consistent chain (seq from 0, every hash recomputed): what a
    forger who controls the whole trail would write. Only the placement checks can catch it."""
    out, prev = [], ZERO_HASH
    for seq, e in enumerate(entries):
        if isinstance(e, PlacementRecord):
            data, prev = encode_placement(seq, prev, e.snapshot, source_topic=e.source_topic,
                                          source_partition=e.source_partition, audit_partitions=e.audit_partitions,
                                          router_version=e.router_version, instance_id=e.instance_id,
                                          written_at_ms=e.written_at_ms)
        else:
            assert e.audit_partitions is not None
            data, prev = encode_decision(seq, prev, e.fields, e.audit_partitions, e.replay)
        out.append(data)
    return out


def test_the_trail_rebuilt_unchanged_verifies() -> None:
    trail = _routed_trail()
    assert _rechain([decode_entry(v) for v in trail]) == trail  # the forger's tool is faithful
    assert verify_chain(_trail(trail)).ok


def test_an_edited_placement_record_breaks_the_chain() -> None:
    trail = _routed_trail()
    edited = bytearray(trail[0])
    at = edited.index(b'"eu-a"')
    edited[at + 1 : at + 5] = b"us-a"  # broker 1's rack, inside the snapshot
    report = verify_chain(_trail([bytes(edited), *trail[1:]]))
    (brk,) = report.breaks
    assert (brk.kind, brk.offset) == (BreakKind.EDITED, 0)


def test_a_routed_record_whose_snapshot_puts_a_replica_abroad_fails_residency() -> None:
    trail = _routed_trail()
    entries = [decode_entry(v) for v in trail]
    placement = entries[0]
    assert isinstance(placement, PlacementRecord)
    content = json.loads(placement.snapshot.content)
    content["brokers"]["3"] = {"rack": "us-z", "jurisdiction": "us"}  # broker 3 holds a replica of every partition
    forged_snap = PlacementSnapshot(canonical_json(content))
    forged: list[AuditRecord | PlacementRecord] = [
        PlacementRecord(0, ZERO_HASH, ZERO_HASH, placement.source_topic, placement.source_partition,
                        placement.audit_partitions, forged_snap.sha256, forged_snap, placement.router_version,
                        placement.instance_id, placement.written_at_ms)]
    for e in entries[1:]:
        assert isinstance(e, AuditRecord)
        forged.append(AuditRecord(e.seq, e.prev_hash, e.hash, e.fields._replace(placement_snapshot=forged_snap.sha256),
                                  e.audit_partitions, e.format_version))
    report = verify_chain(_trail(_rechain(forged)))
    (brk,) = report.breaks
    assert brk.kind is BreakKind.RESIDENCY_VIOLATION and brk.offset == 1
    assert "broker 3" in brk.detail and "outside eu" in brk.detail
    assert not report.ok


def test_a_decision_referencing_an_absent_snapshot_fails() -> None:
    entries = [decode_entry(v) for v in _routed_trail()]
    report = verify_chain(_trail(_rechain(entries[1:])))  # the placement record left out, the chain re-hashed
    (brk,) = report.breaks
    assert (brk.kind, brk.offset) == (BreakKind.SNAPSHOT_MISSING, 0)


def test_a_snapshot_of_another_chain_does_not_count() -> None:
    cluster = Cluster()
    proc, _watch = _processor(cluster)
    a0 = _batch(proc, 0, 0, 1)
    a1 = [decode_entry(v) for v in _batch(proc, 1, 0, 2)]
    assert isinstance(a1[0], PlacementRecord)
    # ingress[1]'s chain without its own placement record, though ingress[0]'s holds the same snapshot
    report = verify_chain([(0, 0, a0[0]), (0, 1, a0[1]), *[(0, 2 + i, v) for i, v in enumerate(_rechain(a1[1:]))]])
    broken = {c.chain: c.broken.kind for c in report.sorted_chains() if c.broken is not None}
    assert broken == {("ingress", 1): BreakKind.SNAPSHOT_MISSING}


def test_a_placement_record_whose_content_does_not_match_its_hash_is_reported() -> None:
    entries = [decode_entry(v) for v in _routed_trail()]
    placement = entries[0]
    assert isinstance(placement, PlacementRecord)
    wrong = encode_v4_fastavro(0, ZERO_HASH, PlacementRecord(
        0, ZERO_HASH, ZERO_HASH, placement.source_topic, placement.source_partition, placement.audit_partitions,
        placement.snapshot_sha256, PlacementSnapshot(placement.snapshot.content + b" "), placement.router_version,
        placement.instance_id, placement.written_at_ms), placement.audit_partitions)
    # encode_v4_fastavro writes the content's own hash: put the original hash back, then re-seal the chain
    forged = decode_entry(wrong)
    assert isinstance(forged, PlacementRecord)
    report_ok = verify_chain(_trail([wrong]))
    assert report_ok.ok  # consistent on its own
    patched = bytearray(wrong)
    at = patched.index(forged.snapshot_sha256)
    patched[at : at + 32] = placement.snapshot_sha256
    sealed = chain_hash(ZERO_HASH, canonical_bytes(bytes(patched)))
    patched[1:33] = sealed
    (brk,) = verify_chain(_trail([bytes(patched)])).breaks
    assert brk.kind is BreakKind.BAD_SNAPSHOT


# -- formats -------------------------------------------------------------------------------------------


def test_old_formats_still_verify_and_count_as_not_snapshot_referenced() -> None:
    old = format1_records()
    report = verify_chain(old)
    assert report.ok
    assert sum(c.unreferenced for c in report.sorted_chains()) == len(old)
    assert sum(c.referenced for c in report.sorted_chains()) == 0
    chain = AuditChain(audit_partitions=1)
    format2 = [(0, len(old) + i, chain.append(("A", 0), fields(i, source_topic="A", source_partition=0)))
               for i in range(3)]
    link = ReplayLink("quarantine.eu", 0, 7, "UNRESOLVED_JURISDICTION", "p0", 1, "A", 0, 7)
    format3 = [(0, len(old) + 3, chain.append(("quarantine.eu", 0),
                                              fields(9, source_topic="quarantine.eu", source_partition=0), link))]
    report = verify_chain([*old, *format2, *format3])
    assert report.ok
    by = {c.chain: c for c in report.sorted_chains()}
    assert (by[("A", 0)].format_version, by[("A", 0)].unreferenced) == (2, 3)
    assert (by[("quarantine.eu", 0)].format_version, by[("quarantine.eu", 0)].replay) == (3, True)


@pytest.mark.parametrize("replay", [None, ReplayLink("quarantine.eu", 2, 40, "UNRESOLVED_JURISDICTION", "p0", 5,
                                                     "crm.ingress", 1, 9)])
def test_format_4_decisions_are_byte_identical_to_fastavro(replay: ReplayLink | None) -> None:
    for i in range(50):
        f = fields(i, destination_jurisdiction=None if i % 5 == 0 else "eu",
                   placement_snapshot=None if i % 7 == 0 else hashlib.sha256(bytes([i])).digest())
        prev = ZERO_HASH if i == 0 else hashlib.sha256(bytes([i, 1])).digest()
        data, digest = encode_decision(i, prev, f, 1 + i % 4, replay)
        assert data == encode_v4_fastavro(i, prev, f, 1 + i % 4, replay)
        rec = decode_audit(data)
        assert (rec.fields, rec.replay, rec.hash, rec.format_version) == (f, replay, digest, 4)


def test_placement_records_are_byte_identical_to_fastavro() -> None:
    snap = PlacementSnapshot(b'{"v":1}')
    data, digest = encode_placement(3, b"\x02" * 32, snap, source_topic="crm.ingress", source_partition=4,
                                    audit_partitions=6, router_version="1.2", instance_id="i-1", written_at_ms=17)
    rec = decode_entry(data)
    assert isinstance(rec, PlacementRecord) and rec.hash == digest
    assert data == encode_v4_fastavro(3, b"\x02" * 32, rec, 6)
    assert (rec.seq, rec.source_topic, rec.source_partition, rec.placed_in()) == (
        3, "crm.ingress", 4, chain_partition("crm.ingress", 4, 6))


def test_a_large_cluster_snapshot_fits_one_record_well_under_a_megabyte() -> None:
    """100 topics x 12 partitions x 3 replicas over 30 brokers (the bound the design names)."""
    brokers = {b: f"eu-{b % 3}" for b in range(30)}
    topics = {f"crm.eu.entity-number-{t:03d}": {p: tuple((p + i) % 30 for i in range(3)) for p in range(12)}
              for t in range(100)}
    required = dict.fromkeys(topics, "eu")
    config = _config()
    report = verify(ClusterSnapshot(brokers, topics, 1.0), required, config.jurisdiction_of_rack)
    snap = PlacementSnapshot(canonical_json(snapshot_content(report, config.jurisdiction_of_rack,
                                                             jurisdictions_sha256="0" * 64, taken_at_ms=1)))
    data, _ = encode_placement(0, ZERO_HASH, snap, source_topic="crm.ingress", source_partition=0,
                               router_version="1", instance_id="i", written_at_ms=1)
    assert len(data) < 100_000, len(data)


def test_snapshot_content_is_deterministic() -> None:
    config = _config()
    cluster = Cluster()
    snap = cluster.snapshot_fn(None, REQUIRED, timeout=1, clock=cluster.clock)
    shuffled = ClusterSnapshot(dict(reversed(list(snap.brokers.items()))),
                               {t: dict(reversed(list(p.items()))) for t, p in reversed(list(snap.topics.items()))},
                               snap.taken_at)
    a = canonical_json(snapshot_content(verify(snap, REQUIRED, config.jurisdiction_of_rack),
                                        config.jurisdiction_of_rack, jurisdictions_sha256="x"))
    b = canonical_json(snapshot_content(verify(shuffled, REQUIRED, config.jurisdiction_of_rack),
                                        config.jurisdiction_of_rack, jurisdictions_sha256="x"))
    assert a == b


def test_decode_audit_refuses_a_placement_record_and_decode_entry_reads_both() -> None:
    trail = _routed_trail()
    with pytest.raises(NotADecisionRecord):
        decode_audit(trail[0])
    assert [decode_entry(v).kind for v in trail[:2]] == ["placement", "decision"]


def test_tails_are_read_back_over_placement_records_and_the_chain_continues() -> None:
    """A chain's placement records are links like any other: the tail reader decodes them, and a
    chain whose last record is a placement record continues after it."""
    part = FakeAuditPartition()
    trail = _routed_trail()  # a placement record, then six decisions
    for value in trail:
        part.add(chain_key("ingress", 0), value)
    last = decode_entry(trail[-1])
    found = scan_chain_tails(part, TOPIC, 0, [("ingress", 0)], deadline=time.monotonic() + 30)
    assert found == {("ingress", 0): (last.seq, last.hash)}

    only = FakeAuditPartition()
    only.add(chain_key("ingress", 0), trail[0])
    first = decode_entry(trail[0])
    tails = scan_chain_tails(only, TOPIC, 0, [("ingress", 0)], deadline=time.monotonic() + 30)
    assert tails == {("ingress", 0): (first.seq, first.hash)}
    chain = AuditChain(audit_partitions=3)
    chain.set_tail(("ingress", 0), tails[("ingress", 0)])  # type: ignore[index]
    after = chain.append_decision(("ingress", 0), fields(1, source_topic="ingress", source_partition=0))
    assert verify_chain([(0, 0, trail[0]), (0, 1, after)]).ok
