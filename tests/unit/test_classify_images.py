"""Both images of a change are classified: ``values`` (after), ``before`` and ``nulled_fields``."""

from __future__ import annotations

from typing import Any

import pytest

from router.classify import Category, Classifier, Level
from router.classify import detectors as det
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

DEFAULT = Classifier.from_config(None)


def debezium(op: Operation, after: dict[str, Any], before: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent(SourceSystem.DEBEZIUM, "customer", op, ("7",), RawRecord(b"{}", "application/json"),
                       values=after, before=before)


def test_an_update_that_removes_an_email_and_iban_is_still_pii_and_financial() -> None:
    before = {"id": 7, "notes": "mail jane.doe@example.com, IBAN GR16 0110 1050 0000 1054 7023 795", "tier": "gold"}
    after = {"id": 7, "notes": "contact details removed on request", "tier": "gold"}
    result = DEFAULT.classify(debezium(Operation.UPDATE, after, before))
    assert result.categories == {Category.PII, Category.FINANCIAL}
    assert result.fields(Category.PII) == ("notes",)
    assert result.level is Level.RESTRICTED


def test_a_field_only_in_the_before_image_counts() -> None:
    result = DEFAULT.classify(debezium(Operation.DELETE, {}, {"id": 7, "vat_note": "VAT BE697449992"}))
    assert result.fields(Category.GOVERNMENT_ID) == ("vat_note",)


def test_catalog_entries_apply_to_the_before_image() -> None:
    result = DEFAULT.classify(debezium(Operation.DELETE, {}, {"email": "x"}))
    assert result.fields(Category.PII) == ("email",)


def test_a_value_equal_in_both_images_is_scanned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[str] = []
    real = det.Scanner.hits

    def spy(self: det.Scanner, text: str) -> tuple[det.Detector, ...]:
        scanned.append(text)
        return real(self, text)

    monkeypatch.setattr(det.Scanner, "hits", spy)
    c = Classifier(ClassificationConfig(detectors=["email"]))
    text = "write to jane.doe@example.com"
    result = c.classify(debezium(Operation.UPDATE, {"notes": text, "other": text}, {"notes": text}))
    assert scanned == [text]
    assert result.fields(Category.PII) == ("notes", "other")


def test_nulled_fields_count_by_catalog_name() -> None:
    cfg = ClassificationConfig(fields={"Contact.Health_Notes__c": {"level": "restricted",  # type: ignore[dict-item]
                                                                   "categories": ["SPECIAL_CATEGORY"]}})
    e = ChangeEvent(SourceSystem.SALESFORCE, "Contact", Operation.UPDATE, ("003x",),
                    RawRecord(b"{}", "application/json"), values={"Title": "CEO"},
                    nulled_fields=("Email", "Health_Notes__c", "Title"))
    result = Classifier(cfg).classify(e)
    assert result.fields(Category.PII) == ("Email",)
    assert result.fields(Category.SPECIAL_CATEGORY) == ("Health_Notes__c",)
    assert result.level is Level.RESTRICTED


def test_nulled_compound_subfields_count_under_the_compound_field() -> None:
    e = ChangeEvent(SourceSystem.SALESFORCE, "Contact", Operation.UPDATE, ("003x",),
                    RawRecord(b"{}", "application/json"), nulled_fields=("Name.MiddleName", "MailingAddress.Street"))
    assert DEFAULT.classify(e).fields(Category.PII) == ("MailingAddress", "Name")


def test_null_values_in_either_image_carry_no_data() -> None:
    result = DEFAULT.classify(debezium(Operation.UPDATE, {"email": None}, {"email": None}))
    assert result.categories == frozenset() and result.level is Level.INTERNAL
