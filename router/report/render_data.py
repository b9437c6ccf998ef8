"""``report.json`` and ``summary.csv``: the report's figures for tooling. Pure."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from router.report.model import Report, Series

JSON_FORMAT = 1
CSV_HEADER = ("day", "data_jurisdiction", "destination_jurisdiction", "decision", "reason", "events")


def iso(ms: int | None) -> str | None:
    """UTC ISO-8601 with milliseconds, or None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _series(s: Series) -> dict[str, Any]:
    return {
        "bucket_ms": s.bucket_ms,
        "buckets": [iso(b) for b in s.bucket_starts],
        "series": {label: list(counts) for label, counts in zip(s.labels, s.counts, strict=True)},
        "totals": {label: sum(counts) for label, counts in zip(s.labels, s.counts, strict=True)},
    }


def report_json(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready object (``format`` 1). Pairs become objects; times are kept as
    milliseconds since the epoch, with ISO copies where a person reads them."""
    doc = asdict(report)
    doc["format"] = JSON_FORMAT
    doc["generated_at"] = iso(report.generated_at_ms)
    doc["by_decision"] = dict(report.by_decision)
    doc["by_reason"] = dict(report.by_reason)
    doc["categories"] = {j: dict(c) for j, c in report.categories}
    doc["quarantined_categories"] = {j: dict(c) for j, c in report.quarantined_categories}
    doc["data_jurisdictions"] = _series(report.data_jurisdictions)
    doc["destination_jurisdictions"] = _series(report.destination_jurisdictions)
    doc["quarantine_reasons"] = _series(report.quarantine_reasons)
    doc["partitions"] = [{**asdict(p), "ok": p.ok} for p in report.partitions]
    doc["processing"] = [{**asdict(p), "categories": dict(p.categories)} for p in report.processing]
    return doc


def summary_csv(report: Report) -> str:
    """``summary.csv``: one row per UTC day x data jurisdiction(s) (``+``-joined when an event is
    bound to several) x destination jurisdiction x decision x reason; each verified decision in
    exactly one row."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for r in report.summary:
        w.writerow((r.day, r.data_jurisdiction, r.destination_jurisdiction, r.decision, r.reason, r.events))
    return out.getvalue()
