"""``residency-router placement`` and ``residency-router topics create``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from router.placement.model import PlacementReport, TopicPlacement

if TYPE_CHECKING:
    from router.config.models import RouterConfig


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
                    "topics are verified, not recreated. An ingress topic (pipeline.ingress[], listed "
                    "under 'topics' too) is created with retention.ms = its max_retention, "
                    "cleanup.policy=delete and segment.ms within the bound; an existing one that may "
                    "keep records longer is reported, not altered. Exit 1 if any topic ends up out of "
                    "place or an ingress topic outside its bound.",
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


def _ingress_retention(config: RouterConfig, admin: Any, timeout: float) -> bool:
    """Print, per ingress topic, whether it keeps records within its ``max_retention``; True if all do.

    Nothing is altered: an existing topic beyond its bound is reported with the command that fixes it."""
    from router.pipeline.ingress_retention import SETTINGS, bounds_of, format_ms, retention_problem  # noqa: PLC0415
    from router.topic_configs import TopicConfigs, describe_topic_configs  # noqa: PLC0415

    bounds = bounds_of(config.pipeline)
    reads = describe_topic_configs(admin, bounds, SETTINGS, timeout=timeout)
    listed = {t.name for t in config.topics}
    ok = True
    for topic, bound in bounds.items():
        read = reads.get(topic) or TopicConfigs(topic, error="the cluster did not answer for it")
        if read.error_name == "UNKNOWN_TOPIC_OR_PART" and topic not in listed:
            print(f"{topic}: ingress topic does not exist and is not created (not under 'topics'); list it there "
                  f"with its partitions and replication_factor to have it created with retention.ms={bound.bound_ms}")
            ok = False
            continue
        reason = retention_problem(read, bound)
        if reason is not None:
            print(f"{topic}: NOT ALTERED: {reason}")
            ok = False
            continue
        values = ", ".join(f"{k}={read.values[k]}" for k in SETTINGS)
        print(f"{topic}: ingress retention within {bound.setting} ({format_ms(bound.bound_ms)}): {values}")
    return ok


def _create(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 - keep CLI start fast
    from router.pipeline.ingress_retention import bounds_of, ingress_topic_settings  # noqa: PLC0415
    from router.placement.kafka import admin_for, create_topics, wait_for_topics  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    config = load_config(args.config)
    admin = admin_for(config, args.bootstrap)
    outcomes = create_topics(config, admin, timeout=args.timeout)
    bounds = bounds_of(config.pipeline)
    for o in outcomes:
        verb = "created" if o.action == "created" else "exists, verified"
        extra = ""
        if o.action == "created" and o.topic in bounds:
            settings = ingress_topic_settings(bounds[o.topic].bound_ms)
            extra = ", " + ", ".join(f"{k}={v}" for k, v in settings.items())
        print(f"{o.topic}: {verb} (jurisdiction {o.jurisdiction}, replicas {o.assignment}{extra})")
    if not outcomes:
        print("no topics configured under 'topics'")
    required = requirements_of(config)
    report = verify(wait_for_topics(admin, required, timeout=args.timeout), required,
                    config.jurisdiction_of_rack)
    print()
    retention_ok = _ingress_retention(config, admin, args.timeout)
    print()
    _print_table(report)
    return 0 if report.ok and retention_ok else 1
