"""Entity and field names match the catalog and the field lists whatever their case (and `_`).

Debezium tables and columns are typically lower-case (``contact.email``), Salesforce API names
are not (``Contact.Email``): the same configuration must classify both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.classify import Category, Classifier, Level
from router.classify.catalog import load_catalog
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

CONFIG = ClassificationConfig.model_validate({
    "fields": {
        "Contact.Email": {"level": "restricted", "categories": ["PII"]},
        "Contact.Allergies__c": {"level": "confidential", "categories": ["SPECIAL_CATEGORY"]},
        "*.Internal_Notes__c": {"level": "internal"},
    },
    "free_text_fields": {"*": ["Internal_Notes__c"]},
    "prompt_fields": {"Contact": ["Prompt_Template__c"]},
})


def debezium(entity: str, /, **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.DEBEZIUM, entity, Operation.CREATE, ("1",), RawRecord(b"{}", "application/json"),
                       values=values)


def test_lower_case_debezium_entity_and_columns_match_the_catalog() -> None:
    result = Classifier(CONFIG).classify(debezium("contact", email="x", allergies__c="y"))
    assert result.fields(Category.PII) == ("email",)  # reported under the event's own spelling
    assert result.fields(Category.SPECIAL_CATEGORY) == ("allergies__c",)
    assert result.level is Level.RESTRICTED  # the inline level, not the built-in catalog's


def test_prompt_fields_match_ignoring_case_and_underscores() -> None:
    for name in ("prompt_template__c", "PROMPT_TEMPLATE__C", "prompttemplatec"):
        result = Classifier(CONFIG).classify(debezium("CONTACT", **{name: "x"}))
        assert result.fields(Category.PROPRIETARY_PROMPT) == (name,), name


def test_free_text_fields_match_ignoring_case() -> None:
    iban = "IBAN GR16 0110 1050 0000 1054 7023 795"
    result = Classifier(CONFIG).classify(debezium("contact", internal_notes__c=iban))
    assert result.fields(Category.FINANCIAL) == ("internal_notes__c",)


def test_builtin_person_fields_match_snake_case_columns() -> None:
    result = Classifier.from_config(None).classify(debezium("contact", first_name="Ada", mobilephone="x"))
    assert result.fields(Category.PII) == ("first_name", "mobilephone")


def test_a_catalog_file_matches_lower_case_names(tmp_path: Path) -> None:
    p = tmp_path / "fields.csv"
    p.write_text("EntityDefinition.QualifiedApiName,QualifiedApiName,SecurityClassification,ComplianceGroup\n"
                 "Contact,Risk_Score__c,MissionCritical,HIPAA\n")
    result = Classifier(ClassificationConfig(), load_catalog(p)).classify(debezium("contact", risk_score__c="y"))
    assert result.fields(Category.SPECIAL_CATEGORY) == ("risk_score__c",)


def test_differently_cased_entries_merge_stricter() -> None:
    cfg = ClassificationConfig.model_validate({"fields": {
        "contact.email": {"level": "public"}, "Contact.Email": {"level": "restricted"}}})
    assert Classifier(cfg).classify(debezium("Contact", Email="x")).level is Level.RESTRICTED
