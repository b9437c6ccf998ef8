"""``residency-router placement`` and ``residency-router topics create``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from router.placement.model import PlacementReport, TopicPlacement


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "placement",
        help="report where each configured topic's replicas sit (exit 1 if any is out of place)",
        description="Read brokers' racks and every configured topic's replica assignment from the "
                    "cluster and check each replica lies in the topic's jurisdiction.",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_placement)

    t = sub.add_parser("topics", help="manage the configured topics")
    verbs = t.add_subparsers(dest="verb", metavar="VERB", required=True)
    c = verbs.add_parser(
        "create",
        help="create the configured topics with replicas only on brokers of their jurisdiction",
        description="Create each configured topic that does not exist with an explicit replica "
                    "assignment onto its jurisdiction's brokers (leaders round-robin); existing "
                    "topics are verified, not recreated. Exit 1 if any topic ends up out of place.",
    )
    _common(c)
    c.set_defaults(handler=_create)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="router YAML config")
    p.add_argument("--bootstrap", metavar="HOST:PORT,...",
                   help="override clusters.default.bootstrap from the config")
    p.add_argument("--timeout", type=float, default=10.0, help="admin request timeout in seconds")


def _brokers_text(report: PlacementReport, t: TopicPlacement) -> str:
    ids = sorted({b for replicas in t.partitions.values() for b in replicas})
    parts = []
    for b in ids:
        rack = report.brokers.get(b, "(offline)")
        parts.append(f"{b}:{rack or '(no rack)'}:{report.broker_jurisdictions.get(b) or '-'}")
    return " ".join(parts) or "-"


def _print_table(report: PlacementReport) -> None:
    rows = [("topic", "jurisdiction", "partitions", "brokers (id:rack:jurisdiction)", "verdict")]
    for t in report.topics.values():
        rows.append((t.topic, t.required, str(len(t.partitions)) if t.partitions else "-",
                     _brokers_text(report, t), t.verdict.value.upper()))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    print()
    print(report.message())


def _report_json(report: PlacementReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "brokers": [{"id": b, "rack": r, "jurisdiction": report.broker_jurisdictions.get(b)}
                    for b, r in sorted(report.brokers.items())],
        "topics": [{
            "topic": t.topic, "jurisdiction": t.required, "verdict": t.verdict.value,
            "partitions": {str(p): list(r) for p, r in t.partitions.items()},
            "violations": [{"partition": v.partition, "broker": v.broker, "rack": v.rack,
                            "jurisdiction": v.jurisdiction, "broker_known": v.broker_known}
                           for v in t.violations],
        } for t in report.topics.values()],
    }


def _placement(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 - keep CLI start fast
    from router.placement.kafka import admin_for, snapshot  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    config = load_config(args.config)
    required = requirements_of(config)
    report = verify(snapshot(admin_for(config, args.bootstrap), required, timeout=args.timeout),
                    required, config.jurisdiction_of_rack)
    if args.json:
        print(json.dumps(_report_json(report)))
    else:
        _print_table(report)
    return 0 if report.ok else 1


def _create(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 - keep CLI start fast
    from router.placement.kafka import admin_for, create_topics, wait_for_topics  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    config = load_config(args.config)
    admin = admin_for(config, args.bootstrap)
    outcomes = create_topics(config, admin, timeout=args.timeout)
    for o in outcomes:
        verb = "created" if o.action == "created" else "exists, verified"
        print(f"{o.topic}: {verb} (jurisdiction {o.jurisdiction}, replicas {o.assignment})")
    if not outcomes:
        print("no topics configured under 'topics'")
    required = requirements_of(config)
    report = verify(wait_for_topics(admin, required, timeout=args.timeout), required,
                    config.jurisdiction_of_rack)
    print()
    _print_table(report)
    return 0 if report.ok else 1
