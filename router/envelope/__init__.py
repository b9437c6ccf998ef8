"""The sealed-record envelope: AES-256-GCM under a wrapped DEK, AAD-bound context, Ed25519 signature.

Specified in ``docs/envelope.md``. Pure: no Kafka import.
"""

from router.envelope import frame, merkle
from router.envelope.context import OpenedRecord, SealContext, SealedRecord
from router.envelope.errors import (
    BadSignature,
    EnvelopeError,
    HeaderMismatch,
    MalformedEnvelope,
    RecordKeyMismatch,
    Replayed,
    ReplayReason,
    Tampered,
    UnknownKey,
    WrongJurisdiction,
    WrongPartition,
    WrongTopic,
)
from router.envelope.replay import ReplayGuard
from router.envelope.seal import KEY_UNCHECKED, Opener, Sealer, clear_headers

__all__ = [
    "KEY_UNCHECKED",
    "BadSignature",
    "EnvelopeError",
    "HeaderMismatch",
    "MalformedEnvelope",
    "OpenedRecord",
    "Opener",
    "RecordKeyMismatch",
    "ReplayGuard",
    "ReplayReason",
    "Replayed",
    "SealContext",
    "SealedRecord",
    "Sealer",
    "Tampered",
    "UnknownKey",
    "WrongJurisdiction",
    "WrongPartition",
    "WrongTopic",
    "clear_headers",
    "frame",
    "merkle",
]
