"""What a sealed record is bound to, and what sealing and opening return."""

from __future__ import annotations

from dataclasses import dataclass, field

from router.keys.types import KeyRef


@dataclass(frozen=True, slots=True)
class SealContext:
    """Everything a record is bound to; all of it is signed and is the AEAD's associated data.

    ``dest_partition`` is the partition the router chose explicitly before sealing. None of these
    fields may hold CRM field values: ``event_id`` is a keyed digest of the connector's event id
    (``eid:<hex>``) or the source position ``topic:partition:offset``,
    ``categories`` are classification category names (``pii.email``), not values.

    ``record_key_digest`` (frame version 2) is :func:`router.envelope.frame.key_digest` of the
    Kafka key the record is produced with: SHA-256 of the key (the router's key is itself a keyed
    digest, :meth:`router.keys.digest.DigestKeys.record_key`), or b"" for a record without a key.
    Version 1 frames cannot bind it (it decodes as b"").
    """

    event_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    dest_topic: str
    dest_partition: int
    jurisdiction: str
    classification_level: str
    categories: tuple[str, ...]
    entity: str
    operation: str
    schema_id: int | None = None
    record_key_digest: bytes = b""


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record ready to produce: the envelope bytes and its clear, checked headers."""

    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """A record that passed every check. ``plaintext`` is hidden from ``repr``.

    ``version`` is the frame version: 2 binds the record key and promises one record per source
    position (replay-protected, :class:`router.envelope.replay.ReplayGuard`); 1 does neither.
    """

    plaintext: bytes = field(repr=False)
    ctx: SealContext
    kek: KeyRef
    signing_key: KeyRef
    version: int = 1

    @property
    def replay_protected(self) -> bool:
        """True when the frame promises one record per source position (version 2 and later)."""
        return self.version >= 2
