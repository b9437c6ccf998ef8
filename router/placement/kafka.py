"""The Kafka shell of placement: read the cluster's metadata, check at start, watch while running.

Only the Admin API is used: ``describe_cluster`` for the live brokers and their ``broker.rack``,
``describe_topics`` for each partition's replica list. While a partition is being reassigned the
metadata replica list is the union of the current and target replicas (adding replicas included),
so a replica being moved abroad counts as a violation from the moment the move starts. The Python
client exposes neither observers nor the adding/removing split, so neither is reported separately.

The controller. librdkafka sends both ``DescribeCluster`` and ``DescribeTopics`` (Metadata
requests) to the broker its last metadata named as the controller (admin requests default to
``RD_KAFKA_ADMIN_TARGET_CONTROLLER``; confluent-kafka-python 2.x has no option to pick another
broker). In KRaft that "controller" is any live broker the cluster chose, and librdkafka learns a
new one only from a later metadata response: after that broker dies, both calls fail with
``_TIMED_OUT`` ("Timed out waiting for controller") until the client's periodic metadata refresh,
minutes later. ``list_topics`` is a Metadata request to any broker that is up, and its response
updates the client's controller id; it has replica lists but no racks (the Python metadata has no
rack), so it cannot replace ``describe_cluster``. :func:`snapshot` therefore, on a timeout, asks
``list_topics`` once (any live broker answers; the controller id moves to a live broker) and
repeats the two describe calls; :class:`PlacementWatch` also recreates its admin client after
``recreate_admin_after`` consecutive failed checks.

Offline brokers (see :mod:`router.placement.model`): :class:`PlacementWatch` remembers the rack of
every broker a successful snapshot listed, and passes brokers that have since dropped out as
offline with that rack. At start-up (:func:`check_startup`) there is no memory: a broker that hosts
a replica of a required topic and is down then is unknown, and start-up refuses, naming it.
``DescribeCluster`` can list fenced brokers (KIP-1073, ``include_fenced_brokers``), but
confluent-kafka-python 2.x does not expose that option.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.cimpl import NewTopic

from router.config.models import RouterConfig
from router.config.security import reported_error
from router.errors import ConfigError
from router.kafka_read import CHECK_TIMEOUT_S, admin_client, check_connection
from router.placement.model import (
    ClusterSnapshot,
    JurisdictionOfRack,
    PlacementError,
    PlacementReport,
    PlacementUnavailableError,
    plan_assignment,
    requirements_of,
    verify,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DEFAULT_TIMEOUT_S = 10.0


def admin_for(config: RouterConfig, bootstrap: str | None = None, *,
              check_timeout: float | None = CHECK_TIMEOUT_S) -> Any:
    """An AdminClient for ``clusters.default``, with ``bootstrap`` overriding its bootstrap.

    The connection is checked first (:func:`router.kafka_read.check_connection`, for at most
    ``check_timeout`` seconds; None: not checked): a cluster that refuses the client's TLS or
    authentication raises the :class:`ConfigError` naming the ``clusters.default.security`` setting
    to fix. The client keeps a reporter of such errors, which :func:`snapshot` and the ACL calls
    fetch on their failure paths (:func:`router.config.security.reported_error`).
    """
    cluster = config.clusters.get("default")
    if cluster is None:
        raise ConfigError("placement reads the cluster named 'default': add clusters.default "
                          "with its bootstrap to the config")
    props: dict[str, str | int | float | bool] = dict(cluster.client_properties())
    if bootstrap:
        props["bootstrap.servers"] = bootstrap
    if check_timeout is not None:
        check_connection(props, timeout=check_timeout)
    return admin_client(props)


def _broker_id(replica: Any) -> int:
    # describe_topics reports replicas as Node objects; list_topics metadata as plain ids.
    return int(replica if isinstance(replica, int) else replica.id)


def _code(err: KafkaException) -> Any:
    first = err.args[0] if err.args else None
    return first.code() if isinstance(first, KafkaError) else None


def _describe(
    admin: Any, names: list[str], timeout: float,
) -> tuple[dict[int, str | None], dict[str, dict[int, tuple[int, ...]]]]:
    desc = admin.describe_cluster(request_timeout=timeout).result()
    brokers = {int(n.id): (n.rack or None) for n in desc.nodes}
    found: dict[str, dict[int, tuple[int, ...]]] = {}
    if names:
        futures = admin.describe_topics(TopicCollection(names), request_timeout=timeout)
        for name, future in futures.items():
            try:
                td = future.result()
            except KafkaException as err:
                if _code(err) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise
            found[name] = {int(p.id): tuple(_broker_id(r) for r in p.replicas) for p in td.partitions}
    return brokers, found


def snapshot(
    admin: Any, topics: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT_S,
    clock: Clock = time.monotonic,
) -> ClusterSnapshot:
    """Read live brokers (id -> rack) and the replica lists of ``topics`` from the cluster.

    A topic the cluster does not know is left out of ``ClusterSnapshot.topics`` (verify reports it
    MISSING). When the describe calls time out (the broker the client takes for the controller is
    gone, see the module docstring), one ``list_topics`` request to any live broker moves the
    client's controller id and the describe calls run once more; so one call can take up to about
    four times ``timeout``. Raises :class:`PlacementUnavailableError` when the cluster cannot be
    read.
    """
    names = sorted(set(topics))
    try:
        try:
            brokers, found = _describe(admin, names, timeout)
        except KafkaException as err:
            if _code(err) != KafkaError._TIMED_OUT:
                raise
            log.info("placement describe calls timed out (the client's controller may be down); "
                     "refreshing metadata from any live broker and retrying error=%r", str(err))
            admin.list_topics(timeout=timeout)
            brokers, found = _describe(admin, names, timeout)
    except KafkaException as err:
        explained = reported_error(admin)  # a TLS or authentication failure behind the time-out
        if explained is not None:
            raise PlacementUnavailableError(f"could not read topic placement from the cluster: {explained}") from None
        raise PlacementUnavailableError(
            f"could not read topic placement from the cluster: {err}; check clusters.default."
            "bootstrap (or --bootstrap) and that the brokers are up"
        ) from None
    return ClusterSnapshot(brokers, found, clock())


def check_startup(
    config: RouterConfig, admin: Any, *, timeout: float = DEFAULT_TIMEOUT_S,
) -> PlacementReport:
    """Verify every configured topic before the first record is consumed.

    Returns the report when all are in place; raises :class:`PlacementError` listing every
    violation (topic, partition, broker, rack, jurisdiction, and how to fix it) otherwise, and
    :class:`PlacementUnavailableError` when the cluster cannot be read. There is no memory of
    earlier racks here: a replica on a broker that is down at start-up (not registered with the
    cluster) is a violation naming that broker; start it, or reassign the replica, then start the
    router. Pass the returned ``report.brokers`` to :class:`PlacementWatch` as ``known_racks``.
    """
    required = requirements_of(config)
    report = verify(snapshot(admin, required, timeout=timeout), required, config.jurisdiction_of_rack)
    if not report.ok:
        raise PlacementError.from_report(report)
    return report


@dataclass(frozen=True)
class _State:
    placed: Mapping[str, str | None]
    expires_at: float
    report: PlacementReport | None


class PlacementWatch:
    """The latest placement verdict, re-checked on an interval, answering ``permitted()`` cheaply.

    The pipeline loop calls :meth:`maybe_refresh` each iteration (a check runs only when one is
    due), or :meth:`start` runs the same checks on a daemon thread. Either way the verdict is one
    immutable state object swapped in whole, so :meth:`permitted` is a clock read and a dict
    lookup with no lock. A failed check keeps the last verdict until it is ``max_verdict_age_s``
    old; after that, and before the first successful check, every topic is not permitted and
    :attr:`reason` says why.

    Offline brokers: the watch remembers the rack of every broker a successful check (or
    ``known_racks``, e.g. the start-up report's brokers) listed. A remembered broker missing from a
    later snapshot is offline with its last-known rack, and its replicas count as placed in that
    rack's jurisdiction: an offline broker receives no data, and when it returns the cluster
    reports its rack again, which replaces the memory, so a broker that comes back with a rack of
    another jurisdiction is a violation at the next check (the same detect-only window as any
    reassignment). A broker never listed stays unknown: a violation (fail closed). Offline brokers
    are logged once per change (WARNING when one goes, INFO when it returns).

    A stuck admin client: after ``recreate_admin_after`` consecutive failed checks the watch asks
    ``admin_factory`` (when given) for a new client, which bootstraps afresh.
    """

    def __init__(
        self,
        admin: Any,
        requirements: Mapping[str, str],
        jurisdiction_of_rack: JurisdictionOfRack,
        *,
        recheck_interval_s: float = 5.0,
        max_verdict_age_s: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT_S,
        clock: Clock = time.monotonic,
        snapshot_fn: Callable[..., ClusterSnapshot] = snapshot,
        known_racks: Mapping[int, str | None] | None = None,
        admin_factory: Callable[[], Any] | None = None,
        recreate_admin_after: int = 3,
    ) -> None:
        self._admin = admin
        self._admin_factory = admin_factory
        self.recreate_admin_after = max(1, recreate_admin_after)
        self._failures = 0
        self._racks: dict[int, str | None] = dict(known_racks or {})
        self._offline: dict[int, str | None] = {}
        self._requirements = dict(requirements)
        self._j_of_rack = jurisdiction_of_rack
        self.recheck_interval_s = recheck_interval_s
        self.max_verdict_age_s = max_verdict_age_s
        self._timeout = min(timeout, max(recheck_interval_s, 1.0))
        self._clock = clock
        self._snapshot = snapshot_fn
        self._state = _State({}, float("-inf"), None)
        self._next_check = float("-inf")
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: RouterConfig, admin: Any, *, bootstrap: str | None = None,
                    **kwargs: Any) -> PlacementWatch:
        """A watch over every topic ``config`` requires; a stuck admin client is replaced by
        ``admin_for(config, bootstrap)`` (not checked again: the failed checks already say why)
        unless ``admin_factory`` is given."""
        kwargs.setdefault("admin_factory", lambda: admin_for(config, bootstrap, check_timeout=None))
        return cls(admin, requirements_of(config), config.jurisdiction_of_rack,
                   recheck_interval_s=config.placement.recheck_interval_s,
                   max_verdict_age_s=config.placement.max_verdict_age_s, **kwargs)

    # -- hot path ----------------------------------------------------------------------------
    def permitted(self, topic: str, jurisdiction: str) -> bool:
        """True only if the current, unexpired verdict has every replica of ``topic`` in
        ``jurisdiction``."""
        state = self._state
        return self._clock() <= state.expires_at and state.placed.get(topic) == jurisdiction

    # -- checks ------------------------------------------------------------------------------
    def refresh(self) -> PlacementReport | None:
        """Check now. Returns the new report, or None when the cluster could not be read (the
        previous verdict stays until it expires)."""
        self._next_check = self._clock() + self.recheck_interval_s
        try:
            snap = self._snapshot(self._admin, self._requirements, timeout=self._timeout,
                                  clock=self._clock)
        except PlacementUnavailableError as err:
            self._last_error = str(err)
            self._failures += 1
            log.warning("placement check failed error=%r consecutive_failures=%d "
                        "verdict_expires_at=%s", str(err), self._failures, self._state.expires_at)
            if self._admin_factory is not None and self._failures % self.recreate_admin_after == 0:
                self._recreate_admin()
            return None
        self._failures = 0
        snap = self._with_offline(snap)
        report = verify(snap, self._requirements, self._j_of_rack)
        previous = self._state.report
        self._state = _State({t: p.placed_in for t, p in report.topics.items()},
                             snap.taken_at + self.max_verdict_age_s, report)
        self._last_error = None
        for name, p in report.topics.items():
            was_ok = previous.topics[name].ok if previous and name in previous.topics else None
            if p.ok != was_ok and not p.ok:
                log.error("placement violation topic=%s required=%s verdict=%s detail=%r",
                          name, p.required, p.verdict.value, p.describe())
            elif p.ok and was_ok is False:
                log.info("placement restored topic=%s required=%s", name, p.required)
        return report

    def _recreate_admin(self) -> None:
        assert self._admin_factory is not None
        try:
            admin = self._admin_factory()
        except Exception as err:  # keep the old client; the next failures retry
            log.warning("placement admin client could not be recreated error=%r", str(err))
            return
        self._admin = admin
        log.warning("placement admin client recreated after %d consecutive failed checks",
                    self._failures)

    def _with_offline(self, snap: ClusterSnapshot) -> ClusterSnapshot:
        """``snap`` with remembered brokers it does not list as offline; the listed brokers'
        racks replace the memory. Logs each broker that goes offline or returns, once."""
        offline = {b: rack for b, rack in self._racks.items() if b not in snap.brokers}
        self._racks.update(snap.brokers)
        for b in sorted(offline.keys() - self._offline.keys()):
            log.warning("placement broker %d offline (last seen in rack %s, jurisdiction %s); "
                        "its replicas count in that jurisdiction until it returns", b,
                        offline[b], self._j_of_rack(offline[b]))
        for b in sorted(self._offline.keys() - offline.keys()):
            log.info("placement broker %d back online rack=%s jurisdiction=%s", b,
                     snap.brokers.get(b), self._j_of_rack(snap.brokers.get(b)))
        self._offline = offline
        return replace(snap, offline=offline)

    @property
    def offline_brokers(self) -> Mapping[int, str | None]:
        """Brokers missing from the last successful check, with their last-known rack."""
        return dict(self._offline)

    def maybe_refresh(self, now: float | None = None) -> bool:
        """Run a check if one is due at ``now`` (default: the clock); True if one ran."""
        if (self._clock() if now is None else now) < self._next_check:
            return False
        self.refresh()
        return True

    def start(self) -> None:
        """Run the checks on a daemon thread until :meth:`stop` (the first check runs now)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="placement-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.maybe_refresh()
            self._stop.wait(max(0.0, min(self.recheck_interval_s, self._next_check - self._clock())))

    # -- explanations ------------------------------------------------------------------------
    @property
    def report(self) -> PlacementReport | None:
        """The last successful report (possibly expired)."""
        return self._state.report

    @property
    def expired(self) -> bool:
        return self._clock() > self._state.expires_at

    @property
    def reason(self) -> str | None:
        """Why topics are not permitted as a whole (no verdict yet, or verdict expired), or None."""
        state = self._state
        if state.report is None:
            return "no placement check has succeeded yet" + (
                f" (last error: {self._last_error})" if self._last_error else "")
        if self._clock() > state.expires_at:
            age = self._clock() - state.report.taken_at
            return (f"the last successful placement check is {age:.1f} s old, older than "
                    f"placement.max_verdict_age_s={self.max_verdict_age_s:g}; every topic is "
                    "treated as not permitted" + (f" (last error: {self._last_error})"
                                                  if self._last_error else ""))
        return None

    def why_not(self, topic: str, jurisdiction: str) -> str | None:
        """None when permitted; otherwise a value-free sentence naming topic, partition, broker."""
        if self.permitted(topic, jurisdiction):
            return None
        if (whole := self.reason) is not None:
            return whole
        report = self._state.report
        placement = report.topics.get(topic) if report else None
        if placement is None:
            return f"topic {topic} is not among the configured topics placement checks"
        if placement.required != jurisdiction:
            return f"topic {topic} is configured for jurisdiction {placement.required}, not {jurisdiction}"
        return placement.describe()

    def __enter__(self) -> PlacementWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class CreateOutcome:
    topic: str
    jurisdiction: str
    action: str
    """'created' or 'exists'."""
    assignment: list[list[int]]


def create_topics(config: RouterConfig, admin: Any, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[CreateOutcome]:
    """Create every configured topic that does not exist, replicas only on its jurisdiction's brokers.

    An ingress topic (listed under ``topics`` too) is created with ``retention.ms`` set to its
    ``pipeline.ingress[].max_retention``, ``cleanup.policy=delete`` and a ``segment.ms`` within the
    bound (:func:`router.pipeline.ingress_retention.ingress_topic_settings`). Checks that every
    jurisdiction has enough brokers before creating anything; existing topics are left as they are
    (the caller verifies them). Raises :class:`PlacementError` when a jurisdiction has fewer live
    brokers than a topic's replication factor.
    """
    from router.pipeline.ingress_retention import bounds_of, ingress_topic_settings  # noqa: PLC0415

    snap = snapshot(admin, requirements_of(config), timeout=timeout)
    plans = _plan_missing(config, snap)
    bounds = bounds_of(config.pipeline)
    outcomes: list[CreateOutcome] = []
    if plans:
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=len(a), replica_assignment=a,
                      config=ingress_topic_settings(bounds[name].bound_ms) if name in bounds else {})
             for name, a in plans.items()],
            request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as err:
                if err.args and err.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created concurrently: verified like any existing topic
                raise PlacementUnavailableError(f"could not create topic {name}: {err}") from None
    for t in config.topics:
        if t.name in plans:
            outcomes.append(CreateOutcome(t.name, t.jurisdiction, "created", plans[t.name]))
        else:
            existing = snap.topics.get(t.name, {})
            outcomes.append(CreateOutcome(t.name, t.jurisdiction, "exists",
                                          [list(existing[p]) for p in sorted(existing)]))
    return outcomes


def _plan_missing(config: RouterConfig, snap: ClusterSnapshot) -> dict[str, list[list[int]]]:
    by_j: dict[str, list[int]] = {}
    for broker, rack in snap.brokers.items():
        if (j := config.jurisdiction_of_rack(rack)) is not None:
            by_j.setdefault(j, []).append(broker)
    plans: dict[str, list[list[int]]] = {}
    problems: list[str] = []
    for t in config.topics:
        if t.name in snap.topics:
            continue
        brokers = sorted(by_j.get(t.jurisdiction, []))
        if len(brokers) < t.replication_factor:
            racks = ", ".join(config.jurisdictions[t.jurisdiction].racks)
            problems.append(
                f"topic {t.name} needs replication_factor {t.replication_factor} in jurisdiction "
                f"{t.jurisdiction}, which has {len(brokers)} live broker(s) {brokers} (racks {racks}); "
                f"lower topics[].replication_factor or add brokers with a rack of {t.jurisdiction}")
            continue
        plans[t.name] = plan_assignment(brokers, t.partitions, t.replication_factor)
    if problems:
        raise PlacementError("cannot create topics inside their jurisdiction:\n  " + "\n  ".join(problems))
    return plans


def wait_for_topics(admin: Any, topics: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT_S,
                    clock: Clock = time.monotonic) -> ClusterSnapshot:
    """Snapshot ``topics``, retrying until each is visible in metadata or ``timeout`` passes."""
    names = list(topics)
    deadline = clock() + timeout
    while True:
        snap = snapshot(admin, names, timeout=timeout, clock=clock)
        if all(n in snap.topics and snap.topics[n] for n in names) or clock() >= deadline:
            return snap
        time.sleep(0.2)
