"""The classifier's memory of short strings across events (``_TextMemory``).

What it may hold is bounded: at most ``_MAX_HIT_TEXTS`` entries, only strings of at most
``_MAX_HIT_TEXT`` characters, and no value (keys are keyed digests, values the detectors that hit).
What it answers must be what a scan answers: checked against a classifier that has never seen the
strings, and against the values' known contents.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.classify import Category, Classifier
from router.classify import classifier as classifier_module
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

# Each text with the categories a scan of it finds (written by hand, not computed).
TEXTS: dict[str, set[Category]] = {
    "jane.doe@example.com": {Category.PII},
    "DE89 3704 0044 0532 0130 00": {Category.FINANCIAL},
    "Head of Operations": set(),
    "Open - Not Contacted": set(),
    "Sie hat Brustkrebs und ist krankgeschrieben": {Category.SPECIAL_CATEGORY},
    "Springfield": set(),
}


def event(values: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent(SourceSystem.DEBEZIUM, "account", Operation.UPDATE, ("42",),
                       RawRecord(b"{}", "application/json"), values=values)


def categories(c: Classifier, text: str) -> set[Category]:
    return {f.category for f in c.classify(event({"Note__c": text})).findings}


def memory(c: Classifier) -> dict[bytes, Any]:
    known: dict[bytes, Any] = c._memory._known  # the bound is what is tested
    return known


def test_a_remembered_string_gets_the_answer_a_scan_gives() -> None:
    warm = Classifier(ClassificationConfig())
    for _ in range(3):  # first scan, then answered from memory
        for text, expected in TEXTS.items():
            assert categories(warm, text) == expected, text
    cold = Classifier(ClassificationConfig())
    for text in TEXTS:
        assert warm.classify(event({"Note__c": text})) == cold.classify(event({"Note__c": text}))


def test_the_memory_holds_no_value_and_no_long_string() -> None:
    c = Classifier(ClassificationConfig())
    for text in TEXTS:
        categories(c, text)
    known = memory(c)
    assert len(known) == len(TEXTS)
    for key, hits in known.items():
        assert isinstance(key, bytes) and len(key) == 16
        assert all(text.encode() not in key for text in TEXTS)
        assert all(not isinstance(h, str) for h in hits)
    long_text = "Customer asked about renewal terms; " * 4 + "jane.doe@example.com"
    assert len(long_text) > classifier_module._MAX_HIT_TEXT
    assert categories(c, long_text) == {Category.PII}
    assert len(known) == len(TEXTS)  # scanned, not remembered


def test_the_memory_is_bounded_in_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classifier_module, "_MAX_HIT_TEXTS", 50)
    c = Classifier(ClassificationConfig())
    for i in range(400):
        text = f"contact {i} at person{i}@example.com" if i % 7 == 0 else f"plain note number {i:05d} here"
        expected = {Category.PII} if i % 7 == 0 else set()
        assert categories(c, text) == expected, text
        assert 0 < len(memory(c)) <= 50


def test_a_json_value_is_remembered_only_when_its_walk_stayed_within_max_depth() -> None:
    c = Classifier(ClassificationConfig(max_depth=2))
    shallow = '{"Street": "1 Main St", "Email": "jane.doe@example.com"}'
    deep = '[[["jane.doe@example.com"]]]'
    for _ in range(2):
        assert categories(c, shallow) == {Category.PII}
        result = c.classify(event({"Note__c": deep}))
        assert result.incomplete is not None and "max_depth" in result.incomplete
    # The shallow JSON and "Street", "1 Main St", the address in it ("Email" is shorter than any
    # detector's shortest match); not the deep JSON.
    assert len(memory(c)) == 4
    cold = Classifier(ClassificationConfig(max_depth=2))
    assert c.classify(event({"Note__c": shallow})) == cold.classify(event({"Note__c": shallow}))
