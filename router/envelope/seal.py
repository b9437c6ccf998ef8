"""Seal a payload for its jurisdiction; open and verify it on the reading side.

Pure: no Kafka import. The consumer SDK is a thin wrapper that passes a message's value, headers,
topic and partition to :meth:`Opener.open`.
"""

from __future__ import annotations

import hmac
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from enum import Enum
from hashlib import sha256
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from router.envelope import frame, merkle
from router.envelope.context import OpenedRecord, SealContext, SealedRecord
from router.envelope.errors import (
    BadSignature,
    EnvelopeError,
    HeaderMismatch,
    MalformedEnvelope,
    RecordKeyMismatch,
    Tampered,
    WrongJurisdiction,
    WrongPartition,
    WrongTopic,
)
from router.keys.dek import CachingDekManager, JurisdictionKeys, UnwrapCache
from router.keys.protocol import PublicKeys, Signer

HEADER_PREFIX = "rr-"
"""Clear headers the envelope owns. A reader rejects any other header with this prefix, in any
letter case (``RR-Entity`` is refused, not ignored)."""


class _Unchecked(Enum):
    KEY = "unchecked"


KEY_UNCHECKED: Final = _Unchecked.KEY
"""``Opener.open(key=...)`` default: the caller did not pass the Kafka record key, so a version-2
record's key binding is not checked (``OpenedRecord.ctx.record_key_digest`` still carries it)."""
RecordKey = bytes | None | Literal[_Unchecked.KEY]

RandomBytes = Callable[[int], bytes]
_VERIFIED_ROOTS = 256
Headers = Sequence[tuple[str, bytes | None]] | None


def clear_headers(ctx: SealContext) -> list[tuple[str, bytes]]:
    """The clear metadata headers (for filtering without decrypting); never field values."""
    return [("rr-event-id", ctx.event_id.encode()), *_clear_tail(ctx.entity, ctx.operation, ctx.jurisdiction,
                                                               ctx.classification_level)]


_TAILS: dict[tuple[str, str, str, str], tuple[tuple[str, bytes], ...]] = {}


def _clear_tail(entity: str, operation: str, jurisdiction: str, level: str) -> tuple[tuple[str, bytes], ...]:
    """The headers after the event id: few distinct combinations, each encoded once (bounded)."""
    key = (entity, operation, jurisdiction, level)
    tail = _TAILS.get(key)
    if tail is None:
        tail = (("rr-entity", entity.encode()), ("rr-operation", operation.encode()),
                ("rr-jurisdiction", jurisdiction.encode()), ("rr-classification", level.encode()))
        if len(_TAILS) >= 4096:
            _TAILS.clear()
        _TAILS[key] = tail
    return tail


class Sealer:
    """Encrypts with the jurisdiction's current DEK, then signs the whole envelope.

    ``random_bytes`` supplies the per-record nonce; it is a hook for test vectors only.
    ``version`` is the frame version written: 2 (the default) binds the record key digest;
    1 exists for test vectors and readers that predate version 2.
    """

    def __init__(
        self,
        data_keys: CachingDekManager,
        signer: Signer,
        *,
        random_bytes: RandomBytes = os.urandom,
        version: int = frame.VERSION,
    ) -> None:
        if version not in frame.VERSIONS:
            raise MalformedEnvelope(f"envelope version {version} is not supported")
        self._deks = data_keys
        self._signer = signer
        self._random = random_bytes
        self.version = version

    def __repr__(self) -> str:
        return f"Sealer({self._deks!r}, {self._signer!r})"

    def seal(self, plaintext: bytes, ctx: SealContext) -> SealedRecord:
        """Seal one payload. Raises KeyUnavailable (provider) or MalformedEnvelope (bad context)."""
        context = frame.encode_context(ctx, self.version)  # validate before spending a DEK use
        dek = self._deks.acquire(ctx.jurisdiction)
        header = frame.encode_header(ctx, dek.kek, dek.wrapped, self._signer.key, context=context,
                                     version=self.version)
        nonce = self._random(frame.NONCE_BYTES)
        ciphertext = dek.aead.encrypt(nonce, plaintext, header)
        body = frame.encode_body(header, nonce, ciphertext)
        signature = self._signer.sign(frame.SIGNING_DOMAIN + body)
        return SealedRecord(body + signature, clear_headers(ctx))

    def seal_batch(self, items: Sequence[tuple[bytes, SealContext] | tuple[bytes, SealContext, bytes]]
                   ) -> list[SealedRecord]:
        """Seal many payloads under one Ed25519 signature over a Merkle manifest (flags 1).

        Each record still carries everything a reader needs (its inclusion proof and the shared
        signature) and opens alone. Use it for a transaction's records: one signature per batch
        instead of per record. At most ``merkle.MAX_LEAVES`` items.

        An item may carry a third element, ``frame.encode_context(ctx)`` of its context (the
        current version's encoding), when the caller already encoded (and so validated) it; it is
        not encoded again (a sealer of another version encodes it itself).
        """
        if not 1 <= len(items) <= merkle.MAX_LEAVES:
            raise MalformedEnvelope(f"seal_batch takes 1..{merkle.MAX_LEAVES} records, got {len(items)}")
        bodies: list[bytes] = []
        signing = self._signer.key
        random = self._random
        deks = self._deks
        # The header after the context depends only on the DEK (and the signing key): build it once
        # per DEK in this batch rather than once per record.
        tails: dict[int, tuple[object, bytes]] = {}
        version = self.version
        prefix = frame.MAGIC + bytes((version, frame.FLAG_MANIFEST))
        reuse = version == frame.VERSION
        for item in items:
            plaintext, ctx = item[0], item[1]
            context = item[2] if reuse and len(item) > 2 else frame.encode_context(ctx, version)
            dek = deks.acquire(ctx.jurisdiction)
            cached = tails.get(id(dek))
            if cached is None or cached[0] is not dek:
                cached = (dek, frame.encode_header_tail(dek.kek, dek.wrapped, signing))
                tails[id(dek)] = cached
            header = prefix + context + cached[1]
            nonce = random(frame.NONCE_BYTES)
            bodies.append(frame.encode_body(header, nonce, dek.aead.encrypt(nonce, plaintext, header)))
        root, proofs = merkle.build([merkle.leaf_hash(b) for b in bodies])
        count = len(bodies)
        signature = self._signer.sign(frame.MANIFEST_DOMAIN + root + struct.pack(">I", count))
        return [
            SealedRecord(body + frame.encode_manifest_tail(i, count, proofs[i], signature), clear_headers(ctx))
            for i, (body, ctx) in enumerate(zip(bodies, (item[1] for item in items), strict=True))
        ]


class Opener:
    """Verifies, checks placement and jurisdiction, then decrypts. Plaintext only on success.

    Checks run in this order, each with its own error: well-formed (MalformedEnvelope), signing
    key known (UnknownKey), signing key not of small order and signature (BadSignature), clear
    headers equal the signed values (HeaderMismatch), topic (WrongTopic), partition
    (WrongPartition), record key for version 2 when the caller passes it (RecordKeyMismatch),
    jurisdiction and its KEK id (WrongJurisdiction), DEK unwrap (UnknownKey / KeyUnavailable),
    decryption (Tampered). Replay is the caller's check (:class:`router.envelope.ReplayGuard`): it
    needs the record's offset.
    """

    def __init__(self, keys: JurisdictionKeys, public_keys: PublicKeys, *, dek_cache_size: int = 1024) -> None:
        self._unwrap = UnwrapCache(keys, max_entries=dek_cache_size)
        self._keys = keys
        self._public = public_keys
        # Manifest signatures already verified: (signing key, root, count, signature).
        self._verified: OrderedDict[tuple[object, bytes, int, bytes], None] = OrderedDict()
        self._verified_lock = threading.Lock()
        # Public keys found not to be of small order, per key id and version.
        self._strict: dict[object, Ed25519PublicKey] = {}

    def __repr__(self) -> str:
        return f"Opener({self._keys!r}, {self._public!r})"

    def verify(self, value: bytes, headers: Headers = None) -> frame.Frame:
        """Parse and verify signature and headers; no decryption, no topic checks."""
        f = frame.decode(value)
        public = self._public.public_key(f.signing_key)
        if self._strict.get(f.signing_key) is not public:
            _refuse_small_order(f, public)
            if len(self._strict) >= _VERIFIED_ROOTS:
                self._strict.clear()
            self._strict[f.signing_key] = public  # the same object next time: not checked again
        if f.flags & frame.FLAG_MANIFEST:
            self._verify_manifest(f, public)
        else:
            try:
                public.verify(f.signature, frame.SIGNING_DOMAIN + f.body)
            except InvalidSignature:
                raise BadSignature(f"signature by {f.signing_key} does not verify") from None
        _check_headers(f.ctx, headers)
        return f

    def _verify_manifest(self, f: frame.Frame, public: Ed25519PublicKey) -> None:
        root = merkle.root_from_proof(f.leaf_index, f.leaf_count, merkle.leaf_hash(f.body), f.proof)
        if root is None:
            raise BadSignature("manifest inclusion proof is ill-formed")
        key = (f.signing_key, root, f.leaf_count, f.signature)
        with self._verified_lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return
        try:
            public.verify(f.signature, frame.MANIFEST_DOMAIN + root + struct.pack(">I", f.leaf_count))
        except InvalidSignature:
            raise BadSignature(f"manifest signature by {f.signing_key} does not verify") from None
        with self._verified_lock:
            self._verified[key] = None
            while len(self._verified) > _VERIFIED_ROOTS:
                self._verified.popitem(last=False)

    def open(
        self,
        value: bytes,
        headers: Headers,
        *,
        topic: str,
        partition: int,
        expected_jurisdiction: str,
        key: RecordKey = KEY_UNCHECKED,
    ) -> OpenedRecord:
        """Open a record read from ``topic``/``partition``. Pass the Kafka record ``key`` (bytes or
        None) to have a version-2 record's key binding checked; version 1 frames bind no key."""
        try:
            f = self.verify(value, headers)
            ctx = f.ctx
            if ctx.dest_topic != topic:
                raise WrongTopic(f"sealed for topic {ctx.dest_topic!r}, read from {topic!r}")
            if ctx.dest_partition != partition:
                raise WrongPartition(f"sealed for partition {ctx.dest_partition}, read from {partition}")
            if key is not KEY_UNCHECKED and f.version >= frame.VERSION_2:
                got = b"" if key is None else sha256(key).digest()
                if not hmac.compare_digest(got, ctx.record_key_digest):
                    raise RecordKeyMismatch("the record key is not the one the envelope was sealed for")
            if ctx.jurisdiction != expected_jurisdiction:
                raise WrongJurisdiction(
                    f"sealed for jurisdiction {ctx.jurisdiction!r}, reader expects {expected_jurisdiction!r}"
                )
            provider, key_id = self._keys.resolve(expected_jurisdiction)
            if f.kek.key_id != key_id:
                raise WrongJurisdiction(
                    f"wrapped under KEK {f.kek.key_id!r}, but {expected_jurisdiction!r} uses {key_id!r}"
                )
            aead = self._unwrap.aead(provider, f.kek, f.wrapped_dek)
            try:
                plaintext = aead.decrypt(f.nonce, f.ciphertext, f.header)
            except InvalidTag:
                raise Tampered("authenticated decryption failed") from None
        except EnvelopeError as err:
            raise err.at(topic, partition, raw=value) from None
        return OpenedRecord(plaintext, ctx, f.kek, f.signing_key, f.version)


def _check_headers(ctx: SealContext, headers: Headers) -> None:
    """Every ``rr-`` header (any letter case) is one of the envelope's, exactly once, byte-equal
    to the signed field. Names are compared exactly: a case variant is an unknown header."""
    expected = dict(clear_headers(ctx))
    seen: dict[str, bytes | None] = {}
    for name, val in headers or ():
        prefix = name[:3]
        if prefix != HEADER_PREFIX and (not isinstance(name, str) or prefix.lower() != HEADER_PREFIX):
            if not isinstance(name, str):
                raise HeaderMismatch("a header name is not text")
            continue
        if name in seen:
            raise HeaderMismatch(f"header {name!r} appears more than once")
        if name not in expected:
            raise HeaderMismatch(f"unknown envelope header {name!r}")
        seen[name] = val
    for name, want in expected.items():
        got = seen.get(name)
        if got is None:
            raise HeaderMismatch(f"header {name!r} is missing")
        if not isinstance(got, bytes) or not hmac.compare_digest(got, want):
            raise HeaderMismatch(f"header {name!r} differs from the signed envelope")


_P = 2**255 - 19
_Y8 = 0x5FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})
"""y of the eight points of order 1, 2, 4 and 8 (x is ±sqrt of what the curve equation gives)."""


def is_small_order(public: bytes) -> bool:
    """True when the 32-byte Ed25519 key encoding ``public`` is a point of order 1, 2, 4 or 8.

    Such a key verifies forged signatures (the identity key accepts ``R = identity, S = 0`` for
    every message) and OpenSSL's verify does not refuse it. The small-order points are exactly the
    points whose y (read mod p, so non-canonical encodings are covered; the sign bit of x does not
    matter) is 0, 1, p - 1 or ±y8.
    """
    return len(public) != 32 or (int.from_bytes(public, "little") & ((1 << 255) - 1)) % _P in _SMALL_ORDER_Y


def _refuse_small_order(f: frame.Frame, public: Ed25519PublicKey) -> None:
    if is_small_order(public.public_bytes(Encoding.Raw, PublicFormat.Raw)):
        raise BadSignature(f"public key {f.signing_key} is of small order (or not a curve point): refused")
