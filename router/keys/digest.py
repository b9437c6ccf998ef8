"""Keyed digests per jurisdiction: what the router writes in clear instead of a value or a plain hash.

Output record keys, payload digests in audit and quarantine records and anything else that must
identify data without revealing it are HMAC-SHA256 under the jurisdiction's digest key
(:meth:`KeyProvider.digest_key`). A plain SHA-256 of a low-entropy CRM payload or key can be
confirmed by guessing; a keyed digest can only be recomputed by a holder of that jurisdiction's
key. The same input under the same jurisdiction always gives the same digest, so per-entity
ordering and log compaction keep working; the same input under two jurisdictions gives unrelated
digests.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

from router.keys.dek import JurisdictionKeys

KEY_DOMAIN = b"record-key\x00"
EVENT_ID_DOMAIN = b"event-id\x00"
PAYLOAD_DOMAIN = b"payload\x00"


class DigestKeys:
    """Digest keys of every jurisdiction, fetched once from its provider and kept in memory.

    A provider that is down raises :class:`router.keys.errors.KeyUnavailable` (the pipeline
    stalls, as for sealing).
    """

    def __init__(self, keys: JurisdictionKeys) -> None:
        self._keys = keys
        self._cache: dict[str, bytes] = {}
        self._macs: dict[tuple[str, bytes], Any] = {}
        """(jurisdiction, domain) -> an HMAC keyed and fed the domain, copied per digest: keying an
        HMAC (two SHA-256 blocks of pads) costs more than the digest of a 1 KB payload."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DigestKeys({self._keys!r})"

    def _key(self, jurisdiction: str) -> bytes:
        key = self._cache.get(jurisdiction)
        if key is None:
            provider, key_id = self._keys.resolve(jurisdiction)
            key = provider.digest_key(key_id)
            with self._lock:
                self._cache[jurisdiction] = key
        return key

    def _keyed(self, jurisdiction: str, domain: bytes) -> Any:
        """The keyed HMAC for ``domain``: OpenSSL's object itself where ``hmac`` wraps one (its
        ``copy`` is a C call; the wrapper's costs a Python object and two attribute copies)."""
        slot = (jurisdiction, domain)
        keyed = self._macs.get(slot)
        if keyed is None:
            wrapper = hmac.new(self._key(jurisdiction), domain, hashlib.sha256)
            keyed = getattr(wrapper, "_hmac", None) or wrapper
            with self._lock:
                self._macs[slot] = keyed
        return keyed

    def mac(self, jurisdiction: str, domain: bytes, data: bytes) -> bytes:
        """HMAC-SHA256 of ``domain || data`` under ``jurisdiction``'s digest key (32 bytes)."""
        h = self._keyed(jurisdiction, domain).copy()
        h.update(data)
        digest: bytes = h.digest()
        return digest

    def record_key(self, jurisdiction: str, key: bytes) -> bytes:
        """The output record key for an ingress key: 64 lower-case hex characters (ASCII)."""
        return self.mac(jurisdiction, KEY_DOMAIN, key).hex().encode("ascii")

    def event_id(self, jurisdiction: str, event_id: str) -> str:
        """``eid:<32 hex>``: the connector's event id as written in clear (headers, audit,
        quarantine). Connectors may put anything in an id; a keyed digest still deduplicates."""
        return "eid:" + self.mac(jurisdiction, EVENT_ID_DOMAIN, event_id.encode("utf-8", "surrogatepass"))[:16].hex()

    def payload_digest(self, jurisdiction: str, payload: bytes) -> str:
        """``hmac-sha256:<jurisdiction>:<hex>`` of the original bytes, for audit and quarantine records."""
        return f"hmac-sha256:{jurisdiction}:{self.mac(jurisdiction, PAYLOAD_DOMAIN, payload).hex()}"
