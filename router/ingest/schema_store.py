"""Where Avro schemas come from: a directory of ``.avsc`` files with ids, or a Schema Registry.

Both implement :class:`SchemaStore`. Parsed schemas are cached per id; an unknown id raises
:class:`DecodeError` with UNKNOWN_SCHEMA.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema

from router.errors import ReasonCode
from router.ingest.errors import DecodeError


@dataclass(frozen=True)
class StoredSchema:
    schema_id: int
    parsed: Any
    raw: dict[str, Any]

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.raw.get("fields", [])]

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``parsed, raw = store.get(schema_id)``."""
        yield self.parsed
        yield self.raw


class SchemaStore(Protocol):
    """``get(schema_id)`` returns the parsed schema and its raw dict (a :class:`StoredSchema`, which
    also unpacks as ``(parsed, raw)``); an unknown id raises DecodeError(UNKNOWN_SCHEMA)."""

    def get(self, schema_id: int) -> StoredSchema: ...


class DirectorySchemaStore:
    """``registry.json`` (``{"<id>": "<file>.avsc"}``) and the ``.avsc`` files beside it."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index = self.directory / "registry.json"
        try:
            mapping = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema index {index} unreadable: {err}", None) from None
        self._files = {int(k): v for k, v in mapping.items()}
        self._cache: dict[int, StoredSchema] = {}
        self._lock = threading.Lock()

    def ids(self) -> dict[int, str]:
        return dict(self._files)

    def id_of(self, name: str) -> int:
        """The id of the schema whose record name (or file stem) is ``name``."""
        for sid, file in self._files.items():
            if Path(file).stem == name or self.get(sid).raw.get("name") == name:
                return sid
        raise KeyError(name)

    def get(self, schema_id: int) -> StoredSchema:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        file = self._files.get(schema_id)
        if file is None:
            raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not in {self.directory}", None)
        raw = json.loads((self.directory / file).read_text(encoding="utf-8"))
        stored = StoredSchema(schema_id, parse_schema(raw), raw)
        with self._lock:
            self._cache[schema_id] = stored
        return stored


class HttpSchemaRegistry:
    """A Confluent-compatible Schema Registry (``GET /schemas/ids/{id}``), cached, bounded by a timeout."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._cache: dict[int, StoredSchema] = {}

    def get(self, schema_id: int) -> StoredSchema:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        try:
            with urllib.request.urlopen(f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout) as resp:  # noqa: S310 - configured http(s) URL
                body = json.loads(resp.read(4 * 1024 * 1024))
            raw = json.loads(body["schema"])
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise DecodeError(
                    ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} unknown to {self.url}", None
                ) from None
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, f"schema registry {self.url} answered {err.code}", None
            ) from None
        except (OSError, ValueError, KeyError) as err:
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, f"schema registry {self.url} unreachable: {type(err).__name__}", None
            ) from None
        stored = StoredSchema(schema_id, parse_schema(raw), raw)
        self._cache[schema_id] = stored
        return stored


def default_schema_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "schemas"
