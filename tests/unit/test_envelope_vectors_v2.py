"""The version-2 vectors in tests/unit/fixtures/envelope/vectors.json: every positive vector is
re-derived (by the implementation, and independently from the primitives as the spec describes
them), every negative vector fails with its labelled error class.

The keys are TEST-ONLY: HKDF-SHA256 of a public seed (derived again here, not read from the file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from router.envelope import EnvelopeError, Opener, Replayed, ReplayGuard
from router.keys.dek import JurisdictionKeys
from router.keys.errors import UnknownKey
from router.keys.local import LocalKeyProvider, LocalKeyring
from router.keys.protocol import KeyProvider, KeyRef
from tests.unit.fixtures.envelope import vectors as gen

pytestmark = pytest.mark.unit

DATA: dict[str, Any] = json.loads(gen.JSON_PATH.read_text(encoding="utf-8"))
POSITIVE = {v["name"]: v for v in DATA["positive"]}
SEED = b"residency-router envelope test vectors v2 -- TEST ONLY, never a real key"


def derive(label: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(SEED)


def _label(v: dict[str, Any], what: str) -> str:
    return str(v["derive"][what]).split(" (")[0]


# -- the spec, written out from docs/envelope.md, independent of router.envelope.frame ----------


def _s8(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


def _header(ctx: dict[str, Any], flags: int, kek: dict[str, Any], wrapped: bytes, signing: dict[str, Any]) -> bytes:
    eid = ctx["event_id"].encode()
    kd = bytes.fromhex(ctx["record_key_digest"])
    return b"".join([
        b"RRE", bytes([2, flags]), struct.pack(">H", len(eid)), eid, _s8(ctx["source_topic"]),
        struct.pack(">iq", ctx["source_partition"], ctx["source_offset"]), _s8(ctx["dest_topic"]),
        struct.pack(">i", ctx["dest_partition"]), bytes([len(kd)]), kd, _s8(ctx["jurisdiction"]),
        _s8(ctx["classification_level"]), bytes([len(ctx["categories"])]), *map(_s8, ctx["categories"]),
        _s8(ctx["entity"]), _s8(ctx["operation"]),
        struct.pack(">i", -1 if ctx["schema_id"] is None else ctx["schema_id"]),
        _s8(kek["id"]), struct.pack(">I", kek["version"]), struct.pack(">H", len(wrapped)), wrapped,
        _s8(signing["id"]), struct.pack(">I", signing["version"]),
    ])


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle tree hash over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path, leaf level first."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _wrapped(v: dict[str, Any]) -> bytes:
    dek = derive(_label(v, "dek"))
    kek_id, version = v["kek"]["id"], v["kek"]["version"]
    if "transit_key" in v["derive"]:
        nonce = derive(_label(v, "transit_nonce"), 12)
        ct = AESGCM(derive(_label(v, "transit_key"))).encrypt(nonce, dek, None)
        return f"vault:v{version}:".encode() + base64.b64encode(nonce + ct)
    wrap_nonce = derive(_label(v, "wrap_nonce"), 12)
    aad = b"residency-router/dek-wrap/v1\x00" + kek_id.encode() + b"\x00" + struct.pack(">I", version)
    return wrap_nonce + AESGCM(derive(_label(v, "kek"))).encrypt(wrap_nonce, derive(_label(v, "dek")), aad)


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_each_positive_vector_is_the_spec_applied_to_the_test_keys(name: str) -> None:
    v = POSITIVE[name]
    signer = Ed25519PrivateKey.from_private_bytes(derive(_label(v, "signing_seed")))
    assert signer.public_key().public_bytes_raw().hex() == v["signing_public"]
    dek = derive(_label(v, "dek"))
    wrapped = _wrapped(v)
    flags = 1 if v["manifest"] else 0
    bodies = []
    for rec in v["records"]:
        ctx = rec["context"]
        if rec["kafka_key"] is not None:
            assert bytes.fromhex(ctx["record_key_digest"]) == hashlib.sha256(rec["kafka_key"].encode()).digest()
        assert bytes.fromhex(rec["wrapped_dek"]) == wrapped
        header = _header(ctx, flags, v["kek"], wrapped, v["signing_key"])
        assert bytes.fromhex(rec["header"]) == header
        nonce = bytes.fromhex(rec["nonce"])
        ct = AESGCM(dek).encrypt(nonce, bytes.fromhex(rec["plaintext"]), header)
        assert bytes.fromhex(rec["ciphertext"]) == ct
        bodies.append(header + nonce + struct.pack(">I", len(ct)) + ct)
        assert rec["headers"] == [["rr-event-id", ctx["event_id"]], ["rr-entity", ctx["entity"]],
                                  ["rr-operation", ctx["operation"]], ["rr-jurisdiction", ctx["jurisdiction"]],
                                  ["rr-classification", ctx["classification_level"]]]
    if not v["manifest"]:
        (body,) = bodies
        assert bytes.fromhex(v["records"][0]["value"]) == body + signer.sign(
            b"residency-router/envelope/v1\x00" + body)
        return
    leaves = [hashlib.sha256(b"\x00" + b).digest() for b in bodies]
    n = len(leaves)
    assert n >= 7
    signature = signer.sign(b"residency-router/manifest/v1\x00" + _mth(leaves) + struct.pack(">I", n))
    for i, (rec, body) in enumerate(zip(v["records"], bodies, strict=True)):
        proof = _path(i, leaves)
        tail = struct.pack(">IIB", i, n, len(proof)) + b"".join(proof) + signature
        assert bytes.fromhex(rec["value"]) == body + tail
        assert (rec["leaf_index"], rec["leaf_count"]) == (i, n)


def test_the_implementation_regenerates_the_file_byte_for_byte() -> None:
    assert json.loads(json.dumps(gen.build())) == DATA


def test_the_file_says_its_keys_are_test_only() -> None:
    assert "TEST-ONLY" in DATA["warning"] and DATA["seed"] == SEED.decode()
    assert gen.derive("kek/eu/1") == derive("kek/eu/1")


# -- opening -----------------------------------------------------------------------------------


class _Keys:
    """Public keys by ``id:version`` (hex), small-order ones included on purpose."""

    def __init__(self, raw: dict[str, str]) -> None:
        self._keys = {KeyRef(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1])): bytes.fromhex(h) for k, h in raw.items()}

    def public_key(self, key: KeyRef) -> Ed25519PublicKey:
        try:
            return Ed25519PublicKey.from_public_bytes(self._keys[key])
        except KeyError:
            raise UnknownKey(f"signing key {key} is not known", key=key) from None


def _opener(v: dict[str, Any], extra: dict[str, str] | None = None) -> Opener:
    kek_id, version = v["kek"]["id"], v["kek"]["version"]
    provider: KeyProvider
    if "transit_key" in v["derive"]:
        provider = gen.TransitProvider({(kek_id, version): derive(_label(v, "transit_key"))})
    else:
        provider = LocalKeyProvider(LocalKeyring.from_keys({kek_id: {version: derive(_label(v, "kek"))}}, {}))
    public = {f"{v['signing_key']['id']}:{v['signing_key']['version']}": v["signing_public"], **(extra or {})}
    return Opener(JurisdictionKeys({"eu": (provider, kek_id), "us": (provider, "us")}), _Keys(public))


def _headers(h: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(k, x.encode()) for k, x in h]


@pytest.mark.parametrize("name", sorted(POSITIVE))
def test_each_positive_vector_opens_with_its_key(name: str) -> None:
    v = POSITIVE[name]
    opener = _opener(v)
    for rec in v["records"]:
        key = rec["kafka_key"].encode() if rec["kafka_key"] is not None else None
        opened = opener.open(bytes.fromhex(rec["value"]), _headers(rec["headers"]), topic=rec["context"]["dest_topic"],
                             partition=rec["context"]["dest_partition"], expected_jurisdiction="eu", key=key)
        assert opened.plaintext == bytes.fromhex(rec["plaintext"])
        assert opened.version == 2 and opened.replay_protected
        assert opened.ctx.record_key_digest.hex() == rec["context"]["record_key_digest"]


NEGATIVE = {n["name"]: n for n in DATA["negative"]}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_each_negative_vector_fails_with_its_error_class(name: str) -> None:
    n = NEGATIVE[name]
    v = POSITIVE[n["keys"]]
    opener = _opener(v, n.get("extra_public_keys"))
    key = n["kafka_key"].encode() if n["kafka_key"] is not None else None
    if "reads" in n:
        guard = ReplayGuard(window=100, refuse_out_of_order=n.get("refuse_out_of_order", False))
        *first, last = n["reads"]
        for read in (*first, last):
            rec = v["records"][read["record"]]
            opened = opener.open(bytes.fromhex(rec["value"]), _headers(rec["headers"]), topic=n["topic"],
                                 partition=n["partition"], expected_jurisdiction=n["expected_jurisdiction"], key=key)
            if read is last:
                with pytest.raises(Replayed) as replayed:
                    guard.check(n["topic"], n["partition"], read["offset"], opened)
                assert replayed.value.reason.value == n["reason"]
            else:
                guard.check(n["topic"], n["partition"], read["offset"], opened)
        return
    with pytest.raises(EnvelopeError) as err:
        opener.open(bytes.fromhex(n["value"]), _headers(n["headers"]), topic=n["topic"], partition=n["partition"],
                    expected_jurisdiction=n["expected_jurisdiction"], key=key)
    assert type(err.value).__name__ == n["error"], n["why"]


def test_the_vectors_cover_what_the_spec_promises() -> None:
    names = set(POSITIVE)
    assert {"v2-local", "v2-openbao", "v2-local-kek-id", "v2-manifest-7"} <= names
    kek_id = POSITIVE["v2-local-kek-id"]
    assert kek_id["kek"]["id"] != kek_id["records"][0]["context"]["jurisdiction"]
    assert bytes.fromhex(POSITIVE["v2-openbao"]["records"][0]["wrapped_dek"]).startswith(b"vault:v3:")
    errors = {n["error"] for n in DATA["negative"]}
    assert errors >= {"MalformedEnvelope", "UnknownKey", "BadSignature", "HeaderMismatch", "WrongTopic",
                      "WrongPartition", "WrongJurisdiction", "RecordKeyMismatch", "Tampered", "Replayed"}
