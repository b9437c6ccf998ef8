"""The one error every decoder raises for bad input."""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import ReasonCode, RecordError


class DecodeError(RecordError):
    """A record could not be decoded. Carries a stable reason code and the original bytes.

    The detail names formats, fields and lengths, never field values.
    """

    def __init__(self, reason: ReasonCode, detail: str, raw: bytes | None) -> None:
        super().__init__(reason, detail, raw=raw)


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
