"""Decode cost per event for each connector format (µs/event), over the sample generator's records.

Run: .venv/bin/python bench/bench_decode.py [--events 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from router.ingest import decoder_for
from router.ingest.samples import default_schema_store, generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    store = default_schema_store()
    records = list(generate(args.events, seed=7))
    by_format: dict[str, list] = {}
    for r in records:
        by_format.setdefault(r.format, []).append(r)
    # Salesforce Pub/Sub API form: the same Avro bodies without the Confluent frame, schema id in a header.
    by_format["salesforce-avro"] = [
        replace(r, value=r.value[5:], headers={"schema-id": str(int.from_bytes(r.value[1:5], "big"))},
                format="salesforce-avro")
        for r in by_format.get("confluent-avro", []) if r.value is not None
    ]
    print(f"{'format':<18} {'events':>7} {'bytes/event':>12} {'µs/event (median of ' + str(args.repeat) + ')':>26}")
    for fmt, recs in sorted(by_format.items()):
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
            label = fmt if name == fmt else "  via auto"
            print(f"{label:<18} {len(recs):>7} {size:>12.0f} {statistics.median(times):>26.1f}")


if __name__ == "__main__":
    main()
