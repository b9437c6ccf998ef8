"""What one Kafka transaction costs as it spans more partitions (a limit of the router's latency).

The baseline's transaction writes to its ingress topic's partition count of output partitions
(6); the router's writes to every routed topic, quarantine topic and audit partition its batch
touches (up to ~80 with ``examples/router.yaml``: 4 jurisdictions x 5 entities x 3 partitions,
4 quarantine topics x 3, audit 6), spread over every broker. Each partition is added to the
transaction and gets a commit marker. This probe times ``send_offsets_to_transaction`` +
``commit_transaction`` for transactions that write one small record to each of N partitions.

Run: ``.venv/bin/python bench/probe_txn.py [--partitions 6,24,78] [--txns 40]`` (its own dev
cluster unless ``ROUTER_BENCH_BOOTSTRAP``). Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import Topics, cluster


def probe(bootstrap: str, n_partitions: int, txns: int, topics: Topics, extra: dict[str, str]) -> dict[str, float]:
    per_topic = 3
    names = [topics.create("bench-txn") for _ in range((n_partitions + per_topic - 1) // per_topic)]
    targets = [(t, p) for t in names for p in range(per_topic)][:n_partitions]
    group = f"bench-txn-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    src = names[0]
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": group, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5, "transaction.timeout.ms": 10_000, **extra})
    producer.init_transactions(30)
    commit_ms, offsets_ms = [], []
    for i in range(txns + 3):
        t0 = time.perf_counter()
        producer.begin_transaction()
        for topic, part in targets:
            producer.produce(topic, b"x" * 200, partition=part)
        t1 = time.perf_counter()
        producer.send_offsets_to_transaction([TopicPartition(src, 0, i + 1)], consumer.consumer_group_metadata(), 30)
        t2 = time.perf_counter()
        producer.commit_transaction(30)
        t3 = time.perf_counter()
        if i >= 3:  # the first transactions add the partitions and warm the connections
            commit_ms.append((t3 - t1) * 1000)
            offsets_ms.append((t2 - t1) * 1000)
        del t0
    consumer.close()
    producer.flush(10)
    topics.delete(names)
    commit_ms.sort()
    return {"partitions": n_partitions, "topics": len(names), "commit_p50_ms": statistics.median(commit_ms),
            "offsets_p50_ms": statistics.median(offsets_ms),
            "commit_p90_ms": commit_ms[int(len(commit_ms) * 0.9)], "commit_max_ms": commit_ms[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", default="6,24,78", help="comma-separated partition counts per transaction")
    ap.add_argument("--txns", type=int, default=40)
    ap.add_argument("--producer", action="append", default=[], metavar="K=V", help="extra producer property")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.producer)
    with cluster() as bootstrap:
        topics = Topics(bootstrap, 3, 1)
        try:
            print(f"transaction commit (send_offsets + commit_transaction), one 200 B record per partition {extra}")
            print(f"{'partitions':>10} {'topics':>6} {'p50 ms':>7} {'p90 ms':>7} {'max ms':>7} {'offsets p50':>11}")
            for n in (int(x) for x in args.partitions.split(",")):
                r = probe(bootstrap, n, args.txns, topics, extra)
                print(f"{r['partitions']:>10} {r['topics']:>6} {r['commit_p50_ms']:>7.1f} {r['commit_p90_ms']:>7.1f} "
                      f"{r['commit_max_ms']:>7.1f} {r['offsets_p50_ms']:>11.1f}", flush=True)
        finally:
            topics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
