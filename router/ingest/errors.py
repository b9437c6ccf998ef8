"""The one error every decoder raises for bad input, and the one outage it lets through."""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import ReasonCode, RecordError, RouterError


class DecodeError(RecordError):
    """A record could not be decoded. Carries a stable reason code and the original bytes.

    The detail names formats, fields and lengths, never field values.
    """

    def __init__(self, reason: ReasonCode, detail: str, raw: bytes | None) -> None:
        super().__init__(reason, detail, raw=raw)


class SchemaRegistryUnavailable(RouterError):
    """The schema registry could not answer: connection refused or reset, DNS failure, timeout,
    HTTP 5xx or 429, or an answer that is not a registry response.

    Not a :class:`RecordError`: nothing is wrong with the record, so it must not be quarantined
    (quarantine would move every Avro record of every jurisdiction into the home jurisdiction for
    the length of the outage). Decoders let it propagate; the pipeline stalls and retries with its
    offsets unchanged. The message names the registry URL without credentials or query, and the
    cause; never a record value. ``url`` and ``cause`` carry the same parts.
    """

    def __init__(self, message: str, *, url: str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.cause = cause


def check_size(value: bytes, max_bytes: int) -> None:
    """Refuse a record larger than ``max_bytes`` before any parsing (OVERSIZED)."""
    if len(value) > max_bytes:
        raise DecodeError(ReasonCode.OVERSIZED, f"{len(value)} bytes exceed {max_bytes}", value)


def parse_json(value: bytes, max_bytes: int) -> Any:
    """Size-checked JSON parse; malformed JSON raises DECODE_ERROR with the bytes kept."""
    check_size(value, max_bytes)
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise DecodeError(ReasonCode.DECODE_ERROR, "not valid JSON", value) from None
