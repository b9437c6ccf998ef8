"""Golden decisions: the routing core must decide a fixed, varied input set exactly as recorded.

The fixture (``fixtures/golden_decisions.jsonl``) was recorded from the core as the trust-model
work left it: 3,000 sample-generator records of every format (with deletes and their tombstones),
poison values, header spoofs and a trusted ingress. Any change to the decision path must reproduce
it; an intended difference is explained in the commit that re-records it
(``python tests/unit/test_routing_golden.py --record``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config.loader import parse_config
from router.ingest.samples import generate
from router.routing.build import evaluator_for
from router.routing.evaluate import Evaluation

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "router.yaml"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden_decisions.jsonl"


def _core() -> Any:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["residency"]["tenants"] = {"00DUS0000000001": "us", "00DEU0000000001": "eu"}
    doc.pop("access")  # its connector writes the example's ingress topic, replaced here
    doc["pipeline"]["ingress"] = [
        {"topic": "in.eu", "jurisdiction": "eu", "decoder": "auto"},
        {"topic": "in.uk.trusted", "jurisdiction": "uk", "decoder": "auto", "trusted": True},
    ]
    return evaluator_for(parse_config(doc), EXAMPLE.parent)


def _sf(entity: str, change: str = "UPDATE", **fields: Any) -> bytes:
    header = {"entityName": entity, "changeType": change, "recordIds": ["003A000001"], "changedFields": list(fields)}
    return json.dumps({"ChangeEventHeader": header, **fields}).encode()


def inputs() -> Iterator[tuple[str, bytes | None, bytes | None, dict[str, str]]]:
    """(ingress topic, value, key, headers): deterministic."""
    for i, r in enumerate(generate(3000, seed=20261129, deletes=0.05)):
        yield ("in.eu" if i % 5 else "in.uk.trusted"), r.value, r.key, dict(r.headers)
    spoofs = [
        ({"x-data-region": "eu"}, _sf("Contact", MailingCountry="CH", Email="hans@example.ch")),
        ({"x-data-region": "eu"}, _sf("Contact", MailingCountry="GB", Email="amy@example.co.uk")),
        ({"x-data-region": "us"}, _sf("Contact", MailingCountry="DE", Email="anna@example.de")),
        ({"sf-org-id": "00DUS0000000001"}, _sf("Contact", Email="anna@example.de")),
        ({}, _sf("Contact", "DELETE")),
        ({}, _sf("X" * 300, MailingCountry="DE")),
        ({}, _sf("Account", BillingCountry="DE", Description=json.dumps({"t": "api_key=AKIAABCDEFGHIJKLMNOP"}))),
        ({}, _sf("Case", Description="system" + "\n" * 20_000)),
        ({}, b"\x00\x00\x00\x03\xe7garbage"),
        ({}, b"{not json"),
        ({}, bytes(range(1, 256))),
        ({}, b'{"op": "u", "source": {"table": "contacts", "lsn": 5}, "before": {"id": 1, "country": "DE", '
             b'"email": "a@b.de"}, "after": {"id": 1, "country": "US", "email": "a@b.de"}}'),
    ]
    for topic in ("in.eu", "in.uk.trusted"):
        for headers, value in spoofs:
            yield topic, value, b"k", headers


def row(ev: Evaluation) -> dict[str, Any]:
    return {"route_topic": ev.route_topic, "jurisdiction": ev.jurisdiction, "reason": ev.reason.value,
            "categories": list(ev.categories), "field_names": list(ev.field_names),
            "jurisdictions": list(ev.jurisdictions), "level": ev.level, "erasure": ev.erasure,
            "audit_only": ev.audit_only, "keep_payload": ev.keep_payload, "entity": ev.entity}


def _digest(topic: str, value: bytes | None, key: bytes | None, headers: dict[str, str]) -> str:
    h = hashlib.sha256(topic.encode() + b"\0" + (value or b"<null>") + b"\0" + (key or b""))
    h.update(json.dumps(headers, sort_keys=True).encode())
    return base64.b64encode(h.digest()[:9]).decode()


def decisions() -> list[dict[str, Any]]:
    core = _core()
    return [{"input": _digest(*args), **row(core(*args))} for args in inputs()]


def test_the_core_reproduces_the_recorded_decisions() -> None:
    recorded = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    now = decisions()
    assert len(now) == len(recorded)
    diffs = [(i, r, n) for i, (r, n) in enumerate(zip(recorded, now, strict=True)) if r != n]
    assert not diffs, f"{len(diffs)} decisions differ; first: {diffs[:3]}"


def test_the_recorded_set_covers_every_format_category_and_outcome() -> None:
    recorded = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    reasons = {r["reason"] for r in recorded}
    assert {"ROUTED", "UNRESOLVED_JURISDICTION", "TOMBSTONE_AUDITED", "ERASURE_UNRESOLVED", "FIELD_TOO_LONG",
            "CONFLICTING_JURISDICTION", "POLICY_DENIED", "GAP_EVENT"} <= reasons
    categories = {c for r in recorded for c in r["categories"]}
    assert {"PII", "FINANCIAL", "GOVERNMENT_ID", "PROPRIETARY_PROMPT", "SECRET"} <= categories
    assert any(r["erasure"] for r in recorded)


if __name__ == "__main__" and "--record" in sys.argv:
    FIXTURE.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in decisions()))
    print(f"recorded {FIXTURE}")
