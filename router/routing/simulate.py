"""``simulate``: the decision ``run`` takes, over a file of records, without Kafka.

Every record goes through the same :class:`~router.routing.CoreEvaluator` ``run`` builds from the
config (the ingress topic's decoder, jurisdiction and trust; the configured topics), so a decision
printed here is the decision ``run`` takes, except what only the cluster can say (placement
violations at that moment, key outages).

Input lines, read as bytes, are UTF-8 text (JSON); a line that is not is a *bad line*, reported by
number with the position of its first undecodable byte (never the bytes), and the file goes on:

* a *wrapped* line: a JSON object with ``value_b64`` (and optionally ``format``, ``key_b64``,
  ``headers``, ``topic``), as :func:`router.devtools.samples.write_jsonl` writes;
* any other line: the raw record value, one per line, as a connector writes it (Salesforce or
  Debezium JSON); decoded by ``--format`` or the ingress topic's decoder.

A wrapped line that cannot be read (bad base64, wrong types) is a bad line too. A wrapped value may
hold any bytes (Avro, or text in another encoding): it is a record, decided like ``run`` decides it.
Output never contains field values.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.config.models import RouterConfig
from router.errors import ConfigError, RecordError
from router.residency.resolver import Origin
from router.routing.build import decoder, evaluator_for, schema_store_for
from router.routing.evaluate import CoreEvaluator, Evaluation, Ingress

JSON_KEYS = ("line", "event_id", "level", "categories", "field_names", "jurisdictions", "decision", "topic",
             "reason", "detail", "policy_version")


@dataclass
class Summary:
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, value-free problem) of each line that could not be read."""

    @property
    def read(self) -> int:
        return sum(self.decisions.values())

    def to_json(self) -> dict[str, Any]:
        """``{"route": n, "quarantine": n, "audit_only": n, "by_reason": {...}, "bad_lines": n}``."""
        return {"route": self.decisions.get("route", 0), "quarantine": self.decisions.get("quarantine", 0),
                "audit_only": self.decisions.get("audit_only", 0),
                "by_reason": dict(sorted(self.reasons.items())), "bad_lines": len(self.bad_lines)}


@dataclass(frozen=True, slots=True)
class _Record:
    value: bytes | None
    key: bytes | None
    headers: dict[str, str]
    fmt: str | None


def _b64(doc: dict[str, Any], name: str) -> bytes | None:
    raw = doc.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{name} must be a base64 string or null")  # noqa: TRY004 - reported as a bad line
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError(f"{name} is not base64") from None


def _wrapped(doc: dict[str, Any]) -> _Record | str:
    """The record a wrapped line's object holds, or what is wrong with it (value-free)."""
    if "value_b64" not in doc:
        return "lacks value_b64"
    fmt, headers = doc.get("format"), doc.get("headers") or {}
    if fmt is not None and not isinstance(fmt, str):
        return "format is not a string"
    if not isinstance(headers, dict):
        return "headers is not an object"
    try:
        value, key = _b64(doc, "value_b64"), _b64(doc, "key_b64")
    except ValueError as err:
        return str(err)
    return _Record(value, key, {str(k): str(v) for k, v in headers.items()}, fmt)


def read_line(line: bytes) -> _Record | str:
    """The record one line holds, or what is wrong with it (value-free)."""
    text = line.rstrip(b"\r\n")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 text (byte {err.start + 1})"
    doc: Any = None
    if text.lstrip()[:1] == b"{":
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
    if not (isinstance(doc, dict) and ("value_b64" in doc or "format" in doc)):
        return _Record(text, None, {}, None)  # a raw record value
    return _wrapped(doc)


def row_of(number: int, ev: Evaluation, quarantine_topic: str) -> dict[str, Any]:
    decision = "audit_only" if ev.audit_only else "route" if ev.route_topic is not None else "quarantine"
    topic = ev.route_topic if ev.route_topic is not None else None if ev.audit_only else quarantine_topic
    return {"line": number, "event_id": ev.event_id, "level": ev.level, "categories": list(ev.categories),
            "field_names": list(ev.field_names), "jurisdictions": list(ev.jurisdictions), "decision": decision,
            "topic": topic, "reason": ev.reason.value, "detail": ev.detail, "policy_version": ev.policy_version}


class Simulator:
    """Decides lines as ``run`` decides records of one ingress topic of ``config``."""

    def __init__(self, config: RouterConfig, base_dir: Any = None, *, topic: str | None = None,
                 fmt: str | None = None) -> None:
        if config.pipeline is None or not config.pipeline.ingress:
            raise ConfigError("simulate needs the config's 'pipeline.ingress' (each ingress topic's decoder, "
                              "jurisdiction and trust decide how its records are read)")
        entries = {i.topic: i for i in config.pipeline.ingress}
        if topic is not None and topic not in entries:
            raise ConfigError(f"--topic {topic} is not under pipeline.ingress (known: {', '.join(entries)})")
        self.config = config
        self.topic = topic or config.pipeline.ingress[0].topic
        self.store = schema_store_for(config)
        self.core: CoreEvaluator = evaluator_for(config, base_dir, store=self.store)
        self.origin: Origin = self.core.ingress[self.topic].origin
        self._entry = entries[self.topic]
        self._decoders: dict[str | None, Ingress] = {None: self.core.ingress[self.topic],
                                                     self._entry.decoder: self.core.ingress[self.topic]}
        if fmt is not None:
            self._decoders[None] = self._ingress_for(fmt)

    def _ingress_for(self, fmt: str) -> Ingress:
        """The decoder ``fmt`` with the ingress entry's options that ``fmt`` accepts."""
        if fmt == self._entry.decoder:
            return self.core.ingress[self.topic]
        from router.pipeline.config import DECODER_OPTIONS  # noqa: PLC0415

        model = DECODER_OPTIONS.get(fmt)
        accepted = set(model.model_fields) if model is not None else set()
        options = {k: v for k, v in self._entry.decoder_options().items() if k in accepted}
        try:
            return Ingress(decoder(fmt, options, self.config, self.store), self.origin)
        except RecordError as err:
            raise ConfigError(f"format {fmt[:40]!r}: {err.detail}") from None

    def _evaluate(self, rec: _Record) -> Evaluation:
        spec = self._decoders.get(rec.fmt)
        if spec is None:
            spec = self._decoders[rec.fmt] = self._ingress_for(str(rec.fmt))
        self.core.ingress[self.topic] = spec
        try:
            return self.core(self.topic, rec.value, rec.key, rec.headers)
        finally:
            self.core.ingress[self.topic] = self._decoders[None]

    def run(self, lines: Iterable[bytes], summary: Summary) -> Iterator[dict[str, Any]]:
        """One row (keys :data:`JSON_KEYS`) per record line; bad lines go to ``summary.bad_lines``."""
        policy = self.core.engine.policy
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            rec = read_line(line)
            if isinstance(rec, str):
                summary.bad_lines.append((number, rec))
                continue
            try:
                ev = self._evaluate(rec)
            except ConfigError as err:
                summary.bad_lines.append((number, str(err)))
                continue
            row = row_of(number, ev, policy.quarantine_topic(ev.jurisdiction))
            summary.decisions[row["decision"]] += 1
            summary.reasons[row["reason"]] += 1
            yield row
