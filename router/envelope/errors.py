"""Why a sealed record was refused. Every failure has its own type under :class:`EnvelopeError`.

A reader that catches :class:`EnvelopeError` has received no plaintext: the opener returns
plaintext only after every check has passed. Messages name topics, partitions, key ids and
versions, never payload bytes or key material; the record's bytes stay reachable as ``raw``
(for quarantine) but are not part of ``str(error)``.

:class:`EnvelopeError` is defined in :mod:`router.errors` and :class:`UnknownKey` in
:mod:`router.keys.errors` (key providers raise it too); both are exported here.
"""

from __future__ import annotations

from router.errors import EnvelopeError
from router.keys.errors import UnknownKey

__all__ = [
    "BadSignature",
    "EnvelopeError",
    "HeaderMismatch",
    "MalformedEnvelope",
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
