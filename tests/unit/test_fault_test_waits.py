"""The cluster fault tests' waits treat a broker that just died as "not yet", not as a failure.

Right after a test kills a broker, the admin client's metadata request may go to that broker and
time out (`_TIMED_OUT`, "Failed to get metadata"); a wait must ask again until its own deadline.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tests.integration.test_faults import _wait_for_isr

pytestmark = pytest.mark.unit


class _Admin:
    """``list_topics`` fails with each of ``errors`` in turn, then shows ``isr`` replicas in sync."""

    def __init__(self, isr: int, errors: list[int]) -> None:
        self.isr, self.errors, self.calls = isr, list(errors), 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0), "Failed to get metadata: Local: Timed out"))
        partition = SimpleNamespace(isrs=list(range(self.isr)))
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: partition})})


def test_a_metadata_timeout_while_a_broker_is_down_is_asked_again() -> None:
    admin = _Admin(isr=1, errors=[KafkaError._TIMED_OUT, KafkaError._TRANSPORT])
    _wait_for_isr(admin, "t", 1, timeout=30)
    assert admin.calls == 3


def test_a_wait_that_never_sees_its_state_names_the_last_error() -> None:
    admin = _Admin(isr=2, errors=[KafkaError._TIMED_OUT] * 10_000)
    with pytest.raises(AssertionError, match=r"did not reach 1 in-sync.*_TIMED_OUT"):
        _wait_for_isr(admin, "t", 1, timeout=0.5)
