"""The router's signing key in OpenBao transit: an ``ed25519`` transit key signs, it never leaves.

:class:`OpenBaoTransitSigner` implements :class:`~router.keys.protocol.Signer`. The pipeline signs
one Merkle root per transaction (``Sealer.seal_batch``), so a batch costs one ``transit/sign`` call;
per-record mode (``Sealer.seal``) would cost one per record.

Transit signs the message bytes as given (pure Ed25519, RFC 8032: ``prehashed`` and
``marshaling_algorithm`` do not apply to ed25519 keys) and answers ``vault:v<N>:<base64 of the
64-byte signature>``; :func:`parse_transit_signature` strips that prefix, so the envelope carries
the plain signature that verifies with the version's public key from ``transit/keys/<name>``.

Which version signs: :attr:`OpenBaoTransitSigner.key` reads the key's ``latest_version`` at first
use and again at most every ``refresh_s`` seconds (a rotation reaches a running router without a
restart), and :meth:`~OpenBaoTransitSigner.sign` asks transit for exactly that version (the envelope
header names it before the signature exists). ``Sealer`` reads ``key`` and then calls ``sign`` from
one thread; a refresh happens only inside ``key``, so both name the same version.

Failures are :class:`~router.keys.errors.KeyUnavailable` (an unreachable OpenBao is retriable: the
pipeline stalls; a key of the wrong type or a missing key is not).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from router.errors import ConfigError
from router.keys.errors import KeyUnavailable
from router.keys.openbao import OpenBaoSession
from router.keys.trust import transit_versions
from router.keys.types import KeyRef

log = logging.getLogger(__name__)

SIGNATURE_BYTES = 64
_SIGNATURE = re.compile(r"^vault:v([0-9]{1,9}):([A-Za-z0-9+/=]+)$")


def parse_transit_signature(value: Any, key: KeyRef) -> bytes:
    """The raw 64-byte Ed25519 signature in a transit ``vault:vN:<base64>`` answer for ``key``.

    Raises ``KeyUnavailable`` (not retriable) when the answer is malformed or names another version
    than the one asked for (its signature would not verify under the version the header names).
    """
    m = _SIGNATURE.match(value) if isinstance(value, str) else None
    if m is None:
        raise KeyUnavailable("transit sign answer is not vault:vN:<base64>", retriable=False,
                             key_id=key.key_id, version=key.version)
    if int(m.group(1)) != key.version:
        raise KeyUnavailable(f"transit signed with version {int(m.group(1))}, not the version asked for",
                             retriable=False, key_id=key.key_id, version=key.version)
    try:
        signature = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != SIGNATURE_BYTES:
        raise KeyUnavailable("transit signature is not a 64-byte Ed25519 signature", retriable=False,
                             key_id=key.key_id, version=key.version)
    return signature


class OpenBaoTransitSigner:
    """:class:`~router.keys.protocol.Signer` over an OpenBao transit ``ed25519`` key."""

    def __init__(
        self,
        session: OpenBaoSession,
        key_id: str,
        *,
        mount: str = "transit",
        refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._key_id = key_id
        self._mount = mount
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._key: KeyRef | None = None
        self._next_refresh = 0.0

    def __repr__(self) -> str:
        return f"OpenBaoTransitSigner(url={self._session.url!r}, key={self._key_id!r}, mount={self._mount!r})"

    @property
    def key(self) -> KeyRef:
        """The key id and the version :meth:`sign` signs with (the transit key's latest version)."""
        with self._lock:
            if self._key is None or self._clock() >= self._next_refresh:
                self._refresh()
            assert self._key is not None
            return self._key

    def _refresh(self) -> None:
        try:
            resp = self._session.call(
                lambda c: c.secrets.transit.read_key(name=self._key_id, mount_point=self._mount), self._key_id, None
            )
            try:
                _, latest, _ = transit_versions(self._key_id, resp["data"])
            except (KeyError, TypeError):
                raise ConfigError(f"transit key {self._key_id!r}: OpenBao's key description is malformed") from None
        except ConfigError as err:
            raise KeyUnavailable(str(err), retriable=False, key_id=self._key_id) from None
        except KeyUnavailable:
            if self._key is None:
                raise
            # Keep signing with the known version; sign() reports the outage if it persists.
            self._next_refresh = self._clock() + min(self._refresh_s, 5.0)
            return
        if self._key is not None and latest != self._key.version:
            log.info("signing key %s is now at version %d (was %d)", self._key_id, latest, self._key.version)
        self._key = KeyRef(self._key_id, latest)
        self._next_refresh = self._clock() + self._refresh_s

    def sign(self, message: bytes) -> bytes:
        """Transit ``sign`` of ``message`` with the version :attr:`key` last named."""
        key = self._key or self.key
        resp = self._session.call(
            lambda c: c.secrets.transit.sign_data(
                name=key.key_id,
                hash_input=base64.b64encode(message).decode("ascii"),
                key_version=key.version,
                mount_point=self._mount,
            ),
            key.key_id,
            key.version,
        )
        try:
            value = resp["data"]["signature"]
        except (KeyError, TypeError):
            value = None
        return parse_transit_signature(value, key)
