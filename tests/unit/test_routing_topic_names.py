"""Routed topic names stay within Kafka's limits and never merge two entities.

A topic name holds at most 249 characters of ``[A-Za-z0-9._-]``, and Kafka treats ``.`` and ``_``
alike when it checks new topics against existing ones (``crm.eu.foo.bar`` collides with
``crm.eu.foo_bar``). An entity whose name cannot be carried into ``policy.topic`` as it is (a
character outside ``[A-Za-z0-9_-]``, a ``.``, nothing at all) would need rewriting, and rewriting
can map two entities onto one topic, mixing their data: such a record is quarantined
INVALID_TOPIC_NAME where it already sits (the ingress topic's jurisdiction), and so is a record
whose destination name would exceed Kafka's limits. Upper and lower case are one entity by design
(``Account`` from Salesforce, ``account`` from Postgres): both route to ``crm.<j>.account``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from router.config.loader import parse_config
from router.errors import ReasonCode
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.residency.resolver import Origin
from router.routing.build import evaluator_for
from router.routing.evaluate import MAX_TOPIC_NAME, CoreEvaluator, Evaluation, Ingress

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
INGRESS = "crm.ingress"


def core(*, extra_topics: tuple[str, ...] = (), topic: str | None = None, configured: bool = True) -> CoreEvaluator:
    """The example deployment, with ``extra_topics`` listed in the eu jurisdiction, ``policy.topic``
    replaced by ``topic``; ``configured=False`` decides without the 'topics' check (as a tool would)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["topics"] += [{"name": t, "jurisdiction": "eu"} for t in extra_topics]
    if topic is not None:
        doc["policy"]["topic"] = topic
    built = evaluator_for(parse_config(doc), EXAMPLE.parent)
    if configured:
        return built
    return CoreEvaluator(built.ingress, built.engine, configured=None)


def sf(entity: str, **fields: Any) -> bytes:
    header = {"entityName": entity, "changeType": "UPDATE", "recordIds": ["001A0000001AAA"],
              "changedFields": sorted(fields), "commitTimestamp": 1_700_000_000_000}
    return orjson.dumps({"ChangeEventHeader": header, **fields})


def decide(c: CoreEvaluator, value: bytes) -> Evaluation:
    return c(INGRESS, value, None, {})


def invalid(ev: Evaluation) -> bool:
    return ev.route_topic is None and ev.reason is ReasonCode.INVALID_TOPIC_NAME


CORE = core(extra_topics=("crm.eu.foo_bar", "crm.eu.foo-bar", "crm.eu.foo.bar", "crm.eu.b_ro__c"))
LOOSE = core(configured=False)


def test_a_plain_entity_routes() -> None:
    ev = decide(CORE, sf("Account", BillingCountry="DE"))
    assert (ev.reason, ev.route_topic) == (ReasonCode.ROUTED, "crm.eu.account")


@pytest.mark.parametrize("entity", ["Foo_Bar", "FOO_BAR", "foo-bar"])
def test_entities_of_letters_digits_underscore_and_dash_route_to_their_own_topic(entity: str) -> None:
    ev = decide(CORE, sf(entity, BillingCountry="DE"))
    assert (ev.reason, ev.route_topic) == (ReasonCode.ROUTED, f"crm.eu.{entity.lower()}")


@pytest.mark.parametrize("entity", ["Foo Bar", "Foo/Bar", "Foo:Bar", "Foo+Bar", "Foo\tBar", "Foo\x00Bar"])
def test_an_entity_that_would_share_another_entitys_topic_is_quarantined(entity: str) -> None:
    # Rewritten to crm.eu.foo_bar it would land among Foo_Bar's records: a topic that exists.
    ev = decide(CORE, sf(entity, BillingCountry="DE"))
    assert invalid(ev)
    assert ev.jurisdiction == "eu" and ev.entity == entity


def test_a_dot_in_an_entity_is_quarantined_as_kafka_treats_it_as_an_underscore() -> None:
    ev = decide(CORE, sf("Foo.Bar", BillingCountry="DE"))
    assert invalid(ev)


@pytest.mark.parametrize("entity", ["Büro__c", "Bü.ro", "日本__c", "\N{FULLWIDTH LATIN CAPITAL LETTER F}oo", "ǅ", "İ"])
def test_an_entity_with_characters_kafka_topic_names_cannot_hold_is_quarantined(entity: str) -> None:
    # "Büro__c" was routed to crm.eu.büro__c where no topic list applies, and reported as not
    # configured where one does.
    for c in (CORE, LOOSE):
        ev = decide(c, sf(entity, BillingCountry="DE"))
        assert invalid(ev), (entity, ev.reason, ev.route_topic)


def decide_entity(c: CoreEvaluator, entity: str) -> Evaluation:
    """The decision for an update of ``entity`` with a German country, through a decoder that
    returns it as it is: entity names no connector format carries (nothing, lone surrogates)."""
    event = ChangeEvent(SourceSystem.SALESFORCE, entity, Operation.UPDATE, ("001",),
                        RawRecord(b"{}", "application/json"), values={"BillingCountry": "DE"})

    class _Fixed:
        def decode(self, value: bytes | None, *, key: bytes | None = None,
                   headers: Mapping[str, str] | None = None) -> ChangeEvent:
            return event

    fixed = CoreEvaluator({INGRESS: Ingress(_Fixed(), Origin(INGRESS, "eu"))}, c.engine, configured=c.configured)
    return fixed(INGRESS, b"{}", None, {})


@pytest.mark.parametrize("entity", ["", ".", "..", "\ud800", "a\udfffb", "-", "_"])
def test_entity_names_no_connector_format_carries(entity: str) -> None:
    for c in (CORE, LOOSE):
        ev = decide_entity(c, entity)
        if entity in ("-", "_"):  # odd but legal and one-to-one: crm.eu.- and crm.eu._
            assert ev.route_topic is None or ev.route_topic == f"crm.eu.{entity}"
            assert ev.reason is not ReasonCode.INVALID_TOPIC_NAME
        else:
            assert invalid(ev), (entity, ev.reason)


def test_a_destination_longer_than_kafka_allows_is_quarantined_as_an_invalid_name() -> None:
    prefix = len("crm.eu.")
    fits = "a" * (MAX_TOPIC_NAME - prefix)
    over = "a" * (MAX_TOPIC_NAME - prefix + 1)
    c = core(extra_topics=(f"crm.eu.{fits}",))
    assert decide(c, sf(fits, BillingCountry="DE")).route_topic == f"crm.eu.{fits}"
    for each in (c, LOOSE):
        ev = decide(each, sf(over, BillingCountry="DE"))
        assert invalid(ev), ev.reason
        assert ev.jurisdiction == "eu"
        assert over not in ev.detail


def test_the_quarantine_stays_in_the_ingress_jurisdiction_even_when_the_data_is_bound_elsewhere() -> None:
    ev = decide(CORE, sf("Foo Bar", BillingCountry="CH"))
    assert invalid(ev) and ev.jurisdiction == "eu"


def test_the_detail_names_the_problem_never_the_entity() -> None:
    ev = decide(CORE, sf("Jane Doe Büro", BillingCountry="DE"))
    assert invalid(ev)
    assert ev.detail and "Jane" not in ev.detail and "Büro" not in ev.detail and "jane" not in ev.detail


def test_an_entity_name_that_no_topic_carries_is_not_checked() -> None:
    c = core(extra_topics=("crm.eu",), topic="crm.{jurisdiction}")
    ev = decide(c, sf("Büro Bar", BillingCountry="DE"))
    assert (ev.reason, ev.route_topic) == (ReasonCode.ROUTED, "crm.eu")


def test_upper_and_lower_case_are_one_entity() -> None:
    assert decide(CORE, sf("ACCOUNT", BillingCountry="DE")).route_topic == "crm.eu.account"
    assert decide(CORE, sf("account", BillingCountry="DE")).route_topic == "crm.eu.account"


def test_an_invalid_entity_is_quarantined_even_when_the_policy_would_quarantine_it_anyway() -> None:
    ev = decide(CORE, sf("Foo Bar"))  # no country: unresolved as well
    assert invalid(ev)
