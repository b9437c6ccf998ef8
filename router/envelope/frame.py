"""The envelope's fixed binary frame, version 1 (normative text: ``docs/envelope.md``).

All integers are big-endian. ``str8``/``str16`` are a u8/u16 byte length then UTF-8 bytes;
``bytes16`` is a u16 length then bytes. ::

    header (the AES-GCM associated data)
      magic "RRE" | version u8 = 1 | flags u8 = 0
      event_id str16 | source_topic str8 | source_partition i32 | source_offset i64
      dest_topic str8 | dest_partition i32 | jurisdiction str8 | classification_level str8
      categories: count u8, then str8 each | entity str8 | operation str8 | schema_id i32 (-1: none)
      kek_id str8 | kek_version u32 | wrapped_dek bytes16 | signing_key_id str8 | signing_key_version u32
    nonce 12 bytes | ciphertext_len u32 | ciphertext (AES-256-GCM, includes the 16-byte tag)
    signature 64 bytes: Ed25519 over SIGNING_DOMAIN || every byte before the signature
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from router.envelope.context import SealContext
from router.envelope.errors import MalformedEnvelope
from router.keys.protocol import KeyRef

MAGIC = b"RRE"
VERSION = 1
SIGNING_DOMAIN = b"residency-router/envelope/v1\x00"
NONCE_BYTES = 12
TAG_BYTES = 16
SIGNATURE_BYTES = 64
MAX_CATEGORIES = 255

_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U16 = struct.Struct(">H")
_POS = struct.Struct(">iq")  # source partition, source offset
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed envelope. ``body`` is every byte the signature covers (after the domain)."""

    ctx: SealContext
    kek: KeyRef
    wrapped_dek: bytes
    signing_key: KeyRef
    header: bytes
    nonce: bytes
    ciphertext: bytes
    body: bytes
    signature: bytes


def _str8(s: str, what: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 255:
        raise MalformedEnvelope(f"{what} is {len(b)} bytes; the envelope allows at most 255")
    return bytes((len(b),)) + b


def _str16(s: str, what: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 0xFFFF:
        raise MalformedEnvelope(f"{what} is {len(b)} bytes; the envelope allows at most 65535")
    return _U16.pack(len(b)) + b


def encode_context(ctx: SealContext) -> bytes:
    """The context block of the header. Raises MalformedEnvelope for out-of-range fields."""
    if not ctx.event_id:
        raise MalformedEnvelope("event_id is empty")
    if not 0 <= ctx.source_partition <= _INT32_MAX or not 0 <= ctx.dest_partition <= _INT32_MAX:
        raise MalformedEnvelope("partitions must be in 0..2^31-1")
    if ctx.source_offset < 0 or ctx.source_offset >= 2**63:
        raise MalformedEnvelope("source_offset must be in 0..2^63-1")
    if ctx.schema_id is not None and not 0 <= ctx.schema_id <= _INT32_MAX:
        raise MalformedEnvelope("schema_id must be in 0..2^31-1 or None")
    if len(ctx.categories) > MAX_CATEGORIES:
        raise MalformedEnvelope(f"at most {MAX_CATEGORIES} categories")
    return b"".join(
        (
            _str16(ctx.event_id, "event_id"),
            _str8(ctx.source_topic, "source_topic"),
            _POS.pack(ctx.source_partition, ctx.source_offset),
            _str8(ctx.dest_topic, "dest_topic"),
            _I32.pack(ctx.dest_partition),
            _str8(ctx.jurisdiction, "jurisdiction"),
            _str8(ctx.classification_level, "classification_level"),
            bytes((len(ctx.categories),)),
            *(_str8(c, "category") for c in ctx.categories),
            _str8(ctx.entity, "entity"),
            _str8(ctx.operation, "operation"),
            _I32.pack(-1 if ctx.schema_id is None else ctx.schema_id),
        )
    )


def encode_header(
    ctx: SealContext, kek: KeyRef, wrapped_dek: bytes, signing_key: KeyRef, *, context: bytes | None = None
) -> bytes:
    """The header (AEAD associated data); ``context`` may be passed if already encoded."""
    if len(wrapped_dek) > 0xFFFF:
        raise MalformedEnvelope("wrapped DEK longer than 65535 bytes")
    return b"".join(
        (
            MAGIC,
            bytes((VERSION, 0)),
            encode_context(ctx) if context is None else context,
            _str8(kek.key_id, "kek_id"),
            _U32.pack(kek.version),
            _U16.pack(len(wrapped_dek)),
            wrapped_dek,
            _str8(signing_key.key_id, "signing_key_id"),
            _U32.pack(signing_key.version),
        )
    )


def encode_body(header: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return b"".join((header, nonce, _U32.pack(len(ciphertext)), ciphertext))


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise MalformedEnvelope(f"truncated envelope while reading {what}")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])

    def i32(self, what: str) -> int:
        return int(_I32.unpack(self.take(4, what))[0])

    def i64(self, what: str) -> int:
        return int(_I64.unpack(self.take(8, what))[0])

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEnvelope(f"{what} is not UTF-8") from None

    def str8(self, what: str) -> str:
        return self.text(self.u8(what), what)

    def str16(self, what: str) -> str:
        return self.text(self.u16(what), what)


def decode(value: bytes) -> Frame:
    """Parse an envelope strictly: known magic and version, zero flags, no trailing bytes."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MalformedEnvelope("record value is not bytes (a tombstone or wrong deserializer?)")
    value = bytes(value)
    r = _Reader(value)
    if r.take(3, "magic") != MAGIC:
        raise MalformedEnvelope("not a residency-router envelope (bad magic)")
    version, flags = r.u8("version"), r.u8("flags")
    if version != VERSION:
        raise MalformedEnvelope(f"envelope version {version} is not supported (this reader knows {VERSION})")
    if flags != 0:
        raise MalformedEnvelope(f"envelope flags {flags:#04x} are not supported")
    event_id = r.str16("event_id")
    source_topic = r.str8("source_topic")
    source_partition = r.i32("source_partition")
    source_offset = r.i64("source_offset")
    dest_topic = r.str8("dest_topic")
    dest_partition = r.i32("dest_partition")
    jurisdiction = r.str8("jurisdiction")
    level = r.str8("classification_level")
    categories = tuple(r.str8("category") for _ in range(r.u8("categories")))
    entity = r.str8("entity")
    operation = r.str8("operation")
    schema_id = r.i32("schema_id")
    kek = KeyRef(r.str8("kek_id"), r.u32("kek_version"))
    wrapped = r.take(r.u16("wrapped_dek"), "wrapped_dek")
    signing_key = KeyRef(r.str8("signing_key_id"), r.u32("signing_key_version"))
    header_end = r.pos
    nonce = r.take(NONCE_BYTES, "nonce")
    ct_len = r.u32("ciphertext_len")
    if ct_len < TAG_BYTES:
        raise MalformedEnvelope("ciphertext shorter than the GCM tag")
    ciphertext = r.take(ct_len, "ciphertext")
    body_end = r.pos
    signature = r.take(SIGNATURE_BYTES, "signature")
    if r.pos != len(value):
        raise MalformedEnvelope(f"{len(value) - r.pos} trailing bytes after the signature")
    if source_partition < 0 or dest_partition < 0 or source_offset < 0 or schema_id < -1:
        raise MalformedEnvelope("negative partition, offset or schema id")
    ctx = SealContext(
        event_id=event_id,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        dest_topic=dest_topic,
        dest_partition=dest_partition,
        jurisdiction=jurisdiction,
        classification_level=level,
        categories=categories,
        entity=entity,
        operation=operation,
        schema_id=None if schema_id == -1 else schema_id,
    )
    return Frame(
        ctx=ctx,
        kek=kek,
        wrapped_dek=wrapped,
        signing_key=signing_key,
        header=value[:header_end],
        nonce=nonce,
        ciphertext=ciphertext,
        body=value[:body_end],
        signature=signature,
    )
