"""The one error every decoder raises for bad input."""

from __future__ import annotations

from router.errors import ReasonCode, RecordError


class DecodeError(RecordError):
    """A record could not be decoded. Carries a stable reason code and the original bytes.

    The detail names formats, fields and lengths, never field values.
    """

    def __init__(self, reason: ReasonCode, detail: str, raw: bytes | None) -> None:
        super().__init__(reason, detail, raw=raw)
