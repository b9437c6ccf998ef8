"""``pipeline.ingress[].max_retention``: a duration with its unit, 6 hours by default, positive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from router.config.loader import parse_config
from router.errors import ConfigError
from router.pipeline.config import IngressConfig

pytestmark = pytest.mark.unit


def _doc(*ingress: dict[str, Any]) -> dict[str, Any]:
    return {
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
        "pipeline": {"ingress": list(ingress)},
    }


def _ingress(**over: Any) -> IngressConfig:
    cfg = parse_config(_doc({"topic": "crm.ingress", "jurisdiction": "eu", **over}))
    assert cfg.pipeline is not None
    return cfg.pipeline.ingress[0]


def _error(value: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc({"topic": "a", "jurisdiction": "eu"},
                          {"topic": "crm.ingress", "jurisdiction": "eu", "max_retention": value}))
    return str(info.value)


def test_max_retention_is_six_hours_by_default() -> None:
    ingress = _ingress()
    assert ingress.max_retention == timedelta(hours=6)
    assert ingress.max_retention_ms == 21_600_000


@pytest.mark.parametrize(("text", "ms"), [
    ("6h", 21_600_000),
    ("90m", 5_400_000),
    ("3600s", 3_600_000),
    ("500ms", 500),
    ("2d", 172_800_000),
    ("1.5h", 5_400_000),
    (" 45 m ", 2_700_000),
    ("PT6H", 21_600_000),   # ISO 8601
    ("P1DT2H", 93_600_000),
    ("06:30:00", 23_400_000),
])
def test_max_retention_reads_a_duration_with_its_unit(text: str, ms: int) -> None:
    assert _ingress(max_retention=text).max_retention_ms == ms


def test_max_retention_takes_a_timedelta_given_in_code() -> None:
    assert _ingress(max_retention=timedelta(minutes=20)).max_retention_ms == 1_200_000


@pytest.mark.parametrize("value", [0, "0s", "0ms", "PT0S", "-1h", "-PT1H"])
def test_zero_or_negative_max_retention_is_refused_naming_the_field(value: Any) -> None:
    msg = _error(value)
    assert "pipeline.ingress[1].max_retention: must be positive" in msg


@pytest.mark.parametrize("value", [21600, "21600", 1.5])
def test_a_bare_number_is_refused_as_ambiguous(value: Any) -> None:
    msg = _error(value)
    assert "pipeline.ingress[1].max_retention: needs a unit" in msg
    assert "seconds or milliseconds" in msg


@pytest.mark.parametrize("value", ["6 hours", "6x", "", True, [6], "99999999999d"])
def test_what_is_not_a_duration_is_refused_naming_the_field(value: Any) -> None:
    msg = _error(value)
    assert "pipeline.ingress[1].max_retention: " in msg
    assert "Traceback" not in msg


def test_less_than_a_millisecond_is_refused() -> None:
    assert "at least 1ms" in _error("0.5ms")
