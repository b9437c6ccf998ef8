"""The built-in name catalog, catalog files relative to the config, and the default prompt field."""

from pathlib import Path
from typing import Any

import pytest

from router.classify import Category, Classifier, Level
from router.classify.config import ClassificationConfig
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit


def event(entity: str = "Contact", **values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, Operation.UPDATE, ("003xx",),
                       RawRecord(b"{}", "application/json"), values=values)


DEFAULT = Classifier.from_config(None)


def test_with_no_config_standard_person_fields_are_pii() -> None:
    result = DEFAULT.classify(event(Email="a@b.example", MobilePhone="x", Birthdate="1990-01-01",
                                    MailingAddress={"City": "Paris", "Country": "FR"}))
    assert result.level is Level.CONFIDENTIAL
    assert result.fields(Category.PII) == ("Birthdate", "Email", "MailingAddress", "MobilePhone")


def test_compound_person_name_is_pii_but_an_account_name_is_not() -> None:
    assert DEFAULT.classify(event(Name={"FirstName": "Ada", "LastName": "L"})).fields(Category.PII) == ("Name",)
    assert DEFAULT.classify(event("Account", Name="Acme")).level is Level.INTERNAL


@pytest.mark.parametrize(("field", "category"), [
    ("Iban__c", Category.FINANCIAL), ("BankIBAN__c", Category.FINANCIAL), ("Credit_Card_Number__c", Category.FINANCIAL),
    ("SSN__c", Category.GOVERNMENT_ID), ("Passport_No__c", Category.GOVERNMENT_ID),
    ("TaxId__c", Category.GOVERNMENT_ID),
    ("Api_Key__c", Category.SECRET), ("Health_Notes__c", Category.SPECIAL_CATEGORY),
])
def test_fields_named_like_sensitive_data_are_restricted(field: str, category: Category) -> None:
    result = DEFAULT.classify(event(**{field: "n/a"}))
    assert result.categories == {category}
    assert result.level is Level.RESTRICTED


@pytest.mark.parametrize("field", ["BusinessName", "AccountNumber", "Description", "Industry", "Tokens_Used__c"])
def test_ordinary_names_are_not_flagged_by_name(field: str) -> None:
    assert DEFAULT.classify(event("Account", **{field: "plain"})).categories == frozenset()


def test_builtin_catalog_can_be_switched_off() -> None:
    c = Classifier.from_config(ClassificationConfig(builtin_catalog=False))
    assert c.classify(event(Email="x")).level is Level.INTERNAL


def test_a_catalog_file_overrides_the_builtin_entry_and_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "fields.json").write_text(
        '{"records": [{"EntityDefinition": {"QualifiedApiName": "Contact"}, "QualifiedApiName": "Email",'
        ' "SecurityClassification": "Public", "ComplianceGroup": ""}]}')
    c = Classifier.from_config(ClassificationConfig(catalog="fields.json"), base_dir=tmp_path)
    assert c.classify(event(Email="x")).level is Level.INTERNAL  # floor internal; no PII by the file
    assert c.classify(event(Phone="x")).categories == {Category.PII}  # not in the file: built-in applies


def test_prompt_field_default_is_prompt__c_and_restricted() -> None:
    result = DEFAULT.classify(event(Prompt__c="anything"))
    assert result.categories == {Category.PROPRIETARY_PROMPT}
    assert result.level is Level.RESTRICTED


def test_prompt_template_in_free_text_is_restricted() -> None:
    result = DEFAULT.classify(event(Description="<|system|>\nYou are a contract reviewer. Answer {{question}}."))
    assert result.fields(Category.PROPRIETARY_PROMPT) == ("Description",)
    assert result.level is Level.RESTRICTED


def test_findings_hold_names_never_values() -> None:
    secret_value = "jane.doe@example.com GR16 0110 1050 0000 1054 7023 795"
    result = DEFAULT.classify(event(Description=secret_value, Email="jane.doe@example.com"))
    assert {Category.PII, Category.FINANCIAL} <= result.categories
    text = repr(result) + str(result.by_category())
    assert "jane" not in text and "GR16" not in text
