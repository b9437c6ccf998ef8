"""report.html, report.json and summary.csv rendered from hand-built trails (router.report.render_*):
the page is self-contained and says on its first screen whether the trail verified; the JSON and
CSV carry the same figures."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from router.report.collect import collect
from router.report.render_data import CSV_HEADER, report_json, summary_csv
from router.report.render_html import render_html
from tests.unit.test_report_collect import context, fields, mixed_trail

pytestmark = pytest.mark.unit


class _Elements(HTMLParser):
    """Tags and attributes of a page, in order (what a browser would load or run)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Elements()
    p.feed(page)
    return p.tags


def _broken_trail() -> list[tuple[int, int, bytes]]:
    t = mixed_trail()
    p, o, v = t.records[-1]
    edited = bytearray(v)
    edited[-5] ^= 1
    t.records[-1] = (p, o, bytes(edited))
    return t.records


def test_page_is_self_contained_with_no_script_and_inline_charts() -> None:
    page = render_html(collect(mixed_trail().records, context()))
    tags = _elements(page)
    names = [t for t, _ in tags]
    assert "script" not in names
    assert names.count("svg") == 3  # data jurisdictions, destinations, quarantine reasons
    for tag, attrs in tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        for key in ("src", "href"):
            assert attrs.get(key) is None, (tag, key)
    # the only URL is SVG's namespace name, which is never fetched
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}


def test_first_screen_says_the_trail_verified() -> None:
    page = render_html(collect(mixed_trail().records, context()))
    head = page[: page.index("<h2>")]
    assert 'class="verdict ok"' in head
    assert "7 verified decision(s)" in head


def test_first_screen_names_a_broken_chain_and_the_excluded_range() -> None:
    records = _broken_trail()
    p, o, _ = records[-1]
    page = render_html(collect(records, context()))
    head = page[: page.index("<h2>")]
    assert "TRAIL BROKEN" in head
    assert f"chain crm.ingress[1]: edited at audit partition {p} offset {o}" in head
    assert "1 record(s) (each broken chain from its first broken record on) are excluded" in head


def test_text_from_the_trail_is_escaped() -> None:
    t = mixed_trail()
    t.append(fields(9, decision="quarantine", reason="<script>x</script>", dest="quarantine.eu"))
    page = render_html(collect(t.records, context()))
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_json_carries_the_figures_and_round_trips() -> None:
    r = collect(_broken_trail(), context())
    doc = json.loads(json.dumps(report_json(r)))
    assert doc["format"] == 1
    assert doc["ok"] is False
    assert doc["decisions"] == 6
    assert doc["excluded"] == 1
    assert doc["by_decision"] == {"route": 5, "quarantine": 1}
    assert doc["data_jurisdictions"]["totals"] == {"eu": 3, "us": 2, "none": 1}
    (broken,) = [c for c in doc["chains"] if not c["ok"]]
    assert broken["break_kind"] == "edited"


def test_csv_has_one_row_per_group_and_sums_to_the_decisions() -> None:
    r = collect(mixed_trail().records, context())
    rows = list(csv.reader(io.StringIO(summary_csv(r))))
    assert tuple(rows[0]) == CSV_HEADER
    assert sum(int(row[5]) for row in rows[1:]) == 7
    assert ["2025-11-29", "us", "us", "quarantine", "POLICY_DENIED", "1"] in rows


def test_an_empty_trail_renders() -> None:
    r = collect([], context())
    assert r.ok
    assert r.decisions == 0
    page = render_html(r)
    assert "no events" in page
    assert summary_csv(r) == ",".join(CSV_HEADER) + "\n"


def test_page_lists_the_transfer_rule_the_snapshots_and_the_violation_window() -> None:
    from tests.unit.test_report_collect import T0, V4Chain, snapshot

    good, bad = snapshot(violation=False), snapshot(violation=True)
    c = V4Chain()
    c.placement(good, T0)
    c.decision(fields(0, jurisdictions=("ch", "eu"), level="internal", categories=(), dest="crm.eu.contact")
               ._replace(destination_jurisdiction="eu", placement_snapshot=good.sha256))
    c.placement(bad, T0 + 2)
    c.decision(fields(1, at_ms=T0 + 3, decision="quarantine", reason="PLACEMENT_VIOLATION", dest="quarantine.eu",
                      verdict="violations: crm.eu.contact")
               ._replace(destination_jurisdiction="eu", placement_snapshot=bad.sha256))
    page = render_html(collect(c.records, context()))
    assert "<td>ch-stays-in-ch-or-eu</td>" in page
    assert f"<td>{bad.sha256.hex()[:16]}</td>" in page
    assert "crm.eu.contact[0] on broker 3" in page
    assert "Quarantined because of the window" in page
    assert "crm.ingress[0]@1" in page


def test_a_window_with_more_quarantined_events_than_listed_says_how_many_the_json_holds() -> None:
    """report.json lists at most MAX_LISTED_EVENTS positions per window; the page counts the rest from
    the window's complete count, not from the truncated list."""
    from router.report.collect import MAX_LISTED_EVENTS
    from tests.unit.test_report_collect import T0, Trail

    n = MAX_LISTED_EVENTS + 2
    t = Trail(partitions=1)
    t.append(fields(0, at_ms=T0))
    for i in range(1, n + 1):
        t.append(fields(i, at_ms=T0 + i, verdict="violations: crm.eu.contact", decision="quarantine",
                        reason="PLACEMENT_VIOLATION", dest="quarantine.eu"))
    r = collect(t.records, context())
    (window,) = r.violation_windows
    assert (window.quarantined, len(window.quarantined_events)) == (n, MAX_LISTED_EVENTS)
    page = render_html(r)
    assert f"and {n - 50} more (report.json lists the first {MAX_LISTED_EVENTS})" in page
