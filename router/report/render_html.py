"""``report.html``: one self-contained page (inline CSS and SVG, no script, no external asset).

Pure: a :class:`~router.report.model.Report` in, a string out. Every text taken from the trail or
the config is HTML-escaped. The first screen says whether every chain verified; a broken chain is
named there with the range excluded from the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from router.report.model import Report, Series
from router.report.render_data import iso

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.8em 1em;border-radius:4px;font-weight:600;margin:.8em 0}
.ok{background:#e6f4ea;border:1px solid #34a853}.broken{background:#fce8e6;border:1px solid #d93025}
.figures span{display:inline-block;margin-right:2em}.muted{color:#666}
svg text{font:11px system-ui,sans-serif}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e('-' if c is None else c)}</td>"
            for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return '<p class="muted">None.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _label_time(ms: int, bucket_ms: int) -> str:
    text = iso(ms) or ""
    return text[:10] if bucket_ms >= 86_400_000 else text[5:13] + "h"


def bar_chart(series: Series, title: str, *, width: int = 900, height: int = 240) -> str:
    """A stacked bar chart of ``series`` as inline SVG (one bar per time bucket, one colour per
    label, a legend); a paragraph instead when the series is empty."""
    if not series.bucket_starts or not series.labels:
        return f'<p class="muted">{_e(title)}: no events.</p>'
    left, top, bottom, legend_w = 50, 20, 40, 180
    plot_w, plot_h = width - left - legend_w, height - top - bottom
    n = len(series.bucket_starts)
    totals = [sum(c[i] for c in series.counts) for i in range(n)]
    peak = max(*totals, 1)
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.8)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" class="chart"><title>{_e(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, start in enumerate(series.bucket_starts):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(top + plot_h)
        for k, label in enumerate(series.labels):
            count = series.counts[k][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"><title>{_e(label)} '
                         f'{_e(_label_time(start, series.bucket_ms))}: {count}</title></rect>')
    every = max(1, n // 8)
    for i in range(0, n, every):
        x = left + i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                     f'{_e(_label_time(series.bucket_starts[i], series.bucket_ms))}</text>')
    for k, label in enumerate(series.labels):
        y = top + k * 16
        parts.append(f'<rect x="{width - legend_w + 10}" y="{y}" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/>'
                     f'<text x="{width - legend_w + 26}" y="{y + 9}">{_e(label)} ({sum(series.counts[k])})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _verdict(r: Report) -> str:
    chains = len(r.chains)
    if r.ok:
        return (f'<div class="verdict ok" id="verdict">Trail verified: all {chains} chain(s) intact. '
                f"Every figure below is computed from {r.decisions} verified decision(s).</div>")
    broken = [c for c in r.chains if not c.ok]
    items = "".join(
        f"<li>chain {_e(c.chain)}: {_e(c.break_kind)} at audit partition {_e(c.break_partition)} offset "
        f"{_e(c.break_offset)} ({_e(c.break_detail)}); {c.excluded_records} record(s) from there on excluded</li>"
        for c in broken)
    return (f'<div class="verdict broken" id="verdict">TRAIL BROKEN: {len(broken)} of {chains} chain(s) fail '
            f"verification. {r.excluded} record(s) (each broken chain from its first broken record on) are "
            f"excluded from every figure below.<ul>{items}</ul></div>")


def _window(r: Report) -> str:
    since = iso(r.from_ms) or "the beginning"
    until = iso(r.to_ms) or "the end"
    return f"{_e(since)} to {_e(until)}"


def _sections(r: Report) -> list[str]:
    out = [
        "<h2>Chain verification per audit partition</h2>",
        _table(("audit partition", "records", "chains", "broken chains", "state"),
               ((p.partition, p.records, p.chains, p.broken_chains, "ok" if p.ok else "BROKEN")
                for p in r.partitions), numeric=(1, 2, 3)),
        _table(("chain", "kind", "partition", "records", "verified tail seq", "state", "excluded",
                "residency proved by snapshot", "no snapshot named"),
               ((c.chain, c.kind, c.partition, c.records, c.tail_seq,
                 "ok" if c.ok else f"BROKEN: {c.break_kind} at offset {c.break_offset}", c.excluded_records,
                 c.residency_proved, c.residency_unproved)
                for c in r.chains), numeric=(2, 3, 4, 6, 7, 8)),
        "<h2>Events per jurisdiction of data</h2>",
        '<p class="muted">An event bound to several jurisdictions counts once in each.</p>',
        bar_chart(r.data_jurisdictions, "Events per data jurisdiction"),
        "<h2>Events per destination jurisdiction</h2>",
        '<p class="muted">Where the output was written: the routed topic, or the quarantine topic; '
        '"none" for audit-only records.</p>',
        bar_chart(r.destination_jurisdictions, "Events per destination jurisdiction"),
        "<h2>Quarantine by reason</h2>",
        bar_chart(r.quarantine_reasons, "Quarantined events per reason"),
        "<h2>Transfer register (cross-jurisdiction flows allowed by a rule)</h2>",
        '<p class="muted">Routed events whose data is bound to one jurisdiction and was written in another. '
        "The rule is derived from the policy whose version the record names (docs/evidence.md).</p>",
        _table(("data", "stored in", "rule", "events", "of which replayed", "first", "last", "topics",
                "policy versions", "basis"),
               ((t.data_jurisdiction, t.destination_jurisdiction, t.rule or "not derived", t.events, t.replayed,
                 iso(t.first_ms), iso(t.last_ms), ", ".join(t.topics), ", ".join(t.policy_versions), t.rule_basis)
                for t in r.transfers), numeric=(3, 4)),
        "<h2>Categories of data per destination</h2>",
        _table(("destination jurisdiction", "category", "routed events"),
               ((j, c, n) for j, cats in r.categories for c, n in cats), numeric=(2,)),
        _table(("quarantine jurisdiction", "category", "quarantined events"),
               ((j, c, n) for j, cats in r.quarantined_categories for c, n in cats), numeric=(2,)),
        "<h2>Placement</h2>",
        f"<p>Verified placement records (snapshots) in the trail: {r.placement_records}; decisions naming no "
        f"snapshot (older formats, or written without one): {r.unreferenced_decisions}. Every decision records "
        "the placement verdict it relied on; a violation window is a run of decisions taken while the check "
        "failed.</p>",
        _table(("snapshot sha256", "taken at", "first written", "verdict", "violations", "chains", "decisions"),
               ((s.sha256[:16], iso(s.taken_at_ms), iso(s.written_at_ms), s.verdict, "; ".join(s.violations),
                 s.chains, s.decisions) for s in r.snapshots), numeric=(5, 6)),
        _table(("from", "to", "verdicts", "snapshots", "decisions", "quarantined PLACEMENT_VIOLATION", "routed"),
               ((iso(w.start_ms), iso(w.end_ms), " | ".join(w.verdicts), ", ".join(h[:16] for h in w.snapshots),
                 w.decisions, w.quarantined, w.routed) for w in r.violation_windows), numeric=(4, 5, 6)),
    ]
    for w in r.violation_windows:
        if w.quarantined_events:
            listed = ", ".join(w.quarantined_events[:50])
            # The count is complete; report.json lists at most MAX_LISTED_EVENTS positions per window.
            more = w.quarantined - min(50, len(w.quarantined_events))
            held = ("report.json" if len(w.quarantined_events) >= w.quarantined
                    else f"report.json lists the first {len(w.quarantined_events)}")
            out.append(f"<p>Quarantined because of the window from {_e(iso(w.start_ms))}: {_e(listed)}"
                       f"{f' and {more} more ({held})' if more > 0 else ''}</p>")
    out += [
        "<h2>Policy versions in force</h2>",
        _table(("policy version", "first decision", "last decision", "decisions"),
               ((p.version, iso(p.first_ms), iso(p.last_ms), p.decisions) for p in r.policy_versions),
               numeric=(3,)),
        "<h2>Replays of quarantined records</h2>",
        _table(("replayed at", "quarantine record", "quarantined for", "under policy", "routed under", "to",
                "ingress position"),
               ((iso(p.replayed_at_ms), p.quarantine_position, p.quarantine_reason, p.quarantine_policy_version,
                 p.policy_version, p.destination_topic, p.ingress_position) for p in r.replays)),
        "<h2>Decrypting accesses to quarantined payloads</h2>",
        '<p class="muted">Access records are not chain links: the trail shows those present, it cannot prove '
        "that none was removed.</p>",
        _table(("at", "action", "OS user", "actor", "host", "jurisdiction", "quarantine record", "reason",
                "audit record"),
               ((iso(a.accessed_at_ms), a.action, a.os_user, a.actor, a.host, a.jurisdiction, a.quarantine_position,
                 a.reason, a.audit_position) for a in r.accesses)),
        "<h2>Records of processing per jurisdiction</h2>",
        _table(("data jurisdiction", "events", "categories", "destination", "in", "events", "retention.ms",
                "cleanup.policy", "KEK provider", "encryption"),
               ((p.jurisdiction, p.events, ", ".join(f"{c} ({n})" for c, n in p.categories) or "none found",
                 d.topic, d.jurisdiction, d.events,
                 d.retention_error or ("unlimited" if d.retention_ms is None else d.retention_ms),
                 d.cleanup_policy, d.key_provider, p.encryption)
                for p in r.processing for d in p.destinations), numeric=(1, 5)),
    ]
    return out


def render_html(r: Report) -> str:
    figures = "".join(f"<span>{_e(k)}: <b>{n}</b></span>" for k, n in r.by_decision)
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    body = [
        "<h1>Residency evidence report</h1>",
        f'<p class="muted">Audit topic {_e(r.topic)}; generated {_e(iso(r.generated_at_ms))}; decisions from '
        f"{_window(r)}; {r.records_read} record(s) read, {r.outside_window} verified decision(s) outside the "
        "window.</p>",
        _verdict(r),
        f'<p class="figures"><span>decisions: <b>{r.decisions}</b></span>{figures}'
        f"<span>transfers: <b>{sum(t.events for t in r.transfers)}</b></span>"
        f"<span>violation windows: <b>{len(r.violation_windows)}</b></span></p>",
        f"<ul>{notes}</ul>" if notes else "",
        *_sections(r),
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>Residency evidence report</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
