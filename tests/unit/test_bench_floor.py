"""``make bench``'s latency floor is read from the engine (its source and its client settings); what
it reads must be what the engine really does, and a number it cannot read fails here instead of
printing ``nan`` in the bench's floor line and harness check."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from router.pipeline import engine as engine_mod
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import TransactionalEngine
from tests.unit.fake_kafka import FakeCluster, FakeConsumer
from tests.unit.test_pipeline_engine_errors import INGRESS, _settings, _values

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_pipeline() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # bench_pipeline imports its sibling workers by name
    try:
        spec = importlib.util.spec_from_file_location("bench_pipeline_under_test", BENCH / "bench_pipeline.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


class TimedConsumer(FakeConsumer):
    """Records the timeout of every batch ``consume()`` the engine makes."""

    timeouts: ClassVar[list[float]] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        TimedConsumer.timeouts.append(timeout)
        return super().consume(num_messages, timeout)


def test_the_floor_is_what_the_engine_does(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster()
    monkeypatch.setattr(engine_mod, "Producer", cluster.producer)
    monkeypatch.setattr(engine_mod, "Consumer", lambda conf: TimedConsumer(cluster, conf))
    TimedConsumer.timeouts = []
    cluster.add_input(INGRESS, 0, _values(5))
    TransactionalEngine(_settings(), CopyProcessor("out"), sleep=lambda _s: None, environ={}).run(
        until=lambda _s: cluster.done())
    assert cluster.done() and TimedConsumer.timeouts, "the engine consumed the input"
    linger = cluster.producers[0].config["linger.ms"]

    floor = _bench_pipeline().engine_floor(100)

    assert not any(math.isnan(v) for v in floor.values()), floor
    assert {t * 1000 for t in TimedConsumer.timeouts} == {floor["consume_timeout_ms"]}
    assert floor["linger_ms"] == linger


def test_the_floor_line_and_the_harness_ceiling_carry_numbers() -> None:
    bench = _bench_pipeline()
    floor = bench.engine_floor(100)
    text = bench.floor_text(floor)
    assert "nan" not in text and f"waits up to {floor['consume_timeout_ms']:.0f} ms" in text
    ceiling = bench.harness_ceiling(floor)
    assert ceiling == pytest.approx(100 + floor["consume_timeout_ms"] + floor["linger_ms"] + floor["paced_linger_ms"]
                                    + floor["reader_poll_ms"] + bench.COMMIT_ALLOWANCE_MS)
