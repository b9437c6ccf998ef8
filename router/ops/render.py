"""``residency-router status`` as a text screen or a JSON document (pure: no I/O).

Both carry the same facts. Rates are labelled as offset rates (``off/s``): high-watermark deltas,
which count transaction markers too (:mod:`router.ops.model`). Nothing here prints a record value
or key material: the status holds names, counts, offsets, reason codes and error texts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router.ops.model import GroupView, KeyHealth, KeysView, LagView, PlacementView, QuarantineView, Status
from router.quarantine.reader import format_ms

RATE_NOTE = ("rates are offsets per second (high-watermark deltas); transaction markers and aborted writes "
             "count, so they are an upper bound of records per second")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _int(v: int | None) -> str:
    return "-" if v is None else str(v)


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _key_cell(k: KeyHealth | None) -> str:
    if k is None:
        return "-"
    return f"ok {k.latency_ms:.0f} ms" if k.ok and k.latency_ms is not None else "ERROR"


# -- text ------------------------------------------------------------------------------------------


def render_text(s: Status) -> str:
    """The screen: an overview per jurisdiction, then quarantine reasons, lag, placement, keys and
    the router instances; each section that could not be read says why in its place."""
    out = [f"residency-router status  {format_ms(s.taken_at_ms)}  cluster {s.bootstrap}"
           + ("" if s.healthy else "  [NOT HEALTHY]")]
    if s.error is not None:
        out += ["", f"CLUSTER ERROR: {s.error}"]
    else:
        out += ["", *_overview(s)]
    out += ["", *_quarantine(s.quarantine, s.quarantine_since_ms, s.error)]
    out += ["", *_lag(s.lag, s.error)]
    out += ["", *_placement(s.placement, s.error)]
    out += ["", *_keys(s.keys)]
    out += ["", *_group(s.group, s.error)]
    return "\n".join(out) + "\n"


def _overview(s: Status) -> list[str]:
    rows = [("JURISDICTION", "ROUTED off/s", "QUARANTINED off/s", "ROUTED offsets", "QUARANTINED offsets",
             "INGRESS LAG", "PLACEMENT", "KEYS")]
    for r in s.jurisdictions:
        problems = s.placement.problems_of(r.jurisdiction)
        placement = "?" if s.placement.error else ("ok" if not problems else f"{problems} NOT OK")
        rows.append((r.jurisdiction, _rate(r.routed_per_s), _rate(r.quarantined_per_s), str(r.routed_offsets),
                     str(r.quarantined_offsets), _int(r.lag), placement, _key_cell(s.keys.of(r.jurisdiction))))
    out = _table(rows)
    if s.sample_s is None:
        out.append("rates: not sampled (totals only; --sample 0, or the first refresh after a cluster error)")
    else:
        out.append(f"rates over the last {s.sample_s:.1f} s; {RATE_NOTE}")
    missing = sorted({t for r in s.jurisdictions for t in r.missing_topics})
    if missing:
        out.append(f"topics that do not exist: {', '.join(missing)}")
    return out


def _quarantine(views: Sequence[QuarantineView], since_ms: int | None, cluster_error: str | None) -> list[str]:
    head = "QUARANTINE by reason (read_committed, " + (
        "all retained records)" if since_ms is None else f"quarantined since {format_ms(since_ms)})")
    if cluster_error is not None:
        return [head, "  - (cluster not readable)"]
    rows = [("JURISDICTION", "TOPIC", "RECORDS", "REASONS")]
    for v in views:
        if v.error is not None or v.stats is None:
            rows.append((v.jurisdiction, v.topic, "-", f"ERROR: {v.error}"))
            continue
        reasons = ", ".join(f"{name} {n}" for name, n in v.stats.to_json()["by_reason"].items()) or "-"
        if v.stats.undecodable:
            reasons += f", UNDECODABLE {v.stats.undecodable}"
        if v.behind:
            reasons += f"  (still reading: {v.behind} offsets behind)"
        rows.append((v.jurisdiction, v.topic, str(v.stats.records), reasons))
    return [head, *_table(rows, "  ")]


def _lag(lag: LagView, cluster_error: str | None) -> list[str]:
    head = f"INGRESS LAG (group {lag.group or '-'}: end offset - committed offset)"
    if cluster_error is not None:
        return [head, "  - (cluster not readable)"]
    if lag.error is not None:
        return [head, f"  ERROR: {lag.error}"]
    rows = [("TOPIC", "JURISDICTION", "LAG", "PARTITIONS (partition:lag, * = nothing committed)")]
    for topic in sorted({r.topic for r in lag.rows}):
        mine = [r for r in lag.rows if r.topic == topic]
        parts = " ".join(f"{r.partition}:{r.lag}" + ("*" if r.committed is None else "") for r in mine)
        rows.append((topic, mine[0].jurisdiction, str(sum(r.lag for r in mine)), parts))
    if len(rows) == 1:
        return [head, "  - (no ingress partitions)"]
    return [head, *_table(rows, "  ")]


def _placement(p: PlacementView, cluster_error: str | None) -> list[str]:
    if cluster_error is not None:
        return ["PLACEMENT", "  - (cluster not readable)"]
    if p.error is not None:
        return ["PLACEMENT", f"  ERROR: {p.error}"]
    bad = [r for r in p.rows if r.verdict != "ok"]
    head = f"PLACEMENT: {len(p.rows) - len(bad)} of {len(p.rows)} topics ok"
    out = [head]
    for r in bad:
        out.append(f"  {r.verdict.upper()}: " + r.detail.replace("\n", "\n  "))
    for b, rack in sorted(p.offline.items()):
        out.append(f"  broker {b} offline (last seen in rack {rack or '(none)'})")
    return out


def _keys(k: KeysView) -> list[str]:
    if k.error is not None:
        return ["KEY PROVIDERS (one digest_key call each)", f"  ERROR: {k.error}"]
    rows = [("JURISDICTION", "PROVIDER", "KEY", "LATENCY", "STATUS")]
    for r in k.rows:
        latency = "-" if r.latency_ms is None else f"{r.latency_ms:.1f} ms"
        rows.append((r.jurisdiction, r.provider, r.key_id, latency, "ok" if r.ok else f"ERROR: {r.error}"))
    return ["KEY PROVIDERS (one digest_key call each)", *_table(rows, "  ")]


def _group(g: GroupView, cluster_error: str | None) -> list[str]:
    if cluster_error is not None:
        return [f"ROUTER INSTANCES (group {g.group or '-'})", "  - (cluster not readable)"]
    if g.error is not None:
        return [f"ROUTER INSTANCES (group {g.group or '-'})", f"  ERROR: {g.error}"]
    head = (f"ROUTER INSTANCES (group {g.group}: {g.state or '?'}, {len(g.members)} member(s), "
            f"assignor {g.assignor or '-'}, coordinator broker {_int(g.coordinator)})")
    if not g.members:
        return [head, "  - (no member: no router instance is running)"]
    rows = [("CLIENT ID", "HOST", "PARTITIONS", "MEMBER ID")]
    for m in g.members:
        parts = ", ".join(f"{t}[{p}]" for t, p in m.partitions) or "-"
        rows.append((m.client_id, m.host, parts, m.member_id))
    return [head, *_table(rows, "  ")]


# -- JSON ------------------------------------------------------------------------------------------


def status_json(s: Status) -> dict[str, Any]:
    """The status as one JSON-ready dict (``--json``; one per line with ``--watch``)."""
    return {
        "taken_at": format_ms(s.taken_at_ms),
        "taken_at_ms": s.taken_at_ms,
        "bootstrap": s.bootstrap,
        "healthy": s.healthy,
        "error": s.error,
        "sample_s": s.sample_s,
        "rates_note": RATE_NOTE,
        "jurisdictions": [{
            "jurisdiction": r.jurisdiction,
            "routed_topics": r.routed_topics,
            "routed_offsets": r.routed_offsets,
            "routed_offsets_per_s": r.routed_per_s,
            "quarantine_topic": r.quarantine_topic,
            "quarantined_offsets": r.quarantined_offsets,
            "quarantined_offsets_per_s": r.quarantined_per_s,
            "ingress_lag": r.lag,
            "missing_topics": list(r.missing_topics),
        } for r in s.jurisdictions],
        "quarantine": {
            "since": None if s.quarantine_since_ms is None else format_ms(s.quarantine_since_ms),
            "since_ms": s.quarantine_since_ms,
            "topics": [{
                "jurisdiction": v.jurisdiction,
                "topic": v.topic,
                "error": v.error,
                "behind": v.behind,
                **({"records": v.stats.records, "undecodable": v.stats.undecodable,
                    "by_reason": v.stats.to_json()["by_reason"]} if v.stats is not None else
                   {"records": None, "undecodable": None, "by_reason": None}),
            } for v in s.quarantine],
        },
        "lag": {
            "group": s.lag.group,
            "error": s.lag.error,
            "total": s.lag.total,
            "partitions": [{"topic": r.topic, "partition": r.partition, "jurisdiction": r.jurisdiction,
                            "committed": r.committed, "end": r.end, "lag": r.lag} for r in s.lag.rows],
        },
        "placement": {
            "ok": s.placement.ok,
            "error": s.placement.error,
            "offline_brokers": {str(b): r for b, r in sorted(s.placement.offline.items())},
            "topics": [{"topic": r.topic, "jurisdiction": r.jurisdiction, "verdict": r.verdict,
                        "detail": r.detail or None} for r in s.placement.rows],
        },
        "keys": {
            "ok": s.keys.ok,
            "error": s.keys.error,
            "jurisdictions": [{"jurisdiction": k.jurisdiction, "provider": k.provider, "key_id": k.key_id,
                               "ok": k.ok, "latency_ms": k.latency_ms, "error": k.error} for k in s.keys.rows],
        },
        "group": {
            "group": s.group.group,
            "error": s.group.error,
            "state": s.group.state,
            "assignor": s.group.assignor,
            "coordinator": s.group.coordinator,
            "members": [{"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                         "group_instance_id": m.group_instance_id,
                         "partitions": [{"topic": t, "partition": p} for t, p in m.partitions]}
                        for m in s.group.members],
        },
    }
