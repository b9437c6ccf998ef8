"""Data keys: which KEK serves a jurisdiction, DEK reuse within hard bounds, unwrap caching.

Sealing side: :class:`CachingDekManager` hands out the current DEK of a jurisdiction and replaces
it after ``max_records`` encryptions or ``max_age_s`` seconds, whichever comes first. With random
96-bit nonces, n encryptions under one key collide with probability about n^2 / 2^97; the default
bound of 2^20 records keeps that below 2^-57 (NIST SP 800-38D allows up to 2^32). Replacing DEKs
by age also picks up a rotated KEK (a new transit version) without a restart.

Opening side: :class:`UnwrapCache` keeps unwrapped DEKs (as AES-GCM objects) by (KEK, wrapped
bytes), so a reader calls the KMS once per DEK, not once per record.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from router.keys.errors import KeyUnavailable, UnknownKey
from router.keys.protocol import DEK_BYTES, KeyProvider, KeyRef

DEFAULT_MAX_RECORDS = 1 << 20
DEFAULT_MAX_AGE_S = 300.0
HARD_MAX_RECORDS = 1 << 28
"""No configuration may exceed this (2^-41 collision bound), far below the 2^32 limit."""


@dataclass(frozen=True, slots=True)
class DekPolicy:
    """How long one DEK may serve: both bounds apply."""

    max_records: int = DEFAULT_MAX_RECORDS
    max_age_s: float = DEFAULT_MAX_AGE_S

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= HARD_MAX_RECORDS:
            raise ValueError(f"max_records must be in 1..{HARD_MAX_RECORDS}")
        if not 0 < self.max_age_s <= 86400:
            raise ValueError("max_age_s must be in (0, 86400]")


class JurisdictionKeys:
    """Which provider and KEK id serve each jurisdiction (built from config)."""

    def __init__(self, keys: Mapping[str, tuple[KeyProvider, str]]) -> None:
        self._keys = dict(keys)

    def resolve(self, jurisdiction: str) -> tuple[KeyProvider, str]:
        try:
            return self._keys[jurisdiction]
        except KeyError:
            raise UnknownKey(f"no key is configured for jurisdiction {jurisdiction!r} (keys.jurisdictions)") from None

    def jurisdictions(self) -> list[str]:
        return sorted(self._keys)

    def __repr__(self) -> str:
        return "JurisdictionKeys({" + ", ".join(f"{j}: {p.name}/{k}" for j, (p, k) in sorted(self._keys.items())) + "})"


@dataclass(slots=True)
class ActiveDataKey:
    """The DEK currently serving one jurisdiction. Its key lives only inside ``aead``."""

    kek: KeyRef
    wrapped: bytes
    aead: AESGCM = field(repr=False)
    created: float
    uses: int = 0


class CachingDekManager:
    """Hands out per-jurisdiction DEKs, each used at most ``policy`` allows. Thread-safe."""

    def __init__(
        self,
        keys: JurisdictionKeys,
        policy: DekPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._policy = policy or DekPolicy()
        self._clock = clock
        self._active: dict[str, ActiveDataKey] = {}
        self._lock = threading.Lock()

    @property
    def policy(self) -> DekPolicy:
        return self._policy

    def acquire(self, jurisdiction: str) -> ActiveDataKey:
        """The DEK to encrypt one record for ``jurisdiction`` (counted as one use)."""
        with self._lock:
            now = self._clock()
            dek = self._active.get(jurisdiction)
            if dek is None or dek.uses >= self._policy.max_records or now - dek.created >= self._policy.max_age_s:
                self._active.pop(jurisdiction, None)
                provider, key_id = self._keys.resolve(jurisdiction)
                fresh = provider.new_data_key(key_id)
                if len(fresh.plaintext) != DEK_BYTES:
                    raise KeyUnavailable("provider returned a DEK of the wrong size", retriable=False, key_id=key_id)
                dek = ActiveDataKey(fresh.kek, fresh.wrapped, AESGCM(fresh.plaintext), now)
                self._active[jurisdiction] = dek
            dek.uses += 1
            return dek

    def invalidate(self, jurisdiction: str | None = None) -> None:
        """Drop the current DEK(s); the next record gets a fresh one (e.g. after a KEK rotation)."""
        with self._lock:
            if jurisdiction is None:
                self._active.clear()
            else:
                self._active.pop(jurisdiction, None)

    def __repr__(self) -> str:
        return f"CachingDekManager({self._keys!r}, {self._policy})"


class UnwrapCache:
    """Unwrapped DEKs by (KEK ref, wrapped bytes), least recently used evicted. Thread-safe."""

    def __init__(self, keys: JurisdictionKeys, *, max_entries: int = 1024) -> None:
        self._keys = keys
        self._max = max_entries
        self._cache: OrderedDict[tuple[KeyRef, bytes], AESGCM] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def keys(self) -> JurisdictionKeys:
        return self._keys

    def aead(self, provider: KeyProvider, kek: KeyRef, wrapped: bytes) -> AESGCM:
        k = (kek, wrapped)
        with self._lock:
            hit = self._cache.get(k)
            if hit is not None:
                self._cache.move_to_end(k)
                return hit
        dek = provider.unwrap(kek, wrapped)
        if len(dek) != DEK_BYTES:
            raise KeyUnavailable(
                "unwrapped DEK has the wrong size", retriable=False, key_id=kek.key_id, version=kek.version
            )
        aead = AESGCM(dek)
        with self._lock:
            self._cache[k] = aead
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return aead

    def __repr__(self) -> str:
        return f"UnwrapCache({len(self._cache)} entries)"
