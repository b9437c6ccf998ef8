"""Debezium delivers at least once: after a connector restart it re-emits change events it had
already written, each a new ingress record with the same ``source`` position. The router routes
each ingress record exactly once (it cannot tell a re-emission from a second change without
keeping state across restarts), and gives a re-emission the same keyed event id (``rr-event-id``,
the audit and quarantine ``event_id``) as the original, so a reader drops it by that id. Distinct
changes of the same row get distinct ids.

Ground truth: the test builds the duplicates itself (same ``source`` block, later ingress offset)
and the distinct changes (other LSN, other row of one transaction)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.audit.chain import AuditChain
from router.audit.record import decode_audit
from router.keys.digest import DigestKeys
from router.pipeline.processor import RouterProcessor, RouterSettings
from tests.unit.test_pipeline_processor import FakeMessage, FakePlacement
from tests.unit.test_routing_residency_leaks import CORE, EU_IN
from tests.unit.test_routing_run_and_simulate_agree import _Keys

pytestmark = pytest.mark.unit


def change(lsn: int, email: str, *, row: int | None = None, connector: str = "crm") -> bytes:
    source: dict[str, Any] = {"connector": "postgresql", "name": connector, "db": "crm", "schema": "public",
                              "table": "contact", "lsn": lsn, "txId": 7}
    if row is not None:
        source["row"] = row
    after = {"id": 1, "Email": email, "Country": "DE"}
    return orjson.dumps({"before": None, "after": after, "op": "u", "ts_ms": 1_700_000_000_000, "source": source})


def run(values: list[bytes]) -> tuple[list[str], list[Any]]:
    """Route ``values`` (ingress offsets 0..n-1); the routed outputs' ``rr-event-id`` headers in
    input order, and the audit records."""
    keys = _Keys(["eu", "uk", "us", "ch"])
    placed = {"crm.eu.contact": "eu", "quarantine.eu": "eu", "audit": "eu", EU_IN: "eu"}
    proc = RouterProcessor(
        CORE, FakePlacement(placed), keys.sealer, AuditChain(),
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic="audit", instance_id="t",
                       origin_jurisdiction={EU_IN: "eu"}.__getitem__, audit_jurisdiction="eu"),
        DigestKeys(keys.keys))
    outs = proc.process([FakeMessage(EU_IN, 0, i, v, b'{"id": 1}') for i, v in enumerate(values)])  # type: ignore[list-item]
    routed = [o for o in outs if o.topic == "crm.eu.contact"]
    audits = [decode_audit(o.value).fields for o in outs if o.topic == "audit" and o.value is not None]
    ids = [dict(o.headers)["rr-event-id"].decode() for o in routed]
    return ids, audits


def test_a_reemitted_debezium_change_is_routed_once_more_with_the_same_event_id() -> None:
    original = change(100, "anna@example.de")
    ids, audits = run([original, change(101, "anna@example.de"), original])
    assert len(ids) == 3, "each ingress record is routed once: the router keeps no state across restarts"
    assert ids[0] == ids[2], "a re-emission carries the original's event id"
    assert ids[0] != ids[1], "another change of the same row has another id"
    assert [a.source_offset for a in audits] == [0, 1, 2]
    assert audits[0].event_id == audits[2].event_id != audits[1].event_id


def test_rows_of_one_transaction_and_other_connectors_get_distinct_ids() -> None:
    ids, _ = run([change(100, "a@example.de", row=0), change(100, "a@example.de", row=1),
                  change(100, "a@example.de", connector="crm-2")])
    assert len(set(ids)) == 3


def test_the_event_id_carries_no_value_of_the_event() -> None:
    ids, audits = run([change(100, "anna@example.de")])
    for text in (*ids, audits[0].event_id or ""):
        assert "anna" not in text and "example" not in text
