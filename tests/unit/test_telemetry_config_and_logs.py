"""The ``telemetry:`` section's validation, and JSON log lines: valid JSON with level, logger and
message, trace ids inside a span, and never an exception's locals or a foreign exception's message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from router.cli.main import build_parser
from router.config.loader import parse_config
from router.errors import ConfigError, RouterError
from router.telemetry.logs import JsonFormatter

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "clusters": {"default": {"bootstrap": "localhost:9092"}},
    "jurisdictions": {"eu": {"racks": ["eu-*"]}},
}


def test_telemetry_is_off_without_the_section() -> None:
    assert parse_config(dict(BASE)).telemetry is None


def test_telemetry_settings_load() -> None:
    cfg = parse_config({**BASE, "telemetry": {"metrics_address": "127.0.0.1:9464",
                                              "otlp_endpoint": "http://collector:4318/"}})
    assert cfg.telemetry is not None
    assert cfg.telemetry.metrics_address == "127.0.0.1:9464"
    assert cfg.telemetry.otlp_endpoint == "http://collector:4318"  # signal paths are appended to it
    assert parse_config({**BASE, "telemetry": {"metrics_address": "[::1]:0"}}).telemetry is not None


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("metrics_address", "9464"),
        ("metrics_address", "localhost:"),
        ("metrics_address", "localhost:99999"),
        ("metrics_address", ":9464"),
        ("otlp_endpoint", "collector:4318"),
        ("otlp_endpoint", "grpc://collector:4317"),
        ("otlp_endpoint", "http://collector:4318/?x=1"),
        ("lag_interval_s", 0),
        ("nonsense", 1),
    ],
)
def test_a_bad_telemetry_setting_is_refused_naming_it(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"telemetry\.{setting}"):
        parse_config({**BASE, "telemetry": {setting: value}})


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("router.test.jsonlogs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_each_record_is_one_json_line_with_level_logger_and_message(json_log: Any) -> None:
    logger, out = json_log
    logger.info("assigned %s", ["crm.ingress[0]"])
    logger.warning('a "quoted"\nmultiline %d', 2)
    first, second = _lines(out)
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "router.test.jsonlogs",
                                                                   "assigned ['crm.ingress[0]']")
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert "trace_id" not in first  # no span is current
    assert (second["level"], second["message"]) == ("WARNING", 'a "quoted"\nmultiline 2')


def test_an_exception_gives_its_type_and_frames_never_its_locals_or_a_foreign_message(json_log: Any) -> None:
    logger, out = json_log

    def decode(record_value: str) -> None:
        parsed = {"Email": record_value}  # a local holding a field value
        raise ValueError(f"cannot parse {parsed['Email']}")  # a library that quotes its input

    try:
        decode("anna.canary@example.de")
    except ValueError:
        logger.exception("record crm.ingress[0]@7 failed")
    try:
        raise ConfigError("telemetry.metrics_address: cannot listen there")
    except RouterError:
        logger.error("start-up refused", exc_info=True)
    foreign, ours = _lines(out)
    assert foreign["message"] == "record crm.ingress[0]@7 failed"
    assert foreign["exc_type"] == "ValueError" and "exc_message" not in foreign
    assert foreign["exc_frames"][-1].endswith(" in decode")
    assert "canary" not in out.getvalue()
    assert ours["exc_type"] == "ConfigError"
    assert ours["exc_message"] == "telemetry.metrics_address: cannot listen there"


def test_inside_a_span_the_line_carries_its_trace_and_span_ids(json_log: Any) -> None:
    logger, out = json_log
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("batch") as span:
        logger.info("inside")
        ctx = span.get_span_context()
    (line,) = _lines(out)
    assert line["trace_id"] == f"{ctx.trace_id:032x}" and line["span_id"] == f"{ctx.span_id:016x}"
    assert trace.get_current_span().get_span_context().is_valid is False


def test_log_format_is_a_global_option_and_an_option_of_run() -> None:
    parser = build_parser()
    assert parser.parse_args(["--log-format", "json", "run", "--config", "c.yaml"]).log_format == "json"
    assert parser.parse_args(["run", "--config", "c.yaml", "--log-format", "json"]).log_format == "json"
    assert parser.parse_args(["run", "--config", "c.yaml"]).log_format == "text"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml", "run", "--config", "c.yaml"])
