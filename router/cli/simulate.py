"""``residency-router simulate --config FILE --events FILE [--format F] [--topic T] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="decide a file of records as `run` would, without Kafka",
        description="decode -> classify -> resolve -> decide each record with the same code as `run`; print one "
                    "line per record and a summary. Lines are raw record values as a connector writes them, or "
                    "JSON objects {format, key_b64, value_b64, headers}. A line that cannot be read (not UTF-8, a "
                    "wrapped line with bad base64) is reported by number on stderr and skipped. Field values are "
                    "never printed. Exits 1 when no line could be read.")
    p.add_argument("--config", required=True, help="router YAML (its pipeline.ingress says how records are read)")
    p.add_argument("--events", required=True, help="one record per line: raw values or wrapped JSON objects")
    p.add_argument("--topic", help="ingress topic the records come from (default: the first under pipeline.ingress)")
    p.add_argument("--format", dest="fmt", help="decoder for raw lines (default: the ingress topic's decoder)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, summary last")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 -- keep --help fast
    from router.errors import ConfigError  # noqa: PLC0415
    from router.routing.simulate import Simulator, Summary  # noqa: PLC0415

    sim = Simulator(load_config(args.config), Path(args.config).resolve().parent, topic=args.topic, fmt=args.fmt)
    summary = Summary()
    try:
        fh = open(args.events, "rb")  # noqa: SIM115 -- closed below
    except OSError as err:
        raise ConfigError(f"--events {args.events}: {err.strerror}") from None
    with fh:
        if not args.json:
            print(f"{'line':>6} {'event_id':<44} {'level':<12} {'categories':<32} {'jurisdictions':<13} "
                  f"{'decision':<10} topic / reason")
        for row in sim.run(fh, summary):
            if args.json:
                print(json.dumps(row, separators=(",", ":")))
            else:
                where = row["topic"] if row["decision"] == "route" else row["reason"]
                if row["decision"] == "quarantine":
                    where += f" -> {row['topic']}"
                cats = ",".join(row["categories"]) or "-"
                print(f"{row['line']:>6} {row['event_id'] or '-':<44} {row['level'] or '-':<12} {cats:<32} "
                      f"{','.join(row['jurisdictions']) or '-':<13} {row['decision']:<10} {where}")
    for n, problem in summary.bad_lines:
        print(f"line {n}: {problem}", file=sys.stderr)
    totals = summary.to_json()
    if args.json:
        print(json.dumps({"summary": totals}))
    else:
        print(f"policy {sim.core.version}, ingress {sim.topic} ({sim.origin.jurisdiction}"
              f"{', trusted' if sim.origin.trusted else ''}): route {totals['route']}, quarantine "
              f"{totals['quarantine']}, audit only {totals['audit_only']}, bad lines {totals['bad_lines']}")
        for k, v in totals["by_reason"].items():
            print(f"  {k}: {v}")
    if summary.read == 0:
        print(f"no record could be read from {args.events}", file=sys.stderr)
        return 1
    return 0
