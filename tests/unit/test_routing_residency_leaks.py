"""Regression tests for the residency leaks of the reliability review (../shared/reviews/reliability.md
§4.7, appendix A2 and A8), one behaviour per test, each through the routing core ``run`` and
``simulate`` share (record bytes in, decision out) with examples/router.yaml.

The regression tests failed on 4dc088c (checked against its code with the same records): a spoofed
``sf-org-id`` header bound a tenant; ``x-data-region`` chose the quarantine jurisdiction (CH/UK/US
data sealed into quarantine.eu); unresolved, undecodable and failing records went to
``residency.home`` whatever their ingress; a Debezium DE->US update went to crm.us.* alone; a
delete was routed as a plain record, not an erasure, and took ``residency.default``;
``billing_country`` matched no country field; any country text, however long, went through the
cached ``to_alpha2``. Their companions (a trusted ingress, no header) pin what must still work.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastavro import schemaless_writer

from router.audit.chain import AuditChain
from router.config.loader import parse_config
from router.errors import ReasonCode
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.ingest.samples import default_schema_store
from router.keys.digest import DigestKeys
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.residency.countries import to_alpha2
from router.residency.resolver import Origin, Resolver
from router.routing.build import evaluator_for
from router.routing.evaluate import CoreEvaluator, Evaluation
from tests.unit.test_pipeline_processor import FakeMessage, FakePlacement
from tests.unit.test_routing_run_and_simulate_agree import _Keys

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
US_ORG, EU_ORG = "00DUS0000000001", "00DEU0000000001"
EU_IN, UK_IN, TRUSTED_IN = "crm.ingress", "crm.ingress.uk", "crm.ingress.trusted"


def core(**residency: Any) -> CoreEvaluator:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["residency"]["tenants"] = {US_ORG: "us", EU_ORG: "eu"}
    doc["residency"].update(residency)
    doc["pipeline"]["ingress"] = [
        {"topic": EU_IN, "jurisdiction": "eu"},
        {"topic": UK_IN, "jurisdiction": "uk"},
        {"topic": TRUSTED_IN, "jurisdiction": "eu", "trusted": True},
    ]
    return evaluator_for(parse_config(doc), EXAMPLE.parent)


CORE = core()


def sf(entity: str, change: str = "UPDATE", **fields: Any) -> bytes:
    header = {"entityName": entity, "changeType": change, "recordIds": ["003A0000001AAA"],
              "changedFields": sorted(fields), "commitTimestamp": 1_700_000_000_000}
    return orjson.dumps({"ChangeEventHeader": header, **fields})


def dbz(table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
    return orjson.dumps({"before": before, "after": after, "op": op, "ts_ms": 1_700_000_000_000,
                         "source": {"connector": "postgresql", "name": "crm", "db": "crm", "schema": "public",
                                    "table": table, "lsn": 42}})


def decide(value: bytes | None, headers: dict[str, str] | None = None, topic: str = EU_IN,
           core: CoreEvaluator = CORE, key: bytes | None = b'{"id": 1}') -> Evaluation:
    return core(topic, value, key, headers or {})


def quarantined(ev: Evaluation) -> tuple[ReasonCode, str, str]:
    """(reason, jurisdiction, quarantine topic) of a quarantine."""
    assert ev.quarantined, ev
    return ev.reason, ev.jurisdiction, f"quarantine.{ev.jurisdiction}"


# -- sf-org-id (§4.7.2) ---------------------------------------------------------------------------

EU_EMAIL_UPDATE = sf("Contact", Email="anna@example.de")  # a partial update: no country field


def test_spoofed_org_id_header_never_routes_an_eu_email_update_to_the_us() -> None:
    ev = decide(EU_EMAIL_UPDATE, {"sf-org-id": US_ORG})
    assert ev.route_topic is None
    assert quarantined(ev) == (ReasonCode.UNRESOLVED_JURISDICTION, "eu", "quarantine.eu")
    assert ev.jurisdictions == ()


def test_spoofed_org_id_header_against_the_payloads_org_quarantines_in_the_payloads_jurisdiction() -> None:
    ev = decide(sf("Contact", Email="anna@example.de", OrgId=EU_ORG), {"sf-org-id": US_ORG}, topic=UK_IN)
    assert ev.jurisdictions == ("eu",)
    assert quarantined(ev) == (ReasonCode.CONFLICTING_JURISDICTION, "eu", "quarantine.eu")


def _avro_contact(framed: bool, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """A Salesforce Contact change event in Avro: Confluent-framed, or bare with a schema-id header
    as the Pub/Sub API delivers it."""
    store = default_schema_store()
    sid = next(i for i, f in store.ids().items() if Path(f).stem == "ContactChangeEvent")
    stored = store.get(sid)
    rec: dict[str, Any] = dict.fromkeys(stored.field_names)
    rec.update(fields)
    bits = sum(1 << stored.field_names.index(k) for k in fields)
    rec["ChangeEventHeader"] = {
        "entityName": "Contact", "recordIds": ["003A0000001AAA"], "changeType": "UPDATE",
        "changeOrigin": "com/salesforce/api/rest/61.0", "transactionKey": "t", "sequenceNumber": 1,
        "commitTimestamp": 1_700_000_000_000, "commitNumber": 1, "commitUser": "005A",
        "nulledFields": [], "diffFields": [], "changedFields": [f"0x{bits:X}"]}
    buf = io.BytesIO()
    if framed:
        buf.write(b"\x00" + struct.pack(">I", sid))
    schemaless_writer(buf, stored.parsed, rec)
    return buf.getvalue(), ({} if framed else {"schema-id": str(sid)})


@pytest.mark.parametrize("framed", [True, False], ids=["confluent-avro", "pubsub-avro"])
def test_spoofed_org_id_header_never_routes_an_avro_email_update_to_the_us(framed: bool) -> None:
    value, headers = _avro_contact(framed, Email="anna@example.de")
    ev = decide(value, {**headers, "sf-org-id": US_ORG})
    assert quarantined(ev) == (ReasonCode.UNRESOLVED_JURISDICTION, "eu", "quarantine.eu")


@pytest.mark.parametrize("framed", [True, False], ids=["confluent-avro", "pubsub-avro"])
def test_org_id_header_binds_an_avro_event_on_a_trusted_ingress(framed: bool) -> None:
    value, headers = _avro_contact(framed, Email="anna@example.de")
    ev = decide(value, {**headers, "sf-org-id": US_ORG}, topic=TRUSTED_IN)
    assert (ev.route_topic, ev.jurisdiction) == ("crm.us.contact", "us")


def test_org_id_header_binds_on_a_trusted_ingress() -> None:
    ev = decide(EU_EMAIL_UPDATE, {"sf-org-id": US_ORG}, topic=TRUSTED_IN)
    assert (ev.route_topic, ev.jurisdiction, ev.jurisdictions) == ("crm.us.contact", "us", ("us",))


def test_org_id_in_the_payload_binds_on_any_ingress() -> None:
    ev = decide(sf("Contact", Email="anna@example.de", OrgId=EU_ORG))
    assert (ev.route_topic, ev.jurisdiction) == ("crm.eu.contact", "eu")


# -- x-data-region (§4.7.1) -----------------------------------------------------------------------

PERSONAL = {
    "ch": sf("Contact", MailingCountry="CH", Email="hans@example.ch"),
    "uk": sf("Contact", MailingAddress={"Street": "1 High St", "Country": "United Kingdom"}, Email="amy@example.co.uk"),
    "us": sf("Lead", Address={"Country": "US"}, Email="joe@example.com", Phone="+1 202 555 0143"),
}


@pytest.mark.parametrize("home", sorted(PERSONAL))
def test_region_header_naming_eu_never_quarantines_foreign_personal_data_in_eu(home: str) -> None:
    ev = decide(PERSONAL[home], {"x-data-region": "eu"})
    assert ev.jurisdictions == (home,)
    assert quarantined(ev) == (ReasonCode.CONFLICTING_JURISDICTION, home, f"quarantine.{home}")


@pytest.mark.parametrize("home", sorted(PERSONAL))
def test_without_the_header_the_same_personal_data_routes_home(home: str) -> None:
    ev = decide(PERSONAL[home])
    assert (ev.route_topic is not None, ev.jurisdiction) == (True, home)


def test_region_header_binds_on_a_trusted_ingress() -> None:
    ev = decide(sf("Contact", Email="anna@example.de"), {"x-data-region": "uk"}, topic=TRUSTED_IN)
    assert (ev.route_topic, ev.jurisdiction, ev.jurisdictions) == ("crm.uk.contact", "uk", ("uk",))


@pytest.mark.parametrize("region", ["us", "eu", "DE"])
def test_a_region_header_alone_never_resolves_nor_chooses_the_quarantine(region: str) -> None:
    ev = decide(sf("Contact", Email="anna@example.de"), {"x-data-region": region}, topic=UK_IN)
    assert ev.jurisdictions == ()
    assert quarantined(ev) == (ReasonCode.UNRESOLVED_JURISDICTION, "uk", "quarantine.uk")


# -- records whose jurisdiction cannot be known stay where they arrived (§1 #14) ------------------

def _unresolved(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    return c(UK_IN, sf("Contact", Email="anna@example.de"), None, h)


def _undecodable(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    return c(UK_IN, b"\x00\x00\x00\x03\xe7 not avro", None, h)


def _not_a_change_event(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    return c(UK_IN, b'{"hello": "world"}', None, h)


def _oversized(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    return c(UK_IN, b"{" + b" " * (c.max_bytes + 1) + b"}", None, h)


def _decoder_crash(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    class Broken:
        def decode(self, value: bytes | None, **_: Any) -> ChangeEvent:
            raise ValueError("boom")

    spec = c.ingress[UK_IN]
    c.ingress[UK_IN] = type(spec)(Broken(), spec.origin)
    return c(UK_IN, sf("Contact", MailingCountry="CH"), None, h)


def _core_crash(c: CoreEvaluator, h: dict[str, str]) -> Evaluation:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    c.engine.evaluate = broken  # type: ignore[method-assign,assignment]
    return c(UK_IN, sf("Contact", MailingCountry="CH"), None, h)


@pytest.mark.parametrize(("case", "reason"), [
    (_unresolved, ReasonCode.UNRESOLVED_JURISDICTION),
    (_undecodable, None),
    (_not_a_change_event, ReasonCode.UNSUPPORTED_FORMAT),
    (_oversized, ReasonCode.OVERSIZED),
    (_decoder_crash, ReasonCode.PROCESSING_ERROR),
    (_core_crash, ReasonCode.PROCESSING_ERROR),
])
@pytest.mark.parametrize("headers", [{}, {"x-data-region": "eu"}, {"x-data-region": "us", "sf-org-id": US_ORG}])
def test_a_record_of_unknown_jurisdiction_is_quarantined_in_its_ingress_jurisdiction(
        case: Any, reason: ReasonCode | None, headers: dict[str, str]) -> None:
    ev = case(core(), headers)
    got_reason, j, topic = quarantined(ev)
    assert (j, topic) == ("uk", "quarantine.uk")
    assert reason is None or got_reason is reason


# -- Debezium before-image (§4.7.5) ---------------------------------------------------------------

def test_a_debezium_move_from_de_to_us_is_bound_to_both_and_never_routed_to_the_us_alone() -> None:
    ev = decide(dbz("contact", "u", {"id": 1, "Email": "anna@example.de", "Country": "DE"},
                    {"id": 1, "Email": "anna@example.de", "Country": "US"}))
    assert ev.jurisdictions == ("eu", "us")
    assert ev.route_topic is None  # eu-stays-in-eu and us-personal share no destination
    assert quarantined(ev) == (ReasonCode.CONFLICTING_JURISDICTION, "eu", "quarantine.eu")


def test_a_debezium_move_of_internal_data_routes_where_both_jurisdictions_allow() -> None:
    ev = decide(dbz("account", "u", {"id": 1, "Country": "DE", "Industry": "Retail"},
                    {"id": 1, "Country": "US", "Industry": "Retail"}))
    assert ev.jurisdictions == ("eu", "us")
    assert (ev.route_topic, ev.jurisdiction) == ("crm.eu.account", "eu")  # us-internal allows eu; eu only eu


def test_a_debezium_move_arriving_in_the_us_is_still_not_routed_there() -> None:
    ev = decide(dbz("contact", "u", {"id": 1, "Email": "anna@example.de", "Country": "DE"},
                    {"id": 1, "Email": "anna@example.de", "Country": "US"}), topic=UK_IN)
    assert ev.route_topic is None and ev.jurisdiction == "eu"  # first by residency.precedence


# -- deletes (§1 #16) -----------------------------------------------------------------------------

def test_a_debezium_delete_routes_as_an_erasure_to_its_before_images_jurisdiction() -> None:
    ev = decide(dbz("contact", "d", {"id": 1, "Email": "anna@example.de", "Country": "DE"}, None))
    assert (ev.route_topic, ev.jurisdiction, ev.erasure, ev.reason) == (
        "crm.eu.contact", "eu", True, ReasonCode.ROUTED)
    assert ev.operation == "delete"


def test_a_salesforce_delete_is_an_unresolved_erasure_in_the_ingress_jurisdiction_even_with_a_default() -> None:
    ev = decide(sf("Contact", "DELETE"), topic=UK_IN, core=core(default="us"))
    assert ev.route_topic is None and not ev.erasure
    assert quarantined(ev) == (ReasonCode.ERASURE_UNRESOLVED, "uk", "quarantine.uk")


def test_the_default_still_applies_to_an_update() -> None:
    ev = decide(sf("Contact", Name={"LastName": "Doe"}), topic=UK_IN, core=core(default="us"))
    assert (ev.route_topic, ev.jurisdiction) == ("crm.us.contact", "us")


# -- column names (§4.7 follow-up) ----------------------------------------------------------------

@pytest.mark.parametrize("column", ["billing_country", "country", "COUNTRY", "billing-country", "mailing_country"])
def test_a_postgres_country_column_resolves_like_billing_country(column: str) -> None:
    def routed(name: str) -> tuple[str | None, str, tuple[str, ...]]:
        ev = decide(dbz("account", "c", None, {"id": 1, name: "DE", "industry": "Retail"}))
        return ev.route_topic, ev.jurisdiction, ev.jurisdictions

    assert routed("BillingCountry") == ("crm.eu.account", "eu", ("eu",))
    assert routed(column) == routed("BillingCountry")


def test_a_postgres_country_column_naming_another_country_routes_there() -> None:
    ev = decide(dbz("account", "c", None, {"id": 1, "billing_country": "United Kingdom", "industry": "Retail"}))
    assert ev.jurisdictions == ("uk",)


# -- the country cache (A8) -----------------------------------------------------------------------

def _mb_values(n: int) -> Any:
    for i in range(n):
        yield f"{i:08d}" + "x" * 1_000_000


def test_megabyte_country_values_never_reach_the_country_cache() -> None:
    resolver = CORE.engine.resolver
    assert isinstance(resolver, Resolver)
    before = to_alpha2.cache_info()
    origin = Origin(EU_IN, "eu")
    for value in _mb_values(400):
        event = ChangeEvent(SourceSystem.DEBEZIUM, "account", Operation.UPDATE, ("1",),
                            RawRecord(b"", "application/json"), values={"BillingCountry": value})
        res = resolver.resolve(event, origin)
        assert res.unresolved
    after = to_alpha2.cache_info()
    assert after.currsize == before.currsize
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_megabyte_region_headers_never_reach_the_country_cache() -> None:
    resolver = CORE.engine.resolver
    before = to_alpha2.cache_info()
    for trusted in (False, True):
        for value in _mb_values(50):
            event = ChangeEvent(SourceSystem.SALESFORCE, "Contact", Operation.UPDATE, ("1",),
                                RawRecord(b"", "application/json"), values={"BillingCountry": "DE"},
                                headers={"x-data-region": value})
            resolver.resolve(event, Origin(TRUSTED_IN, "eu", trusted))
    after = to_alpha2.cache_info()
    assert (after.currsize, after.misses) == (before.currsize, before.misses)



def test_a_record_the_processor_fails_on_is_quarantined_in_its_ingress_jurisdiction() -> None:
    def failing(topic: str, value: bytes | None, key: bytes | None, headers: Any) -> Evaluation:
        raise RuntimeError("boom")

    keys = _Keys(["eu", "uk", "us"])
    placed = {"quarantine.eu": "eu", "quarantine.uk": "uk", "quarantine.us": "us", "audit": "eu", UK_IN: "uk"}
    proc = RouterProcessor(
        failing, FakePlacement(placed), keys.sealer, AuditChain(),
        RouterSettings(quarantine_topic=lambda j: f"quarantine.{j}", audit_topic="audit", instance_id="t",
                       origin_jurisdiction={UK_IN: "uk"}.__getitem__, audit_jurisdiction="eu"),
        DigestKeys(keys.keys))
    msg = FakeMessage(UK_IN, 0, 1, PERSONAL["us"], b"k", [("x-data-region", b"eu"), ("sf-org-id", US_ORG.encode())])
    outs = proc.process([msg])  # type: ignore[list-item]
    assert [o.topic for o in outs] == ["quarantine.uk", "audit"]
