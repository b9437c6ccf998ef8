"""Why a sealed record was refused. Every failure has its own type under :class:`EnvelopeError`.

A reader that catches :class:`EnvelopeError` has received no plaintext: the opener returns
plaintext only after every check has passed. Messages name topics, partitions, key ids and
versions, never payload bytes or key material; the record's bytes stay reachable as ``raw``
(for quarantine) but are not part of ``str(error)``.

:class:`EnvelopeError` is defined in :mod:`router.errors` and :class:`UnknownKey` in
:mod:`router.keys.errors` (key providers raise it too); both are exported here.
"""

from __future__ import annotations

from enum import StrEnum

from router.errors import EnvelopeError
from router.keys.errors import UnknownKey

__all__ = [
    "BadSignature",
    "EnvelopeError",
    "HeaderMismatch",
    "MalformedEnvelope",
    "RecordKeyMismatch",
    "ReplayReason",
    "Replayed",
    "Tampered",
    "UnknownKey",
    "WrongJurisdiction",
    "WrongPartition",
    "WrongTopic",
]


class MalformedEnvelope(EnvelopeError):
    """The bytes are not a well-formed envelope of a known version (or a context is invalid)."""


class BadSignature(EnvelopeError):
    """The router's signature does not verify: the record was changed or not made by the router."""


class WrongTopic(EnvelopeError):
    """An authentic record read from a topic other than the one it was sealed for."""


class WrongPartition(EnvelopeError):
    """An authentic record read from a partition other than the one it was sealed for."""


class WrongJurisdiction(EnvelopeError):
    """An authentic record sealed for another jurisdiction (or under another jurisdiction's KEK)."""


class Tampered(EnvelopeError):
    """Authenticated decryption failed although the signature verified."""


class HeaderMismatch(Tampered):
    """A clear header disagrees with the signed envelope (edited, missing, repeated or unknown)."""


class RecordKeyMismatch(Tampered):
    """The Kafka record key is not the one a version-2 envelope was sealed for (changed, added or
    removed after sealing)."""


class ReplayReason(StrEnum):
    """Why :class:`Replayed` refused an authentic record (stable strings, e.g. for metrics)."""

    DUPLICATE = "DUPLICATE"
    """Its source position was already delivered at another offset of the same partition."""
    OUT_OF_ORDER = "OUT_OF_ORDER"
    """An older source position of a source whose newer record was already delivered in the same
    partition (a stale record produced again)."""


class Replayed(EnvelopeError):
    """An authentic version-2 record produced into its partition a second time (within the
    reader's replay window). ``reason`` says which check refused it."""

    def __init__(
        self,
        reason: ReplayReason,
        detail: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {detail}", topic=topic, partition=partition, offset=offset, raw=raw)
