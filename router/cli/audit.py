"""``residency-router audit verify``: check the hash chains of the audit topic.

Exit 0 if every chain is intact, 1 if any is broken (each break named by partition, offset, kind
and chain), 2 for a config or read error (a cluster that refuses the client's TLS or authentication
included: the error names the ``clusters.default.security`` setting to fix). A chain is one ingress
partition's (format 2) or one audit partition's (format 1, records written before chains were kept
per ingress partition); a replay chain is one quarantine partition's (format 3, written by
``quarantine replay``).

Format 4 chains also hold placement records: every decision that references a placement snapshot is
checked against it (the snapshot is an earlier record of the same chain, and every replica of the
decision's destination partition sat in the destination's jurisdiction): residency proved from the
trail alone. Decisions without a reference (formats 1-3) are counted as not snapshot-referenced.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "audit", help="inspect the hash-chained audit trail",
        description="The audit topic holds one hash-chained record per ingress event.",
    )
    verbs = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = verbs.add_parser(
        "verify", help="verify every audit hash chain (exit 1 if broken)",
        description="Read the audit topic (read_committed) from the beginning to its current end and "
                    "check every chain (one per ingress partition; several may share an audit partition): "
                    "edited, deleted, reordered, duplicated, misplaced or undecodable records are reported "
                    "with their partition, offset and chain. Decisions that reference a placement snapshot "
                    "(format 4) are checked against it: the snapshot must be earlier in the chain "
                    "(snapshot_missing) and hold every replica of the destination partition in the "
                    "destination's jurisdiction (residency_violation).",
    )
    v.add_argument("--config", required=True, help="router YAML config (audit.topic, clusters.default)")
    v.add_argument("--bootstrap", metavar="HOST:PORT,...", help="override clusters.default.bootstrap from the config")
    v.add_argument("--topic", help="verify this topic instead of audit.topic from the config")
    v.add_argument("--allow-head-truncation", action="store_true",
                   help="accept chains whose first records were deleted by retention")
    v.add_argument("--timeout", type=float, default=300.0, help="seconds to read the whole topic")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(handler=_verify)


def _consumer_config(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from router.config.loader import load_config  # noqa: PLC0415 (keep --help fast)
    from router.errors import ConfigError  # noqa: PLC0415
    from router.kafka_read import CHECK_TIMEOUT_S, check_connection  # noqa: PLC0415

    config = load_config(args.config)
    cluster = config.clusters.get("default")
    if cluster is None:
        raise ConfigError("audit verify reads the cluster named 'default': add clusters.default to the config")
    props: dict[str, Any] = dict(cluster.client_properties())
    if args.bootstrap:
        props["bootstrap.servers"] = args.bootstrap
    topic = args.topic or (config.audit.topic if config.audit is not None else None)
    if not topic:
        raise ConfigError("no audit topic: add an 'audit' section with 'topic' to the config, or pass --topic")
    check_connection(props, timeout=min(args.timeout, CHECK_TIMEOUT_S))  # TLS/authentication refused: exit 2 now
    return props, topic


def _verify(args: argparse.Namespace) -> int:
    from router.audit.chain import verify_chain  # noqa: PLC0415
    from router.audit.kafka import read_audit  # noqa: PLC0415
    from router.quarantine.access import is_access_record  # noqa: PLC0415

    props, topic = _consumer_config(args)
    access = [0]

    def audit_records() -> Iterator[tuple[int, int, bytes]]:
        """The trail without the quarantine access records that share its topic (not chain links)."""
        for partition, offset, value in read_audit(props, topic, timeout=args.timeout):
            if is_access_record(value):
                access[0] += 1
            else:
                yield partition, offset, value

    report = verify_chain(audit_records(), allow_head_truncation=args.allow_head_truncation)
    chains = report.sorted_chains()
    if args.json:
        print(json.dumps({
            "topic": topic,
            "ok": report.ok,
            "records": report.records,
            "access_records": access[0],
            "residency": {
                "placement_records": sum(c.placement_records for c in chains),
                "snapshot_referenced": sum(c.referenced for c in chains),
                "not_snapshot_referenced": sum(c.unreferenced for c in chains),
                "snapshot_unavailable": sum(c.unavailable for c in chains),
            },
            "partitions": [{"partition": n, "records": count} for n, count in report.partition_records.items()],
            "chains": [
                {
                    "chain": c.chain.describe(),
                    "source_topic": c.chain.source_topic,
                    "source_partition": None if c.chain.source_topic is None else c.chain.partition,
                    "format_version": c.format_version,
                    "kind": "replay" if c.replay else "router",
                    "placement_records": c.placement_records,
                    "snapshot_referenced": c.referenced,
                    "not_snapshot_referenced": c.unreferenced,
                    "snapshot_unavailable": c.unavailable,
                    "partition": c.partition,
                    "records": c.records,
                    "first_offset": c.first_offset,
                    "last_offset": c.last_offset,
                    "tail": None if c.tail is None else {"seq": c.tail.seq, "hash": c.tail.hash.hex()},
                    "break": None if c.broken is None else {
                        "partition": c.broken.partition, "offset": c.broken.offset, "kind": c.broken.kind.value,
                        "seq": c.broken.seq, "detail": c.broken.detail,
                    },
                }
                for c in chains
            ],
        }))
    else:
        verdict = "INTACT" if report.ok else "BROKEN"
        broken = sum(1 for c in chains if c.broken is not None)
        print(f"audit topic {topic}: {report.records} records in {len(report.partition_records)} non-empty "
              f"partition(s), {len(chains)} chain(s), {broken} broken: {verdict}")
        for c in chains:
            tail = "-" if c.tail is None else f"seq {c.tail.seq} hash {c.tail.hash.hex()[:16]}"
            state = "ok" if c.broken is None else f"BROKEN at partition {c.broken.partition} offset " \
                                                  f"{c.broken.offset}: {c.broken.kind.value}"
            kind = "replay chain" if c.replay else "chain"
            placements = f" ({c.placement_records} placement)" if c.placement_records else ""
            print(f"  {kind} {c.chain.describe()} in partition {c.partition}: {c.records} records{placements}, "
                  f"verified tail {tail}: {state}")
        referenced, unreferenced = sum(c.referenced for c in chains), sum(c.unreferenced for c in chains)
        unavailable = sum(c.unavailable for c in chains)
        print(f"  residency: {referenced} decision(s) proved against the placement snapshot they reference; "
              f"{unreferenced} not snapshot-referenced (formats 1-3, or written without a snapshot)"
              + (f"; {unavailable} whose snapshot retention removed" if unavailable else ""))
        if access[0]:
            print(f"  {access[0]} quarantine access record(s) (quarantine show --decrypt): "
                  "not chain links, not verified")
        for b in report.breaks:
            print(f"break: {b.describe()}")
    return 0 if report.ok else 1
