"""Visibility recorder for the latency measurement: a read_committed consumer in its own process.

It assigns every partition of ``--topics`` at the current end, prints ``ready`` on stdout, then
records the wall-clock time at which each record becomes visible to a read_committed reader,
with the record's ``bench-seq`` header when the pipeline carried it over. It stops after
``--expect`` records or ``--idle-s`` seconds without one, writes ``{"visible": [[seq, t], ...]}``
to ``--out`` (seq is -1 where the header was absent) and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

SEQ_HEADER = "bench-seq"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True, help="comma-separated output topics (one record per input)")
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--idle-s", type=float, default=15.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"bench-visibility-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 5,
        "fetch.min.bytes": 1,
    })
    assignment = []
    for topic in args.topics.split(","):
        md = consumer.list_topics(topic, timeout=15).topics[topic]
        for p in sorted(md.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            assignment.append(TopicPartition(topic, p, high))
    consumer.assign(assignment)
    print("ready", flush=True)

    visible: list[tuple[int, float]] = []
    last = time.monotonic()
    while len(visible) < args.expect and time.monotonic() - last < args.idle_s:
        msgs = consumer.consume(num_messages=1000, timeout=0.05)
        now = time.time()
        for m in msgs:
            if m.error() is not None:
                continue
            seq = -1
            for k, v in m.headers() or ():
                if k == SEQ_HEADER and v is not None:
                    seq = int(v)
                    break
            visible.append((seq, now))
        if msgs:
            last = time.monotonic()
    consumer.close()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"visible": visible}, f)
    print(json.dumps({"visible": len(visible)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
