"""Decode cost per event for each connector format (µs/event), over the sample generator's records.

Besides the generator's formats it measures the Salesforce Pub/Sub API form (the Avro body without
the Confluent frame, schema id in a header) and the Streaming API shapes of the same JSON payloads
(the CometD event object and the full CometD message). ``--deletes`` mixes in deletes and
tombstones (see ``router.ingest.samples.generate``).

Run: .venv/bin/python bench/bench_decode.py [--events 5000] [--repeat 5] [--deletes 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import orjson

from router.ingest import decoder_for
from router.ingest.samples import SampleRecord, default_schema_store, generate


def _cometd(records: list[SampleRecord], *, message: bool) -> list[SampleRecord]:
    out = []
    for n, r in enumerate(records):
        if r.value is None:
            continue
        event = {"schema": "1N6cGgBhWJrKYbXTsM9IfA", "payload": orjson.loads(r.value), "event": {"replayId": n}}
        doc = {"channel": f"/data/{r.entity}ChangeEvent", "data": event} if message else event
        out.append(replace(r, value=orjson.dumps(doc)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--deletes", type=float, default=0.0, help="share of records followed by a delete")
    args = ap.parse_args()
    store = default_schema_store()
    records = list(generate(args.events, seed=7, deletes=args.deletes))
    # label -> (decoder name, records)
    by_format: dict[str, tuple[str, list[SampleRecord]]] = {}
    for r in records:
        by_format.setdefault(r.format, (r.format, []))[1].append(r)
    # Salesforce Pub/Sub API form: the same Avro bodies without the Confluent frame, schema id in a header.
    by_format["salesforce-avro"] = ("salesforce-avro", [
        replace(r, value=r.value[5:], headers={"schema-id": str(int.from_bytes(r.value[1:5], "big"))},
                format="salesforce-avro")
        for r in by_format.get("confluent-avro", ("", []))[1] if r.value is not None
    ])
    sf_json = by_format.get("salesforce-json", ("", []))[1]
    by_format["sf-json cometd event"] = ("salesforce-json", _cometd(sf_json, message=False))
    by_format["sf-json cometd msg"] = ("salesforce-json", _cometd(sf_json, message=True))
    print(f"{'format':<22} {'events':>7} {'bytes/event':>12} {'µs/event (median of ' + str(args.repeat) + ')':>26}")
    for label, (fmt, recs) in sorted(by_format.items()):
        if not recs:
            continue
        for name in (fmt, "auto"):
            needs_store = name in ("confluent-avro", "salesforce-avro", "auto")
            dec = decoder_for(name, **({"schema_store": store} if needs_store else {}))
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for r in recs:
                    dec.decode(r.value, key=r.key, headers=r.headers)
                times.append((time.perf_counter() - t) / len(recs) * 1e6)
            size = statistics.mean(len(r.value or b"") for r in recs)
            shown = label if name == fmt else "  via auto"
            print(f"{shown:<22} {len(recs):>7} {size:>12.0f} {statistics.median(times):>26.1f}")


if __name__ == "__main__":
    main()
