import json
from pathlib import Path

import pytest

from router.classify.catalog import catalog_from_avro, load_catalog
from router.classify.classifier import Classifier
from router.classify.config import ClassificationConfig
from router.classify.model import Category, Level
from router.errors import ConfigError
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit


def event(entity: str = "Contact", **values: object) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, entity, Operation.UPDATE, ("003xx",),
                       RawRecord(b"{}", "application/json"), values=values)


def test_catalog_csv_in_salesforce_export_shape(tmp_path: Path) -> None:
    p = tmp_path / "fields.csv"
    p.write_text("EntityDefinition.QualifiedApiName,QualifiedApiName,SecurityClassification,ComplianceGroup\n"
                 "Contact,Email,Confidential,PII;GDPR\nContact,Diagnosis__c,MissionCritical,HIPAA\n"
                 "Account,Name,Public,\n")
    c = Classifier(ClassificationConfig(), load_catalog(p))
    result = c.classify(event(Email="x", Diagnosis__c="y", LastName="z"))
    assert result.level is Level.RESTRICTED
    assert result.fields(Category.PII) == ("Email", "LastName")  # LastName by the built-in name catalog
    assert result.fields(Category.SPECIAL_CATEGORY) == ("Diagnosis__c",)


def test_catalog_json_rest_query_result(tmp_path: Path) -> None:
    p = tmp_path / "fields.json"
    p.write_text(json.dumps({"records": [{"attributes": {}, "EntityDefinition": {"QualifiedApiName": "Lead"},
                                          "QualifiedApiName": "Card__c", "SecurityClassification": "Restricted",
                                          "ComplianceGroup": "PCI"}]}))
    result = Classifier(ClassificationConfig(), load_catalog(p)).classify(event("Lead", Card__c="x"))
    assert result.categories == {Category.FINANCIAL}


def test_catalog_rejects_unknown_classification_naming_the_row(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text("EntityDefinitionId,QualifiedApiName,SecurityClassification\nContact,Email,TopSecret\n")
    with pytest.raises(ConfigError, match="row 1"):
        load_catalog(p)


def test_catalog_from_avro_attributes_including_nested_compound() -> None:
    schema = {"type": "record", "name": "ContactChangeEvent", "fields": [
        {"name": "Email", "type": ["null", "string"], "pii": True},
        {"name": "MailingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "Street", "type": ["null", "string"], "classification": "Confidential"}]}]},
        {"name": "Ssn__c", "type": "string", "categories": ["GOVERNMENT_ID"]},
    ]}
    info = catalog_from_avro(schema).for_entity("Contact")
    assert Category.PII in info["Email"].categories
    assert info["MailingAddress"].level is Level.CONFIDENTIAL
    assert info["Ssn__c"].categories == {Category.GOVERNMENT_ID}


def test_free_text_fields_are_scanned_and_findings_name_fields_not_values() -> None:
    c = Classifier(ClassificationConfig())
    result = c.classify(event(Description="IBAN GR16 0110 1050 0000 1054 7023 795"))
    assert result.fields(Category.FINANCIAL) == ("Description",)
    assert result.level is Level.RESTRICTED
    assert "GR16" not in repr(result)


@pytest.mark.parametrize(("value", "category"), [
    ("GR16 0110 1050 0000 1054 7023 795", Category.FINANCIAL),  # an IBAN and nothing else
    ("NO9386011117947", Category.FINANCIAL),  # the shortest IBAN length (15)
    ("36 574 261 809", Category.GOVERNMENT_ID),  # a DE Steuer-ID and nothing else
    ("36574261809", Category.GOVERNMENT_ID),
    ("a@b.io", Category.PII),
])
def test_short_uncatalogued_fields_holding_only_an_identifier_are_scanned(value: str, category: Category) -> None:
    result = Classifier(ClassificationConfig()).classify(event(Ref__c=value))
    assert result.categories == {category}
    assert result.fields(category) == ("Ref__c",)


def test_strings_shorter_than_any_detector_match_are_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.classify import detectors as det

    c = Classifier(ClassificationConfig(detectors=["iban", "de_idnr"]))
    assert c.scan_min_length == min(det.IbanDetector.min_length, det.DeIdnrDetector.min_length) == 11
    calls: list[bytes] = []

    def gate(data: bytes) -> bool:
        calls.append(data)
        return True

    monkeypatch.setattr(det, "_has_digit_run", gate)
    c.classify(event(Ref__c="1234567890", Other__c="12345678901"))
    assert calls == [b"12345678901"]


def test_every_detector_declares_the_length_of_its_shortest_match() -> None:
    from router.classify.registry import REGISTRY

    for name, factory in REGISTRY.items():
        assert isinstance(factory.min_length, int) and factory.min_length >= 1, name  # type: ignore[attr-defined]


def test_catalogued_fields_are_classified_by_name_without_scanning() -> None:
    cfg = ClassificationConfig(fields={"*.Secret__c": {"level": "internal"}})  # type: ignore[dict-item]
    long = "AKIAIOSFODNN7EXAMPLE " * 10
    assert Category.SECRET not in Classifier(cfg).classify(event(Secret__c=long)).categories


def test_prompt_fields_yield_proprietary_prompt() -> None:
    cfg = ClassificationConfig(prompt_fields={"*": ["Prompt__c"]})
    result = Classifier(cfg).classify(event(Prompt__c="hi"))
    assert result.categories == {Category.PROPRIETARY_PROMPT}


def test_null_values_carry_no_data() -> None:
    cfg = ClassificationConfig(fields={"Contact.Email": {"categories": ["PII"]}})  # type: ignore[dict-item]
    assert Classifier(cfg).classify(event(Email=None)).level is Level.INTERNAL


def test_unknown_detector_name_is_rejected_in_config() -> None:
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        ClassificationConfig(detectors=["nope"])
