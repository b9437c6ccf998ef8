"""The envelope's fixed binary frame, versions 1 and 2 (normative text: ``docs/envelope.md``).

All integers are big-endian. ``str8``/``str16`` are a u8/u16 byte length then UTF-8 bytes;
``bytes16`` is a u16 length then bytes. ::

    header (the AES-GCM associated data)
      magic "RRE" | version u8 (1 or 2) | flags u8 (0: per-record signature, 1: manifest)
      event_id str16 | source_topic str8 | source_partition i32 | source_offset i64
      dest_topic str8 | dest_partition i32
      version 2 only: record_key_digest (u8 length 0 or 32, then bytes: SHA-256 of the Kafka
                      record key the record is produced with; length 0: produced without a key)
      jurisdiction str8 | classification_level str8
      categories: count u8, then str8 each | entity str8 | operation str8 | schema_id i32 (-1: none)
      kek_id str8 | kek_version u32 | wrapped_dek bytes16 | signing_key_id str8 | signing_key_version u32
    nonce 12 bytes | ciphertext_len u32 | ciphertext (AES-256-GCM, includes the 16-byte tag)
    flags 0: signature 64 bytes: Ed25519 over SIGNING_DOMAIN || every byte before the signature
    flags 1: leaf_index u32 | leaf_count u32 | proof_len u8 | proof (proof_len x 32 bytes) |
             signature 64 bytes: Ed25519 over MANIFEST_DOMAIN || root || leaf_count u32
             where root is the Merkle root (router.envelope.merkle) the proof of
             leaf SHA-256(0x00 || body) leads to

Version 2 also promises what version 1 did not: a writer seals at most one record per source
position (source_topic, source_partition, source_offset), so that position is the record's
sequence in its destination partition (:class:`router.envelope.replay.ReplayGuard`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from hashlib import sha256

from router.envelope.context import SealContext
from router.envelope.errors import MalformedEnvelope
from router.keys.protocol import KeyRef

MAGIC = b"RRE"
VERSION_1 = 1
VERSION_2 = 2
VERSION = VERSION_2
"""The version the router writes. Readers accept :data:`VERSIONS`."""
VERSIONS = (VERSION_1, VERSION_2)
KEY_DIGEST_BYTES = 32
SIGNING_DOMAIN = b"residency-router/envelope/v1\x00"
NONCE_BYTES = 12
TAG_BYTES = 16
SIGNATURE_BYTES = 64
MANIFEST_DOMAIN = b"residency-router/manifest/v1\x00"
FLAG_MANIFEST = 0x01
MAX_PROOF = 32
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
    flags: int = 0
    version: int = VERSION_1
    leaf_index: int = 0
    leaf_count: int = 1
    proof: tuple[bytes, ...] = ()


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


def key_digest(key: bytes | None) -> bytes:
    """What a version-2 frame binds of the Kafka record key: SHA-256 of its bytes, or b"" for a
    record produced without a key (null). An empty key (b"") is a key: its digest is bound."""
    return b"" if key is None else sha256(key).digest()


def encode_context(ctx: SealContext, version: int = VERSION) -> bytes:
    """The context block of the header for frame ``version``. Raises MalformedEnvelope for
    out-of-range fields."""
    kd = ctx.record_key_digest
    key_field = b"\x20" + kd if version == VERSION_2 and len(kd) == KEY_DIGEST_BYTES else _key_field(ctx, version)
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
    eid = ctx.event_id.encode("utf-8")
    if len(eid) > 0xFFFF:
        return _encode_context_checked(ctx, version)  # raises MalformedEnvelope naming the field
    cats = ctx.categories
    if type(cats) is not tuple:  # not hashable as given: encode without the cache
        segments = _segments(ctx)
    else:
        key = (ctx.source_topic, ctx.dest_topic, ctx.jurisdiction, ctx.classification_level, cats, ctx.entity,
               ctx.operation)
        segments = _SEGMENTS.get(key)  # type: ignore[assignment]
        if segments is None:
            segments = _segments(ctx)
            if len(_SEGMENTS) >= _MAX_SEGMENTS:
                _SEGMENTS.clear()  # entity names come from events: keep the cache bounded
            _SEGMENTS[key] = segments
    src, dest, tail = segments
    return b"".join((_U16.pack(len(eid)), eid, src, _POS.pack(ctx.source_partition, ctx.source_offset), dest,
                     _I32.pack(ctx.dest_partition), key_field, tail,
                     _I32.pack(-1 if ctx.schema_id is None else ctx.schema_id)))


_SEGMENTS: dict[tuple[str, str, str, str, tuple[str, ...], str, str], tuple[bytes, bytes, bytes]] = {}
"""The value-free, low-cardinality parts of a context (topics, jurisdiction, level, categories,
entity, operation), encoded once per combination."""
_MAX_SEGMENTS = 4096


def _segments(ctx: SealContext) -> tuple[bytes, bytes, bytes]:
    """``str8(source_topic)``, ``str8(dest_topic)`` and everything from the jurisdiction to the
    operation; raises MalformedEnvelope (in field order) when one of them is out of range."""
    src = ctx.source_topic.encode("utf-8")
    dest = ctx.dest_topic.encode("utf-8")
    jur = ctx.jurisdiction.encode("utf-8")
    level = ctx.classification_level.encode("utf-8")
    cats = [c.encode("utf-8") for c in ctx.categories]
    entity = ctx.entity.encode("utf-8")
    op = ctx.operation.encode("utf-8")
    if max(len(src), len(dest), len(jur), len(level), len(entity), len(op), *map(len, cats)) > 255:
        _encode_context_checked(ctx)  # raises MalformedEnvelope naming the field
        raise MalformedEnvelope("context field out of range")  # pragma: no cover - the line above raises
    tail = [bytes((len(jur),)), jur, bytes((len(level),)), level, bytes((len(cats),))]
    for c in cats:
        tail.append(bytes((len(c),)))
        tail.append(c)
    tail += (bytes((len(entity),)), entity, bytes((len(op),)), op)
    return bytes((len(src),)) + src, bytes((len(dest),)) + dest, b"".join(tail)


def _key_field(ctx: SealContext, version: int) -> bytes:
    """The record key digest as ``version`` encodes it (nothing in version 1)."""
    kd = ctx.record_key_digest
    if version == VERSION_2:
        if len(kd) not in (0, KEY_DIGEST_BYTES):
            raise MalformedEnvelope(f"record_key_digest must be 0 or {KEY_DIGEST_BYTES} bytes")
        return bytes((len(kd),)) + kd
    if version == VERSION_1:
        if kd:
            raise MalformedEnvelope("record_key_digest needs frame version 2 (version 1 cannot bind it)")
        return b""
    raise MalformedEnvelope(f"envelope version {version} is not supported")


def _encode_context_checked(ctx: SealContext, version: int = VERSION) -> bytes:
    """:func:`encode_context` field by field, each length checked with its own message."""
    key_field = _key_field(ctx, version)
    if not ctx.event_id:
        raise MalformedEnvelope("event_id is empty")
    return b"".join(
        (
            _str16(ctx.event_id, "event_id"),
            _str8(ctx.source_topic, "source_topic"),
            _POS.pack(ctx.source_partition, ctx.source_offset),
            _str8(ctx.dest_topic, "dest_topic"),
            _I32.pack(ctx.dest_partition),
            key_field,
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
    ctx: SealContext,
    kek: KeyRef,
    wrapped_dek: bytes,
    signing_key: KeyRef,
    *,
    context: bytes | None = None,
    flags: int = 0,
    version: int = VERSION,
) -> bytes:
    """The header (AEAD associated data); ``context`` may be passed if already encoded (for the
    same ``version``)."""
    return b"".join(
        (
            MAGIC,
            bytes((version, flags)),
            encode_context(ctx, version) if context is None else context,
            encode_header_tail(kek, wrapped_dek, signing_key),
        )
    )


def encode_header_tail(kek: KeyRef, wrapped_dek: bytes, signing_key: KeyRef) -> bytes:
    """The part of the header after the context: KEK, wrapped DEK and signing key (the same for
    every record sealed under one DEK)."""
    if len(wrapped_dek) > 0xFFFF:
        raise MalformedEnvelope("wrapped DEK longer than 65535 bytes")
    return b"".join(
        (
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


def encode_manifest_tail(index: int, count: int, proof: list[bytes], signature: bytes) -> bytes:
    return b"".join((struct.pack(">IIB", index, count, len(proof)), *proof, signature))


def _text(buf: bytes, pos: int, n: int, what: str) -> str:
    if pos + n > len(buf):
        raise MalformedEnvelope(f"truncated envelope while reading {what}")
    try:
        return buf[pos : pos + n].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope(f"{what} is not UTF-8") from None


def _s8(buf: bytes, pos: int, what: str) -> tuple[str, int]:
    n = buf[pos]
    return _text(buf, pos + 1, n, what), pos + 1 + n


def decode(value: bytes) -> Frame:  # noqa: PLR0912, PLR0915 (one linear parse reads best unsplit)
    """Parse an envelope strictly: known magic, version and flags, no trailing bytes."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MalformedEnvelope("record value is not bytes (a tombstone or wrong deserializer?)")
    buf = bytes(value)
    if buf[:3] != MAGIC:
        raise MalformedEnvelope("not a residency-router envelope (bad magic)")
    version = buf[3] if len(buf) > 3 else None
    if len(buf) < 5 or version not in VERSIONS:
        raise MalformedEnvelope(f"envelope version {version} is not supported (this reader knows 1 and 2)")
    flags = buf[4]
    if flags not in (0, FLAG_MANIFEST):
        raise MalformedEnvelope(f"envelope flags {flags:#04x} are not supported")
    try:
        (n,) = _U16.unpack_from(buf, 5)
        if n == 0:
            raise MalformedEnvelope("event_id is empty")
        event_id, pos = _text(buf, 7, n, "event_id"), 7 + n
        source_topic, pos = _s8(buf, pos, "source_topic")
        source_partition, source_offset = _POS.unpack_from(buf, pos)
        dest_topic, pos = _s8(buf, pos + 12, "dest_topic")
        (dest_partition,) = _I32.unpack_from(buf, pos)
        pos += 4
        key_digest = b""
        if version == VERSION_2:
            n = buf[pos]
            if n not in (0, KEY_DIGEST_BYTES):
                raise MalformedEnvelope(f"record_key_digest must be 0 or {KEY_DIGEST_BYTES} bytes")
            key_digest = buf[pos + 1 : pos + 1 + n]
            if len(key_digest) != n:
                raise MalformedEnvelope("truncated envelope while reading record_key_digest")
            pos += 1 + n
        jurisdiction, pos = _s8(buf, pos, "jurisdiction")
        level, pos = _s8(buf, pos, "classification_level")
        count, pos = buf[pos], pos + 1
        cats = []
        for _ in range(count):
            cat, pos = _s8(buf, pos, "category")
            cats.append(cat)
        entity, pos = _s8(buf, pos, "entity")
        operation, pos = _s8(buf, pos, "operation")
        (schema_id,) = _I32.unpack_from(buf, pos)
        kek_id, pos = _s8(buf, pos + 4, "kek_id")
        kek_version, wrapped_len = struct.unpack_from(">IH", buf, pos)
        pos += 6
        wrapped = buf[pos : pos + wrapped_len]
        if len(wrapped) != wrapped_len:
            raise MalformedEnvelope("truncated envelope while reading wrapped_dek")
        signing_key_id, pos = _s8(buf, pos + wrapped_len, "signing_key_id")
        (signing_key_version,) = _U32.unpack_from(buf, pos)
        header_end = pos + 4
        nonce = buf[header_end : header_end + NONCE_BYTES]
        (ct_len,) = _U32.unpack_from(buf, header_end + NONCE_BYTES)
    except (IndexError, struct.error):
        raise MalformedEnvelope("truncated envelope") from None
    if ct_len < TAG_BYTES:
        raise MalformedEnvelope("ciphertext shorter than the GCM tag")
    ct_start = header_end + NONCE_BYTES + 4
    body_end = ct_start + ct_len
    leaf_index, leaf_count = 0, 1
    proof: tuple[bytes, ...] = ()
    tail = body_end
    if flags & FLAG_MANIFEST:
        if body_end + 9 > len(buf):
            raise MalformedEnvelope("truncated envelope while reading the manifest proof")
        leaf_index, leaf_count, proof_len = struct.unpack_from(">IIB", buf, body_end)
        if proof_len > MAX_PROOF or leaf_index >= leaf_count:
            raise MalformedEnvelope("manifest proof is out of range")
        tail = body_end + 9 + proof_len * 32
        proof = tuple(buf[i : i + 32] for i in range(body_end + 9, tail, 32))
    if tail + SIGNATURE_BYTES != len(buf):
        if tail + SIGNATURE_BYTES > len(buf):
            raise MalformedEnvelope("truncated envelope while reading ciphertext, proof or signature")
        raise MalformedEnvelope(f"{len(buf) - tail - SIGNATURE_BYTES} trailing bytes after the signature")
    if source_partition < 0 or dest_partition < 0 or source_offset < 0 or schema_id < -1:
        raise MalformedEnvelope("negative partition, offset or schema id")
    # Positional (field order of SealContext and Frame): this runs once per record read.
    ctx = SealContext(event_id, source_topic, source_partition, source_offset, dest_topic, dest_partition,
                      jurisdiction, level, tuple(cats), entity, operation, None if schema_id == -1 else schema_id,
                      key_digest)
    return Frame(ctx, KeyRef(kek_id, kek_version), wrapped, KeyRef(signing_key_id, signing_key_version),
                 buf[:header_end], nonce, buf[ct_start:body_end], buf[:body_end], buf[tail:], flags, version,
                 leaf_index, leaf_count, proof)
