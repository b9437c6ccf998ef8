"""The pure per-record path in process, no Kafka: µs/event per stage, median of several runs.

Run: ``.venv/bin/python bench/bench_core.py [--n 5000] [--runs 5]``.

Two mixes:
- ``sample``: the sample generator's mix (Salesforce CDC JSON and Avro, Debezium, gap events,
  tombstones; personal data, identifiers, prompts);
- ``plain update``: a Salesforce UPDATE that changes 3 non-sensitive fields, which is what most
  real CDC traffic looks like.

Stages, each timed over the whole mix on its own: decode, classify, resolve, decide (policy),
seal (``seal_batch`` in batches of 500, the pipeline's size, of contexts the processor encoded),
audit record (chain append of one fixed-layout record), output assembly (the rest of
``RouterProcessor.process``: placement checks, keyed digests, envelope contexts, quarantine records,
audit fields). ``total`` is ``RouterProcessor.process`` over the
mix, end to end, with fakes for the consumed messages and placement (no broker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from router.audit.chain import AuditChain
from router.audit.record import AuditFields
from router.config.loader import parse_config
from router.envelope import SealContext, Sealer
from router.envelope.frame import encode_context
from router.ingest.samples import generate
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.digest import DigestKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalSigner
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.routing.build import evaluator_for

ROOT = Path(__file__).resolve().parents[1]
INGRESS = "crm.ingress"


@dataclass
class Msg:
    """A consumed record as the processor reads it (the accessors of confluent_kafka.Message)."""

    _value: bytes | None
    _key: bytes | None
    _headers: list[tuple[str, bytes]]
    _offset: int
    _partition: int = 0
    _topic: str = INGRESS
    _ts: tuple[int, int] = field(default=(1, 1_700_000_000_000))

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._ts


class AllPlaced:
    def permitted(self, topic: str, jurisdiction: str) -> bool:
        return True

    def partitions(self, topic: str) -> int:
        return 3

    def verdict(self) -> str:
        return "ok@1"


def plain_updates(n: int) -> list[Msg]:
    out = []
    for i in range(n):
        doc = {
            "ChangeEventHeader": {"entityName": "Account", "changeType": "UPDATE", "recordIds": [f"001{i:015d}"],
                                  "changedFields": ["Rating", "NumberOfEmployees", "LastModifiedDate"],
                                  "commitTimestamp": 1_764_000_000_000 + i, "sequenceNumber": 1,
                                  "transactionKey": f"tx-{i}", "changeOrigin": "com/salesforce/api/soap/61.0"},
            "EventUuid": f"5b2c{i:08d}-0000-4000-8000-000000000000",
            "Rating": "Warm", "NumberOfEmployees": 420 + i % 7, "LastModifiedDate": "2026-11-28T10:00:00Z",
            "OrgId": "00DEU0000000001",
        }
        out.append(Msg(json.dumps(doc).encode(), f"001{i:015d}".encode(), [], i))
    return out


def sample_mix(n: int) -> list[Msg]:
    return [Msg(r.value, r.key, [(k, v.encode()) for k, v in r.headers.items()], i)
            for i, r in enumerate(generate(n, seed=7))]


def build(config_path: Path) -> tuple[Any, Any, Sealer, DigestKeys, list[str]]:
    doc = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    doc["pipeline"]["ingress"] = [{"topic": INGRESS, "jurisdiction": "eu", "decoder": "auto"}]
    doc["residency"]["tenants"] = {"00DEU0000000001": "eu"}
    jurisdictions = list(doc["jurisdictions"])
    cfg = parse_config(doc)
    core = evaluator_for(cfg, config_path.parent)
    ring = LocalKeyring.from_keys({j: {1: os.urandom(32)} for j in jurisdictions},
                                  {"router-signing": {1: os.urandom(32)}})
    provider = LocalKeyProvider(ring)
    jk = JurisdictionKeys({j: (provider, j) for j in jurisdictions})
    sealer = Sealer(CachingDekManager(jk, DekPolicy(1 << 20, 300)), LocalSigner(ring, "router-signing"))
    return cfg, core, sealer, DigestKeys(jk), jurisdictions


def timed(fn: Callable[[], object], n: int, runs: int) -> float:
    """Median µs per event of ``fn`` (one pass over ``n`` events) over ``runs`` runs."""
    fn()  # warm caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def stages(config_path: Path, msgs: list[Msg], runs: int) -> dict[str, float]:
    _cfg, core, sealer, digests, _js = build(config_path)
    spec = core.ingress[INGRESS]
    engine = core.engine
    origin = spec.origin
    hdrs = [{k: v.decode() for k, v in m.headers()} for m in msgs]
    events = []
    for m, h in zip(msgs, hdrs, strict=True):
        try:
            events.append(spec.decoder.decode(m.value(), key=m.key(), headers=h))
        except Exception:
            continue
    classes = [engine.classifier.classify(e) for e in events]
    resolutions = [engine.resolver.resolve(e, origin) for e in events]
    n = len(msgs)

    def decode() -> None:
        for m, h in zip(msgs, hdrs, strict=True):
            try:
                spec.decoder.decode(m.value(), key=m.key(), headers=h)
            except Exception:
                continue

    def classify() -> None:
        for e in events:
            engine.classifier.classify(e)

    def resolve() -> None:
        for e in events:
            engine.resolver.resolve(e, origin)

    def decide() -> None:
        for e, c, r in zip(events, classes, resolutions, strict=True):
            engine.policy.decide(e, c, r, origin.jurisdiction)

    contexts = [SealContext(f"{INGRESS}:0:{i}", INGRESS, 0, i, "crm.eu.account", i % 3, "eu", "confidential",
                            ("PII",), "Account", "update") for i in range(len(msgs))]
    # As the processor hands them over: each context already encoded (and validated) per record.
    ctxs = [(m.value() or b"", ctx, encode_context(ctx)) for m, ctx in zip(msgs, contexts, strict=True)]

    def seal() -> None:
        for start in range(0, len(ctxs), 500):
            sealer.seal_batch(ctxs[start:start + 500])

    chain = AuditChain()
    fields = AuditFields(decision="route", reason="ROUTED", classification_level="confidential",
                         categories=("PII",), field_names=("Email",), jurisdictions=("eu",),
                         destination_topic="crm.eu.account", destination_partition=1, placement_verdict="ok@1",
                         payload_sha256="hmac-sha256:eu:" + "0" * 64, sealed_sha256="0" * 64,
                         source_topic=INGRESS, source_partition=0, source_offset=1, source_timestamp_ms=1,
                         event_id="eid:" + "0" * 32, policy_version="p", router_version="r", instance_id="bench",
                         processed_at_ms=1, trace_id=None)

    def audit() -> None:
        for _ in range(n):
            chain.append(0, fields)

    def total() -> None:
        proc = RouterProcessor(core, AllPlaced(), sealer, AuditChain(), RouterSettings(
            quarantine_topic=lambda j: f"quarantine.{j}", audit_topic="audit", instance_id="bench",
            origin_jurisdiction=lambda _t: "eu", audit_jurisdiction="eu"), digests)
        for start in range(0, n, 500):
            proc.process(msgs[start:start + 500])  # type: ignore[arg-type]

    out = {name: timed(fn, n, runs) for name, fn in
           (("decode", decode), ("classify", classify), ("resolve", resolve), ("decide", decide),
            ("seal", seal), ("audit record", audit), ("total", total))}
    out["classify"] *= len(events) / n
    out["resolve"] *= len(events) / n
    out["decide"] *= len(events) / n
    named = sum(v for k, v in out.items() if k != "total")
    out["output assembly"] = max(0.0, out["total"] - named)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="events per mix")
    ap.add_argument("--runs", type=int, default=5, help="runs per stage (median)")
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "router.yaml")
    args = ap.parse_args()
    mixes = {"sample": sample_mix(args.n), "plain update": plain_updates(args.n)}
    results = {name: stages(args.config, msgs, args.runs) for name, msgs in mixes.items()}
    order = ("decode", "classify", "resolve", "decide", "seal", "audit record", "output assembly", "total")
    print(f"core path, µs/event (median of {args.runs} runs of {args.n} events; no Kafka)")
    print(f"{'stage':<18}" + "".join(f"{name:>16}" for name in results))
    for stage in order:
        print(f"{stage:<18}" + "".join(f"{results[m][stage]:>16.1f}" for m in results))


if __name__ == "__main__":
    main()
