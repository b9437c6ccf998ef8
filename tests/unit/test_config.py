"""The config loader rejects bad config with a message naming the key and what is expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.config.loader import load_config, parse_config
from router.errors import ConfigError

pytestmark = pytest.mark.unit


def _base(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": [{"name": "crm.eu.contact", "jurisdiction": "eu"}],
    }
    cfg.update(over)
    return cfg


def test_valid_config_loads() -> None:
    cfg = parse_config(_base())
    assert cfg.jurisdiction_of_rack("eu-west-1a") == "eu"
    assert cfg.jurisdiction_of_rack("us-east-1a") == "us"


def test_broker_without_rack_belongs_to_no_jurisdiction() -> None:
    cfg = parse_config(_base())
    assert cfg.jurisdiction_of_rack(None) is None
    assert cfg.jurisdiction_of_rack("") is None
    assert cfg.jurisdiction_of_rack("ap-south-1a") is None


def test_unknown_key_is_rejected_with_its_path() -> None:
    cfg = _base()
    cfg["clusters"]["default"]["bootstrapp"] = "x:1"
    with pytest.raises(ConfigError, match=r"clusters\.default\.bootstrapp: unknown key"):
        parse_config(cfg)


def test_missing_required_key_is_named() -> None:
    cfg = _base()
    del cfg["clusters"]["default"]["bootstrap"]
    with pytest.raises(ConfigError, match=r"clusters\.default\.bootstrap: required key is missing"):
        parse_config(cfg)


def test_topic_naming_unknown_jurisdiction_is_rejected() -> None:
    cfg = _base(topics=[{"name": "crm.uk.contact", "jurisdiction": "uk"}])
    with pytest.raises(ConfigError, match=r"topics\[0\] \(crm\.uk\.contact\) names jurisdiction 'uk'.*known: eu, us"):
        parse_config(cfg)


def test_rack_pattern_in_two_jurisdictions_is_rejected() -> None:
    cfg = _base(jurisdictions={"eu": {"racks": ["eu-*"]}, "us": {"racks": ["eu-*"]}})
    with pytest.raises(ConfigError, match="listed under both jurisdictions 'eu' and 'us'"):
        parse_config(cfg)


def test_bootstrap_without_port_is_rejected() -> None:
    cfg = _base(clusters={"default": {"bootstrap": "localhost"}})
    with pytest.raises(
        ConfigError, match=r"clusters\.default\.bootstrap: bootstrap entry 'localhost' must be host:port"
    ):
        parse_config(cfg)


def test_secret_in_plain_client_properties_is_rejected() -> None:
    cfg = _base(clusters={"default": {"bootstrap": "h:1", "client": {"sasl.password": "pw"}}})
    with pytest.raises(ConfigError, match=r"belongs under clusters\.<name>\.security\.sasl\.password"):
        parse_config(cfg)


def test_missing_file_says_which_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("clusters: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


def test_example_config_loads_with_a_jurisdiction_for_its_ingress_topic() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.pipeline is not None
    assert [(i.topic, i.jurisdiction, i.trusted) for i in cfg.pipeline.ingress] == [("crm.ingress", "eu", False)]


def test_example_config_names_no_removed_setting() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for line in text.splitlines():
        key = line.split("#", 1)[0].strip().split(":", 1)[0]
        assert key not in {"home", "trusted_connectors", "on_unavailable", "partitions"} or "{" in line, line


def test_cross_check_errors_are_not_prefixed_with_root() -> None:
    cfg = _base(topics=[{"name": "crm.uk.contact", "jurisdiction": "uk"}])
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert "(root)" not in str(info.value)
    assert "\n  topics[0] (crm.uk.contact)" in str(info.value)


# -- classification.phone_regions ------------------------------------------------------------

def test_phone_regions_in_lower_case_are_upper_cased_and_find_national_numbers() -> None:
    from router.classify import Classifier
    from router.classify.config import ClassificationConfig
    from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

    config = ClassificationConfig(detectors=["phone"], phone_regions=["gb", "De"])
    assert config.phone_regions == ["GB", "DE"]
    # 020 7946 0958: an Ofcom number reserved for drama, a valid London number in national form.
    event = ChangeEvent(SourceSystem.SALESFORCE, "Case", Operation.UPDATE, ("500x",),
                        RawRecord(b"{}", "application/json"), values={"Description": "Call me at 020 7946 0958"})
    assert {f.source for f in Classifier(config).classify(event).findings} == {"detector:phone"}


@pytest.mark.parametrize("region", ["XX", "zz", "GBR", "", "001"])
def test_an_unknown_phone_region_is_an_error_naming_the_setting_and_the_value(region: str) -> None:
    from pydantic import ValidationError

    from router.classify.config import ClassificationConfig

    with pytest.raises(ValidationError, match=rf"classification\.phone_regions.*{region!r}"):
        ClassificationConfig(phone_regions=["GB", region])


def test_an_unknown_phone_region_in_a_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"phone_regions.*'XX'"):
        parse_config(_base(classification={"phone_regions": ["GB", "XX"]}))
    assert parse_config(_base(classification={"phone_regions": ["gb"]})).classification.phone_regions == ["GB"]
