"""Regenerate ``gitleaks_rules.json`` from gitleaks' ``config/gitleaks.toml`` (not shipped; run by hand).

Usage: ``python router/classify/data/vendor_gitleaks.py GITLEAKS.toml COMMIT VERSION OUT.json``
with the toml of a gitleaks checkout (https://github.com/gitleaks/gitleaks, MIT licence) and the
commit and ``git describe`` of that checkout. Copy its LICENSE to ``gitleaks_LICENSE``.
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any

EXCLUDED = {
    "generic-api-key": "replaced by secrets.py's credential assignments (key names, masked and placeholder values)",
    "jwt": "replaced by secrets.py's JWT check (the header must decode to JSON with 'alg')",
    "private-key": "replaced by secrets.py's PEM/PGP check (a BEGIN line is enough: a truncated key is still a leak)",
}
NOT_APPLIED = {
    "aws-access-token": "its allowlist of keys ending in EXAMPLE is not applied: such a key in a CRM record is "
                        "flagged (conservative; the router's samples and tests use AWS's documented example key)",
}


def convert(doc: dict[str, Any], commit: str, version: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    excluded = dict(EXCLUDED)
    for r in doc["rules"]:
        if r["id"] in EXCLUDED:
            continue
        if "regex" not in r or "path" in r:
            excluded[r["id"]] = "matches file paths, which events do not have"
            continue
        allow_secret: list[str] = []
        allow_match: list[str] = []
        stop: list[str] = []
        for a in [] if r["id"] in NOT_APPLIED else r.get("allowlists", []):
            if "paths" in a or a.get("regexTarget") == "line":
                continue  # file paths and whole lines: not what an event field is
            (allow_match if a.get("regexTarget") == "match" else allow_secret).extend(a.get("regexes", []))
            stop.extend(a.get("stopwords", []))
        keywords = [k.lower() for k in r.get("keywords", [])]
        rule: dict[str, Any] = {"id": r["id"], "regex": r["regex"], "keywords": keywords}
        if r.get("entropy"):
            rule["entropy"] = r["entropy"]
        if r.get("secretGroup"):
            rule["secret_group"] = r["secretGroup"]
        if allow_secret:
            rule["allow_secret"] = allow_secret
        if allow_match:
            rule["allow_match"] = allow_match
        if stop:
            rule["stopwords"] = stop
        rules.append(rule)
    return {
        "source": f"https://github.com/gitleaks/gitleaks/blob/{commit}/config/gitleaks.toml",
        "version": version, "commit": commit,
        "licence": "MIT (Copyright (c) 2019 Zachary Rice); see gitleaks_LICENSE",
        "global_allow_secret": doc["allowlist"]["regexes"],
        "excluded": excluded, "allowlists_not_applied": NOT_APPLIED, "rules": rules,
    }


def main() -> None:
    src, commit, version, out = sys.argv[1:5]
    with open(src, "rb") as f:
        converted = convert(tomllib.load(f), commit, version)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(converted, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
