"""``pipeline.max_record_bytes`` leaves room for the envelope within the producer's message.max.bytes."""

from __future__ import annotations

from typing import Any

import pytest

from router.config.loader import parse_config
from router.errors import ConfigError
from router.pipeline.config import ENVELOPE_HEADROOM_BYTES, PipelineConfig

pytestmark = pytest.mark.unit


def _base(client: dict[str, str] | None = None, **pipeline: Any) -> dict[str, Any]:
    return {
        "clusters": {"default": {"bootstrap": "localhost:9092", "client": client or {}}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
        "pipeline": {"ingress": [{"topic": "crm.ingress", "jurisdiction": "eu"}], **pipeline},
    }


def _error(cfg: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    return str(info.value)


def test_default_leaves_room_under_the_producers_default_message_max_bytes() -> None:
    cfg = parse_config(_base())
    assert cfg.pipeline is not None
    assert cfg.pipeline.max_record_bytes == 900_000
    assert cfg.pipeline.max_record_bytes <= 1_000_000 - ENVELOPE_HEADROOM_BYTES


def test_field_description_explains_the_envelope_headroom() -> None:
    text = PipelineConfig.model_fields["max_record_bytes"].description or ""
    assert "message.max.bytes" in text
    assert "1 KB" in text
    assert "quarantined" in text


def test_a_limit_the_default_producer_cannot_carry_is_rejected() -> None:
    msg = _error(_base(max_record_bytes=1_048_576))
    assert "pipeline.max_record_bytes" in msg
    assert "message.max.bytes" in msg
    assert "1000000" in msg


def test_a_limit_above_the_clusters_message_max_bytes_is_rejected_naming_both() -> None:
    msg = _error(_base({"message.max.bytes": "500000"}))
    assert "pipeline.max_record_bytes (900000)" in msg
    assert "clusters.default.client['message.max.bytes'] (500000)" in msg
    assert str(500_000 - ENVELOPE_HEADROOM_BYTES) in msg


def test_exactly_the_headroom_is_enough() -> None:
    limit = 2_000_000
    parse_config(_base({"message.max.bytes": str(limit)}, max_record_bytes=limit - ENVELOPE_HEADROOM_BYTES))
    msg = _error(_base({"message.max.bytes": str(limit)}, max_record_bytes=limit - ENVELOPE_HEADROOM_BYTES + 1))
    assert "pipeline.max_record_bytes" in msg


def test_a_raised_message_max_bytes_allows_larger_records() -> None:
    cfg = parse_config(_base({"message.max.bytes": "4000000"}, max_record_bytes=3_000_000))
    assert cfg.pipeline is not None
    assert cfg.pipeline.max_record_bytes == 3_000_000


def test_message_max_bytes_must_be_a_number() -> None:
    msg = _error(_base({"message.max.bytes": "1MB"}))
    assert "clusters.default.client['message.max.bytes']" in msg
    assert "integer" in msg
