"""The one interface every decoder implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from router.ingest.event import ChangeEvent


@runtime_checkable
class Decoder(Protocol):
    """Turns one Kafka record into a :class:`ChangeEvent`.

    Contract: ``decode`` either returns an event or raises
    :class:`router.ingest.errors.DecodeError` (a :class:`router.errors.RecordError` with a reason
    code and the original bytes), or :class:`router.ingest.errors.SchemaRegistryUnavailable` when
    the schema registry cannot answer (an outage: the caller stalls and retries, it does not
    quarantine). Any other exception is a bug. It never blocks on I/O except a schema-registry
    lookup, which is cached and bounded by a timeout.
    """

    name: str

    def decode(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ChangeEvent: ...
