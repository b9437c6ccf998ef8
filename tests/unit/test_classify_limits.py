"""Per-event scan limits: ``classification.max_scan_chars`` and ``classification.max_depth``.

An event over a limit is not routed half-scanned: its classification is RESTRICTED and carries a
value-free ``incomplete`` reason, which the policy turns into a SCAN_LIMIT quarantine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from router.classify import Category, Classification, Classifier, Level
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit


def event(values: dict[str, Any], before: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent(SourceSystem.DEBEZIUM, "account", Operation.UPDATE, ("42",),
                       RawRecord(b"{}", "application/json"), values=values, before=before or {})


def nested(depth: int, leaf: Any = "plain words here") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_defaults() -> None:
    cfg = ClassificationConfig()
    assert cfg.max_scan_chars == 1_000_000
    assert cfg.max_depth == 32
    assert Classification(Level.PUBLIC).incomplete is None


def test_text_over_max_scan_chars_makes_the_event_incomplete_and_restricted() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=100))
    result = c.classify(event({"Description": "plain " * 10, "Notes__c": "words " * 10}))
    assert result.incomplete == "scanned text exceeds classification.max_scan_chars (100)"
    assert result.level is Level.RESTRICTED
    assert result.categories == frozenset()


def test_text_within_max_scan_chars_is_complete() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=100))
    result = c.classify(event({"Description": "plain " * 8, "Notes__c": "words " * 8}))
    assert result.incomplete is None
    assert result.level is Level.INTERNAL


def test_the_default_cap_is_one_million_characters() -> None:
    c = Classifier.from_config(None)
    assert c.classify(event({"Description": "x" * 1_000_000})).incomplete is None
    over = c.classify(event({"Description": "x" * 600_000, "Comments": "y" * 400_001}))
    assert over.incomplete is not None and "1000000" in over.incomplete


def test_a_string_repeated_in_both_images_and_in_several_fields_is_counted_once() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=100))
    text = "plain words " * 8
    result = c.classify(event({"Description": text, "Notes__c": [text, {"k": text}]}, before={"Description": text}))
    assert result.incomplete is None


def test_nested_strings_count_towards_the_cap() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=100))
    assert c.classify(event({"Payload__c": {"a": ["plain " * 9, "words " * 9]}})).incomplete is not None
    assert c.classify(event({"Payload__c": json.dumps(["plain " * 9, "words " * 9])})).incomplete is not None


def test_catalogued_fields_are_not_scanned_so_do_not_count() -> None:
    cfg = ClassificationConfig(max_scan_chars=100, fields={"*.Blob__c": {"level": "internal"}})  # type: ignore[dict-item]
    assert Classifier(cfg).classify(event({"Blob__c": "x" * 10_000})).incomplete is None


def test_findings_made_before_the_cap_is_reached_are_kept() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=100))
    result = c.classify(event({"Description": "mail jane.doe@example.com", "Notes__c": "x" * 200}))
    assert result.incomplete is not None
    assert result.level is Level.RESTRICTED
    assert result.categories == {Category.PII}


def test_nesting_deeper_than_max_depth_makes_the_event_incomplete() -> None:
    c = Classifier.from_config(None)
    assert c.classify(event({"Payload__c": nested(32)})).incomplete is None
    result = c.classify(event({"Payload__c": nested(33)}))
    assert result.incomplete == "value nesting exceeds classification.max_depth (32)"
    assert result.level is Level.RESTRICTED


def test_nesting_inside_json_strings_counts_too() -> None:
    c = Classifier(ClassificationConfig(max_depth=4))
    assert c.classify(event({"Payload__c": [json.dumps(nested(3))]})).incomplete is None
    assert c.classify(event({"Payload__c": [json.dumps(nested(4))]})).incomplete is not None


def test_very_deep_values_do_not_hit_the_recursion_limit() -> None:
    c = Classifier(ClassificationConfig(max_depth=100_000))
    assert c.classify(event({"Payload__c": nested(5_000)})).incomplete is None


def test_incomplete_reasons_hold_no_values() -> None:
    c = Classifier(ClassificationConfig(max_scan_chars=10, max_depth=1))
    for values in ({"Description": "jane.doe@example.com"}, {"Payload__c": [["jane.doe@example.com"]]}):
        result = c.classify(event(values))
        assert result.incomplete is not None
        assert "jane" not in result.incomplete and "jane" not in repr(result)


@pytest.mark.parametrize("setting", ["max_scan_chars", "max_depth"])
def test_limits_must_be_positive(setting: str) -> None:
    with pytest.raises(ValidationError):
        ClassificationConfig(**{setting: 0})  # type: ignore[arg-type]


def test_scan_unknown_min_length_is_gone() -> None:
    with pytest.raises(ValidationError):
        ClassificationConfig(scan_unknown_min_length=64)  # type: ignore[call-arg]
