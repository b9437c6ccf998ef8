"""Key-provider latency, errors and last outcome per jurisdiction, measured at the boundary the
router calls (:class:`router.keys.dek.JurisdictionKeys`).

:func:`observe_keys` wraps each jurisdiction's provider (already instrumented -> retrying by
:mod:`router.keys.factory`) in a :class:`JurisdictionProvider`, so one call is one measurement of
what the pipeline waited for, retries included:

- ``router.keys.duration`` (histogram, s) and ``router.keys.errors`` (counter), attributes
  ``provider`` (its name), ``jurisdiction``, ``op`` (``new_data_key``, ``unwrap``,
  ``digest_key``) and, for errors, ``error`` (the exception type's name);
- :class:`ProviderStatus`: the last outcome per (provider, jurisdiction), which ``/readyz`` reads.

Names and durations only: never key material, a wrapped key, a key id's secret or a plaintext.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from router import telemetry
from router.keys.dek import JurisdictionKeys
from router.keys.protocol import DataKey, KeyProvider, KeyRef

T = TypeVar("T")

_duration = telemetry.meter.create_histogram(
    "router.keys.duration",
    unit="s",
    description="Key provider call duration (retries included), by jurisdiction",
    # seconds: a local keyring answers in microseconds, a KMS in milliseconds, retries take seconds
    explicit_bucket_boundaries_advisory=[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                         10],
)
_errors = telemetry.meter.create_counter(
    "router.keys.errors", unit="{call}", description="Key provider calls that failed after retries, by jurisdiction"
)


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    """The last call of one provider for one jurisdiction: ``error`` is the exception type's name,
    None when it succeeded."""

    provider: str
    jurisdiction: str
    error: str | None


class ProviderStatus:
    """The last outcome per (provider, jurisdiction). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], ProviderOutcome] = {}

    def record(self, outcome: ProviderOutcome) -> None:
        with self._lock:
            self._last[(outcome.provider, outcome.jurisdiction)] = outcome

    def failing(self) -> list[ProviderOutcome]:
        """The (provider, jurisdiction) pairs whose last call failed, sorted."""
        with self._lock:
            return [o for _, o in sorted(self._last.items()) if o.error is not None]


class JurisdictionProvider:
    """A :class:`KeyProvider` that times and counts the calls made for one jurisdiction."""

    def __init__(self, inner: KeyProvider, jurisdiction: str, status: ProviderStatus | None = None) -> None:
        self._inner = inner
        self._jurisdiction = jurisdiction
        self._status = status

    @property
    def name(self) -> str:
        return self._inner.name

    def __repr__(self) -> str:
        return f"JurisdictionProvider({self._inner!r}, {self._jurisdiction!r})"

    def __getattr__(self, name: str) -> Any:
        """Anything else a provider offers passes through, unmeasured."""
        return getattr(self._inner, name)

    def _measure(self, op: str, fn: Callable[[], T]) -> T:
        attrs = {"provider": self._inner.name, "jurisdiction": self._jurisdiction, "op": op}
        start = time.perf_counter()
        error: str | None = None
        try:
            return fn()
        except Exception as err:
            error = type(err).__name__
            raise
        finally:
            _duration.record(time.perf_counter() - start, attrs)
            if error is not None:
                _errors.add(1, {**attrs, "error": error})
            if self._status is not None:
                self._status.record(ProviderOutcome(self._inner.name, self._jurisdiction, error))

    def new_data_key(self, key_id: str) -> DataKey:
        return self._measure("new_data_key", lambda: self._inner.new_data_key(key_id))

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        return self._measure("unwrap", lambda: self._inner.unwrap(kek, wrapped))

    def digest_key(self, key_id: str) -> bytes:
        return self._measure("digest_key", lambda: self._inner.digest_key(key_id))


def observe_keys(keys: JurisdictionKeys, status: ProviderStatus | None = None) -> JurisdictionKeys:
    """``keys`` with every jurisdiction's provider wrapped in a :class:`JurisdictionProvider`."""
    wrapped: dict[str, tuple[KeyProvider, str]] = {}
    for j in keys.jurisdictions():
        provider, key_id = keys.resolve(j)
        wrapped[j] = (JurisdictionProvider(provider, j, status), key_id)
    return JurisdictionKeys(wrapped)
