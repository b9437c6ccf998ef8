"""Collect ``residency-router status`` from Kafka and the key providers: the I/O shell of
:mod:`router.ops.model`.

Everything comes from the cluster and the config, never from a running router: end and start
offsets of every configured and ingress topic (Admin ``list_topics`` + ``list_offsets``), the
router group's committed offsets (``list_consumer_group_offsets``) and members
(``describe_consumer_groups``), the placement check :mod:`router.placement` runs at start-up
(``describe_cluster`` + ``describe_topics``), the quarantine topics read ``read_committed`` and
counted with :class:`router.quarantine.reader.QuarantineStats`, and one timed ``digest_key`` call per
jurisdiction's key provider. The clients are passed in, so the collection runs against fakes in unit
tests.

Each source is read on its own: one that fails (OpenBao down, the group coordinator moving) becomes
that section's ``error`` and the others are still shown. Only a cluster whose topic metadata cannot
be read at all fails the whole refresh (:class:`ClusterUnreachableError`, naming
``clusters.default.bootstrap`` and the timeout).

Quarantine counts are cached between refreshes: one consumer stays assigned to the quarantine
topics and each refresh reads only the offsets added since the last one, within a time budget;
what the budget leaves unread shows as ``behind`` and is read by the next refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from router.config.models import RouterConfig
from router.config.security import reported_error
from router.errors import ConfigError, RouterError
from router.keys.config import KeysConfig, LocalProviderConfig, OpenBaoProviderConfig, RetryConfig
from router.keys.protocol import KeyProvider
from router.ops.model import (
    TP,
    GroupView,
    KeyHealth,
    KeysView,
    LagView,
    Member,
    OffsetSample,
    PlacementRow,
    PlacementView,
    QuarantineView,
    Status,
    TopicRoles,
    jurisdiction_rows,
    lag_rows,
)
from router.quarantine.reader import (
    SINCE_MARGIN_MS,
    Filter,
    QuarantineReadError,
    QuarantineStats,
    decode_entry,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
STATUS_GROUP_PREFIX = "residency-router-status"
"""Prefix of the consumer group id the quarantine reader carries (it never joins nor commits)."""


class ClusterUnreachableError(RouterError):
    """The cluster's topic metadata could not be read within the timeout; names the setting."""


def cluster_properties(config: RouterConfig, bootstrap: str | None = None) -> dict[str, Any]:
    """librdkafka properties of ``clusters.default``, ``bootstrap`` overriding its bootstrap."""
    cluster = config.clusters.get("default")
    if cluster is None:
        raise ConfigError("status reads the cluster named 'default': add clusters.default with its bootstrap")
    props: dict[str, Any] = dict(cluster.client_properties())
    if bootstrap:
        props["bootstrap.servers"] = bootstrap
    return props


def describe_error(err: BaseException) -> str:
    """A one-line, value-free description of a client error (KafkaError's own text when it is one)."""
    first = err.args[0] if err.args else None
    own = getattr(first, "str", None)  # KafkaError.str(): the error's text without its repr
    if callable(own):
        return str(own())
    return str(err) if isinstance(err, RouterError) else f"{type(err).__name__}: {err}"


# -- offsets ---------------------------------------------------------------------------------------


def sample_offsets(admin: Any, topics: list[str], *, timeout: float, clock: Callable[[], float],
                   bootstrap: str) -> OffsetSample:
    """End and start offsets of every partition of ``topics`` (``read_uncommitted`` end offsets:
    the high watermarks). Raises :class:`ClusterUnreachableError` when the metadata cannot be read."""
    from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import OffsetSpec  # noqa: PLC0415

    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as err:
        if (explained := reported_error(admin)) is not None:  # TLS or authentication refused: name the setting
            raise ClusterUnreachableError(str(explained)) from None
        raise ClusterUnreachableError(
            f"could not read the cluster's metadata from {bootstrap} (clusters.default.bootstrap, or --bootstrap) "
            f"within {timeout:g} s (--timeout): {describe_error(err)}; check that the brokers are up and reachable"
        ) from None
    parts: list[TP] = []
    missing: list[str] = []
    for name in topics:
        t = md.topics.get(name)
        if t is None or t.error is not None or not t.partitions:
            missing.append(name)
            continue
        parts += [(name, p) for p in sorted(t.partitions)]
    if not parts:
        return OffsetSample(clock(), {}, {}, tuple(missing))

    def listed(spec: Any) -> dict[TP, int]:
        futures = admin.list_offsets({TopicPartition(t, p): spec for t, p in parts}, request_timeout=timeout)
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}

    high = listed(OffsetSpec.latest())  # type: ignore[no-untyped-call]  # confluent_kafka has no annotations
    taken_at = clock()
    low = listed(OffsetSpec.earliest())  # type: ignore[no-untyped-call]  # confluent_kafka has no annotations
    return OffsetSample(taken_at, high, low, tuple(missing))


def committed_offsets(admin: Any, group: str, partitions: list[TP], *, timeout: float) -> dict[TP, int]:
    """The group's committed offset of each partition (partitions without one are left out)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition  # noqa: PLC0415

    if not partitions:
        return {}
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])]
    result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result()
    out: dict[TP, int] = {}
    for tp in result.topic_partitions or []:
        if getattr(tp, "error", None) is None and tp.offset is not None and tp.offset >= 0:
            out[(tp.topic, tp.partition)] = int(tp.offset)
    return out


def describe_group(admin: Any, group: str, *, timeout: float) -> GroupView:
    """The group's state, assignor, coordinator and members with their assigned partitions."""
    desc = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
    members = tuple(
        Member(
            m.member_id, m.client_id, m.host, m.group_instance_id,
            tuple(sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else []))),
        )
        for m in sorted(desc.members or [], key=lambda m: (m.client_id, m.member_id))
    )
    state = desc.state
    coordinator = getattr(desc.coordinator, "id", None)
    return GroupView(group, str(getattr(state, "name", state)).lower() if state is not None else None,
                     desc.partition_assignor or None, None if coordinator is None else int(coordinator), members)


def placement_view(admin: Any, config: RouterConfig, *, timeout: float) -> PlacementView:
    """The placement verdict of every topic the router reads or writes, with the same code as
    ``residency-router placement`` and ``run``'s start-up check."""
    from router.placement.kafka import snapshot  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    required = requirements_of(config)
    report = verify(snapshot(admin, required, timeout=timeout), required, config.jurisdiction_of_rack)
    rows = tuple(PlacementRow(t.topic, t.required, t.verdict.value, "" if t.ok else t.describe())
                 for t in sorted(report.topics.values(), key=lambda t: t.topic))
    return PlacementView(rows, dict(report.offline))


# -- keys --------------------------------------------------------------------------------------------


def single_attempt_builder(keys: KeysConfig) -> Callable[[LocalProviderConfig | OpenBaoProviderConfig], KeyProvider]:
    """Build providers as ``run`` does (:func:`router.keys.factory.build_provider`) but with one
    attempt per call: a status check reports an outage instead of retrying through it."""
    from router.keys.factory import build_provider  # noqa: PLC0415

    once = keys.model_copy(update={"retry": RetryConfig(attempts=1)})
    return lambda cfg: build_provider(cfg, once)


class KeyProbe:
    """Times one ``digest_key`` call per jurisdiction of ``keys.jurisdictions``: the call ``run``
    makes for its keyed digests, answered by the KMS without handing out a data key. The result is
    dropped; only ok/error and the latency are kept. Providers are built once and reused; one that
    cannot be built (a missing keyring, an unset token variable) is an error row and is tried again
    at the next check."""

    def __init__(self, keys: KeysConfig | None, *,
                 build: Callable[[LocalProviderConfig | OpenBaoProviderConfig], KeyProvider] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._keys = keys
        self._build = build if build is not None or keys is None else single_attempt_builder(keys)
        self._clock = clock
        self._providers: dict[str, KeyProvider] = {}

    def _provider(self, name: str) -> KeyProvider:
        assert self._keys is not None
        assert self._build is not None
        p = self._providers.get(name)
        if p is None:
            p = self._providers[name] = self._build(self._keys.providers[name])
        return p

    def check(self) -> KeysView:
        if self._keys is None:
            return KeysView((), "the config has no 'keys' section")
        rows: list[KeyHealth] = []
        for j, jk in sorted(self._keys.jurisdictions.items()):
            key_id = self._keys.key_id(j)
            start = self._clock()
            try:
                self._provider(jk.provider).digest_key(key_id)
            except Exception as err:  # any failure of this provider is its row's error, not the screen's
                rows.append(KeyHealth(j, jk.provider, key_id, False, (self._clock() - start) * 1000,
                                      describe_error(err)))
                continue
            rows.append(KeyHealth(j, jk.provider, key_id, True, (self._clock() - start) * 1000))
        return KeysView(tuple(rows))


# -- quarantine counts -------------------------------------------------------------------------------


class QuarantineCounter:
    """Counts of every jurisdiction's quarantine topic, read ``read_committed`` once and then
    incrementally: the consumer stays assigned, and each :meth:`refresh` reads from where the last
    stopped to the end offsets of the refresh's sample, for at most ``budget_s`` seconds.

    ``since_ms`` limits the counts to records quarantined at or after it (seeking by Kafka timestamp
    :data:`SINCE_MARGIN_MS` earlier, then filtering by the record's own time), fixed for the
    counter's lifetime. A read error drops the consumer and the counts; the next refresh starts
    over.
    """

    SETTLE_S = 0.3
    """How long a refresh waits for more records once every partition it still expects has
    reported its end: records past the end of committed data (an open transaction) come later."""

    def __init__(self, topics: Mapping[str, str], consumer_factory: Callable[[], Any], *,
                 since_ms: int | None = None, budget_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._topics = dict(topics)
        self._jurisdiction_of = {t: j for j, t in topics.items()}
        self._factory = consumer_factory
        self._keep = Filter(since_ms=since_ms)
        self.since_ms = since_ms
        self._budget_s = budget_s
        self._clock = clock
        self._timeout = timeout
        self._consumer: Any = None
        self._pos: dict[TP, int] = {}
        self._stats: dict[str, QuarantineStats] = {}

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()

    def _start(self, sample: OffsetSample) -> None:
        from confluent_kafka import TopicPartition  # noqa: PLC0415

        parts = [(t, p) for t in sorted(self._jurisdiction_of) for p in sample.partitions(t)]
        starts = {tp: sample.low.get(tp, 0) for tp in parts}
        consumer = self._factory()
        try:
            if self.since_ms is not None and parts:
                at = max(0, self.since_ms - SINCE_MARGIN_MS)
                found = consumer.offsets_for_times([TopicPartition(t, p, at) for t, p in parts], timeout=self._timeout)
                for tp in found:
                    key = (tp.topic, tp.partition)
                    # No record at or after the time: start at the end the sample saw.
                    starts[key] = sample.high[key] if tp.offset < 0 else max(int(tp.offset), starts[key])
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        self._pos = starts
        self._stats = {j: QuarantineStats() for j in self._topics}

    def refresh(self, sample: OffsetSample) -> tuple[QuarantineView, ...]:
        """Read what ``sample`` shows was added since the last refresh; a view per jurisdiction."""
        try:
            if self._consumer is None:
                self._start(sample)
            self._read(sample)
        except Exception as err:  # the consumer is rebuilt at the next refresh
            self.close()
            self._pos, self._stats = {}, {}
            why = describe_error(err)
            return tuple(QuarantineView(j, t, None, 0, why) for j, t in sorted(self._topics.items()))
        views: list[QuarantineView] = []
        for j, topic in sorted(self._topics.items()):
            if topic in sample.missing:
                views.append(QuarantineView(j, topic, None, 0, f"quarantine topic {topic!r} does not exist (check "
                                                               "policy.quarantine_topic and 'topics', then run "
                                                               "`residency-router topics create`)"))
                continue
            behind = sum(max(0, sample.high[tp] - o) for tp, o in self._pos.items() if tp[0] == topic)
            views.append(QuarantineView(j, topic, self._stats.get(j), behind))
        return tuple(views)

    def _read(self, sample: OffsetSample) -> None:
        from confluent_kafka import KafkaError  # noqa: PLC0415

        target = {tp: sample.high[tp] for tp in self._pos if tp in sample.high}
        pending = {tp for tp, end in target.items() if self._pos[tp] < end}
        ended: set[TP] = set()
        deadline = self._clock() + self._budget_s
        quiet_since: float | None = None
        while pending and self._clock() < deadline:
            msgs = self._consumer.consume(num_messages=500, timeout=0.1)
            for m in msgs:
                tp = (m.topic(), m.partition())
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._pos[tp] = max(self._pos.get(tp, 0), int(m.offset()))
                        ended.add(tp)
                        if self._pos[tp] >= target.get(tp, 0):
                            pending.discard(tp)
                        continue
                    raise QuarantineReadError(f"reading quarantine topic {tp[0]}[{tp[1]}]: {err.str()}")
                entry = decode_entry(tp[0], tp[1], m.offset(), m.value())
                if self._keep(entry):
                    self._stats[self._jurisdiction_of[tp[0]]].add(entry)
                self._pos[tp] = max(self._pos.get(tp, 0), int(m.offset()) + 1)
                ended.discard(tp)
                if self._pos[tp] >= target.get(tp, 0):
                    pending.discard(tp)
            if msgs or not pending <= ended:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = self._clock()
            elif self._clock() - quiet_since >= self.SETTLE_S:
                break  # every partition still short of its end offset is at the end of what is committed


# -- one refresh -------------------------------------------------------------------------------------


class StatusCollector:
    """Collects a :class:`Status` per :meth:`collect`; rates are against the previous sample
    (:meth:`sample` takes one without the rest, to prime the rates of the first status)."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        admin: Any,
        quarantine: QuarantineCounter,
        keys: KeyProbe,
        bootstrap: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.config = config
        self.roles = TopicRoles.from_config(config)
        self.group = config.pipeline.group_id if config.pipeline is not None else None
        self._admin = admin
        self._quarantine = quarantine
        self._keys = keys
        self.bootstrap = bootstrap
        self._timeout = timeout
        self._clock = clock
        self._now_ms = now_ms
        self._previous: OffsetSample | None = None

    @classmethod
    def from_config(cls, config: RouterConfig, *, bootstrap: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                    since_ms: int | None = None, read_budget_s: float = 5.0,
                    client_logger: logging.Logger | None = None) -> StatusCollector:
        """A collector with real clients for ``clusters.default`` (``bootstrap`` overriding)."""
        from router.kafka_read import admin_client, committed_reader  # noqa: PLC0415

        props = cluster_properties(config, bootstrap)
        if client_logger is not None:
            props["logger"] = client_logger
        roles = TopicRoles.from_config(config)
        counter = QuarantineCounter(
            roles.quarantine, lambda: committed_reader(props, group_prefix=STATUS_GROUP_PREFIX),
            since_ms=since_ms, budget_s=read_budget_s, timeout=timeout)
        return cls(config, admin=admin_client(props), quarantine=counter, keys=KeyProbe(config.keys),
                   bootstrap=str(props["bootstrap.servers"]), timeout=timeout)

    def close(self) -> None:
        self._quarantine.close()

    def sample(self) -> OffsetSample:
        """Sample the offsets now (the base of the next :meth:`collect`'s rates). Raises
        :class:`ClusterUnreachableError` when the cluster cannot be read."""
        current = sample_offsets(self._admin, self.roles.topics(), timeout=self._timeout, clock=self._clock,
                                 bootstrap=self.bootstrap)
        self._previous = current
        return current

    def collect(self) -> Status:
        """One refresh. A cluster that cannot be read gives a status whose ``error`` says so (key
        health is still checked); a section that fails carries its own error."""
        previous = self._previous
        taken_at_ms = self._now_ms()
        try:
            current = self.sample()
        except ClusterUnreachableError as err:
            self._previous = None
            return self._without_cluster(taken_at_ms, str(err))
        except Exception as err:  # e.g. list_offsets failing for a partition without a leader
            self._previous = None
            return self._without_cluster(taken_at_ms, f"could not read the topics' offsets: {describe_error(err)}")
        lag = self._lag(current)
        return Status(
            taken_at_ms=taken_at_ms,
            bootstrap=self.bootstrap,
            sample_s=None if previous is None else current.taken_at - previous.taken_at,
            jurisdictions=tuple(jurisdiction_rows(self.roles, current, previous, lag)),
            quarantine=self._quarantine.refresh(current),
            quarantine_since_ms=self._quarantine.since_ms,
            lag=lag,
            placement=self._placement(),
            keys=self._keys.check(),
            group=self._group(),
        )

    def _without_cluster(self, taken_at_ms: int, error: str) -> Status:
        return Status(taken_at_ms, self.bootstrap, None, (), (), self._quarantine.since_ms,
                      LagView(self.group, (), error), PlacementView((), {}, error), self._keys.check(),
                      GroupView(self.group, error=error), error)

    def _lag(self, current: OffsetSample) -> LagView:
        if self.group is None:
            return LagView(None, (), "the config has no 'pipeline' section (pipeline.group_id names the group)")
        parts = [(t, p) for t in sorted(self.roles.ingress) for p in current.partitions(t)]
        try:
            committed = committed_offsets(self._admin, self.group, parts, timeout=self._timeout)
        except Exception as err:  # the section's error; the others still show
            return LagView(self.group, (), f"could not read the committed offsets of group {self.group!r}: "
                                           f"{describe_error(err)}")
        return LagView(self.group, tuple(lag_rows(self.roles, current, committed)))

    def _group(self) -> GroupView:
        if self.group is None:
            return GroupView(None, error="the config has no 'pipeline' section (pipeline.group_id names the group)")
        try:
            return describe_group(self._admin, self.group, timeout=self._timeout)
        except Exception as err:  # the section's error; the others still show
            return GroupView(self.group, error=f"could not describe group {self.group!r}: {describe_error(err)}")

    def _placement(self) -> PlacementView:
        try:
            return placement_view(self._admin, self.config, timeout=self._timeout)
        except Exception as err:  # the section's error; the others still show
            return PlacementView((), {}, describe_error(err))
