"""Visibility recorder for the latency measurement: a read_committed consumer in its own process.

It assigns every partition of ``--topics`` at the current end, prints ``ready`` on stdout, then
records the wall-clock time (``time.time()``, the clock the paced producer schedules on) at which
each record becomes visible to a read_committed reader. The loop does nothing else: it keeps what
identifies the record and parses it only after the run, so that its own CPU time does not delay
the next timestamp. ``consume()`` is called with a 2 ms timeout (librdkafka returns a batch when it
is full or the timeout expires), so a timestamp is at most ~2 ms late.

Two ways to identify the input a record came from (``--match``):

- ``header``: its ``bench-seq`` header (the baseline copies headers unchanged);
- ``source``: the source position the router writes into every record of an input: the sealed
  envelope's signed header (``router.envelope.frame``, parsed without decrypting), the quarantine
  record's and the audit record's ``source_partition`` / ``source_offset`` fields. The router keeps
  none of the input's headers and replaces keys, so this is the only reliable link.

It stops once ``--expect`` records have been seen on ``--count-topic`` (default: every topic; for
the router, the audit topic, which gets exactly one record per input) plus ``--grace-s`` for the
other records of the same transactions, or after ``--idle-s`` without a record. It writes
``{"visible": [[seq, t], ...]}`` (header) or ``{"visible": [[partition, offset, t, kind], ...]}``
(source; ``kind`` is ``audit``, ``quarantine`` or ``route``) to ``--out`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

SEQ_HEADER = "bench-seq"


def _seq(headers: Any) -> int:
    for k, v in headers or ():
        if k == SEQ_HEADER and v is not None:
            return int(v)
    return -1


def _source(kind: str, value: bytes | None, ingress: str | None) -> tuple[int, int] | None:
    """(source partition, source offset) of a router output, or None (tombstone, other source)."""
    if value is None:
        return None  # an erasure tombstone: its audit record carries the position
    if kind == "audit":
        from router.audit.record import decode_audit, is_placement_record  # noqa: PLC0415 - router mode only

        if is_placement_record(value):
            return None  # a placement snapshot: no event's position
        f = decode_audit(value).fields
        topic, partition, offset = f.source_topic, f.source_partition, f.source_offset
    elif kind == "quarantine":
        from router.quarantine.record import decode_quarantine  # noqa: PLC0415

        q = decode_quarantine(value)
        topic, partition, offset = q.source_topic, q.source_partition, q.source_offset
    else:
        from router.envelope import frame  # noqa: PLC0415

        ctx = frame.decode(value).ctx
        topic, partition, offset = ctx.source_topic, ctx.source_partition, ctx.source_offset
    if ingress is not None and topic != ingress:
        return None
    if partition is None or offset is None:
        return None
    return partition, offset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True, help="comma-separated output topics")
    ap.add_argument("--match", choices=("header", "source"), default="header")
    ap.add_argument("--count-topic", help="the topic whose records count towards --expect (default: all)")
    ap.add_argument("--audit-topic", help="source mode: the audit topic (other topics: quarantine.* or routed)")
    ap.add_argument("--ingress", help="source mode: keep only outputs of this ingress topic")
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--grace-s", type=float, default=0.5, help="keep reading this long after --expect")
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"bench-visibility-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 5,
        "fetch.min.bytes": 1,
        "enable.partition.eof": False,
    })
    topics = args.topics.split(",")
    assignment = []
    for topic in topics:
        md = consumer.list_topics(topic, timeout=15).topics[topic]
        for p in sorted(md.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            assignment.append(TopicPartition(topic, p, high))
    consumer.assign(assignment)
    print("ready", flush=True)

    stop = False

    def on_term(*_: object) -> None:  # the harness gave up waiting: write what was seen
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    header = args.match == "header"
    raw: list[tuple[Any, ...]] = []
    counted = 0
    last = time.monotonic()
    done_at: float | None = None
    consume = consumer.consume
    while not stop:
        mono = time.monotonic()
        if done_at is None and counted >= args.expect:
            done_at = mono
        if done_at is not None and mono - done_at >= args.grace_s:
            break
        if mono - last >= args.idle_s:
            break
        msgs = consume(num_messages=2000, timeout=0.002)
        if not msgs:
            continue
        now = time.time()
        last = time.monotonic()
        for m in msgs:
            if m.error() is not None:
                continue
            topic = m.topic()
            if args.count_topic is None or topic == args.count_topic:
                counted += 1
            if header:
                raw.append((_seq(m.headers()), now))
            else:
                raw.append((topic, m.value(), now))
    consumer.close()

    visible: list[Any] = []
    unmatched = 0
    if header:
        visible = [list(r) for r in raw]
    else:
        for topic, value, t in raw:
            kind = "audit" if topic == args.audit_topic else "quarantine" if topic.startswith("quarantine") else "route"
            try:
                pos = _source(kind, value, args.ingress)
            except Exception:  # a record the bench cannot parse: counted, not fatal
                unmatched += 1
                continue
            if pos is None:
                unmatched += 1
                continue
            visible.append([pos[0], pos[1], t, kind])
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"visible": visible, "unmatched": unmatched}, f)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": len(raw), "counted": counted, "unmatched": unmatched,
                      "cpu_s": round(ru.ru_utime + ru.ru_stime, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
