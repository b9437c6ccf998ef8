"""Aggregating the audit trail into the evidence report's figures (:class:`Report`).

Pure: the input is the trail as ``(audit partition, offset, bytes)`` in each partition's offset
order (what :func:`router.audit.kafka.read_audit` yields) plus what the config and the cluster say
about topics; no Kafka import.

The rule of the report: **numbers come only from the verified trail.** Every chain is verified
with :func:`router.audit.chain.verify_chain` (the code ``audit verify`` runs) before anything is
counted. A broken chain's records from its first break on are excluded from every figure and
counted in :attr:`Report.excluded`; the records before the break verified and are counted.
Quarantine access records share the audit topic but are not chain links: they are listed, never
counted as decisions.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from router.audit.chain import VerifyReport, verify_chain
from router.audit.record import (
    REPLAY_FORMAT_VERSION,
    AuditDecodeError,
    AuditEntry,
    AuditFields,
    AuditRecord,
    ChainId,
    PlacementRecord,
    decode_entry,
)
from router.quarantine.access import AccessRecordError, decode_access, is_access_record
from router.report.model import (
    UNKNOWN,
    UNRESOLVED,
    Access,
    ChainResult,
    Destination,
    PartitionResult,
    PolicyVersion,
    ProcessingRecord,
    Replay,
    Report,
    Series,
    Snapshot,
    SummaryRow,
    TopicRetention,
    Transfer,
    ViolationWindow,
)
from router.report.rules import RuleDeriver

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_LISTED_EVENTS = 1000
"""Most source positions listed per violation window (the count is always complete)."""
PLACEMENT_VIOLATION = "PLACEMENT_VIOLATION"
ENVELOPE = "AES-256-GCM envelope (per-record data key wrapped by the jurisdiction's KEK), Ed25519-signed"


@dataclass(frozen=True, slots=True)
class ReportContext:
    """What the report needs besides the trail: from the config and the cluster."""

    topic: str
    generated_at_ms: int
    topic_jurisdictions: Mapping[str, str] = field(default_factory=dict)
    """Topic -> the jurisdiction its replicas must sit in (the config's ``topics``)."""
    retention: Mapping[str, TopicRetention] = field(default_factory=dict)
    key_providers: Mapping[str, str] = field(default_factory=dict)
    """Jurisdiction -> ``<provider name> (<type>), key <name>`` from ``keys.jurisdictions``."""
    rules: RuleDeriver = field(default_factory=RuleDeriver)
    from_ms: int | None = None
    to_ms: int | None = None
    """Decisions with ``from_ms <= processed_at_ms < to_ms`` are counted (None: unbounded)."""
    allow_head_truncation: bool = False


def position(topic: str, partition: int, offset: int) -> str:
    return f"{topic}[{partition}]@{offset}"


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _sorted_counts(c: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


class _Series:
    """Counts per hour and label; :meth:`freeze` re-buckets by day when the span exceeds two days."""

    def __init__(self) -> None:
        self.hours: Counter[tuple[int, str]] = Counter()

    def add(self, ms: int, label: str) -> None:
        self.hours[(ms - ms % HOUR_MS, label)] += 1

    def freeze(self, bucket_ms: int, start_ms: int | None, end_ms: int | None) -> Series:
        counts: Counter[tuple[int, str]] = Counter()
        for (hour, label), n in self.hours.items():
            counts[(hour - hour % bucket_ms, label)] += n
        labels = tuple(sorted({label for _, label in counts}))
        if start_ms is None or end_ms is None:
            return Series(bucket_ms, (), labels, tuple(() for _ in labels))
        first = start_ms - start_ms % bucket_ms
        starts = tuple(range(first, end_ms - end_ms % bucket_ms + 1, bucket_ms))
        return Series(bucket_ms, starts, labels,
                      tuple(tuple(counts.get((b, label), 0) for b in starts) for label in labels))


@dataclass(slots=True)
class _Flow:
    events: int
    replayed: int
    first_ms: int
    last_ms: int
    versions: set[str] = field(default_factory=set)
    topics: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Snap:
    rec: PlacementRecord
    position: str
    chains: set[ChainId] = field(default_factory=set)
    decisions: int = 0


@dataclass(slots=True)
class _Tally:
    """Mutable accumulators while the verified records are walked."""

    decisions: int = 0
    outside: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    by_decision: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    data: _Series = field(default_factory=_Series)
    dest: _Series = field(default_factory=_Series)
    quarantine: _Series = field(default_factory=_Series)
    transfers: dict[tuple[str, str, str | None, str], _Flow] = field(default_factory=dict)
    categories: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantined_categories: Counter[tuple[str, str]] = field(default_factory=Counter)
    ok_times: list[int] = field(default_factory=list)
    bad: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    """(processed_at_ms, verdict, reason, source position, snapshot hex or "") of decisions taken
    under a failed check."""
    versions: dict[str, list[int]] = field(default_factory=dict)
    replays: list[Replay] = field(default_factory=list)
    per_jurisdiction: Counter[str] = field(default_factory=Counter)
    jurisdiction_categories: Counter[tuple[str, str]] = field(default_factory=Counter)
    jurisdiction_topics: Counter[tuple[str, str]] = field(default_factory=Counter)
    summary: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    accesses: list[Access] = field(default_factory=list)
    bad_access: int = 0
    placement_records: int = 0
    snapshots: dict[bytes, _Snap] = field(default_factory=dict)
    unreferenced: int = 0
    replay_chains: set[ChainId] = field(default_factory=set)

    def seen(self, ms: int) -> None:
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)


def collect(records: Iterable[tuple[int, int, bytes]], ctx: ReportContext) -> Report:
    """The report of the trail ``records`` (each partition in offset order, partitions interleaved
    as read)."""
    trail: list[tuple[int, int, bytes]] = []
    t = _Tally()
    for partition, offset, value in records:
        if is_access_record(value):
            try:
                a = decode_access(value)
            except AccessRecordError:
                t.bad_access += 1
                continue
            t.accesses.append(Access(
                a.accessed_at_ms, a.action, a.os_user, a.actor, a.host, a.jurisdiction,
                position(a.quarantine_topic, a.quarantine_partition, a.quarantine_offset), a.reason,
                f"{ctx.topic}[{partition}]@{offset}"))
        else:
            trail.append((partition, offset, value))
    verified = verify_chain(trail, allow_head_truncation=ctx.allow_head_truncation)
    breaks = {c.chain: (c.broken.partition, c.broken.offset) for c in verified.chains.values() if c.broken}
    excluded_chains: set[ChainId] = set()
    excluded: Counter[ChainId] = Counter()
    for partition, offset, value in trail:
        try:
            rec: AuditEntry | None = decode_entry(value)
        except AuditDecodeError:
            rec = None
        chain = rec.chain(partition) if rec is not None else ChainId(None, partition)
        if rec is not None and rec.replay is not None:
            t.replay_chains.add(chain)
        if chain not in excluded_chains and breaks.get(chain) == (partition, offset):
            excluded_chains.add(chain)
        if chain in excluded_chains or rec is None:
            excluded[chain] += 1
        elif isinstance(rec, PlacementRecord):
            _placement(t, rec, chain, f"{ctx.topic}[{partition}]@{offset}")
        else:
            _count(t, rec, ctx)
    return _report(t, ctx, verified, excluded, len(trail) + len(t.accesses) + t.bad_access)


def _in_window(ctx: ReportContext, ms: int) -> bool:
    return (ctx.from_ms is None or ms >= ctx.from_ms) and (ctx.to_ms is None or ms < ctx.to_ms)


def _placement(t: _Tally, rec: PlacementRecord, chain: ChainId, where: str) -> None:
    t.placement_records += 1
    snap = t.snapshots.get(rec.snapshot.sha256)
    if snap is None:
        snap = t.snapshots[rec.snapshot.sha256] = _Snap(rec, where)
    snap.chains.add(chain)


def _violations(rec: PlacementRecord) -> tuple[str, ...]:
    try:
        found = rec.snapshot.parsed().get("violations", [])
    except AuditDecodeError:
        return ("the snapshot is not readable JSON",)
    if not isinstance(found, list):
        return ()
    return tuple(f"{v.get('topic')}[{v.get('partition')}] on broker {v.get('broker')}" for v in found
                 if isinstance(v, dict))


def _snapshot_verdict(rec: PlacementRecord) -> str | None:
    try:
        return rec.snapshot.verdict
    except AuditDecodeError:
        return None


def _jurisdiction(ctx: ReportContext, topic: str) -> str:
    if not topic:
        return UNRESOLVED
    return ctx.topic_jurisdictions.get(topic, UNKNOWN)


def _transfer(t: _Tally, ctx: ReportContext, rec: AuditRecord, dest_j: str, *, replayed: bool) -> None:
    f = rec.fields
    crossing = [j for j in f.jurisdictions if j != dest_j]
    if not crossing:
        return
    match = ctx.rules.derive(f.policy_version, f.jurisdictions, f.classification_level, f.categories, dest_j)
    for j in crossing:
        rule = match.rules.get(j) if match.rules is not None else None
        key = (j, dest_j, rule, match.basis)
        flow = t.transfers.get(key)
        if flow is None:
            flow = t.transfers[key] = _Flow(0, 0, f.processed_at_ms, f.processed_at_ms)
        flow.events += 1
        flow.replayed += int(replayed)
        flow.first_ms = min(flow.first_ms, f.processed_at_ms)
        flow.last_ms = max(flow.last_ms, f.processed_at_ms)
        flow.versions.add(f.policy_version)
        flow.topics.add(f.destination_topic)


def _count(t: _Tally, rec: AuditRecord, ctx: ReportContext) -> None:
    f = rec.fields
    ms = f.processed_at_ms
    if not _in_window(ctx, ms):
        t.outside += 1
        return
    # Format 4 records the destination's jurisdiction; before it, the config's topics say it.
    dest_j = f.destination_jurisdiction or _jurisdiction(ctx, f.destination_topic)
    if rec.replay is not None:
        link = rec.replay
        t.replays.append(Replay(
            ms, position(link.quarantine_topic, link.quarantine_partition, link.quarantine_offset),
            link.quarantine_reason, link.quarantine_policy_version, f.policy_version, f.destination_topic, dest_j,
            position(link.ingress_topic, link.ingress_partition, link.ingress_offset)))
        if f.decision == "route":
            _transfer(t, ctx, rec, dest_j, replayed=True)
        return
    _count_decision(t, rec, ctx, dest_j)


def _count_decision(t: _Tally, rec: AuditRecord, ctx: ReportContext, dest_j: str) -> None:
    f = rec.fields
    ms = f.processed_at_ms
    t.decisions += 1
    t.seen(ms)
    t.by_decision[f.decision] += 1
    t.by_reason[f.reason] += 1
    data_js = f.jurisdictions or (UNRESOLVED,)
    for j in data_js:
        t.data.add(ms, j)
        t.per_jurisdiction[j] += 1
        for c in f.categories:
            t.jurisdiction_categories[(j, c)] += 1
        if f.destination_topic:
            t.jurisdiction_topics[(j, f.destination_topic)] += 1
    t.dest.add(ms, dest_j)
    t.summary[(day_of(ms), "+".join(data_js), dest_j, f.decision, f.reason)] += 1
    if f.decision == "quarantine":
        t.quarantine.add(ms, f.reason)
        for c in f.categories:
            t.quarantined_categories[(dest_j, c)] += 1
    elif f.decision == "route":
        for c in f.categories:
            t.categories[(dest_j, c)] += 1
        _transfer(t, ctx, rec, dest_j, replayed=False)
    v = t.versions.get(f.policy_version)
    if v is None:
        t.versions[f.policy_version] = [ms, ms, 1]
    else:
        v[0], v[1], v[2] = min(v[0], ms), max(v[1], ms), v[2] + 1
    _count_placement(t, f, ms)


def _count_placement(t: _Tally, f: AuditFields, ms: int) -> None:
    """Which placement the decision relied on: ok, or part of a violation window."""
    snap = t.snapshots.get(f.placement_snapshot) if f.placement_snapshot is not None else None
    if f.placement_snapshot is None:
        t.unreferenced += 1
    elif snap is not None:
        snap.decisions += 1
    violated = snap is not None and _snapshot_verdict(snap.rec) == "violation"
    if f.placement_verdict.startswith("ok@") and not violated:
        t.ok_times.append(ms)
    else:
        t.bad.append((ms, f.placement_verdict, f.reason, position(f.source_topic, f.source_partition, f.source_offset),
                      f.placement_snapshot.hex() if f.placement_snapshot is not None else ""))


def _windows(t: _Tally) -> tuple[ViolationWindow, ...]:
    """Maximal runs, in processing time, of decisions taken under a failed placement check with no
    decision under a passing check between them."""
    ok = sorted(t.ok_times)
    runs: list[list[tuple[int, str, str, str, str]]] = []
    for entry in sorted(t.bad):
        if runs:
            last = runs[-1][-1][0]
            i = bisect.bisect_right(ok, last)
            if i >= len(ok) or ok[i] > entry[0]:
                runs[-1].append(entry)
                continue
        runs.append([entry])
    out = []
    for run in runs:
        quarantined = [e[3] for e in run if e[2] == PLACEMENT_VIOLATION]
        routed = sum(1 for e in run if e[2] == "ROUTED")
        out.append(ViolationWindow(run[0][0], run[-1][0], tuple(sorted({e[1] for e in run})), len(run),
                                   len(quarantined), routed, tuple(sorted({e[4] for e in run if e[4]})),
                                   tuple(quarantined[:MAX_LISTED_EVENTS])))
    return tuple(out)


def _chains(verified: VerifyReport, excluded: Counter[ChainId], replays: set[ChainId]) -> tuple[ChainResult, ...]:
    out = []
    for c in verified.sorted_chains():
        b = c.broken
        replay = c.replay or c.chain in replays or c.format_version == REPLAY_FORMAT_VERSION
        out.append(ChainResult(
            c.chain.describe(), "replay" if replay else "router", c.partition,
            c.records, b is None, None if c.tail is None else c.tail.seq,
            None if c.tail is None else c.tail.hash.hex(),
            None if b is None else b.kind.value, None if b is None else b.partition,
            None if b is None else b.offset, None if b is None else b.detail, excluded.get(c.chain, 0),
            c.referenced, c.unreferenced))
    return tuple(out)


def _partitions(verified: VerifyReport) -> tuple[PartitionResult, ...]:
    chains: Counter[int] = Counter()
    broken: Counter[int] = Counter()
    for c in verified.chains.values():
        chains[c.partition] += 1
        if c.broken is not None:
            broken[c.broken.partition] += 1
    return tuple(PartitionResult(p, n, chains[p], broken[p]) for p, n in verified.partition_records.items())


def _transfers(t: _Tally) -> tuple[Transfer, ...]:
    rows = []
    for (j, dest, rule, basis), f in t.transfers.items():
        rows.append(Transfer(j, dest, rule, basis, f.events, f.replayed, f.first_ms, f.last_ms,
                             tuple(sorted(f.versions)), tuple(sorted(f.topics))))
    return tuple(sorted(rows, key=lambda r: (r.data_jurisdiction, r.destination_jurisdiction, r.rule or "")))


def _nested(c: Counter[tuple[str, str]]) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    outer: dict[str, Counter[str]] = {}
    for (a, b), n in c.items():
        outer.setdefault(a, Counter())[b] += n
    return tuple((a, _sorted_counts(outer[a])) for a in sorted(outer))


def _processing(t: _Tally, ctx: ReportContext) -> tuple[ProcessingRecord, ...]:
    out = []
    for j in sorted(t.per_jurisdiction):
        cats: Counter[str] = Counter({c: n for (jj, c), n in t.jurisdiction_categories.items() if jj == j})
        dests = []
        for (jj, topic), n in sorted(t.jurisdiction_topics.items()):
            if jj != j:
                continue
            r = ctx.retention.get(topic)
            dj = _jurisdiction(ctx, topic)
            dests.append(Destination(topic, dj, n, None if r is None else r.retention_ms,
                                     None if r is None else r.cleanup_policy,
                                     "not read" if r is None else r.error, ctx.key_providers.get(dj, "-")))
        out.append(ProcessingRecord(j, t.per_jurisdiction[j], _sorted_counts(cats), tuple(dests), ENVELOPE,
                                    ctx.key_providers.get(j, "-")))
    return tuple(out)


def _report(t: _Tally, ctx: ReportContext, verified: VerifyReport, excluded: Counter[ChainId], read: int) -> Report:
    span = 0 if t.first_ms is None or t.last_ms is None else t.last_ms - t.first_ms
    bucket = HOUR_MS if span <= 2 * DAY_MS else DAY_MS
    notes = []
    if not verified.ok:
        notes.append(f"{sum(excluded.values())} record(s) of broken chains are excluded from every figure")
    if not ctx.rules.versions:
        notes.append("no policy was given: the rules that allowed transfers are not derived")
    return Report(
        topic=ctx.topic, generated_at_ms=ctx.generated_at_ms, from_ms=ctx.from_ms, to_ms=ctx.to_ms,
        ok=verified.ok, records_read=read, decisions=t.decisions, chains=_chains(verified, excluded, t.replay_chains),
        partitions=_partitions(verified), excluded=sum(excluded.values()), outside_window=t.outside,
        by_decision=_sorted_counts(t.by_decision), by_reason=_sorted_counts(t.by_reason),
        data_jurisdictions=t.data.freeze(bucket, t.first_ms, t.last_ms),
        destination_jurisdictions=t.dest.freeze(bucket, t.first_ms, t.last_ms),
        quarantine_reasons=t.quarantine.freeze(bucket, t.first_ms, t.last_ms),
        transfers=_transfers(t), categories=_nested(t.categories),
        quarantined_categories=_nested(t.quarantined_categories), placement_records=t.placement_records,
        snapshots=tuple(
            Snapshot(h.hex(), s.rec.snapshot.taken_at_ms if _snapshot_verdict(s.rec) is not None else None,
                     s.rec.written_at_ms, _snapshot_verdict(s.rec), _violations(s.rec), len(s.chains), s.decisions,
                     s.position)
            for h, s in sorted(t.snapshots.items(), key=lambda kv: kv[1].rec.written_at_ms)),
        unreferenced_decisions=t.unreferenced,
        violation_windows=_windows(t),
        policy_versions=tuple(sorted((PolicyVersion(v, a, b, n) for v, (a, b, n) in t.versions.items()),
                                     key=lambda p: (p.first_ms, p.version))),
        replays=tuple(sorted(t.replays, key=lambda r: r.replayed_at_ms)),
        accesses=tuple(sorted(t.accesses, key=lambda a: a.accessed_at_ms)), undecodable_accesses=t.bad_access,
        processing=_processing(t, ctx),
        summary=tuple(SummaryRow(*k, n) for k, n in sorted(t.summary.items())), notes=tuple(notes),
    )


def with_retention(report: Report, retention: Mapping[str, TopicRetention]) -> Report:
    """``report`` with each destination's retention taken from ``retention`` (read once the
    destinations are known); destinations absent from it say ``not read``."""
    def one(d: Destination) -> Destination:
        r = retention.get(d.topic)
        if r is None:
            return replace(d, retention_ms=None, cleanup_policy=None, retention_error="not read")
        return replace(d, retention_ms=r.retention_ms, cleanup_policy=r.cleanup_policy, retention_error=r.error)

    return replace(report, processing=tuple(replace(p, destinations=tuple(one(d) for d in p.destinations))
                                            for p in report.processing))


def destination_topics(report: Report) -> list[str]:
    """Every topic the report's verified decisions wrote to."""
    return sorted({d.topic for p in report.processing for d in p.destinations})
