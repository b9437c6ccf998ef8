"""``residency-router simulate --config FILE --events FILE.jsonl [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="decide a JSONL file of records against a policy, without Kafka",
        description="decode -> classify -> resolve -> decide each record; print one line per record "
                    "and a summary. Field values are never printed.")
    p.add_argument("--config", required=True, help="router YAML with classification/residency/policy")
    p.add_argument("--events", required=True, help="JSONL: {format, key_b64, value_b64, headers}")
    p.add_argument("--json", action="store_true", help="one JSON object per line, summary last")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 -- keep --help fast
    from router.errors import ConfigError  # noqa: PLC0415
    from router.residency.engine import PolicyEngine  # noqa: PLC0415
    from router.residency.simulate import Summary, simulate  # noqa: PLC0415

    engine = PolicyEngine.from_config(load_config(args.config), base_dir=Path(args.config).resolve().parent)
    summary = Summary()
    try:
        fh = open(args.events, encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError as err:
        raise ConfigError(f"--events {args.events}: {err.strerror}") from None
    with fh:
        if not args.json:
            print(f"{'event_id':<44} {'level':<12} {'categories':<40} {'jurisdictions':<13} {'decision':<10} "
                  "topic / reason")
        for row in simulate(engine, fh, summary):
            if args.json:
                print(json.dumps(row, separators=(",", ":")))
            else:
                where = row["topic"] if row["decision"] == "route" else f"{row['reason']} -> {row['topic']}"
                cats = ",".join(row["categories"]) or "-"
                print(f"{row['event_id'] or '-':<44} {row['level'] or '-':<12} {cats:<40} "
                      f"{','.join(row['jurisdictions']) or '-':<13} {row['decision']:<10} {where}")
    for n, problem in summary.bad_lines:
        print(f"line {n}: {problem} (expected {{format, value_b64 [, key_b64, headers]}})", file=sys.stderr)
    if args.json:
        print(json.dumps({"summary": summary.to_json()}))
    else:
        totals = summary.to_json()
        print(f"policy {engine.version}: route {totals['route']}, quarantine {totals['quarantine']}, "
              f"bad lines {totals['bad_lines']}")
        for k, v in totals["by_reason"].items():
            print(f"  {k}: {v}")
    return 0
