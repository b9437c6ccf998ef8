"""Errors of key providers: one type, :class:`KeyUnavailable`, that says whether to retry.

The pipeline turns a retriable error into a stall (retry with backoff, offsets not advanced) and a
non-retriable one into a stall or a quarantine by policy; never into plaintext output. Messages
name keys by id and version only: no key material, no plaintext, no tokens.

:class:`UnknownKey` is the one that is also an envelope error: a reader that meets a key id or
version it does not hold refuses the record (``router.envelope`` exports it as well).
"""

from __future__ import annotations

from router.errors import EnvelopeError, ReasonCode, RouterError
from router.keys.types import KeyRef


class KeyUnavailable(RouterError):
    """A key could not be used: unknown, disabled, deleted, too old, or the provider failed.

    ``retriable`` is True when the same call may succeed later (provider down, slow, sealed,
    rate-limited) and False when it cannot without an operator's change (unknown key or version,
    version below ``min_decryption_version``, permission denied).
    """

    reason = ReasonCode.KEY_UNAVAILABLE

    def __init__(
        self,
        detail: str,
        *,
        retriable: bool,
        key_id: str | None = None,
        version: int | None = None,
    ) -> None:
        self.detail = detail
        self.retriable = retriable
        self.key_id = key_id
        self.version = version
        super().__init__(self._key_message())

    def _key_message(self) -> str:
        key = ""
        if self.key_id is not None:
            key = f" key {self.key_id!r}" + (f" version {self.version}" if self.version is not None else "")
        kind = "retriable" if self.retriable else "not retriable"
        return f"{ReasonCode.KEY_UNAVAILABLE.value}{key} ({kind}): {self.detail}"


class UnknownKey(EnvelopeError, KeyUnavailable):
    """A key id or version the reader (or provider) does not hold. Not retriable."""

    def __init__(self, detail: str, *, key: KeyRef | None = None, key_id: str | None = None) -> None:
        self.retriable = False
        self.key_id = key.key_id if key is not None else key_id
        self.version = key.version if key is not None else None
        if self.key_id is not None:
            detail = f"{detail} [key {self.key_id}" + (f" v{self.version}]" if self.version is not None else "]")
        EnvelopeError.__init__(self, detail)


class UntrustedSigner(UnknownKey):
    """A signing key version the reader's trust bundle lists but does not accept now: revoked, not
    yet valid or expired (:mod:`router.keys.trust`). Not retriable; the record is refused."""
