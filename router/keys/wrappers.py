"""Cross-cutting behaviour around any :class:`KeyProvider`: retries and metrics.

They compose like the provider itself: ``InstrumentedProvider(RetryingProvider(provider))``.
DEK caching lives in :mod:`router.keys.dek`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from opentelemetry import metrics

from router.keys.errors import KeyUnavailable
from router.keys.protocol import DataKey, KeyProvider, KeyRef

T = TypeVar("T")

_meter = metrics.get_meter("router.keys")
_calls = _meter.create_counter(
    "router.keys.provider.calls", unit="{call}", description="Key provider calls by operation and outcome"
)
_duration = _meter.create_histogram("router.keys.provider.duration", unit="s", description="Key provider call duration")


class RetryingProvider:
    """Retries retriable :class:`KeyUnavailable` with exponential backoff and jitter.

    Gives up after ``attempts`` tries or once ``deadline_s`` has passed, re-raising the last
    error (still retriable, so the pipeline stalls and tries the batch again later).
    """

    def __init__(
        self,
        inner: KeyProvider,
        *,
        attempts: int = 3,
        initial_backoff_s: float = 0.05,
        max_backoff_s: float = 1.0,
        deadline_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._inner = inner
        self._attempts = attempts
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._deadline = deadline_s
        self._sleep = sleep
        self._clock = clock

    @property
    def name(self) -> str:
        return self._inner.name

    def __repr__(self) -> str:
        return f"RetryingProvider({self._inner!r}, attempts={self._attempts})"

    def _retry(self, fn: Callable[[], T]) -> T:
        start = self._clock()
        backoff = self._initial
        for attempt in range(1, self._attempts + 1):
            try:
                return fn()
            except KeyUnavailable as err:
                if not err.retriable or attempt == self._attempts:
                    raise
                wait = min(backoff, self._max) * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not crypto)
                if self._clock() - start + wait > self._deadline:
                    raise
                self._sleep(wait)
                backoff *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def new_data_key(self, key_id: str) -> DataKey:
        return self._retry(lambda: self._inner.new_data_key(key_id))

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        return self._retry(lambda: self._inner.unwrap(kek, wrapped))

    def digest_key(self, key_id: str) -> bytes:
        return self._retry(lambda: self._inner.digest_key(key_id))


class InstrumentedProvider:
    """Counts calls and their outcome (ok, retriable, failed) by provider, operation and key id.

    Attributes carry names only: no key material, no wrapped keys, no plaintext.
    """

    def __init__(self, inner: KeyProvider) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    def __repr__(self) -> str:
        return f"InstrumentedProvider({self._inner!r})"

    def _measure(self, op: str, key_id: str, fn: Callable[[], T]) -> T:
        attrs = {"provider": self._inner.name, "op": op, "key_id": key_id}
        start = time.perf_counter()
        outcome = "ok"
        try:
            return fn()
        except KeyUnavailable as err:
            outcome = "retriable" if err.retriable else "failed"
            raise
        finally:
            _calls.add(1, {**attrs, "outcome": outcome})
            _duration.record(time.perf_counter() - start, attrs)

    def new_data_key(self, key_id: str) -> DataKey:
        return self._measure("new_data_key", key_id, lambda: self._inner.new_data_key(key_id))

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        return self._measure("unwrap", kek.key_id, lambda: self._inner.unwrap(kek, wrapped))

    def digest_key(self, key_id: str) -> bytes:
        return self._measure("digest_key", key_id, lambda: self._inner.digest_key(key_id))
