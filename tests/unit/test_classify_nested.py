"""Values nested in maps, lists and JSON strings are scanned (review reliability.md §4.5, appendix A7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.classify import Category, Classifier, Level
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

SECRET_TEXT = "deploy with api_key=AKIAIOSFODNN7EXAMPLE and password=hunter2hunter2"
DEFAULT = Classifier.from_config(None)


def debezium(entity: str = "account", /, **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.DEBEZIUM, entity, Operation.CREATE, ("42",),
                       RawRecord(b"{}", "application/json"), values={"Country": "DE", **values})


def test_a7_secret_at_top_level_is_found() -> None:
    result = DEFAULT.classify(debezium(Description=SECRET_TEXT))
    assert result.fields(Category.SECRET) == ("Description",)


@pytest.mark.parametrize("value", [
    {"text": SECRET_TEXT},
    [SECRET_TEXT],
    ["intro", {"parts": [{"text": SECRET_TEXT}]}],
    json.dumps({"text": SECRET_TEXT}),
    json.dumps([SECRET_TEXT]),
], ids=["map", "list", "deep", "json-object-string", "json-array-string"])
def test_a7_secret_one_level_down_is_found_under_the_top_level_field(value: Any) -> None:
    result = DEFAULT.classify(debezium(Description=value))
    assert result.fields(Category.SECRET) == ("Description",)
    assert result.level is Level.RESTRICTED


@pytest.mark.parametrize("field", ["Description", "Payload__c"])
def test_nested_identifiers_and_prompts_are_found_in_free_text_and_uncatalogued_fields(field: str) -> None:
    value = {"rows": [{"note": "IBAN GR16 0110 1050 0000 1054 7023 795"}, {"mail": "jane.doe@example.com"}],
             "template": json.dumps({"messages": ["<|im_start|>system\nYou are a pricing bot"]})}
    result = DEFAULT.classify(debezium(**{field: value}))
    assert result.categories == {Category.FINANCIAL, Category.PII, Category.PROPRIETARY_PROMPT}
    for cat in result.categories:
        assert result.fields(cat) == (field,)


def test_nested_keys_never_become_field_names_but_are_scanned() -> None:
    result = DEFAULT.classify(debezium(Payload__c={"jane.doe@example.com": {"GR16 0110 1050 0000 1054 7023 795": 1}}))
    assert result.fields(Category.PII) == ("Payload__c",)
    assert result.fields(Category.FINANCIAL) == ("Payload__c",)
    assert {f.field for f in result.findings} == {"Payload__c"}
    assert "jane" not in repr(result)


def test_a_credential_under_a_nested_key_named_like_one_is_a_secret() -> None:
    result = DEFAULT.classify(debezium(Payload__c=json.dumps({"db": {"password": "hunter2hunter2"}})))
    assert result.fields(Category.SECRET) == ("Payload__c",)


def test_numbers_inside_a_json_string_are_scanned_as_the_text_they_were() -> None:
    result = DEFAULT.classify(debezium(Payload__c='{"card": 4111111111111111}'))
    assert result.fields(Category.FINANCIAL) == ("Payload__c",)


def test_text_that_only_looks_like_json_is_scanned_as_text() -> None:
    result = DEFAULT.classify(debezium(Payload__c="{{customer}} asked: write to jane.doe@example.com ]"))
    assert result.fields(Category.PII) == ("Payload__c",)


def test_catalogued_fields_are_not_descended_into() -> None:
    cfg = ClassificationConfig(fields={"*.Payload__c": {"level": "internal"}})  # type: ignore[dict-item]
    result = Classifier(cfg).classify(debezium(Payload__c={"text": SECRET_TEXT}))
    assert result.categories == frozenset() and result.level is Level.INTERNAL


def test_plain_nested_values_stay_unflagged() -> None:
    result = DEFAULT.classify(debezium(Payload__c={"status": "open", "tags": ["renewal", "q3"], "n": 3, "ok": True}))
    assert result.categories == frozenset()
    assert result.level is Level.INTERNAL
    assert result.incomplete is None
