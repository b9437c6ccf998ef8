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

from router.errors import ReasonCode, RecordError
from router.residency.engine import PolicyEngine
from router.residency.policy import Route

JSON_KEYS = ("event_id", "level", "categories", "jurisdictions", "decision", "topic", "reason", "policy_version")


@dataclass
class Summary:
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, value-free problem) of each line that is not a record object."""

    def to_json(self) -> dict[str, Any]:
        """``{"route": n, "quarantine": n, "by_reason": {...}, "bad_lines": n}``."""
        return {"route": self.decisions.get("route", 0), "quarantine": self.decisions.get("quarantine", 0),
                "by_reason": dict(sorted(self.reasons.items())), "bad_lines": len(self.bad_lines)}


_Parsed = tuple[dict[str, Any], bytes | None, bytes | None, dict[str, Any]]


def _parse(line: str) -> _Parsed | str:  # noqa: PLR0911 -- one return per problem named
    """The record object, value, key and headers of one line, or what is wrong with it (value-free)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(doc, dict):
        return "not a JSON object"
    missing = [k for k in ("format", "value_b64") if k not in doc]
    if missing:
        return f"lacks {', '.join(missing)}"
    raw_value, raw_key, headers = doc.get("value_b64"), doc.get("key_b64"), doc.get("headers") or {}
    if not isinstance(doc["format"], str):
        return "format is not a string"
    if not all(x is None or isinstance(x, str) for x in (raw_value, raw_key)):
        return "key_b64 / value_b64 must be a string or null"
    if not isinstance(headers, dict):
        return "headers is not an object"
    try:
        value = None if raw_value is None else base64.b64decode(raw_value, validate=True)
        key = None if raw_key is None else base64.b64decode(raw_key, validate=True)
    except binascii.Error:
        return "key_b64 / value_b64 is not base64"
    return doc, value, key, headers


def _options(fmt: str) -> dict[str, Any]:
    """Avro decoders read schemas from the repository's ``schemas/`` directory."""
    if "avro" not in fmt and fmt != "auto":
        return {}
    from router.ingest.samples import default_schema_store  # noqa: PLC0415

    return {"schema_store": default_schema_store()}


def simulate(engine: PolicyEngine, lines: Iterable[str], summary: Summary) -> Iterator[dict[str, Any]]:
    """One result row (keys :data:`JSON_KEYS`) per good line; bad lines go to ``summary.bad_lines``."""
    from router.ingest import decoder_for  # noqa: PLC0415 -- the decoders load only when simulating

    decoders: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse(line)
        if isinstance(parsed, str):
            summary.bad_lines.append((number, parsed))
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
        except Exception:  # a decoder bug: quarantined as in the pipeline, never a traceback with data
            row.update(decision="quarantine", reason=ReasonCode.PROCESSING_ERROR.value, categories=[],
                       jurisdictions=[],
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
