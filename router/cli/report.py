"""``residency-router report``: the evidence report of the audit trail.

Reads the audit topic (``read_committed``), verifies every chain exactly as ``audit verify`` does,
and writes ``report.html`` (self-contained: inline SVG, no script), ``report.json`` and
``summary.csv`` into ``--out``. Figures come only from verified records: a broken chain is named on
the page's first screen and its records from the first broken one on are excluded. Exit 0 when every
chain verified, 1 when any is broken (the report is still written), 2 for a config or read error.
See docs/evidence.md.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _instant(text: str) -> int:
    """``--from``/``--to``: ISO 8601 (a date, or a date and time; UTC unless it names an offset)
    or milliseconds since the epoch."""
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date/time (e.g. 2026-11-29 or 2026-11-29T08:00:00Z) or epoch ms"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="write the evidence report of the verified audit trail (HTML, JSON, CSV)",
        description="Read the audit topic (read_committed), verify every chain as 'audit verify' does, and write "
                    "report.html, report.json and summary.csv to --out. Figures come only from verified records; "
                    "a broken chain is excluded from its first broken record on and named on the first screen. "
                    "Exit 0: every chain verified; 1: some chain is broken (the report is still written); "
                    "2: config or read error.",
    )
    p.add_argument("--config", required=True, help="router YAML config (audit.topic, clusters.default, topics, "
                                                    "keys, policy)")
    p.add_argument("--out", required=True, type=Path, help="directory to write the report into (created)")
    p.add_argument("--from", dest="from_ms", type=_instant, metavar="T",
                   help="count decisions processed at or after T (ISO 8601, UTC unless an offset is given)")
    p.add_argument("--to", dest="to_ms", type=_instant, metavar="T", help="count decisions processed before T")
    p.add_argument("--policy-config", action="append", default=[], metavar="FILE",
                   help="an earlier config whose policy version appears in the trail: the rules that allowed its "
                        "transfers are derived from it (repeatable; the --config policy is always used)")
    p.add_argument("--bootstrap", metavar="HOST:PORT,...", help="override clusters.default.bootstrap from the config")
    p.add_argument("--topic", help="report on this audit topic instead of audit.topic from the config")
    p.add_argument("--allow-head-truncation", action="store_true",
                   help="accept chains whose first records were deleted by retention (as audit verify)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to read the whole audit topic")
    p.add_argument("--json", action="store_true", help="also print report.json on stdout")
    p.set_defaults(handler=_report)


def _key_providers(config: Any) -> dict[str, str]:
    keys = config.keys
    if keys is None:
        return {}
    out = {}
    for j, k in keys.jurisdictions.items():
        provider = keys.providers.get(k.provider)
        kind = getattr(provider, "type", "unknown")
        out[j] = f"{k.provider} ({kind}), key {k.key or j}"
    return out


def _policies(args: argparse.Namespace, config: Any) -> list[Any]:
    from router.config.loader import load_config  # noqa: PLC0415
    from router.residency.engine import PolicyEngine  # noqa: PLC0415

    out = []
    for path, cfg in [(Path(args.config), config), *((Path(p), None) for p in args.policy_config)]:
        c = cfg if cfg is not None else load_config(path)
        if c.residency is not None and c.policy is not None:
            out.append(PolicyEngine.from_config(c, path.resolve().parent).policy)
    return out


def _report(args: argparse.Namespace) -> int:
    from router.audit.kafka import read_audit  # noqa: PLC0415
    from router.cli.audit import _consumer_config  # noqa: PLC0415
    from router.config.loader import load_config  # noqa: PLC0415
    from router.errors import ConfigError  # noqa: PLC0415
    from router.report.collect import ReportContext, collect, destination_topics, with_retention  # noqa: PLC0415
    from router.report.kafka import topic_retention  # noqa: PLC0415
    from router.report.render_data import report_json, summary_csv  # noqa: PLC0415
    from router.report.render_html import render_html  # noqa: PLC0415
    from router.report.rules import RuleDeriver  # noqa: PLC0415

    if args.from_ms is not None and args.to_ms is not None and args.from_ms >= args.to_ms:
        raise ConfigError("--from must be before --to")
    config = load_config(args.config)
    props, topic = _consumer_config(args)
    ctx = ReportContext(
        topic=topic, generated_at_ms=int(time.time() * 1000),
        topic_jurisdictions={t.name: t.jurisdiction for t in config.topics},
        key_providers=_key_providers(config), rules=RuleDeriver(_policies(args, config)),
        from_ms=args.from_ms, to_ms=args.to_ms, allow_head_truncation=args.allow_head_truncation,
    )
    report = collect(read_audit(props, topic, timeout=args.timeout), ctx)
    report = with_retention(report, topic_retention(props, destination_topics(report), timeout=min(args.timeout, 30)))
    doc = report_json(report)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.html").write_text(render_html(report), encoding="utf-8")
        (args.out / "report.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        (args.out / "summary.csv").write_text(summary_csv(report), encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write the report into --out {str(args.out)!r}: {err.strerror}") from None
    if args.json:
        print(json.dumps(doc))
    else:
        broken = sum(1 for c in report.chains if not c.ok)
        verdict = "all chains verified" if report.ok else f"{broken} chain(s) BROKEN, {report.excluded} record(s) " \
                                                           "excluded from every figure"
        print(f"report of audit topic {topic}: {report.decisions} verified decision(s), {verdict}; "
              f"written to {args.out}/report.html, report.json, summary.csv")
    return 0 if report.ok else 1
