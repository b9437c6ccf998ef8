"""``simulate``: decode -> classify -> resolve -> decide over a JSONL file of records, no Kafka.

Each input line is ``{"format": <decoder>, "key_b64": ..., "value_b64": ..., "headers": {...}}``
(optionally ``"connector"``: the ingress identity, for trusted headers). A decode failure is a
quarantine line with the decoder's reason, as in the pipeline; a line that is not such an object is
a *bad line*, reported by number, and the run continues. Output never contains field values.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from router.errors import RecordError
from router.residency.engine import Engine
from router.residency.policy import Route

JSON_KEYS = ("event_id", "level", "categories", "jurisdictions", "decision", "topic", "reason", "policy_version")


@dataclass
class Summary:
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    bad_lines: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"decisions": dict(self.decisions), "reasons": dict(self.reasons),
                "bad_lines": list(self.bad_lines)}


_Parsed = tuple[dict[str, Any], bytes | None, bytes | None, dict[str, Any]]


def _parse(line: str) -> _Parsed | None:
    """The record object, value, key and headers of one line, or None for a bad line."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str) or "value_b64" not in doc:
        return None
    raw_value, raw_key, headers = doc.get("value_b64"), doc.get("key_b64"), doc.get("headers") or {}
    if not all(x is None or isinstance(x, str) for x in (raw_value, raw_key)) or not isinstance(headers, dict):
        return None
    try:
        value = None if raw_value is None else base64.b64decode(raw_value, validate=True)
        key = None if raw_key is None else base64.b64decode(raw_key, validate=True)
    except binascii.Error:
        return None
    return doc, value, key, headers


def _options(fmt: str) -> dict[str, Any]:
    """Avro decoders read schemas from the repository's ``schemas/`` directory."""
    if "avro" not in fmt and fmt != "auto":
        return {}
    from router.ingest.samples import default_schema_store  # noqa: PLC0415

    return {"schema_store": default_schema_store()}


def simulate(engine: Engine, lines: Iterable[str], summary: Summary) -> Iterator[dict[str, Any]]:
    """One result row (keys :data:`JSON_KEYS`) per good line; bad lines go to ``summary.bad_lines``."""
    from router.ingest import decoder_for  # noqa: PLC0415 -- the decoders load only when simulating

    decoders: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse(line)
        if parsed is None:
            summary.bad_lines.append(number)
            continue
        doc, value, key, headers = parsed
        row: dict[str, Any] = dict.fromkeys(JSON_KEYS)
        row["policy_version"] = engine.version
        try:
            fmt = doc["format"]
            if fmt not in decoders:
                decoders[fmt] = decoder_for(fmt, **_options(fmt))
            event = decoders[fmt].decode(value, key=key, headers={str(k): str(v) for k, v in headers.items()})
        except RecordError as err:
            row.update(decision="quarantine", reason=err.reason.value, categories=[], jurisdictions=[],
                       topic=engine.policy.config.quarantine_topic.format(jurisdiction=engine.home, entity=""))
        else:
            out = engine.evaluate(event, connector=doc.get("connector"))
            d = out.decision
            row.update(event_id=event.event_id, level=out.classification.level.value,
                       categories=sorted(c.value for c in out.classification.categories),
                       jurisdictions=list(out.resolution.jurisdictions), topic=d.topic,
                       decision="route" if isinstance(d, Route) else "quarantine", reason=d.reason.value)
        summary.decisions[row["decision"]] += 1
        summary.reasons[row["reason"]] += 1
        yield row
