"""Load :class:`RouterConfig` from YAML with errors that name the offending key.

Every problem is reported on one line with the key's dotted path as it appears in the YAML
document (``pipeline.ingress[0].options.entity_feild``). A key that was a setting once and has been
removed is listed in :data:`REMOVED_KEYS` with what replaced it; naming one fails with that
explanation instead of "unknown key".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.config.models import RouterConfig
from router.errors import ConfigError

REMOVED_KEYS: dict[str, str] = {
    "keys.on_unavailable": "a key outage always stalls: offsets do not advance until the key can be used again, "
    "and nothing is written unsealed",
    "audit.partitions": "the audit topic's real partition count is checked at start-up against the ingress "
    "topics' (set it where the topic is created, under 'topics')",
    "residency.trusted_connectors": "replaced by pipeline.ingress[].trusted: only on a trusted ingress topic may "
    "producer-supplied headers bind a jurisdiction or tenant",
    "residency.home": "an event whose jurisdiction cannot be known is quarantined in its ingress topic's "
    "jurisdiction (pipeline.ingress[].jurisdiction)",
    "classification.scan_unknown_min_length": "every string not covered by the catalog is scanned when it is as "
    "long as the shortest match of an enabled detector; classification.max_scan_chars bounds the work per event",
    "policy.rules[].encrypt": "it never took effect: every routed record is sealed whole, so there is no "
    "per-field encryption to ask for",
    "clusters.*.secrets": "secrets are no longer written in the config: each credential under "
    "clusters.<name>.security (sasl.password, sasl.client_secret, key_password) is read from an environment "
    "variable or a file, as {env: VARIABLE} or {file: /path} (docs/security.md)",
}
"""Removed settings: dotted path (``[]`` for any list index, ``*`` for any mapping key, as a cluster's
name) -> what happens instead / what replaced it."""

_INDEX = re.compile(r"\[\d+\]")


def _display_loc(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    """The error location as a path through the document: parts that are not keys of the document
    are dropped (the tag of a discriminated union, as in ``keys.providers.dev.local``, or the member
    of a union, as in ``verify_tls.bool``). Without the document, the location as pydantic gives it."""
    if data is None:
        return loc
    out: list[int | str] = []
    node: Any = data
    for i, part in enumerate(loc):
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
            elif i < len(loc) - 1:
                continue  # a union tag between a key and its members
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue  # below a scalar: a union member's name
        out.append(part)
    return tuple(out)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def removed_key_explanation(loc: tuple[int | str, ...] | str, removed: Mapping[str, str] | None = None) -> str | None:
    """What replaced the removed key at ``loc`` (a location or its dotted path), or None if it never
    was a setting. List indexes match any index: ``pipeline.ingress[3].x`` is ``pipeline.ingress[].x``."""
    path = _INDEX.sub("[]", loc if isinstance(loc, str) else _path(loc))
    table = REMOVED_KEYS if removed is None else removed
    if path in table:
        return table[path]
    parts = path.split(".")
    for key, why in table.items():
        pattern = key.split(".")
        if "*" in key and len(pattern) == len(parts) and all(map(fnmatch.fnmatchcase, parts, pattern)):
            return why
    return None


def format_validation_error(
    err: ValidationError, source: str, data: Any = None, *, removed: Mapping[str, str] | None = None
) -> str:
    """One line per problem: the key path, what is wrong and what is expected.

    ``data`` is the validated document, so that paths follow it; ``removed`` replaces
    :data:`REMOVED_KEYS` (for tests)."""
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = _display_loc(tuple(e["loc"]), data)
        path = _path(loc)
        if e["type"] == "extra_forbidden":
            why = removed_key_explanation(loc, removed)
            if why is not None:
                lines.append(f"  {path}: removed; {why}")
            else:
                lines.append(f"  {path}: unknown key (check the spelling; see docs for allowed keys)")
        elif e["type"] == "missing":
            lines.append(f"  {path}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            # A cross-check of the root model names the keys it checks in its message.
            lines.append(f"  {path}: {msg}" if path else f"  {msg}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<memory>", *, config_dir: str | Path | None = None) -> RouterConfig:
    """Validate an already-parsed mapping.

    Relative file paths in settings that resolve them (``clusters.<name>.security`` files) are
    taken relative to ``config_dir``; by default the directory of ``source`` when it names a file,
    else the working directory."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys")
    if config_dir is None and not source.startswith("<"):
        config_dir = Path(source).resolve().parent
    context = {"config_dir": Path(config_dir)} if config_dir is not None else None
    try:
        return RouterConfig.model_validate(data, context=context)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, data)) from None


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist (pass --config with a path to a YAML file)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
    return parse_config(data, str(p), config_dir=p.resolve().parent)
