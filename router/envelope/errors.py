"""Why a sealed record was refused. Every failure has its own type under :class:`EnvelopeError`.

A reader that catches :class:`EnvelopeError` has received no plaintext: the opener returns
plaintext only after every check has passed. Messages name topics, partitions, key ids and
versions, never payload bytes or key material; the record's bytes stay reachable as ``raw``
(for quarantine) but are not part of ``str(error)``.
"""

from __future__ import annotations

from router.errors import RouterError
from router.keys.errors import KeyUnavailable
from router.keys.protocol import KeyRef


class EnvelopeError(RouterError):
    """A record could not be sealed or opened."""

    def __init__(
        self,
        detail: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.detail = detail
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.raw = raw
        Exception.__init__(self, self._message())  # not super(): UnknownKey also derives KeyUnavailable

    def _message(self) -> str:
        where = ""
        if self.topic is not None:
            off = "" if self.offset is None else f"@{self.offset}"
            where = f" at {self.topic}[{self.partition}]{off}"
        return f"{type(self).__name__}{where}: {self.detail}"

    def at(self, topic: str, partition: int, offset: int | None = None, raw: bytes | None = None) -> EnvelopeError:
        """Fill in the record's position (the same object), e.g. in the consumer wrapper."""
        self.topic, self.partition, self.offset = topic, partition, offset
        if raw is not None:
            self.raw = raw
        self.args = (self._message(),)
        return self


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


class UnknownKey(EnvelopeError, KeyUnavailable):
    """A key id or version the reader (or provider) does not hold. Not retriable."""

    def __init__(self, detail: str, *, key: KeyRef | None = None, key_id: str | None = None) -> None:
        self.retriable = False
        self.key_id = key.key_id if key is not None else key_id
        self.version = key.version if key is not None else None
        if self.key_id is not None:
            detail = f"{detail} [key {self.key_id}" + (f" v{self.version}]" if self.version is not None else "]")
        EnvelopeError.__init__(self, detail)
