"""Credential detection: cloud keys, tokens, JWTs, private-key blocks and assignments."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from router.classify.detectors import BaseDetector, _any_of, linear, utf8
from router.classify.model import Category

_SECRET_HINTS = (b"akia", b"asia", b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_", b"xox",
                 b"-----begin", b"eyj", b"pass", b"pwd", b"secret", b"key", b"token")
_SECRET = linear("|".join((
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",                                   # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",                               # GitHub token
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",                             # GitHub fine-grained PAT
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",                                 # Slack token
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",           # PEM / PGP private key
    r"(?i:\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
    r"\s*[:=]\s*['\"]?[^\s'\"]{6,})",                                   # credential assignment
)))
_JWT = linear(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
_CREDENTIAL_VALUE = linear(r"^\s*['\"]?[^\s'\"]{6,}")


def _is_jwt(token: bytes) -> bool:
    header = token.split(b".", 1)[0]
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def looks_like_credential(value: str) -> bool:
    """The value side of a credential assignment: a token of 6 or more characters without spaces
    or quotes. Used for ``{"password": "..."}`` pairs in nested values."""
    return _CREDENTIAL_VALUE.search(utf8(value)) is not None


class SecretDetector(BaseDetector):
    """Credentials: AWS key ids, GitHub and Slack tokens, PEM private keys, JWTs (header must
    decode to JSON with ``alg``) and ``password=``/``api_key:``-style assignments."""

    name = "secret"
    category = Category.SECRET
    min_length = 10  # pwd=abcdef
    timestamp_clean = True
    screen_pattern = _any_of(_SECRET_HINTS)

    def match(self, data: bytes) -> bool:
        if _SECRET.search(data) is not None:
            return True
        return any(_is_jwt(m.group(0)) for m in _JWT.finditer(data))
