"""The ``pipeline:`` config section: consumer group, transactions, batching, failure policies.

Each ``pipeline.ingress[]`` entry names a topic, the jurisdiction its raw data may sit in, whether
its writers are restricted (``trusted``), its decoder and how long the topic may keep records
(``max_retention``: the raw CDC there is in clear). Decoder options are validated per decoder
when the config loads (:data:`DECODER_OPTIONS`); :meth:`IngressConfig.decoder_options` hands them to
``router.ingest.decoder_for`` as constructor keyword arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from router.config.base import ClusterConfig, JurisdictionName, StrictModel

DecoderName = Literal["salesforce-json", "salesforce-avro", "confluent-avro", "debezium-json", "generic-json", "auto"]
DECODERS: tuple[str, ...] = get_args(DecoderName)

ENVELOPE_HEADROOM_BYTES = 16_384
"""What ``pipeline.max_record_bytes`` must leave free under the producer's ``message.max.bytes``:
sealing adds about 1 KB (envelope header, manifest, signature, Kafka headers); the rest is margin."""
PRODUCER_DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``, in force unless a cluster's ``client`` sets it."""

_Text = Annotated[str, Field(min_length=1)]

DEFAULT_MAX_RETENTION = timedelta(hours=6)
"""``pipeline.ingress[].max_retention`` when the entry does not set it."""

_DURATION = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d*)?$")
_DURATION_FORMS = "a duration with a unit (6h, 90m, 3600s, 500ms, 2d) or in ISO 8601 (PT6H)"
_NOT_POSITIVE = "must be positive: it bounds how long the ingress topic keeps records"


def parse_duration(value: Any) -> timedelta:
    """A config duration: a :class:`~datetime.timedelta`, ``<number><unit>`` with unit ``ms``, ``s``,
    ``m``, ``h`` or ``d`` (``6h``, ``90m``, ``1.5h``), or what pydantic reads as a timedelta from a
    string (ISO 8601 ``PT6H``, ``6:00:00``). A bare number is refused (raises ValueError): the
    config's other durations are numbers of seconds (``*_s``) or milliseconds (``*_ms``, and Kafka's
    ``retention.ms``), so a number without its unit could mean either."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and not _NUMBER.match(value.strip()):
        text = value.strip()
        if (m := _DURATION.match(text)) is not None:
            try:
                return timedelta(microseconds=int(Decimal(m[1]) * _UNIT_MS[m[2]] * 1000))
            except OverflowError:
                raise ValueError("is longer than a duration can be (999999999 days)") from None
        try:
            return TypeAdapter(timedelta).validate_python(text)
        except ValidationError:
            pass
    if isinstance(value, int | float | str) and not isinstance(value, bool) and _NUMBER.match(str(value).strip()):
        if Decimal(str(value).strip()) <= 0:
            raise ValueError(_NOT_POSITIVE)
        raise ValueError(f"needs a unit: {_DURATION_FORMS}; a bare number could mean seconds or milliseconds")
    raise ValueError(f"must be {_DURATION_FORMS}")


class DecoderOptions(StrictModel):
    """Base of the per-decoder option models: unknown options rejected, no type coercion."""

    model_config = ConfigDict(strict=True)


class SalesforceJsonOptions(DecoderOptions):
    """``salesforce-json`` takes no options."""


class SalesforceAvroOptions(DecoderOptions):
    """``salesforce-avro``: Avro bodies as the Pub/Sub API delivers them."""

    schema_id: int | None = Field(
        default=None, ge=0, description="schema id of records without a schema-id / sf-schema-id header"
    )


class TableEntityOptions(DecoderOptions):
    """``debezium-json``, ``confluent-avro`` and ``auto``: how a source table names its entity."""

    entity: _Text | None = Field(
        default=None,
        description="entity of every table 'entities' does not name (default: the table's name, made singular)",
    )
    entities: dict[_Text, _Text] = Field(
        default_factory=dict,
        description="source table ('<table>', '<schema>.<table>', '<db>.<table>'; case-insensitive) -> entity",
    )

    @field_validator("entities")
    @classmethod
    def _tables_once(cls, v: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for table in v:
            if table.lower() in seen:
                raise ValueError(
                    f"tables {seen[table.lower()]!r} and {table!r} are the same (table names are case-insensitive)"
                )
            seen[table.lower()] = table
        return v


class GenericJsonOptions(DecoderOptions):
    """``generic-json``: where entity, id, operation, timestamp and tenant live (dotted paths)."""

    entity_field: _Text | None = "entity"
    id_field: _Text = "id"
    operation_field: _Text | None = Field(default="operation", description="null: every event is an update")
    timestamp_field: _Text | None = "timestamp"
    tenant_field: _Text | None = None
    entity: _Text | None = Field(default=None, description="entity of every event (instead of entity_field)")
    values_field: _Text | None = Field(default=None, description="the record's fields (default: the whole event)")
    event_id_field: _Text | None = None


DECODER_OPTIONS: dict[str, type[DecoderOptions]] = {
    "salesforce-json": SalesforceJsonOptions,
    "salesforce-avro": SalesforceAvroOptions,
    "confluent-avro": TableEntityOptions,
    "debezium-json": TableEntityOptions,
    "generic-json": GenericJsonOptions,
    "auto": TableEntityOptions,
}

SUPPLIED_BY_ROUTER: dict[str, str] = {
    "max_bytes": "the size limit is pipeline.max_record_bytes",
    "schema_store": "the schema store is pipeline.schema_dir or pipeline.schema_registry_url",
}
"""Decoder constructor arguments the router supplies itself, and where the user sets them."""


def _option_error(decoder: str, err: dict[str, Any]) -> InitErrorDetails:
    """One error of a decoder's options, re-located under ``options`` by pydantic."""
    if err["type"] != "extra_forbidden":
        details = InitErrorDetails(type=err["type"], loc=tuple(err["loc"]), input=err["input"])
        if "ctx" in err:
            details["ctx"] = err["ctx"]
        return details
    name = str(err["loc"][0])
    if name in SUPPLIED_BY_ROUTER:
        where = SUPPLIED_BY_ROUTER[name]
        error = PydanticCustomError("router_option", "not a decoder option: {where}", {"where": where})
    else:
        known = ", ".join(sorted(DECODER_OPTIONS[decoder].model_fields)) or "none"
        error = PydanticCustomError(
            "unknown_option",
            "unknown option for decoder {decoder} (known: {known})",
            {"decoder": decoder, "known": known},
        )
    return InitErrorDetails(type=error, loc=tuple(err["loc"]), input=err["input"])


class IngressConfig(StrictModel):
    """One ingress topic: where its raw data may sit, whether its writers are trusted, its decoder."""

    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    jurisdiction: JurisdictionName = Field(
        description="the jurisdiction the topic's raw data may sit in (a name under 'jurisdictions'); an event "
        "whose own jurisdiction cannot be known is quarantined here",
    )
    trusted: bool = Field(
        default=False,
        description="the deployment restricts who writes this topic: only then may producer-supplied headers "
        "bind a jurisdiction or tenant (elsewhere a header can only turn a route into a quarantine)",
    )
    decoder: DecoderName = Field(
        default="auto",
        description="salesforce-json, salesforce-avro, confluent-avro, debezium-json, generic-json or auto",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the decoder's options, checked against its model in DECODER_OPTIONS (e.g. generic-json's "
        "field mapping); holds only the options the user set",
    )
    max_retention: timedelta = Field(
        default=DEFAULT_MAX_RETENTION,
        description="the longest the topic may keep a record (its raw CDC is in clear there): `run` refuses to "
        "start while the topic's retention.ms is larger or unlimited, its segment.ms larger, or its cleanup.policy "
        "compacts; `topics create` creates the topic with retention.ms set to it. 6h, 90m, 3600s, 2d or PT6H",
    )

    @field_validator("max_retention", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return parse_duration(v)

    @field_validator("max_retention")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError(_NOT_POSITIVE)
        if v < timedelta(milliseconds=1):
            raise ValueError("must be at least 1ms (Kafka's retention.ms counts whole milliseconds)")
        return v

    @property
    def max_retention_ms(self) -> int:
        """``max_retention`` in whole milliseconds, the unit of Kafka's ``retention.ms``."""
        return self.max_retention // timedelta(milliseconds=1)

    @field_validator("options", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("options")
    @classmethod
    def _options_of_the_decoder(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        decoder = info.data.get("decoder")
        if decoder is None:  # the decoder name itself is wrong: that error is reported
            return v
        try:
            typed = DECODER_OPTIONS[decoder].model_validate(v)
        except ValidationError as err:
            # Raised from a field validator, a ValidationError keeps its locations below 'options'.
            raise ValidationError.from_exception_data(
                err.title, [_option_error(decoder, dict(e)) for e in err.errors()]
            ) from None
        return typed.model_dump(exclude_unset=True)

    def decoder_options(self) -> dict[str, Any]:
        """The validated options as keyword arguments of the decoder's constructor.

        Only the options the user set: the decoder's constructor supplies the defaults of the others
        (the option models repeat them for documentation). ``max_bytes`` (``pipeline.max_record_bytes``)
        and ``schema_store`` are the caller's to add.
        """
        return dict(self.options)


class PipelineConfig(StrictModel):
    """How the router consumes, batches and commits."""

    ingress: list[IngressConfig] = Field(min_length=1, description="the topics the router consumes")
    schema_dir: Path | None = Field(
        default=None,
        description="directory of .avsc files with registry.json (default: the schemas shipped with the router)",
    )
    schema_registry_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="a Confluent-compatible Schema Registry instead of schema_dir",
    )

    group_id: str = Field(default="residency-router", min_length=1, description="consumer group of all instances")
    transactional_id_prefix: str = Field(
        default="residency-router",
        min_length=1,
        description="each instance uses '<prefix>-<instance id>' as its stable transactional.id",
    )
    batch_size: int = Field(default=500, ge=1, le=100_000, description="records per consume() call")
    commit_interval_ms: int = Field(
        default=100, ge=1, le=60_000, description="commit a transaction at least this often"
    )
    commit_max_records: int = Field(
        default=5000, ge=1, description="commit once this many records are in a transaction"
    )
    session_timeout_ms: int = Field(default=10_000, ge=6000, le=300_000)
    transaction_timeout_ms: int = Field(default=10_000, ge=1000, le=900_000)
    stall_backoff_max_s: float = Field(
        default=10.0, gt=0, le=300,
        description="longest wait before retrying a stalled batch or a transaction that could not commit",
    )
    abort_escalate_after: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="transactions failing in a row (aborted, or the producer re-created) before the router logs an "
        "ERROR naming the likely cause and remedy (repeated every as many again); it keeps retrying at "
        "stall_backoff_max_s and resumes by itself once the cause is gone",
    )
    max_record_bytes: int = Field(
        default=900_000,
        ge=1024,
        description="larger ingress records are quarantined OVERSIZED. Sealed output adds about 1 KB, so this "
        f"must stay at least {ENVELOPE_HEADROOM_BYTES} bytes under the producer's message.max.bytes (librdkafka "
        f"default {PRODUCER_DEFAULT_MESSAGE_MAX_BYTES}; raise it under clusters.<name>.client, with the brokers' "
        "message.max.bytes / the topics' max.message.bytes); an output still too large is quarantined without "
        "its payload",
    )


def check_record_size(clusters: Mapping[str, ClusterConfig], pipeline: PipelineConfig | None) -> None:
    """Raise ValueError unless ``pipeline.max_record_bytes`` leaves :data:`ENVELOPE_HEADROOM_BYTES`
    under every cluster's producer ``message.max.bytes`` (its ``client`` property, else librdkafka's
    default), so that a record just under the limit still fits once sealed."""
    for name, cluster in clusters.items():
        setting = f"clusters.{name}.client['message.max.bytes']"
        raw = cluster.client.get("message.max.bytes")
        if raw is not None and not (raw.isascii() and raw.strip().isdigit()):
            raise ValueError(f"{setting} must be an integer number of bytes, not {raw!r}")
        if pipeline is None:
            continue
        limit = int(raw) if raw is not None else PRODUCER_DEFAULT_MESSAGE_MAX_BYTES
        room = limit - ENVELOPE_HEADROOM_BYTES
        if pipeline.max_record_bytes > room:
            source = f"{setting} ({limit})" if raw is not None else (
                f"message.max.bytes (librdkafka's default {limit}; {setting} is not set)"
            )
            raise ValueError(
                f"pipeline.max_record_bytes ({pipeline.max_record_bytes}) must be at most {source} - "
                f"{ENVELOPE_HEADROOM_BYTES} = {room}: a record that large would not fit once sealed; lower "
                f"pipeline.max_record_bytes or raise {setting} (and the brokers' limit to match)"
            )
