"""Benchmark events and the paced producer used for the latency measurement.

Events come from the ingest sample generator (``router.ingest.samples.generate``) when it exists,
else from a built-in generator of ~1 KB Salesforce-CDC-shaped JSON records.

Run as a script, this is the paced producer, a process of its own: it pre-generates every record
(adding a ``bench-seq`` header), then sends record ``i`` at ``t0 + i / rate`` on a timeline fixed
before the first send, with the record timestamp set to the *scheduled* time, and never waits for
one send before the next is due. Latency is measured from the scheduled time, so a producer or a
pipeline that falls behind is charged for it (no coordinated omission). Delivery reports give each
record's (partition, offset); ``--positions`` writes them, so that outputs that do not carry the
header (the router keeps no input header) are matched by the source position they record. It
prints one JSON line: ``{"t0", "rate", "sent", "lag_p99_ms", "cpu_s", ...}``, where ``lag`` is how
late ``produce()`` was called against the schedule (the harness's own delay).
"""

from __future__ import annotations

import argparse
import functools
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


def schedule(records: list[Event], count: int) -> list[Event]:
    """The ``count`` records of a paced run, built before the clock starts: record ``i`` is
    ``records[i % len(records)]`` with a ``bench-seq: i`` header added."""
    out: list[Event] = []
    for i in range(count):
        key, value, headers = records[i % len(records)]
        out.append((key, value, [*headers, (SEQ_HEADER, str(i).encode())]))
    return out


def run_paced(bootstrap: str, topic: str, rate: float, count: int, seed: int, positions: str | None,
              linger_ms: int = 1) -> dict[str, Any]:
    """Send ``count`` records at ``rate``/s on the fixed timeline ``t0 + i / rate``.

    Everything that costs time is done before ``t0``: generating the events, adding the sequence
    headers, connecting (one metadata request). The loop only calls ``produce`` for every record
    whose time has come, so falling behind never moves the timeline: record ``i`` is charged from
    ``t0 + i / rate`` whatever happened. Delivery reports give each record's (partition, offset),
    written to ``positions`` so that outputs can be matched by their source position.
    """
    pool = generate(min(count, 20_000), seed)
    records = schedule(pool, count)
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
    })
    producer.list_topics(topic, timeout=15)  # connect and learn the partitions before the clock starts
    where: list[tuple[int, int]] = [(-1, -1)] * count
    failed = 0

    def delivered(seq: int, err: Any, msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
        else:
            where[seq] = (msg.partition(), msg.offset())

    produce, poll = producer.produce, producer.poll
    lags = [0.0] * count
    interval = 1.0 / rate
    t0 = time.time() + 0.3
    cpu0 = time.process_time()
    i = 0
    while i < count:
        now = time.time()
        due = min(count, int((now - t0) / interval) + 1) if now >= t0 else 0
        while i < due:
            sched = t0 + i * interval
            key, value, headers = records[i]
            while True:
                try:
                    produce(topic, value, key, timestamp=int(sched * 1000), headers=headers,
                            on_delivery=functools.partial(delivered, i))
                    break
                except BufferError:
                    poll(0.001)
            lags[i] = time.time() - sched
            i += 1
        poll(0)
        if i < count:
            wait = t0 + i * interval - time.time()
            if wait > 0:
                time.sleep(min(wait, 0.002))
    sent_at = time.time()
    remaining = producer.flush(60)
    cpu = time.process_time() - cpu0
    lags.sort()
    if positions:
        with open(positions, "w", encoding="utf-8") as f:
            json.dump({"t0": t0, "rate": rate, "positions": where}, f)
    return {
        "t0": t0,
        "rate": rate,
        "count": count,
        "sent": count - remaining - failed,
        "failed": failed + remaining,
        "schedule_s": count * interval,
        "overrun_s": round(sent_at - (t0 + (count - 1) * interval), 4),
        "lag_p50_ms": lags[len(lags) // 2] * 1000 if lags else None,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000 if lags else None,
        "lag_max_ms": lags[-1] * 1000 if lags else None,
        "cpu_s": round(cpu, 3),
        "linger_ms": linger_ms,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rate", type=float, required=True, help="records per second")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--linger-ms", type=int, default=1)
    ap.add_argument("--positions", help="write {t0, rate, positions: [[partition, offset] per seq]} here")
    args = ap.parse_args()
    out = run_paced(args.bootstrap, args.topic, args.rate, args.count, args.seed, args.positions, args.linger_ms)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
