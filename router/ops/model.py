"""The status of a deployment as plain values, and the arithmetic over them (no Kafka import).

What each topic counts as comes from the config (:class:`TopicRoles`): a jurisdiction's quarantine
topic is ``policy.quarantine_topic`` for it, ingress topics are ``pipeline.ingress[]``, the audit
topic is ``audit.topic``, and every other topic under ``topics`` is a routed (regional) topic of its
jurisdiction. Counts and rates are *offsets*: the sum of the partitions' end offsets (high
watermarks) and its change per second between two samples. The router writes transactionally, so
each committed transaction adds a marker offset per partition it wrote, and an aborted write keeps
its offsets: offset rates are an upper bound of record rates, close to them when transactions hold
many records. Lag is exact per partition: end offset minus the group's committed offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from router.quarantine.reader import QuarantineStats

if TYPE_CHECKING:
    from router.config.models import RouterConfig

TP = tuple[str, int]
"""A topic partition: ``(topic, partition)``."""


@dataclass(frozen=True)
class TopicRoles:
    """Which configured topic plays which part, per jurisdiction."""

    jurisdictions: tuple[str, ...]
    routed: Mapping[str, str]
    """Routed (regional) topic -> its jurisdiction."""
    quarantine: Mapping[str, str]
    """Jurisdiction -> its quarantine topic (``policy.quarantine_topic``)."""
    ingress: Mapping[str, str]
    """Ingress topic -> the jurisdiction its ``pipeline.ingress[]`` entry declares."""
    audit: str | None = None

    @classmethod
    def from_config(cls, config: RouterConfig) -> TopicRoles:
        quarantine: dict[str, str] = {}
        if config.policy is not None:
            quarantine = {j: config.policy.quarantine_topic.format(jurisdiction=j, entity="")
                          for j in config.jurisdictions}
        ingress = {i.topic: i.jurisdiction for i in config.pipeline.ingress} if config.pipeline else {}
        audit = config.audit.topic if config.audit is not None else None
        special = set(quarantine.values()) | set(ingress) | ({audit} if audit else set())
        routed = {t.name: t.jurisdiction for t in config.topics if t.name not in special}
        return cls(tuple(config.jurisdictions), routed, quarantine, ingress, audit)

    def topics(self) -> list[str]:
        """Every topic whose offsets the status samples, sorted."""
        names = set(self.routed) | set(self.quarantine.values()) | set(self.ingress)
        return sorted(names)

    def routed_of(self, jurisdiction: str) -> list[str]:
        return sorted(t for t, j in self.routed.items() if j == jurisdiction)


@dataclass(frozen=True)
class OffsetSample:
    """End (high watermark) and start (low watermark) offsets of every partition of the sampled
    topics, at ``taken_at`` on a monotonic clock (seconds). ``missing`` names sampled topics the
    cluster does not have."""

    taken_at: float
    high: Mapping[TP, int]
    low: Mapping[TP, int] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def end_total(self, topics: Iterable[str]) -> int:
        """The sum of the end offsets of every partition of ``topics``."""
        wanted = set(topics)
        return sum(o for (t, _p), o in self.high.items() if t in wanted)

    def partitions(self, topic: str) -> list[int]:
        return sorted(p for (t, p) in self.high if t == topic)


def offset_rate(previous: OffsetSample | None, current: OffsetSample, topics: Iterable[str]) -> float | None:
    """Offsets per second added to ``topics`` between the two samples; None without an earlier
    sample or time between them. Only partitions present in both count; an end offset that went
    down (a topic deleted and created again) counts as no progress."""
    if previous is None:
        return None
    elapsed = current.taken_at - previous.taken_at
    if elapsed <= 0:
        return None
    wanted = set(topics)
    added = 0
    for tp, end in current.high.items():
        if tp[0] in wanted and tp in previous.high:
            added += max(0, end - previous.high[tp])
    return added / elapsed


@dataclass(frozen=True)
class LagRow:
    """One ingress partition: the group's committed offset (None: nothing committed yet, so the
    router starts at the earliest offset), the end offset, and the difference."""

    topic: str
    partition: int
    jurisdiction: str
    committed: int | None
    end: int
    lag: int


def lag_rows(roles: TopicRoles, sample: OffsetSample, committed: Mapping[TP, int]) -> list[LagRow]:
    """Lag of every ingress partition in ``sample`` against the committed offsets (negative or
    missing offsets mean nothing committed)."""
    rows: list[LagRow] = []
    for topic in sorted(roles.ingress):
        for p in sample.partitions(topic):
            end = sample.high[(topic, p)]
            done = committed.get((topic, p))
            if done is not None and done < 0:
                done = None
            start = done if done is not None else sample.low.get((topic, p), 0)
            rows.append(LagRow(topic, p, roles.ingress[topic], done, end, max(0, end - start)))
    return rows


@dataclass(frozen=True)
class LagView:
    """The router group's lag on its ingress topics."""

    group: str | None
    rows: tuple[LagRow, ...] = ()
    error: str | None = None

    @property
    def total(self) -> int | None:
        return None if self.error is not None else sum(r.lag for r in self.rows)

    def of(self, jurisdiction: str) -> int | None:
        """Summed lag of the ingress topics declared in ``jurisdiction`` (None: none, or unknown)."""
        if self.error is not None:
            return None
        mine = [r.lag for r in self.rows if r.jurisdiction == jurisdiction]
        return sum(mine) if mine else None


@dataclass(frozen=True)
class JurisdictionRow:
    """One line of the overview: a jurisdiction's routed and quarantined offsets and rates, and
    the lag of the ingress topics declared in it."""

    jurisdiction: str
    routed_topics: int
    routed_offsets: int
    routed_per_s: float | None
    quarantine_topic: str | None
    quarantined_offsets: int
    quarantined_per_s: float | None
    lag: int | None
    missing_topics: tuple[str, ...] = ()


def jurisdiction_rows(roles: TopicRoles, current: OffsetSample, previous: OffsetSample | None,
                      lag: LagView) -> list[JurisdictionRow]:
    rows: list[JurisdictionRow] = []
    for j in roles.jurisdictions:
        routed = roles.routed_of(j)
        q = roles.quarantine.get(j)
        qs = [q] if q else []
        missing = tuple(t for t in [*routed, *qs] if t in current.missing)
        rows.append(JurisdictionRow(
            j, len(routed), current.end_total(routed), offset_rate(previous, current, routed),
            q, current.end_total(qs), offset_rate(previous, current, qs), lag.of(j), missing))
    return rows


@dataclass(frozen=True)
class QuarantineView:
    """Counts of one jurisdiction's quarantine topic, read ``read_committed``. ``behind`` is how
    many offsets were left unread when the refresh's read budget ran out (0: counted to the end
    the refresh sampled)."""

    jurisdiction: str
    topic: str
    stats: QuarantineStats | None
    behind: int = 0
    error: str | None = None


@dataclass(frozen=True)
class PlacementRow:
    """One topic's placement verdict (``ok``, ``violation``, ``missing``) and its explanation
    (naming partition, broker and rack) when it is not ok."""

    topic: str
    jurisdiction: str
    verdict: str
    detail: str = ""


@dataclass(frozen=True)
class PlacementView:
    rows: tuple[PlacementRow, ...] = ()
    offline: Mapping[int, str | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.verdict == "ok" for r in self.rows)

    def problems_of(self, jurisdiction: str) -> int:
        return sum(1 for r in self.rows if r.jurisdiction == jurisdiction and r.verdict != "ok")


@dataclass(frozen=True)
class KeyHealth:
    """One jurisdiction's key provider answered a cheap call (``digest_key``) or not, and how long
    it took. Never holds key material."""

    jurisdiction: str
    provider: str
    key_id: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class KeysView:
    rows: tuple[KeyHealth, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.rows)

    def of(self, jurisdiction: str) -> KeyHealth | None:
        return next((r for r in self.rows if r.jurisdiction == jurisdiction), None)


@dataclass(frozen=True)
class Member:
    """One router instance as the consumer group lists it."""

    member_id: str
    client_id: str
    host: str
    group_instance_id: str | None
    partitions: tuple[TP, ...]


@dataclass(frozen=True)
class GroupView:
    """The router's consumer group: its state, assignor, coordinator broker and members."""

    group: str | None
    state: str | None = None
    assignor: str | None = None
    coordinator: int | None = None
    members: tuple[Member, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Status:
    """Everything ``residency-router status`` shows, from one refresh. A section that could not be
    read carries its ``error`` and the others are still filled in; ``error`` set here means the
    cluster itself could not be read (the Kafka sections are then empty)."""

    taken_at_ms: int
    bootstrap: str
    sample_s: float | None
    jurisdictions: tuple[JurisdictionRow, ...]
    quarantine: tuple[QuarantineView, ...]
    quarantine_since_ms: int | None
    lag: LagView
    placement: PlacementView
    keys: KeysView
    group: GroupView
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """No cluster error, every topic in place, every key provider answering, every section read."""
        return (self.error is None and self.placement.ok and self.keys.ok and self.lag.error is None
                and self.group.error is None and all(q.error is None for q in self.quarantine))
