"""Cost of sealing and opening one 1 KB event (µs), per-record and manifest signing, frame vs Avro.

Run: ``.venv/bin/python bench/bench_envelope.py [--records N]``. Uses the development keyring in
memory (no KMS round trips: with the default DEK policy a KMS is called once per 2^20 records or
300 s per jurisdiction, and a reader unwraps each DEK once, so KMS cost is amortised to ~0).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import time
from collections.abc import Callable

import fastavro

from router.envelope import OpenedRecord, Opener, ReplayGuard, SealContext, Sealer, frame
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner

KEY = b"5f" * 32  # the router's output keys are 64 hex characters (a keyed digest)
CTX = SealContext(
    "salesforce:Contact:003xx000004TmiQAAS:1700000000000:7", "crm.ingress", 2, 123456, "crm.eu.contact", 1, "eu",
    "confidential", ("pii.email", "pii.name", "pii.phone"), "Contact", "update", 42, frame.key_digest(KEY),
)  # fmt: skip

AVRO_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Envelope",
        "namespace": "residency_router",
        "fields": [
            {"name": "version", "type": "int"},
            {"name": "event_id", "type": "string"},
            {"name": "source_topic", "type": "string"},
            {"name": "source_partition", "type": "int"},
            {"name": "source_offset", "type": "long"},
            {"name": "dest_topic", "type": "string"},
            {"name": "dest_partition", "type": "int"},
            {"name": "jurisdiction", "type": "string"},
            {"name": "classification_level", "type": "string"},
            {"name": "categories", "type": {"type": "array", "items": "string"}},
            {"name": "entity", "type": "string"},
            {"name": "operation", "type": "string"},
            {"name": "schema_id", "type": ["null", "int"]},
            {"name": "kek_id", "type": "string"},
            {"name": "kek_version", "type": "int"},
            {"name": "wrapped_dek", "type": "bytes"},
            {"name": "signing_key_id", "type": "string"},
            {"name": "signing_key_version", "type": "int"},
            {"name": "nonce", "type": {"type": "fixed", "name": "Nonce", "size": 12}},
            {"name": "ciphertext", "type": "bytes"},
            {"name": "signature", "type": {"type": "fixed", "name": "Sig", "size": 64}},
        ],
    }
)


def per_call_us(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean cost per call in µs (best run: least disturbed by the machine)."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--payload", type=int, default=1024)
    args = ap.parse_args()
    n = args.records

    ring = LocalKeyring.from_keys({"eu": {1: os.urandom(32)}}, {"router-signing": {1: os.urandom(32)}})
    keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
    signer = LocalSigner(ring)
    sealer = Sealer(CachingDekManager(keys, DekPolicy()), signer)
    opener = Opener(keys, LocalPublicKeys(ring))
    payload = os.urandom(args.payload)
    rec = sealer.seal(payload, CTX)

    def open_once() -> object:
        return opener.open(rec.value, rec.headers, topic=CTX.dest_topic, partition=1, expected_jurisdiction="eu",
                           key=KEY)

    f = frame.decode(rec.value)
    aead = CachingDekManager(keys).acquire("eu").aead
    msg = frame.SIGNING_DOMAIN + f.body
    public = LocalPublicKeys(ring).public_key(signer.key)
    nonce = os.urandom(12)

    avro_doc = {
        "version": 1, "event_id": CTX.event_id, "source_topic": CTX.source_topic,
        "source_partition": CTX.source_partition, "source_offset": CTX.source_offset, "dest_topic": CTX.dest_topic,
        "dest_partition": CTX.dest_partition, "jurisdiction": CTX.jurisdiction,
        "classification_level": CTX.classification_level, "categories": list(CTX.categories), "entity": CTX.entity,
        "operation": CTX.operation, "schema_id": CTX.schema_id, "kek_id": f.kek.key_id, "kek_version": f.kek.version,
        "wrapped_dek": f.wrapped_dek, "signing_key_id": f.signing_key.key_id,
        "signing_key_version": f.signing_key.version, "nonce": f.nonce, "ciphertext": f.ciphertext,
        "signature": f.signature,
    }  # fmt: skip

    def avro_encode() -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, AVRO_SCHEMA, avro_doc)
        return buf.getvalue()

    avro_bytes = avro_encode()

    def avro_decode() -> object:
        return fastavro.schemaless_reader(io.BytesIO(avro_bytes), AVRO_SCHEMA)

    batch_n = 1000
    items = [(payload, CTX)] * batch_n
    batch = sealer.seal_batch(items)

    def open_batch() -> object:
        fresh = Opener(keys, LocalPublicKeys(ring))  # no verified roots cached yet
        for r in batch:
            fresh.open(r.value, r.headers, topic=CTX.dest_topic, partition=1, expected_jurisdiction="eu", key=KEY)
        return fresh

    guard = ReplayGuard()  # a stream of distinct source positions, one per offset
    stream = iter(enumerate([OpenedRecord(b"", dataclasses.replace(CTX, source_offset=i), f.kek, f.signing_key, 2)
                             for i in range(6 * n)]))

    def guard_all() -> None:
        for _ in range(n):
            offset, opened = next(stream)
            guard.check(CTX.dest_topic, 1, offset, opened)

    rows = [
        ("seal (encrypt + sign + frame)", per_call_us(lambda: sealer.seal(payload, CTX), n)),
        ("open (parse + verify + decrypt)", per_call_us(open_once, n)),
        (f"seal_batch manifest, per record (n={batch_n})", per_call_us(lambda: sealer.seal_batch(items), 5) / batch_n),
        (f"open manifest record, per record (n={batch_n})", per_call_us(open_batch, 5) / batch_n),
        ("  of which Ed25519 sign", per_call_us(lambda: signer.sign(msg), n)),
        ("  of which Ed25519 verify", per_call_us(lambda: public.verify(f.signature, msg), n)),
        ("  of which AES-256-GCM encrypt", per_call_us(lambda: aead.encrypt(nonce, payload, f.header), n)),
        (
            "  of which frame encode",
            per_call_us(lambda: frame.encode_header(CTX, f.kek, f.wrapped_dek, f.signing_key), n),
        ),
        ("  of which frame decode", per_call_us(lambda: frame.decode(rec.value), n)),
        ("Avro envelope encode (fastavro)", per_call_us(avro_encode, n)),
        ("Avro envelope decode (fastavro)", per_call_us(avro_decode, n)),
        ("record key digest (router, SHA-256)", per_call_us(lambda: frame.key_digest(KEY), n)),
        ("replay guard check (SDK, per record)", per_call_us(guard_all, 1) / n),
    ]
    print(f"payload {args.payload} B, {n} records per run, best of 5; DEK policy {DekPolicy()}")
    for name, us in rows:
        print(f"{name:36s} {us:8.1f} µs")
    seal_us = rows[0][1]
    print(f"envelope size: frame {len(rec.value)} B (+{len(rec.value) - args.payload} B), Avro {len(avro_bytes)} B")
    print(f"manifest record size (n={batch_n}): {len(batch[0].value)} B")
    print(f"clear headers: {sum(len(k) + len(v) for k, v in rec.headers)} B")
    for name, us in (("per-record", seal_us), ("manifest", rows[2][1])):
        print(f"{name} seal per core: {1e6 / us:,.0f} records/s; 30k/s needs {30000 * us / 1e6:.2f} cores")


if __name__ == "__main__":
    main()
