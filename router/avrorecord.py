"""Strict reading of the router's own versioned Avro records (audit, quarantine).

Each record starts with its format version (a zig-zag varint, so version 1 is the byte 0x02).
A reader accepts exactly one record of exactly that version: another version, truncated bytes or
trailing bytes raise the caller's error type with a message naming what the record is.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader

from router.errors import RouterError


def read_versioned(data: bytes, schema: Any, version: int, what: str, error: type[RouterError]) -> dict[str, Any]:
    """Decode one ``what`` record of format ``version``, or raise ``error``."""
    if not data.startswith(bytes([version << 1])):
        article = "an" if what[:1] in "aeiou" else "a"
        raise error(f"not {article} {what} of format version {version} (first byte {data[:1].hex() or 'missing'})")
    buf = io.BytesIO(data)
    try:
        d = schemaless_reader(buf, schema, None)
    except Exception as err:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
        raise error(f"malformed {what}: {type(err).__name__}") from None
    if not isinstance(d, dict):
        raise error(f"malformed {what}: not a record")
    if buf.tell() != len(data):
        raise error(f"malformed {what}: {len(data) - buf.tell()} trailing bytes")
    return d
