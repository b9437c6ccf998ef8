"""``residency-router acls plan | apply | check``: Kafka ACLs from the config's ``access`` section.

``plan`` needs no cluster. ``apply`` and ``check`` use ``clusters.default`` (its client properties
carry the operator's credentials; that principal needs ALTER on the cluster to create ACLs and
DESCRIBE to read them). See docs/security.md, "Access control (ACL plan)".
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from router.access.check import AclReport
from router.access.plan import Binding

_COLUMNS = ("principal", "operation", "permission", "resource type", "pattern type", "name")


def register(sub: Any) -> None:
    a: argparse.ArgumentParser = sub.add_parser(
        "acls", help="Kafka ACLs from the config's access section: plan, apply, check",
        description="The least-privilege ACL bindings the config's 'access' section implies, created on the "
                    "cluster or compared with its live ACLs.",
    )
    verbs = a.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("plan", help="print the ACL bindings the config implies (no cluster needed)")
    p.add_argument("--config", required=True, help="router YAML config")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_plan)

    ap = verbs.add_parser(
        "apply", help="create the planned bindings the cluster lacks (idempotent)",
        description="Create every planned ACL binding the cluster does not have yet; nothing is deleted "
                    "unless --prune is given.",
    )
    _cluster_args(ap)
    ap.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    ap.add_argument("--prune", action="store_true",
                    help="also delete the configured principals' bindings that the plan does not contain")
    ap.set_defaults(handler=_apply)

    c = verbs.add_parser(
        "check", help="who can read or write each jurisdiction's topics; exit 1 on any grant beyond the plan",
        description="Read the cluster's ACLs and report, per jurisdiction, every principal that can read or "
                    "write its topics; flag each grant the plan does not imply (exit 1), and exit 1 when "
                    "the cluster runs no authorizer.",
    )
    _cluster_args(c)
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=_check)


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="router YAML config")
    p.add_argument("--bootstrap", metavar="HOST:PORT,...", help="override clusters.default.bootstrap from the config")
    p.add_argument("--timeout", type=float, default=10.0, help="admin request timeout in seconds")


def _load(path: str) -> Any:
    from router.config.loader import load_config  # noqa: PLC0415 - keep CLI start fast
    from router.errors import ConfigError  # noqa: PLC0415

    config = load_config(path)
    if config.access is None:
        raise ConfigError(f"{path} has no 'access' section: name the principals by role (see examples/router.yaml "
                          "and docs/security.md, Access control)")
    return config


def _row(b: Binding) -> tuple[str, ...]:
    return (b.principal, b.operation.value, b.permission.value, b.resource_type.value, b.pattern_type.value, b.name)


def print_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _plan(args: argparse.Namespace) -> int:
    from router.access.plan import plan  # noqa: PLC0415

    bindings = plan(_load(args.config))
    if args.json:
        print(json.dumps({"bindings": [b.as_dict() for b in bindings]}))
    else:
        print_table([_row(b) for b in bindings], _COLUMNS)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from router.access.kafka import apply  # noqa: PLC0415
    from router.placement.kafka import admin_for  # noqa: PLC0415

    config = _load(args.config)
    done = apply(config, admin_for(config, args.bootstrap), dry_run=args.dry_run, prune=args.prune,
                 timeout=args.timeout)
    verb = ("would create", "would delete") if done.dry_run else ("created", "deleted")
    rows = ([(verb[0], *_row(b)) for b in done.changes.create] + [("exists", *_row(b)) for b in done.changes.present]
            + [(verb[1], *_row(b)) for b in done.changes.delete])
    print_table(rows, ("action", *_COLUMNS))
    print(f"\n{len(done.changes.create)} {verb[0]}, {len(done.changes.present)} already present, "
          f"{len(done.changes.delete)} {verb[1]}" + ("" if args.prune else " (no --prune: nothing is deleted)"))
    return 0


def _report_json(report: AclReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "authorizer": True,
        "jurisdictions": {
            j: [{"principal": a.principal, "operation": a.operation.value, "topic": a.topic, "planned": a.planned,
                 "via": a.via.as_dict()} for a in accesses]
            for j, accesses in report.accesses.items()
        },
        "excess": [{"binding": e.binding.as_dict(), "reasons": list(e.reasons), "jurisdictions": e.jurisdictions,
                    "accesses": [{"principal": a.principal, "operation": a.operation.value, "topic": a.topic,
                                  "jurisdiction": a.jurisdiction} for a in e.accesses]}
                   for e in report.excess],
        "missing": [b.as_dict() for b in report.missing],
    }


def _print_report(report: AclReport) -> None:
    for j, accesses in report.accesses.items():
        print(f"== {j}: who can read or write its topics")
        grouped: dict[tuple[str, str, bool], list[str]] = defaultdict(list)
        for a in accesses:
            grouped[(a.principal, a.operation.value, a.planned)].append(a.topic)
        rows = [(p, op, "planned" if planned else "EXCESS", ", ".join(sorted(set(ts))))
                for (p, op, planned), ts in sorted(grouped.items())]
        if rows:
            print_table(rows, ("principal", "operation", "grant", "topics"))
        else:
            print("(nobody)")
        print()
    if report.excess:
        print(f"{len(report.excess)} grant(s) beyond the plan:")
        for e in report.excess:
            print(f"  EXCESS {e.message()}")
    if report.missing:
        print(f"{len(report.missing)} planned binding(s) missing (`acls apply` creates them):")
        for b in report.missing:
            print("  missing " + " ".join(_row(b)))
    print("ok: every grant on the configured topics is in the plan" if report.ok
          else "FAIL: grants beyond the plan (above)")


def _check(args: argparse.Namespace) -> int:
    from router.access.kafka import AclUnavailableError, AclUnavailableReason, check_cluster  # noqa: PLC0415
    from router.placement.kafka import admin_for  # noqa: PLC0415

    config = _load(args.config)
    try:
        report = check_cluster(config, admin_for(config, args.bootstrap), timeout=args.timeout)
    except AclUnavailableError as err:
        if err.reason != AclUnavailableReason.NO_AUTHORIZER:
            raise
        if args.json:
            print(json.dumps({"ok": False, "authorizer": False, "error": str(err)}))
        else:
            print(f"FAIL: {err}")
        return 1
    if args.json:
        print(json.dumps(_report_json(report)))
    else:
        _print_report(report)
    return 0 if report.ok else 1
