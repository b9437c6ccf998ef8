"""Dates and date-times skip screening: the full scan finds nothing in any of them either.

The scanner answers "nothing" for a text matching ``detectors._TIMESTAMP`` without screening it.
Here the full scan (fast path off) runs over thousands of such texts, in every shape the pattern
admits, with every built-in detector and many phone regions, and must find nothing; texts just
outside the pattern (8 fraction digits, a '-' offset without colon) still take the full scan.
"""

from __future__ import annotations

import random

import pytest

from router.classify import detectors as d
from router.classify import registry

pytestmark = pytest.mark.unit

REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IE", "IN", "BR", "JP", "AU", "CH", "AT", "BE", "PL")


def _scanner(*, fast: bool) -> d.Scanner:
    scanner = d.Scanner(registry.build_detectors(list(registry.REGISTRY), phone_regions=REGIONS))
    assert scanner._timestamps_clean
    scanner._timestamps_clean = fast
    return scanner


def _timestamp(rng: random.Random) -> str:
    date = f"{rng.choice(['19', '20'])}{rng.randrange(100):02d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 32):02d}"
    if rng.random() < 0.15:
        return date
    text = f"{date}{rng.choice('T ')}{rng.randrange(24):02d}:{rng.randrange(60):02d}"
    if rng.random() < 0.85:
        text += f":{rng.randrange(60):02d}"
        if rng.random() < 0.6:
            text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 5)))
    hh, mm = f"{rng.randrange(24):02d}", f"{rng.randrange(60):02d}"
    zones = ["", "Z", f"+{hh}{mm}", f"+{hh}:{mm}"] + ([] if "." in text else [f"-{hh}:{mm}"])
    return text + rng.choice(zones)


def test_the_full_scan_finds_nothing_in_dates_and_date_times() -> None:
    full = _scanner(fast=False)
    fast = _scanner(fast=True)
    rng = random.Random(21)
    texts = {_timestamp(rng) for _ in range(6000)}
    texts |= {"2026-11-28", "2026-11-28T10:00:00Z", "2026-11-28T10:00:00.000Z", "2026-11-28T10:00:00.000+0000",
              "2026-11-28 10:00:00", "1999-12-31T23:59:59-23:59", "2000-01-01T00:00:00.0000+00:00"}
    for text in texts:
        assert d._IS_TIMESTAMP(d.utf8(text)), text
        assert full.hits(text) == (), text
        assert fast.hits(text) == ()


def test_texts_just_outside_the_pattern_are_scanned_in_full() -> None:
    fast = _scanner(fast=True)
    full = _scanner(fast=False)
    for text in ("2026-11-28T10:00:00.12345678Z", "2026-11-28T10:00:00.000-0500", "2026-13-28", "2026-11-28\n",
                 "1899-11-28", "2026-11-28T10:00:00.000Z x", "12345678Z", "1958-01-27 09:50:04.1193-16:30"):
        assert not d._IS_TIMESTAMP(d.utf8(text)), text
        assert [h.name for h in fast.hits(text)] == [h.name for h in full.hits(text)], text
    # Fractions then a '-' offset can hold a phone number; so can 8 fraction digits and Z a DNI.
    assert [h.name for h in full.hits("1958-01-27 09:50:04.1193-16:30")] == ["phone"]
    # An 8-digit fraction with Z reads as a valid Spanish DNI: the reason fractions stop at 4 digits.
    assert [h.name for h in full.hits("2026-11-28T10:00:00.12345678Z")] == ["es_dni"]
