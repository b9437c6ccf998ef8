"""``pipeline.ingress[]``: the jurisdiction of each ingress topic, its trust, and decoder options
that are typed and checked when the config loads (not as a traceback inside ``run``)."""

from __future__ import annotations

from typing import Any

import pytest

from router.config.loader import parse_config
from router.errors import ConfigError
from router.pipeline.config import IngressConfig

pytestmark = pytest.mark.unit


def _base(*ingress: dict[str, Any], **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "pipeline": {"ingress": list(ingress) or [{"topic": "crm.ingress", "jurisdiction": "eu"}]},
    }
    cfg.update(over)
    return cfg


def _ingress(**over: Any) -> IngressConfig:
    cfg = parse_config(_base({"topic": "crm.ingress", "jurisdiction": "eu", **over}))
    assert cfg.pipeline is not None
    return cfg.pipeline.ingress[0]


def _error(*ingress: dict[str, Any], **over: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(_base(*ingress, **over))
    return str(info.value)


# -- jurisdiction and trust ---------------------------------------------------------------------


def test_ingress_jurisdiction_is_required() -> None:
    msg = _error({"topic": "crm.ingress"})
    assert "pipeline.ingress[0].jurisdiction: required key is missing" in msg


def test_ingress_jurisdiction_must_be_configured_and_the_error_names_its_index() -> None:
    msg = _error({"topic": "a", "jurisdiction": "eu"}, {"topic": "b", "jurisdiction": "uk"})
    assert "pipeline.ingress[1].jurisdiction" in msg
    assert "'uk'" in msg
    assert "known: eu, us" in msg


def test_ingress_jurisdiction_and_trust_are_read() -> None:
    ingress = _ingress(jurisdiction="us", trusted=True)
    assert (ingress.jurisdiction, ingress.trusted) == ("us", True)


def test_ingress_is_untrusted_by_default() -> None:
    assert _ingress().trusted is False


def test_trusted_must_be_a_boolean() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "trusted": "sometimes"})
    assert "pipeline.ingress[0].trusted: Input should be a valid boolean" in msg


def test_ingress_topic_listed_under_topics_must_agree_on_its_jurisdiction() -> None:
    msg = _error(
        {"topic": "crm.ingress", "jurisdiction": "eu"},
        topics=[{"name": "crm.ingress", "jurisdiction": "us"}],
    )
    assert "pipeline.ingress[0].jurisdiction" in msg
    assert "topics[0]" in msg


# -- decoders and their options -----------------------------------------------------------------


def test_unknown_decoder_is_rejected_at_load() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "xml"})
    assert "pipeline.ingress[0].decoder" in msg
    assert "generic-json" in msg


def test_unknown_option_names_its_path_the_decoder_and_the_known_options() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "generic-json",
                  "options": {"entity_feild": "type"}})
    assert "pipeline.ingress[0].options.entity_feild: unknown option for decoder generic-json (known: " in msg
    assert "entity_field" in msg.split("known: ")[1]


def test_salesforce_json_takes_no_options() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "salesforce-json",
                  "options": {"entity": "Account"}})
    assert "pipeline.ingress[0].options.entity: unknown option for decoder salesforce-json" in msg


def test_option_of_wrong_type_fails_with_its_path() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "salesforce-avro",
                  "options": {"schema_id": "seven"}})
    assert "pipeline.ingress[0].options.schema_id:" in msg


def test_schema_id_must_not_be_negative() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "salesforce-avro",
                  "options": {"schema_id": -1}})
    assert "pipeline.ingress[0].options.schema_id: " in msg
    assert "greater than or equal to 0" in msg


def test_entities_map_tables_to_entities() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "debezium-json",
                  "options": {"entities": {"customers": 7}}})
    assert "pipeline.ingress[0].options.entities.customers:" in msg


@pytest.mark.parametrize("option", ["max_bytes", "schema_store"])
def test_options_the_router_supplies_are_not_user_options(option: str) -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "auto", "options": {option: 1}})
    assert f"pipeline.ingress[0].options.{option}: not a decoder option" in msg
    assert "pipeline." in msg.split("not a decoder option")[1]


def test_options_errors_name_the_right_ingress_entry() -> None:
    msg = _error(
        {"topic": "a", "jurisdiction": "eu"},
        {"topic": "b", "jurisdiction": "eu", "decoder": "generic-json", "options": {"id_field": 3}},
    )
    assert "pipeline.ingress[1].options.id_field:" in msg
    assert "ingress[0]" not in msg


def test_decoder_options_are_the_validated_options_the_user_set() -> None:
    ingress = _ingress(decoder="generic-json", options={"entity": "Order", "tenant_field": "org.id"})
    assert ingress.decoder_options() == {"entity": "Order", "tenant_field": "org.id"}


def test_decoder_options_are_empty_when_none_are_set() -> None:
    assert _ingress().decoder_options() == {}
    assert _ingress(decoder="salesforce-json", options=None).decoder_options() == {}


@pytest.mark.parametrize(
    ("decoder", "options"),
    [
        ("salesforce-avro", {"schema_id": 0}),
        ("confluent-avro", {"entity": "Account", "entities": {"accounts": "Account"}}),
        ("debezium-json", {"entities": {"public.customers": "Contact"}}),
        ("auto", {"entity": "Contact"}),
        ("generic-json", {"entity_field": None, "id_field": "key", "operation_field": "op",
                          "timestamp_field": None, "values_field": "data", "event_id_field": "eid"}),
    ],
)
def test_each_decoder_accepts_its_options(decoder: str, options: dict[str, Any]) -> None:
    assert _ingress(decoder=decoder, options=options).decoder_options() == options


def test_decoder_options_build_the_decoder() -> None:
    from router.ingest import decoder_for

    ingress = _ingress(decoder="generic-json", options={"entity": "Order", "id_field": "order_id"})
    dec = decoder_for(ingress.decoder, **ingress.decoder_options(), max_bytes=1024)
    event = dec.decode(b'{"order_id": 7, "operation": "create"}')
    assert (event.entity, event.record_ids) == ("Order", ("7",))


def test_a_table_mapped_twice_ignoring_case_is_rejected_at_load() -> None:
    msg = _error({"topic": "crm.ingress", "jurisdiction": "eu", "decoder": "debezium-json",
                  "options": {"entities": {"public.Customers": "Contact", "public.customers": "Account"}}})
    assert "pipeline.ingress[0].options.entities: " in msg
    assert "case-insensitive" in msg
