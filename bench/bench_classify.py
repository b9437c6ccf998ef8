"""Classification + resolution + decision cost per typical ~1 KB CDC event (µs/event).

Run: ``.venv/bin/python bench/bench_classify.py [--n 20000]``. Events have ~20 fields, two of them
free text (Description, Comments); variants: plain text, text with an email, text with an IBAN.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from router.config.loader import load_config
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.engine import PolicyEngine

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ("Customer called about the renewal of their enterprise licence and asked for a revised "
         "quote covering the additional seats for the analytics team next quarter. ")


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


def bench(engine: PolicyEngine, events: list[ChangeEvent]) -> float:
    for e in events[:200]:
        engine.evaluate(e)
    start = time.perf_counter()
    for e in events:
        engine.evaluate(e)
    return (time.perf_counter() - start) / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    engine = PolicyEngine.from_config(load_config(ROOT / "examples" / "router.yaml"))
    size = len(make_event(0, "").raw.payload)
    print(f"event payload ≈ {size} B, {args.n} events per variant")
    for label, extra in (("plain text", ""), ("email in text", " Contact jane.doe@example.com."),
                         ("IBAN in text", " IBAN GR16 0110 1050 0000 1054 7023 795.")):
        us = bench(engine, [make_event(i, extra) for i in range(args.n)])
        print(f"{label:<16} {us:8.1f} µs/event")


if __name__ == "__main__":
    main()
