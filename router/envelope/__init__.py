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
    Tampered,
    UnknownKey,
    WrongJurisdiction,
    WrongPartition,
    WrongTopic,
)
from router.envelope.seal import Opener, Sealer, clear_headers

__all__ = [
    "BadSignature",
    "EnvelopeError",
    "HeaderMismatch",
    "MalformedEnvelope",
    "OpenedRecord",
    "Opener",
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
