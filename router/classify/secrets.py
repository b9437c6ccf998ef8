"""Credential detection: cloud keys, tokens, JWTs, private-key blocks, connection strings and
``key = value`` / ``"key": "value"`` assignments, with masked and placeholder values left alone.

Two sources of patterns:

* the token formats of gitleaks (https://github.com/gitleaks/gitleaks, MIT), vendored as data in
  ``data/gitleaks_rules.json`` with the commit they were taken from (see ``data/README.md``):
  each rule has keywords (a rule is tried only when one occurs in the text, as gitleaks does), a
  Go regexp - RE2 syntax, so it compiles here unchanged - and optionally a minimum Shannon
  entropy of the secret and allowlists. Rules that match file paths, and the three replaced
  below, are left out (the file lists them with the reason);
* this module's own checks: PEM/PGP private-key headers, JWTs whose header decodes to JSON with
  ``alg``, credentials in URLs (``postgres://user:pw@host``), ``Authorization: Bearer ...`` and
  assignments to credential-named keys in any common spelling, quoted or not, in six languages
  (``password=``, ``"api_key": "..."``, ``Passwort: ...``, ``mot de passe : ...``).

A value that is masked (``********``, ``ab****yz``, ``•••``), a template or variable
(``${DB_PASSWORD}``, ``{{token}}``, ``<password>``, ``%PWD%``) or a placeholder word
(``redacted``, ``changeme``, ``none``) is not a credential (:func:`is_placeholder`). An unquoted
assigned value that is one plain word (``Password: forgotten``) is prose, not a credential.
Every pattern runs through RE2 (linear time); the Python checks run on bounded candidates.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from router.classify.detectors import BaseDetector, Pattern, _any_of, linear, spans, utf8
from router.classify.model import Category

# -- placeholders ------------------------------------------------------------------------------

_PLACEHOLDER_WORDS = frozenset({
    "redacted", "masked", "hidden", "removed", "placeholder", "changeme", "change_me", "changeit",
    "example", "sample", "dummy", "secret", "password", "passwort", "token", "apikey", "api_key",
    "null", "none", "nil", "true", "false", "undefined", "empty", "notset", "not_set", "unknown",
    "xxx", "n/a", "tbd", "todo", "your_password", "yourpassword", "your_api_key", "your_token",
    "mypassword", "my_password", "motdepasse", "contrasena", "geheim", "****",
})
_MASK_CHARS = frozenset("*•●·xX#?.-_ ")
_PLACEHOLDER = linear("|".join((
    r"^\$\{[^}]{1,100}\}$", r"^\$[A-Za-z_][A-Za-z0-9_]{0,100}$", r"^\$\d+$",  # ${VAR}, $VAR, $1
    r"^\{\{[^}]{1,100}\}\}$", r"^\{\$[^}]{1,100}\}$", r"^\{\d{0,2}\}$",        # {{var}}, {$var}, {0}
    r"^<[^<>]{1,100}>$", r"^\[[^\[\]]{1,100}\]$", r"^\([^()]{1,100}\)$",      # <password>, [redacted]
    r"^%[A-Za-z_]{1,100}%$", r"^%\(?[A-Za-z_]{0,100}\)?[sd]$", r"^@[A-Za-z_]{1,100}@$",
    r"(?i)^(?:your|my|the|enter|insert|put)[_-]?[a-z_-]{0,40}[_-]?(?:here)?$",  # your_api_key_here
    r"(?i)^(?:x{3,}|\*{3,}|•{3,}|●{3,})",                                      # xxxx..., ***...
    r"\*{4,}|•{3,}|●{3,}|x{6,}|X{6,}",                                         # partly masked
)))


def is_placeholder(value: str) -> bool:
    """True for a masked, templated or placeholder credential value (not a real secret)."""
    v = value.strip().strip("'\"`").strip()
    if len(v) < 3:
        return True
    low = v.lower()
    if low in _PLACEHOLDER_WORDS or set(v) <= _MASK_CHARS or len(set(low)) == 1:
        return True
    return _PLACEHOLDER.search(utf8(v)) is not None


def _entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte, as gitleaks computes it for a rule's ``entropy``."""
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values()) if n else 0.0


# -- gitleaks rules ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    pattern: Pattern
    entropy: float
    group: int
    allow_secret: Pattern | None
    allow_match: Pattern | None
    stopwords: tuple[bytes, ...]

    def hits(self, data: bytes) -> bool:
        for m in self.pattern.finditer(data):
            secret = _secret_of(m, self.group)
            if not secret or (self.entropy and _entropy(secret) < self.entropy):
                continue
            if self.allow_secret is not None and self.allow_secret.search(secret) is not None:
                continue
            if self.allow_match is not None and self.allow_match.search(m.group(0)) is not None:
                continue
            low = secret.lower()
            if any(w in low for w in self.stopwords):
                continue
            if _GLOBAL_ALLOW.search(secret) is not None or is_placeholder(secret.decode("utf-8", "replace")):
                continue
            return True
        return False


def _secret_of(m: Any, group: int) -> bytes:
    """The secret of a match: ``secretGroup``, else the first non-empty group, else the match."""
    if group:
        return bytes(m.group(group) or b"")
    for g in m.groups():
        if g:
            return bytes(g)
    return bytes(m.group(0))


def _either(patterns: list[str]) -> Pattern | None:
    return linear("|".join(f"(?:{p})" for p in patterns)) if patterns else None


_MIN_KEYWORD = 4
"""Keywords shorter than this (``sk``, ``ey``, ``s.``) occur in most prose: a rule with no longer
keyword is screened by its own regex instead."""


def _load_rules() -> tuple[dict[str, Any], tuple[_Rule, ...], dict[bytes, tuple[int, ...]], tuple[int, ...]]:
    doc: dict[str, Any] = json.loads(
        resources.files("router.classify").joinpath("data/gitleaks_rules.json").read_text("utf-8"))
    rules: list[_Rule] = []
    by_keyword: dict[bytes, list[int]] = {}
    by_regex: list[int] = []
    for i, r in enumerate(doc["rules"]):
        rules.append(_Rule(r["id"], linear(r["regex"]), float(r.get("entropy", 0)), int(r.get("secret_group", 0)),
                           _either(r.get("allow_secret", [])), _either(r.get("allow_match", [])),
                           tuple(w.lower().encode() for w in r.get("stopwords", []))))
        keywords = [k.encode() for k in r["keywords"] if len(k) >= _MIN_KEYWORD]
        if not keywords:
            by_regex.append(i)
        for k in keywords:
            by_keyword.setdefault(k, []).append(i)
    return doc, tuple(rules), {k: tuple(v) for k, v in by_keyword.items()}, tuple(by_regex)


_DOC, _RULES, _BY_KEYWORD, _BY_REGEX = _load_rules()
_GLOBAL_ALLOW = linear("|".join(f"(?:{p})" for p in _DOC["global_allow_secret"]))
GITLEAKS_SOURCE: str = _DOC["source"]
GITLEAKS_RULE_IDS: tuple[str, ...] = tuple(r.id for r in _RULES)
_KEYWORD_PATTERN = _any_of(sorted(_BY_KEYWORD, key=lambda k: (-len(k), k)))
_KEYWORDS = spans(linear(_KEYWORD_PATTERN))
_KEYWORD_BUCKETS: dict[bytes, tuple[bytes, ...]] = {}
for _k in sorted(_BY_KEYWORD, key=lambda k: -len(k)):
    _KEYWORD_BUCKETS[_k[:_MIN_KEYWORD]] = (*_KEYWORD_BUCKETS.get(_k[:_MIN_KEYWORD], ()), _k)
_REGEX_SCREENED = "|".join(f"(?:{_DOC['rules'][i]['regex']})" for i in _BY_REGEX)
_REGEX_SCREEN = linear(_REGEX_SCREENED)


def _candidate_rules(data: bytes) -> Iterator[_Rule]:
    """The gitleaks rules one of whose keywords occurs in ``data`` (case-insensitive), each once,
    then those screened by their own regex when that occurs."""
    low = data.lower()
    tried: set[int] = set()
    for start, _end in _KEYWORDS(data):
        for keyword in _KEYWORD_BUCKETS.get(low[start:start + _MIN_KEYWORD], ()):
            if low.startswith(keyword, start):
                for i in _BY_KEYWORD[keyword]:
                    if i not in tried:
                        tried.add(i)
                        yield _RULES[i]
    if _REGEX_SCREEN.search(data) is not None:
        for i in _BY_REGEX:
            yield _RULES[i]


# -- this module's own checks ------------------------------------------------------------------

_PRIVATE_KEY = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_PRIVATE_KEY_FOUND = linear(_PRIVATE_KEY)
_JWT = linear(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")

# A credential-named key: the name may carry a prefix (db_password, AWS_SECRET_ACCESS_KEY) and end
# in a quote (JSON, Python dicts); then a separator; then the value, quoted or bare.
_KEY_NAMES = (
    r"pass(?:word|wd|wort|phrase)?|pwd|kennwort|mot[ _-]?de[ _-]?passe|mdp|contrase(?:ñ|n)a|clave|"
    r"wachtwoord|senha|parola[ _-]?d[ '\x{2019}]?ordine|"
    r"secret|client[_-]?secret|(?:api|access|secret|private|account|shared[_-]?access|client|encryption|"
    r"signing|master|subscription)[_-]?key|apikey|"
    r"(?:access|auth|refresh|bearer|api|session|id|personal[_-]?access)?[_-]?token|"
    r"credentials?|conn(?:ection)?[_-]?str(?:ing)?"
)
_ASSIGNMENT = linear(
    r"(?i)(?:^|[^A-Za-z0-9])(?:[A-Za-z0-9_.-]{0,40}[_.-])?(?:" + _KEY_NAMES + r")['\"]?"
    r"[^\S\n]{0,3}(?:=>|:=|=|:)[^\S\n]{0,3}"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s'\",;]{1,256}))"
)
# Prose: "the password is X", "das Passwort lautet X", "le mot de passe provisoire est X", ...
# (up to five words between the key and the verb); and a key followed directly by a random-looking
# token ("auth token 9f2c7e1a...").
_PROSE_KEYS = (r"pass(?:word|wort)|kennwort|mot de passe|contrase(?:ñ|n)a|clave|wachtwoord|senha|pwd|pin|"
               r"(?:api|access|secret|auth|private) ?(?:key|token)|token|secret")
_PROSE = linear(rf"(?i)\b(?:{_PROSE_KEYS})\b(?:[^\S\n]+[\pL'-]+){{0,5}}?[^\S\n]+"
                r"(?:is|was|are|lautet|ist|war|est|était|es|era|è|sono|luidt|:)[^\S\n]+['\"«]?([^\s,;'\"»]{6,256})")
_KEYED_TOKEN = linear(rf"(?i)\b(?:{_PROSE_KEYS})[^\S\n]*[:=]?[^\S\n]+([A-Za-z0-9+/_.~-]{{16,256}})")
_MIXED = linear(r"[A-Za-z][^A-Za-z]*\d|\d[^\d]*[A-Za-z]")
_URL_CREDENTIALS = linear(r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@]{1,128}:([^\s/@]{1,256})@[A-Za-z0-9\[]")
_AUTHORIZATION = linear(r"(?i)\bauthorization['\"]?\s{0,3}[:=]\s{0,3}['\"]?(?:bearer|basic|token|digest)\s+"
                        r"([A-Za-z0-9._~+/=-]{12,})")
_PLAIN_WORD = linear(r"^[A-Za-z][a-z]*$")
_MIN_SECRET = 6
_TOKEN_ENTROPY = 3.0
"""Bits per character a bare token after a key name needs (gitleaks' threshold for many tokens)."""


def _is_jwt(token: bytes) -> bool:
    header = token.split(b".", 1)[0]
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _assigned_secret(value: bytes, quoted: bool) -> bool:
    text = value.decode("utf-8", "replace").strip()
    if len(text) < _MIN_SECRET or is_placeholder(text):
        return False
    # Unquoted, one plain word is prose ("Password: forgotten", "token: expired").
    return quoted or _PLAIN_WORD.search(utf8(text)) is None


def _has_assignment(data: bytes) -> bool:
    for m in _ASSIGNMENT.finditer(data):
        dq, sq, bare = m.group(1), m.group(2), m.group(3)
        value = dq if dq is not None else sq if sq is not None else bare
        if value is not None and _assigned_secret(value, bare is None):
            return True
    return False


def _has_prose_secret(data: bytes) -> bool:
    """A password-like value named in a sentence: letters and digits mixed, not a placeholder."""
    for m in _PROSE.finditer(data):
        value = m.group(1).rstrip(b".!?)")
        if (len(value) >= _MIN_SECRET and _MIXED.search(value) is not None
                and not is_placeholder(value.decode("utf-8", "replace"))):
            return True
    for m in _KEYED_TOKEN.finditer(data):
        value = m.group(1).rstrip(b".")
        if (_MIXED.search(value) is not None and _entropy(value) >= _TOKEN_ENTROPY
                and not is_placeholder(value.decode("utf-8", "replace"))):
            return True
    return False


def _has_url_credentials(data: bytes) -> bool:
    for m in _URL_CREDENTIALS.finditer(data):
        password = m.group(1).decode("utf-8", "replace")
        if len(password) >= 3 and not is_placeholder(password):
            return True
    return False


_OWN_SCREEN = "|".join((_PRIVATE_KEY, r"(?i:" + _KEY_NAMES + r")", r"(?i:" + _PROSE_KEYS + r")",
                        r"://[^\s:/@]{1,128}:", r"(?i:authorization)",
                        r"eyJ"))
"""What this module's own checks need to see at all (their screen)."""
_OWN = linear(_OWN_SCREEN)


# -- nested values ---------------------------------------------------------------------------------

_CREDENTIAL_KEY_ENDINGS = (
    "password", "passwd", "passwort", "passphrase", "kennwort", "motdepasse", "mdp", "contrasena",
    "contraseña", "wachtwoord", "senha", "pwd", "pass", "secret", "apikey", "accesskey", "secretkey",
    "privatekey", "accountkey", "sharedaccesskey", "clientsecret", "signingkey", "encryptionkey",
    "masterkey", "subscriptionkey", "token", "credential", "credentials", "connectionstring", "connstr",
)
_NOT_CREDENTIAL_KEY_ENDINGS = ("tokenizer", "csrftoken", "publictoken", "pagetoken", "nextpagetoken")


def is_credential_key(key: str) -> bool:
    """A key naming a credential: its folded form (lower case, no ``_ - . space``) ends with a
    credential word (``db_password``, ``apiKey``, ``client-secret``, ``Passwords``), so that
    ``password_policy`` or ``primary_key`` is not one."""
    folded = key.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")
    if len(folded) > 64:
        return False
    folded = folded.removesuffix("s") if not folded.endswith("ss") else folded
    return folded.endswith(_CREDENTIAL_KEY_ENDINGS) and not folded.endswith(_NOT_CREDENTIAL_KEY_ENDINGS)


def looks_like_credential(value: str) -> bool:
    """The value of a credential-named key in a nested map: 6 to 512 characters, one line, not a
    masked or placeholder value. Spaces are allowed (passphrases, connection strings)."""
    text = value.strip()
    return _MIN_SECRET <= len(text) <= 512 and "\n" not in text and not is_placeholder(text)


def credential_pair(key: str, value: Any) -> bool:
    """``{"password": "hunter2hunter2"}`` or ``{"tokens": ["..."]}``: the nested form of an
    assignment (a string, or a list of strings, under a credential-named key)."""
    if not isinstance(key, str) or not is_credential_key(key):
        return False
    if isinstance(value, str):
        return looks_like_credential(value)
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and looks_like_credential(v) for v in value[:64])
    return False


class SecretDetector(BaseDetector):
    """Credentials: the token formats of the vendored gitleaks rules (cloud keys, SaaS tokens),
    PEM/PGP private keys, JWTs (header must decode to JSON with ``alg``), credentials in URLs,
    ``Authorization`` headers and assignments to credential-named keys, with masked and
    placeholder values excluded (see the module docstring)."""

    name = "secret"
    category = Category.SECRET
    min_length = 10  # pwd=abcdef
    timestamp_clean = True
    screen_pattern = f"(?:{_OWN_SCREEN})|{_KEYWORD_PATTERN}|(?:{_REGEX_SCREENED})"

    def match(self, data: bytes) -> bool:
        if _OWN.search(data) is not None and (
                _PRIVATE_KEY_FOUND.search(data) is not None or _has_assignment(data)
                or _has_url_credentials(data) or _has_authorization(data) or _has_prose_secret(data)
                or any(_is_jwt(m.group(0)) for m in _JWT.finditer(data))):
            return True
        return any(rule.hits(data) for rule in _candidate_rules(data))


def _has_authorization(data: bytes) -> bool:
    return any(not is_placeholder(m.group(1).decode("utf-8", "replace")) for m in _AUTHORIZATION.finditer(data))
