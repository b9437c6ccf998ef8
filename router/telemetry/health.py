"""Is the router alive, is it ready, and what do its gauges read: one value-free view over the
engine, the placement watch, the key providers and the consumer's lag.

:class:`RouterHealth` is read from the HTTP server's threads and the metric readers' threads while
the engine runs on its own: every source it reads is either immutable and swapped in whole (the
engine's :class:`~router.pipeline.engine.EngineHealth`, the placement watch's verdict, the lag
table) or locked (:class:`~router.keys.wrappers.ProviderStatus`).

Ready means: partitions are assigned, the engine is not stalled (a :class:`StallError` back-off or
transactions failing ``abort_escalate_after`` times in a row), the placement verdict is fresh,
the last call of every key provider succeeded, and every OAUTHBEARER token source got its last
token (:func:`router.auth.tokens.failures`). Each check that fails adds a sentence to
:attr:`Readiness.reasons`; readiness comes back by itself once the cause clears.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from router import telemetry
from router.auth import tokens
from router.pipeline.engine import EngineHealth
from router.telemetry.keys import ProviderStatus

log = logging.getLogger("router.telemetry")


class EngineSource(Protocol):
    def health(self) -> EngineHealth: ...


class PlacementSource(Protocol):
    """What :class:`router.placement.kafka.PlacementWatch` answers."""

    @property
    def report(self) -> Any: ...

    @property
    def expired(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...


class ConsumerLag:
    """Per-partition consumer lag from librdkafka's statistics (the consumer's ``stats_cb``).

    Lag is the partition's end (the last stable offset under ``read_committed``, else the high
    watermark) minus the consumer's position (the offset after the last record handed to the
    router, else the committed offset, else the next offset to fetch). The callback runs on the
    engine's thread inside ``consume()``; the table is replaced whole, so readers need no lock.
    Statistics come every ``statistics.interval.ms`` while the engine polls; during a back-off the
    last reading stays.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lag: Mapping[tuple[str, int], int] = {}
        self.updated_at: float | None = None

    def on_stats(self, stats_json: str) -> None:
        """``stats_cb``: never raises (a malformed document is logged and ignored)."""
        try:
            stats = json.loads(stats_json)
            lag: dict[tuple[str, int], int] = {}
            for topic, t in (stats.get("topics") or {}).items():
                for p in (t.get("partitions") or {}).values():
                    partition = int(p.get("partition", -1))
                    if partition < 0:  # the internal UA partition
                        continue
                    end = _first_valid(p.get("ls_offset"), p.get("hi_offset"))
                    pos = _first_valid(p.get("app_offset"), p.get("committed_offset"), p.get("next_offset"))
                    if end is not None and pos is not None:
                        lag[(str(topic), partition)] = max(0, end - pos)
        except (ValueError, TypeError, AttributeError) as err:
            log.warning("consumer statistics could not be read (%s); lag not updated", type(err).__name__)
            return
        self._lag = lag
        self.updated_at = self._clock()

    def lag(self) -> Mapping[tuple[str, int], int]:
        return self._lag


def _first_valid(*values: object) -> int | None:
    for v in values:
        if isinstance(v, int) and v >= 0:
            return v
    return None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]
    """One value-free sentence per failed check (empty when ready)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """What each check saw, as JSON-ready values."""

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": self.reasons, **self.detail}


class RouterHealth:
    """The router's health and gauges. Sources may be None before they exist (start-up)."""

    def __init__(
        self,
        engine: EngineSource | None = None,
        placement: PlacementSource | None = None,
        keys: ProviderStatus | None = None,
        lag: ConsumerLag | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.placement = placement
        self.keys = keys
        self.lag = lag
        self._clock = clock
        self.started_at = clock()

    def uptime_s(self) -> float:
        return self._clock() - self.started_at

    # -- sources -------------------------------------------------------------------------
    def engine_health(self) -> EngineHealth | None:
        return self.engine.health() if self.engine is not None else None

    def partition_lag(self) -> dict[tuple[str, int], int]:
        """Lag of the partitions this instance holds (others the statistics list are dropped)."""
        health = self.engine_health()
        if self.lag is None or health is None:
            return {}
        return {tp: n for tp, n in self.lag.lag().items() if tp in health.assigned}

    def verdict_age_s(self) -> float | None:
        """Seconds since the placement check behind the current verdict (None before the first)."""
        report = self.placement.report if self.placement is not None else None
        if report is None:
            return None
        return max(0.0, self._clock() - float(report.taken_at))

    # -- readiness -------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        reasons: list[str] = []
        detail: dict[str, Any] = {}
        health = self.engine_health()
        if health is None:
            reasons.append("the engine has not started")
        else:
            assigned = sorted(health.assigned)
            detail["partitions"] = [f"{t}[{p}]" for t, p in assigned]
            lag = self.partition_lag()
            detail["lag"] = {f"{t}[{p}]": n for (t, p), n in sorted(lag.items())}
            detail["stalled"] = health.stall_cause
            detail["last_commit_age_s"] = (
                round(health.last_commit_age_s, 3) if health.last_commit_age_s is not None else None
            )
            detail["counters"] = {
                "consumed": health.stats.consumed,
                "produced": health.stats.produced,
                "commits": health.stats.commits,
                "aborts": health.stats.aborts,
                "producer_restarts": health.stats.producer_restarts,
                "stalls": health.stats.stalls,
            }
            if not assigned:
                reasons.append("no partitions assigned yet (waiting for the consumer group)")
            if health.stall_cause is not None:
                detail["stall_detail"] = health.stall_detail
                reasons.append(f"stalled ({health.stall_cause}): {health.stall_detail}")
        if self.placement is not None:
            age = self.verdict_age_s()
            detail["placement"] = {
                "verdict_age_s": round(age, 3) if age is not None else None,
                "violations": _violations(self.placement.report),
            }
            if self.placement.report is None or self.placement.expired:
                reasons.append(f"placement verdict not fresh: {self.placement.reason or 'expired'}")
        if self.keys is not None:
            failing = self.keys.failing()
            detail["keys"] = {"failing": [f"{o.provider}/{o.jurisdiction}: {o.error}" for o in failing]}
            for o in failing:
                reasons.append(
                    f"the last call of key provider {o.provider} for jurisdiction {o.jurisdiction} failed "
                    f"({o.error}); ready again after its next success"
                )
        token_failures = tokens.failures()
        if token_failures:
            detail["tokens"] = {"failing": [str(f) for f in token_failures]}
            reasons.extend(f"no OAUTHBEARER token for Kafka: {f}; ready again once a token is obtained"
                           for f in token_failures)
        return Readiness(not reasons, reasons, detail)


def _violations(report: Any) -> list[str]:
    if report is None or getattr(report, "ok", True):
        return []
    return sorted(t.topic for t in report.failures)


# -- observable instruments ------------------------------------------------------------------
# Created at import, from the global API like the router's other instruments: they bind to the
# providers router.telemetry.setup.install() sets later. Callbacks read the active RouterHealth
# objects (normally one per process; none, and they report nothing).
_active: list[RouterHealth] = []
_active_lock = threading.Lock()


def activate(health: RouterHealth) -> None:
    """Let the router's observable gauges read ``health`` (until :func:`deactivate`)."""
    with _active_lock:
        _active.append(health)


def deactivate(health: RouterHealth) -> None:
    with _active_lock:
        if health in _active:
            _active.remove(health)


def _sources() -> list[RouterHealth]:
    with _active_lock:
        return list(_active)


def _each_engine() -> list[EngineHealth]:
    return [h for h in (s.engine_health() for s in _sources()) if h is not None]


def _lag(_: CallbackOptions) -> list[Observation]:
    return [
        Observation(n, {"topic": t, "partition": p})
        for s in _sources()
        for (t, p), n in sorted(s.partition_lag().items())
    ]


def _assigned(_: CallbackOptions) -> list[Observation]:
    return [Observation(len(h.assigned)) for h in _each_engine()]


def _stalled(_: CallbackOptions) -> list[Observation]:
    return [Observation(int(h.stall_cause is not None), {"cause": h.stall_cause or "none"}) for h in _each_engine()]


def _commit_age(_: CallbackOptions) -> list[Observation]:
    return [Observation(h.last_commit_age_s) for h in _each_engine() if h.last_commit_age_s is not None]


def _verdict_age(_: CallbackOptions) -> list[Observation]:
    return [Observation(a) for a in (s.verdict_age_s() for s in _sources()) if a is not None]


def _ready(_: CallbackOptions) -> list[Observation]:
    return [Observation(int(s.readiness().ready)) for s in _sources()]


def _counter(name: str) -> Callable[[CallbackOptions], list[Observation]]:
    return lambda _: [Observation(getattr(h.stats, name)) for h in _each_engine()]


_m = telemetry.meter
_m.create_observable_gauge(
    "router.consumer.lag", [_lag], unit="{record}", description="Records not yet consumed, per assigned partition"
)
_m.create_observable_gauge(
    "router.partitions.assigned", [_assigned], unit="{partition}", description="Ingress partitions held"
)
_m.create_observable_gauge(
    "router.stalled", [_stalled], unit="1", description="1 while the engine backs off instead of making progress"
)
_m.create_observable_gauge(
    "router.transaction.last_commit.age", [_commit_age], unit="s", description="Seconds since the last commit"
)
_m.create_observable_gauge(
    "router.placement.verdict.age", [_verdict_age], unit="s",
    description="Seconds since the placement check behind the current verdict",
)
_m.create_observable_gauge("router.ready", [_ready], unit="1", description="1 when /readyz answers ready")
_m.create_observable_counter(
    "router.records.consumed", [_counter("consumed")], unit="{record}", description="Ingress records processed"
)
_m.create_observable_counter(
    "router.records.produced", [_counter("produced")], unit="{record}",
    description="Records produced (routed, quarantined, audit) in committed or aborted transactions",
)
_m.create_observable_counter(
    "router.producer.recreations", [_counter("producer_restarts")], unit="{producer}",
    description="Transactional producers re-created after a fatal or ambiguous error",
)
