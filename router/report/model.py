"""The evidence report's figures: plain, immutable values built by :mod:`router.report.collect`.

Every count here comes from audit records whose chain verified up to and including them; a
chain's records from its first break on are left out of every figure and named in
:attr:`Report.excluded`. Nothing here holds a CRM field value: jurisdictions, topic names,
reason codes, categories, positions, versions and times only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNRESOLVED = "none"
"""The data jurisdiction of an event bound to no jurisdiction, and the destination of an
audit-only record (nothing written)."""
UNKNOWN = "unknown"
"""The jurisdiction of a topic the config does not list under ``topics``."""


@dataclass(frozen=True, slots=True)
class ChainResult:
    """One chain's verification, as ``audit verify`` reports it."""

    chain: str
    kind: str
    """``router`` (formats 1 and 2) or ``replay`` (format 3)."""
    partition: int
    records: int
    ok: bool
    tail_seq: int | None
    tail_hash: str | None
    break_kind: str | None = None
    break_partition: int | None = None
    break_offset: int | None = None
    break_detail: str | None = None
    excluded_records: int = 0
    """Records of this chain left out of every figure (the break and everything after it)."""
    residency_proved: int = 0
    """Decisions verified against the placement snapshot they name (format 4): the destination's
    replicas sat in its jurisdiction, proved from the trail alone."""
    residency_unproved: int = 0
    """Decisions that name no snapshot (formats 1-3, or written without one): not a failure."""


@dataclass(frozen=True, slots=True)
class PartitionResult:
    partition: int
    records: int
    chains: int
    broken_chains: int

    @property
    def ok(self) -> bool:
        return self.broken_chains == 0


@dataclass(frozen=True, slots=True)
class Transfer:
    """Routed events of data bound to ``data_jurisdiction`` written in another jurisdiction: one
    row of the transfer register (GDPR Art. 44-49), per rule that allowed it."""

    data_jurisdiction: str
    destination_jurisdiction: str
    rule: str | None
    """The policy rule that allowed the route, derived from the policy in force (same
    ``policy_version``); None when that policy was not available to the report."""
    rule_basis: str
    """How ``rule`` is known: ``derived from policy <version>`` or why it is not."""
    events: int
    replayed: int
    """Of ``events``, those routed by ``quarantine replay`` (format-3 records)."""
    first_ms: int
    last_ms: int
    policy_versions: tuple[str, ...]
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ViolationWindow:
    """A run of decisions (in processing time) taken while the placement check did not pass."""

    start_ms: int
    end_ms: int
    verdicts: tuple[str, ...]
    decisions: int
    quarantined: int
    """Of ``decisions``, those quarantined PLACEMENT_VIOLATION."""
    routed: int
    snapshots: tuple[str, ...]
    """Hashes (hex) of the placement snapshots the window's decisions name (format 4; else empty)."""
    quarantined_events: tuple[str, ...]
    """Source positions (``topic[partition]@offset``) of the events quarantined because of it."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A placement snapshot recorded in the trail (audit format 4), the first time it appears."""

    sha256: str
    taken_at_ms: int | None
    written_at_ms: int
    verdict: str | None
    """``ok`` or ``violation``, as the snapshot records it."""
    violations: tuple[str, ...]
    """``topic[partition] on broker <id>`` per replica outside its topic's jurisdiction."""
    chains: int
    """Chains that hold a placement record of it (each writer records the snapshot it relies on)."""
    decisions: int
    """Verified decisions that name it as the placement they relied on."""
    first_position: str


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: str
    first_ms: int
    last_ms: int
    decisions: int


@dataclass(frozen=True, slots=True)
class Replay:
    """One replayed quarantine record (a verified format-3 audit record)."""

    replayed_at_ms: int
    quarantine_position: str
    quarantine_reason: str
    quarantine_policy_version: str
    policy_version: str
    destination_topic: str
    destination_jurisdiction: str
    ingress_position: str


@dataclass(frozen=True, slots=True)
class Access:
    """One decrypting access to a quarantined payload (``quarantine show --decrypt``). Access
    records are not chain links: the trail cannot prove that none was removed."""

    accessed_at_ms: int
    action: str
    os_user: str
    actor: str | None
    host: str
    jurisdiction: str
    quarantine_position: str
    reason: str
    audit_position: str


@dataclass(frozen=True, slots=True)
class TopicRetention:
    """A topic's retention as the cluster reports it (``describe_configs``)."""

    topic: str
    retention_ms: int | None
    """None: unlimited (``-1``) or not readable (see ``error``)."""
    cleanup_policy: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    topic: str
    jurisdiction: str
    events: int
    retention_ms: int | None
    cleanup_policy: str | None
    retention_error: str | None
    key_provider: str
    """The provider of the destination jurisdiction's KEK (``keys.jurisdictions``), or ``-``."""


@dataclass(frozen=True, slots=True)
class ProcessingRecord:
    """One jurisdiction's row of the records of processing: what its data is, where it went, how
    long it is kept and how it is encrypted."""

    jurisdiction: str
    events: int
    categories: tuple[tuple[str, int], ...]
    destinations: tuple[Destination, ...]
    encryption: str
    key_provider: str


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of ``summary.csv``: events per UTC day x data jurisdiction x destination
    jurisdiction x decision x reason (each verified decision counted once)."""

    day: str
    data_jurisdiction: str
    destination_jurisdiction: str
    decision: str
    reason: str
    events: int


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per time bucket and label: ``points[i]`` is ``bucket_starts[i]``'s ``{label: n}``."""

    bucket_ms: int
    bucket_starts: tuple[int, ...]
    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    """``counts[label index][bucket index]``."""

    def total(self, label: str) -> int:
        return sum(self.counts[self.labels.index(label)])


@dataclass(frozen=True, slots=True)
class Report:
    topic: str
    generated_at_ms: int
    from_ms: int | None
    to_ms: int | None
    ok: bool
    """Every chain verified: no range of the trail is excluded."""
    records_read: int
    decisions: int
    """Verified router decisions (formats 1 and 2) counted in the figures."""
    chains: tuple[ChainResult, ...]
    partitions: tuple[PartitionResult, ...]
    excluded: int
    """Records left out because their chain is broken at or before them."""
    outside_window: int
    """Verified decisions outside ``from_ms``..``to_ms``."""
    by_decision: tuple[tuple[str, int], ...]
    by_reason: tuple[tuple[str, int], ...]
    data_jurisdictions: Series
    destination_jurisdictions: Series
    quarantine_reasons: Series
    transfers: tuple[Transfer, ...]
    categories: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    """Per destination jurisdiction, routed events per category."""
    quarantined_categories: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    """Per quarantine jurisdiction, quarantined events per category."""
    placement_records: int
    """Verified placement records (audit format 4); 0 on trails written before it."""
    snapshots: tuple[Snapshot, ...]
    unreferenced_decisions: int
    """Verified decisions that name no placement snapshot (formats 1-3, or written without one):
    their placement evidence is the ``placement_verdict`` text only."""
    violation_windows: tuple[ViolationWindow, ...]
    policy_versions: tuple[PolicyVersion, ...]
    replays: tuple[Replay, ...]
    accesses: tuple[Access, ...]
    undecodable_accesses: int
    processing: tuple[ProcessingRecord, ...]
    summary: tuple[SummaryRow, ...]
    notes: tuple[str, ...] = field(default=())
