"""The evidence report's figures (router.report.collect) from hand-built trails: every record is
made by the real AuditChain encoder, so hashes are real and verification is the one `audit verify`
runs. Expected figures are counted by hand from the records each test writes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from router.audit.chain import AuditChain
from router.audit.record import (
    ZERO_HASH,
    AuditFields,
    PlacementSnapshot,
    ReplayLink,
    chain_partition,
    encode_decision,
    encode_placement,
)
from router.config.loader import load_config
from router.quarantine.access import AccessRecord, encode_access
from router.report.collect import HOUR_MS, ReportContext, collect
from router.report.model import TopicRetention
from router.report.rules import RuleDeriver
from router.residency.engine import PolicyEngine

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
T0 = 1_764_374_400_000  # 2025-11-29T00:00:00Z
OK = f"ok@{T0}"


@cache
def engine() -> PolicyEngine:
    config = load_config(EXAMPLE)
    return PolicyEngine.from_config(config, EXAMPLE.parent)


def topic_jurisdictions() -> dict[str, str]:
    return {t.name: t.jurisdiction for t in load_config(EXAMPLE).topics}


def fields(offset: int, *, decision: str = "route", reason: str = "ROUTED", jurisdictions: tuple[str, ...] = ("eu",),
           dest: str = "crm.eu.contact", level: str = "confidential", categories: tuple[str, ...] = ("PII",),
           source: tuple[str, int] = ("crm.ingress", 0), at_ms: int = T0, verdict: str = OK,
           version: str | None = None) -> AuditFields:
    return AuditFields(
        decision=decision,  # type: ignore[arg-type]
        reason=reason, classification_level=level, categories=categories, field_names=("Email",),
        jurisdictions=jurisdictions, destination_topic=dest, destination_partition=0 if dest else None,
        placement_verdict=verdict, payload_sha256="hmac-sha256:eu:00", sealed_sha256="00",
        source_topic=source[0], source_partition=source[1], source_offset=offset, source_timestamp_ms=None,
        event_id=None, policy_version=version if version is not None else engine().version, router_version="t",
        instance_id="router-a", processed_at_ms=at_ms)


class Trail:
    """Audit records as a router writes them: chains placed over ``partitions`` audit partitions."""

    def __init__(self, partitions: int = 2) -> None:
        self.chain = AuditChain(audit_partitions=partitions)
        self.partitions = partitions
        self.records: list[tuple[int, int, bytes]] = []
        self.next_offset = [0] * partitions

    def put(self, partition: int, value: bytes) -> tuple[int, int]:
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        self.records.append((partition, offset, value))
        return partition, offset

    def append(self, f: AuditFields, replay: ReplayLink | None = None) -> tuple[int, int]:
        source = (f.source_topic, f.source_partition)
        return self.put(chain_partition(*source, self.partitions), self.chain.append(source, f, replay))


def context(**kw: object) -> ReportContext:
    defaults: dict[str, object] = {"topic": "audit", "generated_at_ms": T0,
                                   "topic_jurisdictions": topic_jurisdictions(),
                                   "rules": RuleDeriver([engine().policy])}
    return ReportContext(**{**defaults, **kw})  # type: ignore[arg-type]


def mixed_trail() -> Trail:
    """Source 0: 3 EU routes, 1 UNRESOLVED quarantine in eu. Source 1: 2 US routes (one an hour
    later), 1 POLICY_DENIED quarantine of US data in us."""
    t = Trail()
    for i in range(3):
        t.append(fields(i))
    t.append(fields(3, decision="quarantine", reason="UNRESOLVED_JURISDICTION", jurisdictions=(),
                    dest="quarantine.eu", categories=()))
    t.append(fields(0, jurisdictions=("us",), dest="crm.us.contact", source=("crm.ingress", 1)))
    t.append(fields(1, jurisdictions=("us",), dest="crm.us.contact", source=("crm.ingress", 1), at_ms=T0 + HOUR_MS))
    t.append(fields(2, decision="quarantine", reason="POLICY_DENIED", jurisdictions=("us",), dest="quarantine.us",
                    categories=("SECRET",), level="restricted", source=("crm.ingress", 1)))
    return t


def test_intact_trail_counts_every_decision() -> None:
    r = collect(mixed_trail().records, context())
    assert r.ok
    assert r.excluded == 0
    assert r.decisions == 7
    assert dict(r.by_decision) == {"route": 5, "quarantine": 2}
    assert dict(r.by_reason) == {"ROUTED": 5, "UNRESOLVED_JURISDICTION": 1, "POLICY_DENIED": 1}
    assert {label: r.data_jurisdictions.total(label) for label in r.data_jurisdictions.labels} == \
        {"eu": 3, "us": 3, "none": 1}
    assert {label: r.destination_jurisdictions.total(label) for label in r.destination_jurisdictions.labels} == \
        {"eu": 4, "us": 3}
    assert {label: r.quarantine_reasons.total(label) for label in r.quarantine_reasons.labels} == \
        {"UNRESOLVED_JURISDICTION": 1, "POLICY_DENIED": 1}


def test_series_are_bucketed_by_hour_over_the_trails_span() -> None:
    r = collect(mixed_trail().records, context())
    assert r.data_jurisdictions.bucket_starts == (T0, T0 + HOUR_MS)
    assert r.data_jurisdictions.counts[r.data_jurisdictions.labels.index("us")] == (2, 1)


def test_summary_rows_hold_each_decision_once() -> None:
    r = collect(mixed_trail().records, context())
    rows = {(s.data_jurisdiction, s.destination_jurisdiction, s.decision, s.reason): s.events for s in r.summary}
    assert rows == {
        ("eu", "eu", "route", "ROUTED"): 3,
        ("none", "eu", "quarantine", "UNRESOLVED_JURISDICTION"): 1,
        ("us", "us", "route", "ROUTED"): 2,
        ("us", "us", "quarantine", "POLICY_DENIED"): 1,
    }
    assert {s.day for s in r.summary} == {"2025-11-29"}


def test_a_broken_chain_is_excluded_from_its_first_broken_record_on() -> None:
    t = mixed_trail()
    # edit the second record of source 1's chain (a US route): it and everything after it in that chain go
    us_records = [i for i, (p, _, v) in enumerate(t.records) if b"crm.us.contact" in v or b"quarantine.us" in v]
    i = us_records[1]
    p, o, v = t.records[i]
    edited = bytearray(v)
    edited[-5] ^= 1
    t.records[i] = (p, o, bytes(edited))
    r = collect(t.records, context())
    assert not r.ok
    assert r.excluded == 2
    assert r.decisions == 5
    assert dict(r.by_decision) == {"route": 4, "quarantine": 1}
    assert "POLICY_DENIED" not in dict(r.by_reason)
    (broken,) = [c for c in r.chains if not c.ok]
    assert (broken.chain, broken.break_kind, broken.break_partition, broken.break_offset) == \
        ("crm.ingress[1]", "edited", p, o)
    assert broken.excluded_records == 2
    intact = [c for c in r.chains if c.ok]
    assert [c.excluded_records for c in intact] == [0]


def test_a_deleted_record_excludes_the_rest_of_its_chain() -> None:
    t = Trail(partitions=1)
    for i in range(5):
        t.append(fields(i))
    del t.records[2]
    r = collect(t.records, context())
    assert not r.ok
    assert r.decisions == 2  # seq 0 and 1 verified; seq 3 and 4 follow the gap
    assert r.excluded == 2


def test_cross_border_route_names_the_rule_that_allowed_it() -> None:
    t = Trail()
    # data bound to ch and eu, internal: eu-stays-in-eu allows eu, ch-stays-in-ch-or-eu allows ch and eu -> eu
    for i in range(2):
        t.append(fields(i, jurisdictions=("ch", "eu"), level="internal", categories=(), dest="crm.eu.account"))
    t.append(fields(2))
    r = collect(t.records, context())
    (transfer,) = r.transfers
    assert (transfer.data_jurisdiction, transfer.destination_jurisdiction, transfer.rule, transfer.events) == \
        ("ch", "eu", "ch-stays-in-ch-or-eu", 2)
    assert transfer.topics == ("crm.eu.account",)
    assert transfer.rule_basis == f"derived from policy {engine().version}"


def test_a_transfer_under_a_policy_not_given_gets_no_rule() -> None:
    t = Trail()
    t.append(fields(0, jurisdictions=("ch", "eu"), level="internal", categories=(), dest="crm.eu.account",
                    version="2026-01-01.1:0123456789ab"))
    (transfer,) = collect(t.records, context()).transfers
    assert transfer.rule is None
    assert "not given" in transfer.rule_basis


def test_a_record_the_named_policy_would_not_route_there_gets_no_rule() -> None:
    t = Trail()
    # the example policy keeps restricted ch data in ch; a record claiming it went to eu does not match
    t.append(fields(0, jurisdictions=("ch",), level="restricted", categories=("SPECIAL_CATEGORY",),
                    dest="crm.eu.contact"))
    (transfer,) = collect(t.records, context()).transfers
    assert transfer.rule is None
    assert "does not route" in transfer.rule_basis


def test_violation_window_and_the_events_it_quarantined() -> None:
    t = Trail(partitions=1)
    bad = "violations: crm.eu.contact"
    t.append(fields(0, at_ms=T0))
    t.append(fields(1, at_ms=T0 + 1000, verdict=bad, decision="quarantine", reason="PLACEMENT_VIOLATION",
                    dest="quarantine.eu"))
    t.append(fields(2, at_ms=T0 + 2000, verdict=bad, dest="crm.eu.account"))
    t.append(fields(3, at_ms=T0 + 3000, verdict=bad, decision="quarantine", reason="PLACEMENT_VIOLATION",
                    dest="quarantine.eu"))
    t.append(fields(4, at_ms=T0 + 4000))
    t.append(fields(5, at_ms=T0 + 5000, verdict="expired: no placement report"))
    r = collect(t.records, context())
    first, second = r.violation_windows
    assert (first.start_ms, first.end_ms, first.decisions, first.quarantined, first.routed) == \
        (T0 + 1000, T0 + 3000, 3, 2, 1)
    assert first.quarantined_events == ("crm.ingress[0]@1", "crm.ingress[0]@3")
    assert first.verdicts == (bad,)
    assert (second.start_ms, second.decisions, second.quarantined) == (T0 + 5000, 1, 0)


def test_from_and_to_select_decisions_by_processing_time() -> None:
    r = collect(mixed_trail().records, context(from_ms=T0 + HOUR_MS, to_ms=T0 + 2 * HOUR_MS))
    assert r.decisions == 1
    assert r.outside_window == 6
    assert r.ok


def test_policy_versions_in_force_and_when_they_changed() -> None:
    t = Trail(partitions=1)
    t.append(fields(0, at_ms=T0, version="v:1"))
    t.append(fields(1, at_ms=T0 + 10, version="v:1"))
    t.append(fields(2, at_ms=T0 + 20, version="v:2"))
    r = collect(t.records, context())
    assert [(p.version, p.first_ms, p.last_ms, p.decisions) for p in r.policy_versions] == \
        [("v:1", T0, T0 + 10, 2), ("v:2", T0 + 20, T0 + 20, 1)]


def _access() -> AccessRecord:
    return AccessRecord(action="decrypt", accessed_at_ms=T0 + 7, os_user="alice", actor="DPO ticket 7", host="h",
                        jurisdiction="eu", quarantine_topic="quarantine.eu", quarantine_partition=1,
                        quarantine_offset=4, source_topic="crm.ingress", source_partition=0, source_offset=3,
                        reason="UNRESOLVED_JURISDICTION", event_id=None, payload_digest="hmac-sha256:eu:00",
                        router_version="t")


def test_access_records_are_listed_and_never_counted_as_decisions() -> None:
    t = mixed_trail()
    t.put(0, encode_access(_access()))
    r = collect(t.records, context())
    assert r.ok
    assert r.decisions == 7
    (a,) = r.accesses
    assert (a.os_user, a.actor, a.quarantine_position) == ("alice", "DPO ticket 7", "quarantine.eu[1]@4")


def test_a_replay_is_listed_and_its_cross_border_route_counted_as_replayed() -> None:
    t = Trail()
    link = ReplayLink("quarantine.eu", 2, 9, "POLICY_DENIED", "old:000000000000", T0, "crm.ingress", 0, 17)
    t.append(fields(0, jurisdictions=("ch", "eu"), level="internal", categories=(), dest="crm.eu.account",
                    source=("quarantine.eu", 2)), replay=link)
    r = collect(t.records, context())
    assert r.ok
    assert r.decisions == 0  # the event's decision was the quarantine; the replay is listed apart
    (replay,) = r.replays
    assert (replay.quarantine_position, replay.ingress_position, replay.quarantine_reason) == \
        ("quarantine.eu[2]@9", "crm.ingress[0]@17", "POLICY_DENIED")
    (transfer,) = r.transfers
    assert (transfer.events, transfer.replayed, transfer.rule) == (1, 1, "ch-stays-in-ch-or-eu")
    assert next(c for c in r.chains).kind == "replay"


def test_records_of_processing_name_categories_destinations_retention_and_keys() -> None:
    retention = {"crm.eu.contact": TopicRetention("crm.eu.contact", 604_800_000, "delete"),
                 "quarantine.eu": TopicRetention("quarantine.eu", None, None, "not readable")}
    r = collect(mixed_trail().records, context(retention=retention, key_providers={"eu": "dev (local), key eu"}))
    eu = next(p for p in r.processing if p.jurisdiction == "eu")
    assert eu.events == 3
    assert dict(eu.categories) == {"PII": 3}
    assert [(d.topic, d.events, d.retention_ms, d.cleanup_policy, d.key_provider) for d in eu.destinations] == \
        [("crm.eu.contact", 3, 604_800_000, "delete", "dev (local), key eu")]
    none = next(p for p in r.processing if p.jurisdiction == "none")
    assert [(d.topic, d.retention_error) for d in none.destinations] == [("quarantine.eu", "not readable")]


def test_categories_per_destination() -> None:
    r = collect(mixed_trail().records, context())
    assert dict(r.categories) == {"eu": (("PII", 3),), "us": (("PII", 2),)}
    assert dict(r.quarantined_categories) == {"us": (("SECRET", 1),)}


# -- format 4: placement records in the chain, decisions naming the snapshot they relied on -------


def snapshot(*, violation: bool) -> PlacementSnapshot:
    """A snapshot of crm.eu.contact[0] and quarantine.eu[0]; with ``violation``, crm.eu.contact[0]
    has a replica on broker 3 (us)."""
    replicas = [1, 3] if violation else [1, 2]
    doc = {
        "v": 1, "jurisdictions_sha256": "00", "taken_at_ms": T0,
        "brokers": {"1": {"rack": "eu-west-1a", "jurisdiction": "eu"},
                    "2": {"rack": "eu-central-1a", "jurisdiction": "eu"},
                    "3": {"rack": "us-east-1a", "jurisdiction": "us"}},
        "topics": {"crm.eu.contact": {"jurisdiction": "eu", "verdict": "violation" if violation else "ok",
                                      "partitions": {"0": replicas}},
                   "quarantine.eu": {"jurisdiction": "eu", "verdict": "ok", "partitions": {"0": [1, 2]}}},
        "verdict": "violation" if violation else "ok",
        "violations": [{"topic": "crm.eu.contact", "partition": 0, "broker": 3}] if violation else [],
    }
    return PlacementSnapshot(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


class V4Chain:
    """One format-4 chain (source crm.ingress[0], one audit partition) built with the record encoders."""

    def __init__(self) -> None:
        self.seq, self.prev = 0, ZERO_HASH
        self.records: list[tuple[int, int, bytes]] = []

    def _put(self, data: bytes, digest: bytes) -> None:
        self.records.append((0, self.seq, data))
        self.seq, self.prev = self.seq + 1, digest

    def placement(self, snap: PlacementSnapshot, at_ms: int) -> None:
        self._put(*encode_placement(self.seq, self.prev, snap, source_topic="crm.ingress", source_partition=0,
                                    router_version="t", instance_id="router-a", written_at_ms=at_ms))

    def decision(self, f: AuditFields) -> None:
        self._put(*encode_decision(self.seq, self.prev, f))


def test_format_4_snapshots_are_listed_and_a_violation_snapshot_opens_a_window() -> None:
    good, bad = snapshot(violation=False), snapshot(violation=True)
    c = V4Chain()
    c.placement(good, T0)
    c.decision(fields(0, at_ms=T0 + 1)._replace(destination_jurisdiction="eu", placement_snapshot=good.sha256))
    c.placement(bad, T0 + 2)
    for i in (1, 2):
        c.decision(fields(i, at_ms=T0 + 2 + i, decision="quarantine", reason="PLACEMENT_VIOLATION",
                          dest="quarantine.eu", verdict="violations: crm.eu.contact")
                   ._replace(destination_jurisdiction="eu", placement_snapshot=bad.sha256))
    c.decision(fields(3, at_ms=T0 + 10)._replace(destination_jurisdiction="eu", placement_snapshot=good.sha256))
    c.decision(fields(4, at_ms=T0 + 11))  # no snapshot named: counted as not snapshot-referenced
    r = collect(c.records, context())
    assert r.ok, [ch.break_detail for ch in r.chains]
    assert r.placement_records == 2
    assert r.unreferenced_decisions == 1
    assert [(s.sha256, s.verdict, s.decisions, s.violations) for s in r.snapshots] == [
        (good.sha256.hex(), "ok", 2, ()),
        (bad.sha256.hex(), "violation", 2, ("crm.eu.contact[0] on broker 3",)),
    ]
    (window,) = r.violation_windows
    assert (window.start_ms, window.end_ms, window.quarantined, window.snapshots) == \
        (T0 + 3, T0 + 4, 2, (bad.sha256.hex(),))
    assert window.quarantined_events == ("crm.ingress[0]@1", "crm.ingress[0]@2")
    assert r.decisions == 5


def test_format_4_destination_jurisdiction_is_taken_from_the_record() -> None:
    c = V4Chain()
    # a topic the config does not list: format 4 still says where it sits
    c.decision(fields(0, dest="crm.eu.custom")._replace(destination_jurisdiction="eu"))
    r = collect(c.records, context())
    assert r.destination_jurisdictions.labels == ("eu",)


def test_a_route_its_own_snapshot_shows_abroad_breaks_the_chain_and_is_excluded() -> None:
    """audit verify proves residency from the snapshot a decision names: a route to crm.eu.contact[0]
    naming a snapshot where that partition has a replica on a us broker breaks the chain there."""
    good, bad = snapshot(violation=False), snapshot(violation=True)
    c = V4Chain()
    c.placement(good, T0)
    c.decision(fields(0, at_ms=T0 + 1)._replace(destination_jurisdiction="eu", placement_snapshot=good.sha256))
    c.placement(bad, T0 + 2)
    c.decision(fields(1, at_ms=T0 + 3)._replace(destination_jurisdiction="eu", placement_snapshot=bad.sha256))
    c.decision(fields(2, at_ms=T0 + 4)._replace(destination_jurisdiction="eu", placement_snapshot=good.sha256))
    r = collect(c.records, context())
    assert not r.ok
    (chain,) = r.chains
    assert (chain.break_kind, chain.break_offset, chain.excluded_records) == ("residency_violation", 3, 2)
    assert chain.residency_proved == 1
    assert r.decisions == 1
    assert dict(r.by_decision) == {"route": 1}
