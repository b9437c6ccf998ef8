"""Bounded plaintext on ingress: the decision (what the cluster reported -> ok or the reason), the
start-up check and ``topics create`` against an in-memory Admin API answering as confluent-kafka does."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.errors import ConfigError
from router.pipeline.ingress_retention import (
    IngressBound,
    bounds_of,
    check_startup,
    format_ms,
    ingress_topic_settings,
    retention_problem,
)
from router.topic_configs import TopicConfigs, describe_topic_configs

pytestmark = pytest.mark.unit

SIX_HOURS_MS = 6 * 3600 * 1000
WEEK_MS = 7 * 24 * 3600 * 1000
BOUND = IngressBound("crm.ingress", SIX_HOURS_MS, "pipeline.ingress[0].max_retention")


def _read(retention: str | None = "3600000", cleanup: str | None = "delete", segment: str | None = "600000",
          ) -> TopicConfigs:
    values = {k: v for k, v in (("retention.ms", retention), ("cleanup.policy", cleanup), ("segment.ms", segment))
              if v is not None}
    return TopicConfigs("crm.ingress", values)


# -- the decision --------------------------------------------------------------------------------


def test_retention_shorter_than_the_bound_is_ok() -> None:
    assert retention_problem(_read(retention="3600000"), BOUND) is None


def test_retention_equal_to_the_bound_is_ok() -> None:
    assert retention_problem(_read(retention="21600000", segment="21600000"), BOUND) is None


def test_retention_longer_than_the_bound_names_topic_both_values_and_both_fixes() -> None:
    reason = retention_problem(_read(retention="21600001"), BOUND)
    assert reason is not None
    assert "ingress topic crm.ingress" in reason
    assert "retention.ms is 21600001" in reason
    assert "pipeline.ingress[0].max_retention = 21600000 ms (6h)" in reason
    assert "--entity-name crm.ingress --add-config retention.ms=21600000)" in reason
    assert "or raise pipeline.ingress[0].max_retention to at least 21600001ms" in reason
    assert "\n" not in reason


def test_kafkas_default_week_is_refused_for_retention_and_segments() -> None:
    reason = retention_problem(_read(retention=str(WEEK_MS), segment=str(WEEK_MS)), BOUND)
    assert reason is not None
    assert "retention.ms is 604800000 (7d)" in reason
    assert "segment.ms is 604800000 (7d" in reason
    assert "--add-config retention.ms=21600000,segment.ms=2160000)" in reason
    assert "raise pipeline.ingress[0].max_retention to at least 7d" in reason


def test_unlimited_retention_is_refused_and_raising_the_bound_is_not_offered() -> None:
    reason = retention_problem(_read(retention="-1"), BOUND)
    assert reason is not None
    assert "retention.ms is -1 (unlimited)" in reason
    assert "--add-config retention.ms=21600000)" in reason
    assert "raise" not in reason


def test_compaction_alone_is_refused_as_keeping_each_key_forever() -> None:
    reason = retention_problem(_read(cleanup="compact"), BOUND)
    assert reason is not None
    assert "cleanup.policy is compact (compaction keeps the last record of each key forever)" in reason
    assert "--add-config cleanup.policy=delete)" in reason
    assert "raise" not in reason


@pytest.mark.parametrize("cleanup", ["compact,delete", "delete,compact", "delete, compact"])
def test_compaction_with_deletion_is_refused_too(cleanup: str) -> None:
    reason = retention_problem(_read(cleanup=cleanup), BOUND)
    assert reason is not None
    assert f"cleanup.policy is {cleanup} (compaction keeps records past retention.ms)" in reason


def test_segments_longer_than_the_bound_are_refused() -> None:
    reason = retention_problem(_read(segment="21600001"), BOUND)
    assert reason is not None
    assert "segment.ms is 21600001" in reason
    assert "retention.ms +" in reason


@pytest.mark.parametrize(("missing", "said"), [
    ({"retention": None}, "the cluster reported no retention.ms"),
    ({"cleanup": None}, "the cluster reported no cleanup.policy"),
    ({"segment": None}, "the cluster reported no segment.ms"),
    ({"retention": "soon"}, "retention.ms is 'soon', not a number"),
])
def test_a_setting_missing_or_not_a_number_fails_closed(missing: dict[str, Any], said: str) -> None:
    reason = retention_problem(_read(**missing), BOUND)
    assert reason is not None
    assert said in reason


def test_an_unauthorized_read_names_the_missing_right() -> None:
    read = TopicConfigs("crm.ingress", error="KafkaException: denied", error_name="TOPIC_AUTHORIZATION_FAILED")
    reason = retention_problem(read, BOUND)
    assert reason is not None
    assert "crm.ingress" in reason
    assert "lacks DESCRIBE_CONFIGS on the topic" in reason
    assert "pipeline.ingress[0].max_retention" in reason


def test_another_read_failure_is_refused_with_its_error() -> None:
    read = TopicConfigs("crm.ingress", error="KafkaException: timed out", error_name="_TIMED_OUT")
    reason = retention_problem(read, BOUND)
    assert reason is not None
    assert reason.endswith("KafkaException: timed out")


def test_a_new_ingress_topic_is_created_within_its_bound() -> None:
    settings = ingress_topic_settings(SIX_HOURS_MS)
    assert settings == {"retention.ms": "21600000", "cleanup.policy": "delete", "segment.ms": "2160000"}
    assert retention_problem(TopicConfigs("crm.ingress", settings), BOUND) is None


def test_segments_of_a_short_bound_are_a_minute_and_never_longer_than_the_bound() -> None:
    assert ingress_topic_settings(300_000)["segment.ms"] == "60000"
    assert ingress_topic_settings(30_000)["segment.ms"] == "30000"


@pytest.mark.parametrize(("ms", "text"), [(21_600_000, "6h"), (604_800_000, "7d"), (5_400_000, "1h30m"),
                                          (1500, "1500ms"), (90_061_000, "1d1h1m1s")])
def test_durations_read_as_people_write_them(ms: int, text: str) -> None:
    assert format_ms(ms) == text


def _config(*ingress: dict[str, Any], topics: list[dict[str, Any]] | None = None) -> RouterConfig:
    return parse_config({
        "clusters": {"default": {"bootstrap": "localhost:9092"}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
        "topics": topics or [],
        "pipeline": {"ingress": list(ingress)},
    })


def test_bounds_name_their_entry_and_a_topic_listed_twice_gets_the_smaller_bound() -> None:
    config = _config({"topic": "a", "jurisdiction": "eu", "max_retention": "2h"},
                     {"topic": "b", "jurisdiction": "eu"},
                     {"topic": "a", "jurisdiction": "eu", "max_retention": "1h"})
    assert bounds_of(config.pipeline) == {
        "a": IngressBound("a", 3_600_000, "pipeline.ingress[2].max_retention"),
        "b": IngressBound("b", SIX_HOURS_MS, "pipeline.ingress[1].max_retention"),
    }


# -- the shells, on an in-memory Admin API -------------------------------------------------------


@dataclass
class _Entry:
    value: str | None


class _Future:
    def __init__(self, result: Any) -> None:
        self._result = result

    def result(self, timeout: float | None = None) -> Any:
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


class _Admin:
    """describe_configs, describe_cluster, describe_topics and create_topics as confluent-kafka
    answers them; topics created are kept with their config."""

    def __init__(self, configs: dict[str, dict[str, str] | Exception], brokers: dict[int, str] | None = None) -> None:
        self.configs = configs
        self.brokers = brokers or {1: "eu-west-1a"}
        self.asked: list[list[str]] = []
        self.created: dict[str, Any] = {}

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, _Future]:
        self.asked.append([r.name for r in resources])
        unknown = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        out = {}
        for r in resources:
            answer = self.configs.get(r.name, unknown)
            out[r] = _Future(answer if isinstance(answer, Exception)
                             else {k: _Entry(v) for k, v in answer.items()})
        return out

    def describe_cluster(self, request_timeout: float) -> _Future:
        return _Future(SimpleNamespace(nodes=[SimpleNamespace(id=b, rack=r) for b, r in self.brokers.items()]))

    def describe_topics(self, topics: Any, request_timeout: float) -> dict[str, _Future]:
        unknown = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        out = {}
        for name in topics.topic_names:
            if name in self.configs:
                partitions = [SimpleNamespace(id=0, replicas=[SimpleNamespace(id=b) for b in self.brokers])]
                out[name] = _Future(SimpleNamespace(partitions=partitions))
            else:
                out[name] = _Future(unknown)
        return out

    def create_topics(self, new_topics: list[Any], request_timeout: float) -> dict[str, _Future]:
        for t in new_topics:
            self.created[t.topic] = t
            self.configs[t.topic] = {"retention.ms": "604800000", "segment.ms": "604800000",
                                     "cleanup.policy": "delete", **t.config}
        return {t.topic: _Future(None) for t in new_topics}


DENIED = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
WITHIN = {"retention.ms": "3600000", "segment.ms": "600000", "cleanup.policy": "delete"}


def test_the_shared_reader_keeps_the_asked_settings_and_names_kafka_errors() -> None:
    admin = _Admin({"a": {**WITHIN, "max.message.bytes": "1048588"}, "b": DENIED})
    out = describe_topic_configs(admin, ["b", "a", "a"], ("retention.ms", "cleanup.policy"), timeout=1)
    assert out["a"] == TopicConfigs("a", {"retention.ms": "3600000", "cleanup.policy": "delete"})
    assert out["b"].error_name == "TOPIC_AUTHORIZATION_FAILED"
    assert out["b"].error is not None and out["b"].error.startswith("KafkaException: ")
    assert admin.asked == [["a", "b"]]


def test_start_up_passes_when_every_ingress_topic_keeps_within_its_bound() -> None:
    config = _config({"topic": "a", "jurisdiction": "eu"}, {"topic": "b", "jurisdiction": "eu", "max_retention": "1h"})
    admin = _Admin({"a": WITHIN, "b": WITHIN})
    check_startup(config.pipeline, admin, timeout=1)
    assert admin.asked == [["a", "b"]]


def test_start_up_refuses_in_one_line_naming_every_topic_outside_its_bound() -> None:
    config = _config({"topic": "a", "jurisdiction": "eu"}, {"topic": "b", "jurisdiction": "eu"},
                     {"topic": "c", "jurisdiction": "eu", "max_retention": "30m"})
    admin = _Admin({"a": {**WITHIN, "retention.ms": "-1"}, "b": DENIED, "c": WITHIN})
    with pytest.raises(ConfigError) as info:
        check_startup(config.pipeline, admin, timeout=1)
    msg = str(info.value)
    assert "\n" not in msg
    assert "ingress topic a may keep" in msg and "retention.ms is -1 (unlimited)" in msg
    assert "ingress topic b to check pipeline.ingress[1].max_retention" in msg and "DESCRIBE_CONFIGS" in msg
    assert "ingress topic c may keep" in msg and "retention.ms is 3600000 (1h)" in msg
    assert "pipeline.ingress[2].max_retention = 1800000 ms (30m)" in msg


def test_topics_create_gives_a_new_ingress_topic_its_bound_and_reports_an_existing_one_unaltered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from router.cli.topics import _ingress_retention
    from router.placement.kafka import create_topics

    config = _config({"topic": "new", "jurisdiction": "eu", "max_retention": "2h"},
                     {"topic": "old", "jurisdiction": "eu"},
                     topics=[{"name": "new", "jurisdiction": "eu", "partitions": 1},
                             {"name": "old", "jurisdiction": "eu", "partitions": 1},
                             {"name": "out", "jurisdiction": "eu", "partitions": 1}])
    old = {"retention.ms": "604800000", "segment.ms": "604800000", "cleanup.policy": "delete"}
    admin = _Admin({"old": dict(old)})
    create_topics(config, admin, timeout=1)
    assert admin.created["new"].config == {"retention.ms": "7200000", "cleanup.policy": "delete",
                                           "segment.ms": "720000"}
    assert admin.created["out"].config == {}  # not an ingress topic: the cluster's defaults
    assert "old" not in admin.created

    assert _ingress_retention(config, admin, 1) is False
    out = capsys.readouterr().out
    assert "new: ingress retention within pipeline.ingress[0].max_retention (2h)" in out
    assert "old: NOT ALTERED: ingress topic old may keep raw records" in out
    assert admin.configs["old"] == old  # nothing was altered
