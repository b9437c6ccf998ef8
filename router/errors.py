"""The project's root exception and the one enum of reason codes.

Every decision the router takes that is not a plain route carries a :class:`ReasonCode`. The
codes are stable strings: they appear in quarantine records, audit records, metrics and the
output of ``simulate``, so renaming one is a breaking change.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why an event was quarantined (or, for ``ROUTED``, that it was not)."""

    ROUTED = "ROUTED"
    """The event was routed to a permitted destination."""

    # -- ingest ---------------------------------------------------------------------------
    DECODE_ERROR = "DECODE_ERROR"
    """The bytes could not be decoded in the configured or detected format."""
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    """The record names a schema id the schema store does not know."""
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    """The record is in a format no configured decoder handles."""
    GAP_EVENT = "GAP_EVENT"
    """A Salesforce gap event (GAP_*, GAP_OVERFLOW): the change carries no field data."""
    MISSING_FIELD = "MISSING_FIELD"
    """A field the decoder needs (entity, operation, id) is absent."""
    OVERSIZED = "OVERSIZED"
    """A length in the input, or the sealed output, exceeds the configured or producer bound.
    The quarantine record then carries metadata and a keyed digest only, not the payload."""
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    """An entity name, event id or other envelope field exceeds the envelope's length limit."""
    INVALID_TOPIC_NAME = "INVALID_TOPIC_NAME"
    """The entity's name cannot be carried into a Kafka topic name as it is (a character outside
    ``[A-Za-z0-9_-]``, a ``.``, which Kafka treats like ``_``, or no name at all): rewriting it could
    put two entities' records in one topic. Or the destination's name would exceed Kafka's 249
    characters. Kept in the ingress topic's jurisdiction."""

    # -- classification / residency -------------------------------------------------------
    UNRESOLVED_JURISDICTION = "UNRESOLVED_JURISDICTION"
    """No rule resolved the jurisdiction of the event's data and no default is configured."""
    CONFLICTING_JURISDICTION = "CONFLICTING_JURISDICTION"
    """The event's data is bound to several jurisdictions that no single destination serves."""
    NO_PERMITTED_DESTINATION = "NO_PERMITTED_DESTINATION"
    """The policy names no destination jurisdiction permitted for this data."""
    POLICY_DENIED = "POLICY_DENIED"
    """A policy rule explicitly forbids routing this data."""
    SCAN_LIMIT = "SCAN_LIMIT"
    """The record holds more text than classification may scan (``classification.max_scan_chars``
    or nesting beyond ``classification.max_depth``); it is quarantined rather than routed unscanned."""
    ERASURE_UNRESOLVED = "ERASURE_UNRESOLVED"
    """A delete that carries nothing its jurisdiction can be resolved from (a Salesforce DELETE has
    only record ids): kept in the ingress topic's jurisdiction so the erasure is visible and can
    be propagated."""
    TOMBSTONE_AUDITED = "TOMBSTONE_AUDITED"
    """A bare tombstone (null value, key only) carries no data: it is audited and nothing else is
    written. The erasure itself travels with the delete event that precedes it."""

    # -- pipeline -------------------------------------------------------------------------
    PLACEMENT_VIOLATION = "PLACEMENT_VIOLATION"
    """The destination topic has a replica on a broker outside the permitted jurisdiction."""
    DESTINATION_NOT_CONFIGURED = "DESTINATION_NOT_CONFIGURED"
    """The policy chose a topic that is not listed under 'topics', so its placement is unchecked."""
    PROCESSING_ERROR = "PROCESSING_ERROR"
    """The router failed on this record (a bug); the record is kept, sealed, for replay after a fix."""
    KEY_UNAVAILABLE = "KEY_UNAVAILABLE"
    """A key could not be used. Never a quarantine reason: a key outage stalls the router; the
    code labels key errors in logs and metrics."""


class RouterError(Exception):
    """Root of every exception the router raises on purpose."""


class ConfigError(RouterError):
    """The configuration is invalid; the message names the setting and how to fix it."""


class RecordError(RouterError):
    """An error about one record: carries its position, the reason code and its original bytes.

    The original bytes are kept so that the record can be sealed into quarantine; they are
    never part of ``str(error)``.
    """

    def __init__(
        self,
        reason: ReasonCode,
        detail: str,
        *,
        raw: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(self._message())

    def _message(self) -> str:
        where = ""
        if self.topic is not None:
            where = f" at {self.topic}[{self.partition}]@{self.offset}"
        return f"{self.reason.value}{where}: {self.detail}"

    def at(self, topic: str, partition: int, offset: int) -> RecordError:
        """Return this error with the record position filled in (the same object)."""
        self.topic, self.partition, self.offset = topic, partition, offset
        self.args = (self._message(),)
        return self


class EnvelopeError(RouterError):
    """A record could not be sealed or opened (:mod:`router.envelope.errors` has the subclasses).

It lives here, not in ``router.envelope``, because ``router.keys.errors.UnknownKey`` is one too,
and the key providers must not import the envelope package that imports them.
"""

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
