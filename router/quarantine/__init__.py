"""Quarantine: the record of an event that was not routed, with its original bytes sealed."""

from router.quarantine.record import (
    QuarantineDecodeError,
    QuarantineRecord,
    decode_quarantine,
    encode_quarantine,
    payload_sha256,
)

__all__ = ["QuarantineDecodeError", "QuarantineRecord", "decode_quarantine", "encode_quarantine", "payload_sha256"]
