"""Log output for the command line: ``key=value`` text (the default) or one JSON object per line
(``--log-format json``), both on stderr.

A JSON line holds ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``,
plus ``trace_id`` / ``span_id`` while an OpenTelemetry span is current (the same ids the output
records' ``traceparent`` and the audit records carry). An exception adds ``exc_type`` and
``exc_frames`` (``file:line in function``, innermost last): never its locals, and its message only
when it is a :class:`router.errors.RouterError`, whose messages are value-free by rule (another
library's message may quote the input it failed on).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any, Literal

from opentelemetry import trace

from router.errors import RouterError

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
TEXT_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = f"{ctx.trace_id:032x}"
            entry["span_id"] = f"{ctx.span_id:016x}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["exc_type"] = type(exc).__name__
            if isinstance(exc, RouterError):
                entry["exc_message"] = str(exc)
            entry["exc_frames"] = [
                f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
            ]
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Replace the root logger's handlers with one on stderr in ``fmt`` at ``level`` (a name such
    as INFO; an unknown name means INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(
        level=logging.getLevelNamesMapping().get(str(level).upper(), logging.INFO), handlers=[handler], force=True
    )
