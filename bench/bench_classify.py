"""Classification + resolution + decision cost per typical ~1 KB CDC event (µs/event).

Run: ``.venv/bin/python bench/bench_classify.py [--n 20000]``. Events have ~20 fields, two of them
free text (Description, Comments); variants: plain text, text with an email, text with an IBAN.
Each line gives the whole core (``PolicyEngine.evaluate``) and classification alone. The last
line is one 32 KB Description of blank lines after "system" (review §4.5: 16.8 s/event with the
backtracking patterns), timed over ``--n-long`` events.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from router.classify.classifier import Classifier
from router.config.loader import load_config
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.engine import PolicyEngine
from router.residency.resolver import Origin

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ("Customer called about the renewal of their enterprise licence and asked for a revised "
         "quote covering the additional seats for the analytics team next quarter. ")


ORIGIN = Origin(topic="crm.ingress.eu", jurisdiction="eu")


def make_event(i: int, extra: str) -> ChangeEvent:
    values: dict[str, object] = {
        "Name": f"Account {i}", "BillingCountry": "Germany", "BillingCity": "Berlin",
        "BillingStreet": "Unter den Linden 1", "BillingPostalCode": "10117", "Industry": "Software",
        "Type": "Customer", "Rating": "Hot", "AnnualRevenue": 1250000, "NumberOfEmployees": 420,
        "OwnerId": "005xx000001Sv6QAAS", "Website": "https://example.com", "Phone": "+49 30 1234567",
        "AccountSource": "Web", "CustomerPriority__c": "High", "SLA__c": "Gold",
        "LastModifiedDate": "2026-11-28T10:00:00Z",
        "Description": PLAIN * 2 + extra,
        "Comments": PLAIN + "Follow-up scheduled.",
    }
    raw = json.dumps(values).encode()
    return ChangeEvent(SourceSystem.SALESFORCE, "Account", Operation.UPDATE, (f"001{i:015d}",),
                       RawRecord(raw, "application/json"), values=values)


def bench(engine: PolicyEngine, events: list[ChangeEvent]) -> tuple[float, float]:
    """µs/event for the whole core and for classification alone."""
    classifier: Classifier = engine.classifier
    for e in events[:200]:
        engine.evaluate(e, ORIGIN)
    start = time.perf_counter()
    for e in events:
        engine.evaluate(e, ORIGIN)
    core = (time.perf_counter() - start) / len(events) * 1e6
    start = time.perf_counter()
    for e in events:
        classifier.classify(e)
    return core, (time.perf_counter() - start) / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-long", type=int, default=20)
    args = ap.parse_args()
    engine = PolicyEngine.from_config(load_config(ROOT / "examples" / "router.yaml"))
    size = len(make_event(0, "").raw.payload)
    print(f"event payload ≈ {size} B, {args.n} events per variant")
    for label, extra in (("plain text", ""), ("email in text", " Contact jane.doe@example.com."),
                         ("IBAN in text", " IBAN GR16 0110 1050 0000 1054 7023 795.")):
        core, classify = bench(engine, [make_event(i, extra) for i in range(args.n)])
        print(f"{label:<16} {core:8.1f} µs/event  (classify {classify:7.1f})")
    long = "system" + "\n" * 32_000
    core, classify = bench(engine, [make_event(i, long) for i in range(args.n_long)])
    print(f"{'32 KB blank lines':<16} {core:8.1f} µs/event  (classify {classify:7.1f})")


if __name__ == "__main__":
    main()
