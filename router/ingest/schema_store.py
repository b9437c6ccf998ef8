"""Where Avro schemas come from: a directory of ``.avsc`` files with ids, or a Schema Registry.

Both implement :class:`SchemaStore`. Parsed schemas are cached per id; an unknown id raises
:class:`DecodeError` with UNKNOWN_SCHEMA. A registry that cannot answer raises
:class:`SchemaRegistryUnavailable` (an outage: stall, do not quarantine).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema

from router.errors import ReasonCode
from router.ingest.errors import DecodeError, SchemaRegistryUnavailable
from router.resources import schema_dir

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class _UnsafeSchema(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _SchemaWalk:
    """Checks that a schema can be read safely, whatever the input bytes:

    * no array or map whose items can encode in zero bytes (``null``, a record whose fields all
      encode in zero bytes, ``fixed`` of size 0, recursively): a block count of 2**40 in 7 bytes
      would make the reader allocate without bound (review appendix A6);
    * no recursive named type: fastavro reads nesting recursively in C, and about 10 KB of nesting
      bytes overflow the stack and kill the process. CDC schemas are never recursive.
    """

    def __init__(self) -> None:
        self.zero: dict[str, bool] = {}  # full name -> whether it encodes in zero bytes
        self.stack: list[str] = []

    @staticmethod
    def _full(name: str, namespace: str | None) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def visit(self, t: Any, ns: str | None) -> bool:
        """Whether ``t`` can encode in zero bytes; raises _UnsafeSchema."""
        if isinstance(t, str):
            return t == "null" if t in _PRIMITIVES else self._reference(t, ns)
        if isinstance(t, list):  # a union: its branch index takes at least one byte
            for branch in t:
                self.visit(branch, ns)
            return False
        if not isinstance(t, dict):
            return False
        kind = t.get("type")
        if kind in ("record", "error", "enum", "fixed") and isinstance(t.get("name"), str):
            return self._named(t, ns)
        if kind in ("array", "map"):  # a block count takes at least one byte, whatever the items
            if self.visit(t.get("items" if kind == "array" else "values"), ns):
                raise _UnsafeSchema("has an array/map of zero-byte items")
            return False
        return self.visit(kind, ns)  # {"type": "string", "logicalType": ...} and the like

    def _reference(self, name: str, ns: str | None) -> bool:
        for full in (self._full(name, ns), name):
            if full in self.stack:
                raise _UnsafeSchema("is recursive (a named type contains itself)")
            if full in self.zero:
                return self.zero[full]
        return False  # an unknown name: parse_schema refuses it

    def _named(self, t: dict[str, Any], ns: str | None) -> bool:
        name = t["name"]
        own_ns = t.get("namespace") if isinstance(t.get("namespace"), str) else ns
        full = self._full(name, own_ns)
        if "." in full:
            own_ns = full.rpartition(".")[0]
        kind = t["type"]
        if kind == "enum":
            zero = False
        elif kind == "fixed":
            zero = t.get("size") == 0
        else:
            self.stack.append(full)
            fields: Any = t.get("fields")
            # a list, not a generator: every field is visited even after one that takes bytes
            zero = all([self.visit(f.get("type"), own_ns) for f in fields or () if isinstance(f, dict)])  # noqa: C419
            self.stack.pop()
        self.zero[full] = zero
        return zero


def check_schema(schema_id: int, raw: Any) -> None:
    """Refuse a schema that cannot be read safely (see :class:`_SchemaWalk`): DecodeError
    UNKNOWN_SCHEMA naming the schema id and the problem."""
    try:
        _SchemaWalk().visit(raw, None)
    except _UnsafeSchema as err:
        raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} {err.what}", None) from None
    except RecursionError:
        raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} is nested too deeply", None) from None


@dataclass(frozen=True)
class StoredSchema:
    """A parsed schema and its JSON form. Construction refuses a schema that cannot be read safely
    (:func:`check_schema`): an array or map of zero-byte items, or a recursive type."""

    schema_id: int
    parsed: Any
    raw: dict[str, Any]

    def __post_init__(self) -> None:
        check_schema(self.schema_id, self.raw)

    @property
    def field_names(self) -> list[str]:
        if not isinstance(self.raw, dict):
            return []
        return [f["name"] for f in self.raw.get("fields", []) if isinstance(f, dict) and "name" in f]

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``parsed, raw = store.get(schema_id)``."""
        yield self.parsed
        yield self.raw


def load_schema(schema_id: int, raw: Any) -> StoredSchema:
    """Parse ``raw`` into a :class:`StoredSchema`; an invalid schema is DecodeError UNKNOWN_SCHEMA."""
    try:
        parsed = parse_schema(raw)
    except Exception as err:  # fastavro raises SchemaParseException, but also KeyError, TypeError, ...
        raise DecodeError(
            ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} is not a valid Avro schema ({type(err).__name__})", None
        ) from None
    return StoredSchema(schema_id, parsed, raw)


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
        try:
            raw = json.loads((self.directory / file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} ({file}) unreadable: {type(err).__name__}", None
            ) from None
        stored = load_schema(schema_id, raw)
        with self._lock:
            self._cache[schema_id] = stored
        return stored


_MAX_RESPONSE = 4 * 1024 * 1024


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to print, log or put into an error."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


class HttpSchemaRegistry:
    """A Confluent-compatible Schema Registry (``GET /schemas/ids/{id}``), cached, bounded by a timeout.

    * A schema is cached for good once fetched (a registry id never changes its schema).
    * HTTP 404 (unknown id, Confluent error_code 40403) and a schema that cannot be used (not
      Avro, invalid, or refused by :class:`StoredSchema`'s checks) raise DecodeError
      UNKNOWN_SCHEMA and are cached negatively for ``negative_ttl`` seconds (at most
      ``negative_cache_size`` ids), so that records with unknown ids cannot hammer the registry.
    * Anything else (connection errors, timeouts, HTTP 5xx, 429 and other statuses, an answer
      that is not a registry response) raises :class:`SchemaRegistryUnavailable`, is not cached,
      and leaves the next lookup to ask again: an outage stalls the pipeline instead of
      quarantining records.

    User info in ``url`` (``https://user:password@host``) is sent as HTTP Basic authentication
    and never printed: :attr:`url` is the URL without user info, query or fragment.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        negative_ttl: float = 60.0,
        negative_cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = public_url(url)
        self._base = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        ).rstrip("/")
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self.negative_cache_size = negative_cache_size
        self._clock = clock
        self._cache: dict[int, StoredSchema] = {}
        self._missing: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpSchemaRegistry({self.url!r})"

    def get(self, schema_id: int) -> StoredSchema:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        missing = self._missing.get(schema_id)
        if missing is not None:
            expires, detail = missing
            if self._clock() < expires:
                raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, detail, None)
        try:
            stored = self._fetch(schema_id)
        except DecodeError as err:
            self._remember_missing(schema_id, err.detail)
            raise
        with self._lock:
            self._cache[schema_id] = stored
            self._missing.pop(schema_id, None)
        return stored

    def _remember_missing(self, schema_id: int, detail: str) -> None:
        now = self._clock()
        with self._lock:
            self._missing.pop(schema_id, None)
            if len(self._missing) >= self.negative_cache_size:
                for sid in [sid for sid, (expires, _) in self._missing.items() if expires <= now]:
                    del self._missing[sid]
            while len(self._missing) >= self.negative_cache_size:
                del self._missing[next(iter(self._missing))]  # the oldest entry
            self._missing[schema_id] = (now + self.negative_ttl, detail)

    def _unavailable(self, cause: str) -> SchemaRegistryUnavailable:
        return SchemaRegistryUnavailable(f"schema registry {self.url} unavailable: {cause}", url=self.url, cause=cause)

    def _fetch(self, schema_id: int) -> StoredSchema:
        request = urllib.request.Request(f"{self._base}/schemas/ids/{schema_id}", headers=self._headers)  # noqa: S310 - configured http(s) URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - configured http(s) URL
                body = resp.read(_MAX_RESPONSE + 1)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise DecodeError(
                    ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} unknown to {self.url}", None
                ) from None
            raise self._unavailable(f"HTTP {err.code}") from None
        except urllib.error.URLError as err:
            reason = err.reason
            cause = reason if isinstance(reason, str) else type(reason).__name__
            raise self._unavailable(_cause(cause)) from None
        except (OSError, http.client.HTTPException) as err:
            raise self._unavailable(_cause(type(err).__name__)) from None
        if len(body) > _MAX_RESPONSE:
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} from {self.url} is larger than 4 MiB", None
            )
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
            raise self._unavailable("the answer is not a schema registry response (is the URL right?)")
        kind = doc.get("schemaType", "AVRO")
        if kind != "AVRO":
            shown = kind if kind in ("PROTOBUF", "JSON") else "another type"
            raise DecodeError(
                ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} is {shown}, not an Avro schema", None
            )
        try:
            raw = json.loads(doc["schema"])
        except ValueError:
            raise DecodeError(ReasonCode.UNKNOWN_SCHEMA, f"schema {schema_id} is not valid JSON", None) from None
        return load_schema(schema_id, raw)


def _cause(name: str) -> str:
    return "timed out" if name in ("TimeoutError", "timeout") or "timed out" in name else name


def default_schema_dir() -> Path:
    """The ``schemas/`` shipped with the router (see :mod:`router.resources`)."""
    return schema_dir()


def default_schema_store() -> DirectorySchemaStore:
    """The schema store over the ``schemas/`` directory shipped with the router."""
    return DirectorySchemaStore(default_schema_dir())
