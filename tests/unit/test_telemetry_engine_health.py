"""The engine's health snapshot, taken while it runs over the in-memory Kafka fakes: a StallError
back-off and an escalated run of failed transactions show as stalled (and /readyz's checks say not
ready), and both clear once a batch goes through again; assignment and commits are reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError

from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineHealth, EngineStats
from router.telemetry.health import RouterHealth
from tests.unit.fake_kafka import FakeCluster, wire_engine
from tests.unit.test_pipeline_engine_errors import (
    INGRESS,
    Stalling,
    Waits,
    _engine,
    _router_processor,
    _settings,
    _values,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    return wire_engine(FakeCluster(), monkeypatch)


@dataclass
class Report:
    taken_at: float
    ok: bool = True


@dataclass
class FreshWatch:
    report: Report
    expired: bool = False
    reason: str | None = None


def test_a_stall_shows_in_the_snapshot_and_readiness_until_a_batch_goes_through(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, _values(30))
    seen: list[EngineHealth] = []
    reasons: list[list[str]] = []
    box: dict[str, Any] = {}
    waits = Waits(on_wait=lambda _n: (seen.append(box["eng"].health()),
                                      reasons.append(box["health"].readiness().reasons)))
    eng = box["eng"] = _engine(_settings(stall_backoff_initial_s=0.5), Stalling(_router_processor(cluster), 2, 2),
                               waits)
    box["health"] = RouterHealth(eng, FreshWatch(Report(taken_at=0.0)), clock=lambda: 1.0)
    after: list[tuple[EngineHealth, bool]] = []

    def until(stats: EngineStats) -> bool:
        if cluster.done():
            after.append((eng.health(), box["health"].readiness().ready))
            return True
        return False

    assert eng.health().assigned == frozenset() and eng.health().last_commit_age_s is None
    eng.run(until=until)

    assert len(seen) == 2  # one snapshot per stall back-off
    for h, why in zip(seen, reasons, strict=True):
        assert h.stall_cause == "StallError" and h.stall_detail == "key unavailable: eu"
        assert h.assigned == frozenset({(INGRESS, 0)})
        assert why == ["stalled (StallError): key unavailable: eu"]
    assert [h.stats.stalls for h in seen] == [1, 2]
    (final, ready), = after
    assert final.stall_cause is None and ready
    assert final.stats.commits >= 1 and final.last_commit_age_s is not None


def test_transactions_failing_in_a_row_show_as_stalled_from_the_escalation_on(cluster: FakeCluster) -> None:
    cluster.add_input(INGRESS, 0, [b"x"] * 5)
    cluster.fail("produce", KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND, None, txn_requires_abort=True)
    seen: list[EngineHealth] = []
    box: dict[str, Any] = {}
    waits = Waits(limit=5, on_wait=lambda _n: seen.append(box["eng"].health()))
    eng = box["eng"] = _engine(_settings(stall_backoff_initial_s=0.5, abort_escalate_after=3), CopyProcessor("out"),
                               waits)

    eng.run()  # Waits stops it after 5 back-offs

    assert [h.stall_cause for h in seen] == [None, None, "transactions_failing", "transactions_failing",
                                            "transactions_failing"]
    detail = seen[2].stall_detail or ""
    assert detail.startswith("3 transactions in a row failed; last: produce: ")
    assert "NOT_ENOUGH_REPLICAS_AFTER_APPEND" in detail
    assert [h.stats.aborts for h in seen] == [1, 2, 3, 4, 5]
    assert all(h.stats.commits == 0 and h.last_commit_age_s is None for h in seen)
