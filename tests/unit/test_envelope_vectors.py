"""The test vectors in docs/envelope.md are what the implementation produces, byte for byte."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from router.envelope import Opener, SealContext, Sealer, frame
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "envelope.md"
CTX = SealContext(
    event_id="salesforce:Contact:003xx0000001:1700000000000:7",
    source_topic="crm.ingress",
    source_partition=2,
    source_offset=1234,
    dest_topic="crm.eu.contact",
    dest_partition=1,
    jurisdiction="eu",
    classification_level="confidential",
    categories=("pii.email", "pii.name"),
    entity="Contact",
    operation="update",
    schema_id=42,
)


def _vector(name: str) -> dict[str, bytes]:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- test-vector {re.escape(name)} -->\s*```text\n(.*?)```", text, re.S)
    assert m, f"test vector {name} not found in {DOC}"
    out: dict[str, str] = {}
    last = ""
    for line in m.group(1).splitlines():
        if line.startswith(" "):
            out[last] += line.strip()
        elif line.strip():
            last, _, value = line.partition("=")
            last = last.strip()
            out[last] = value.strip()
    return {k: bytes.fromhex(v) for k, v in out.items()}


def _feed(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)

    def random_bytes(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return random_bytes


@pytest.fixture(scope="module")
def vector() -> dict[str, bytes]:
    return _vector("v1-local")


@pytest.fixture(scope="module")
def ring(vector: dict[str, bytes]) -> LocalKeyring:
    return LocalKeyring.from_keys({"eu": {1: vector["kek"]}}, {"router-signing": {1: vector["signing_seed"]}})


def test_sealing_the_vector_inputs_gives_the_documented_bytes(vector: dict[str, bytes], ring: LocalKeyring) -> None:
    provider = LocalKeyProvider(ring, random_bytes=_feed(vector["dek"], vector["wrap_nonce"]))
    deks = CachingDekManager(JurisdictionKeys({"eu": (provider, "eu")}))
    sealer = Sealer(deks, LocalSigner(ring), random_bytes=_feed(vector["nonce"]), version=1)
    rec = sealer.seal(vector["plaintext"], CTX)
    f = frame.decode(rec.value)
    assert LocalSigner(ring).public_bytes() == vector["signing_public"]
    assert f.wrapped_dek == vector["wrapped_dek"]
    assert f.header == vector["header"]
    assert f.ciphertext == vector["ciphertext"]
    assert f.signature == vector["signature"]
    assert rec.value == vector["value"]


def test_the_documented_value_opens_to_the_documented_plaintext(vector: dict[str, bytes], ring: LocalKeyring) -> None:
    opener = Opener(JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")}), LocalPublicKeys(ring))
    headers = [
        ("rr-event-id", CTX.event_id.encode()),
        ("rr-entity", b"Contact"),
        ("rr-operation", b"update"),
        ("rr-jurisdiction", b"eu"),
        ("rr-classification", b"confidential"),
    ]
    opened = opener.open(vector["value"], headers, topic="crm.eu.contact", partition=1, expected_jurisdiction="eu")
    assert opened.plaintext == vector["plaintext"]
    assert opened.ctx == CTX
    assert (opened.version, opened.replay_protected) == (1, False)


def test_the_vector_is_a_plain_aes_gcm_and_ed25519_construction(vector: dict[str, bytes]) -> None:
    """Recompute with the primitives only, as a reader in another language would."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    wrap_aad = b"residency-router/dek-wrap/v1\x00eu\x00\x00\x00\x00\x01"
    wrapped = vector["wrap_nonce"] + AESGCM(vector["kek"]).encrypt(vector["wrap_nonce"], vector["dek"], wrap_aad)
    assert wrapped == vector["wrapped_dek"]
    ct = AESGCM(vector["dek"]).encrypt(vector["nonce"], vector["plaintext"], vector["header"])
    assert ct == vector["ciphertext"]
    body = vector["header"] + vector["nonce"] + len(ct).to_bytes(4, "big") + ct
    sig = Ed25519PrivateKey.from_private_bytes(vector["signing_seed"]).sign(b"residency-router/envelope/v1\x00" + body)
    assert body + sig == vector["value"]


def test_the_manifest_vector_seals_and_opens_as_documented(ring: LocalKeyring) -> None:
    import dataclasses

    v = _vector("v1-manifest")
    base = _vector("v1-local")
    provider = LocalKeyProvider(ring, random_bytes=_feed(base["dek"], base["wrap_nonce"]))
    keys = JurisdictionKeys({"eu": (provider, "eu")})
    sealer = Sealer(CachingDekManager(keys), LocalSigner(ring), random_bytes=_feed(v["nonce_0"], v["nonce_1"]),
                    version=1)
    ctx1 = dataclasses.replace(CTX, event_id="salesforce:Contact:003xx0000002:1700000000001:8", source_offset=1235)
    recs = sealer.seal_batch([(v["plaintext_0"], CTX), (v["plaintext_1"], ctx1)])
    assert [r.value for r in recs] == [v["value_0"], v["value_1"]]
    opener = Opener(keys, LocalPublicKeys(ring))
    for i, (rec, ctx) in enumerate(zip(recs, (CTX, ctx1), strict=True)):
        opened = opener.open(rec.value, rec.headers, topic="crm.eu.contact", partition=1, expected_jurisdiction="eu")
        assert (opened.plaintext, opened.ctx) == (v[f"plaintext_{i}"], ctx)
