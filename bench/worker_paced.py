"""Benchmark events and the paced producer used for the latency measurement.

Events come from the ingest sample generator (``router.ingest.samples.generate``) when it exists,
else from a built-in generator of ~1 KB Salesforce-CDC-shaped JSON records.

Run as a script, this is the paced producer: it schedules record ``i`` at ``t0 + i / rate`` on a
fixed timeline, sets the record timestamp to the *scheduled* time and adds a ``bench-seq`` header,
and never waits for one send before the next is due. Latency is measured from the scheduled time,
so a producer or pipeline that falls behind is charged for it (no coordinated omission). It prints
one JSON line: ``{"t0": ..., "rate": ..., "sent": ..., "lag_p99_ms": ...}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Producer

try:  # the ingest developer's generator, preferred whenever it is present
    from router.ingest.samples import generate as _sample_generate
except ImportError:  # pragma: no cover - depends on what has landed
    _sample_generate = None

EVENT_SOURCE = "router.ingest.samples" if _sample_generate is not None else "bench fallback (JSON ~1 KB)"
SEQ_HEADER = "bench-seq"

Event = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def _as_bytes(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    return orjson.dumps(v)


def _headers(h: Any) -> list[tuple[str, bytes]]:
    if not h:
        return []
    items = h.items() if isinstance(h, dict) else h
    return [(str(k), _as_bytes(v) or b"") for k, v in items]


_COUNTRIES = ("DE", "FR", "IE", "NL", "US", "US", "CA", "BR", "JP", "")
_ENTITIES = ("Account", "Contact", "Lead", "Opportunity")


def _fallback(n: int, seed: int) -> Iterator[Event]:
    rnd = random.Random(seed)
    for i in range(n):
        entity = rnd.choice(_ENTITIES)
        rid = f"001{seed:03d}{i:012d}"[:18]
        body = {
            "ChangeEventHeader": {
                "entityName": entity,
                "recordIds": [rid],
                "changeType": rnd.choice(("CREATE", "UPDATE", "UPDATE", "DELETE")),
                "changeOrigin": "com/salesforce/api/rest/60.0",
                "transactionKey": f"{rnd.getrandbits(64):016x}",
                "sequenceNumber": 1,
                "commitTimestamp": 1_790_000_000_000 + i,
                "commitNumber": 10_000_000 + i,
                "commitUser": "005000000000001AAA",
                "changedFields": ["Name", "Email", "BillingCountry", "Description"],
            },
            "Name": f"Customer {i}",
            "Email": f"user{i}@example.com",
            "Phone": f"+49 30 {rnd.randrange(1_000_000, 9_999_999)}",
            "BillingCountry": rnd.choice(_COUNTRIES),
            "BillingCity": "Berlin",
            "Industry": "Manufacturing",
            "AnnualRevenue": rnd.randrange(10**5, 10**9),
        }
        pad = 1000 - len(orjson.dumps(body)) - len('"Description":"",')
        body["Description"] = "x" * max(pad, 0)
        yield rid.encode(), orjson.dumps(body), [("content-type", b"application/json")]


def generate(n: int, seed: int = 7) -> list[Event]:
    """``n`` ingress events as (key, value, headers), from the sample generator if it exists."""
    if _sample_generate is None:
        return list(_fallback(n, seed))
    out: list[Event] = []
    for rec in itertools.islice(_sample_generate(n, seed), n):
        out.append((_as_bytes(rec.key), _as_bytes(rec.value) or b"", _headers(getattr(rec, "headers", None))))
    return out


def run_paced(bootstrap: str, topic: str, rate: float, count: int, seed: int) -> dict[str, Any]:
    pool = generate(min(count, 20_000), seed)
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
    })
    produce, poll = producer.produce, producer.poll
    lags: list[float] = []
    t0 = time.time() + 0.2
    interval = 1.0 / rate
    i = 0
    while i < count:
        now = time.time()
        due = min(count, int((now - t0) / interval) + 1) if now >= t0 else 0
        while i < due:
            sched = t0 + i * interval
            key, value, headers = pool[i % len(pool)]
            hdrs = [*headers, (SEQ_HEADER, str(i).encode())]
            while True:
                try:
                    produce(topic, value, key, timestamp=int(sched * 1000), headers=hdrs)
                    break
                except BufferError:
                    poll(0.001)
            lags.append(time.time() - sched)
            i += 1
        poll(0)
        if i < count:
            time.sleep(max(0.0, min(0.001, t0 + i * interval - time.time())))
    remaining = producer.flush(60)
    lags.sort()
    return {
        "t0": t0,
        "rate": rate,
        "sent": count - remaining,
        "lag_p50_ms": lags[len(lags) // 2] * 1000 if lags else None,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000 if lags else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rate", type=float, required=True, help="records per second")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    print(json.dumps(run_paced(args.bootstrap, args.topic, args.rate, args.count, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
