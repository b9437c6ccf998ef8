"""Content detectors for free-text fields.

Every detector is a small class behind the :class:`Detector` protocol: a cheap ``prefilter``
(a substring or one compiled regex) that rejects plain text quickly, then ``confirm``, which
counts a hit only after validation by a maintained library (python-stdnum checksums,
phonenumbers metadata) or, for secrets and prompts, by structural checks. Detectors see the text
only; they return a bool and never keep, log or raise with the text.

Detectors are registered by name in :data:`REGISTRY` and selected in ``classification.detectors``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, ClassVar, Protocol, runtime_checkable

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.es import dni
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn

from router.classify.model import Category


@runtime_checkable
class Detector(Protocol):
    """Finds one kind of sensitive content in a string.

    Contract: ``prefilter`` is cheap and may over-approximate; ``confirm`` is called only when
    ``prefilter`` is true and returns true only for a validated match. Neither raises for any
    string input nor retains the text.
    """

    name: str
    category: Category

    def prefilter(self, text: str) -> bool: ...

    def confirm(self, text: str) -> bool: ...


class _CandidateDetector:
    """A detector whose candidates come from one regex and are checked by a validator."""

    name: ClassVar[str]
    category: ClassVar[Category]
    pattern: ClassVar[re.Pattern[str]]

    def prefilter(self, text: str) -> bool:
        return _has_digit_run(text) and self.pattern.search(text) is not None

    def confirm(self, text: str) -> bool:
        return any(_safe(self.check, m.group(0)) for m in self.pattern.finditer(text))

    def check(self, candidate: str) -> bool:
        raise NotImplementedError


_DIGIT_RUN = re.compile(r"\d[\d .-]{2,}\d")


@lru_cache(maxsize=64)
def _has_digit_run(text: str) -> bool:
    """Shared gate of the number detectors: four digits close together. Cached per string (the
    detectors of one field share the answer); the cache holds strings only briefly and in memory."""
    return _DIGIT_RUN.search(text) is not None


def _safe(validate: Callable[[str], bool], candidate: str) -> bool:
    try:
        return bool(validate(candidate))
    except Exception:
        return False


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# -- financial ---------------------------------------------------------------------------------

class IbanDetector(_CandidateDetector):
    """IBANs, validated by ``stdnum.iban`` (country length and ISO 7064 mod 97-10 check)."""

    name = "iban"
    category = Category.FINANCIAL
    pattern = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
    def check(self, candidate: str) -> bool:
        return bool(std_iban.is_valid(candidate))


_CARD_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2))")


def _is_card(candidate: str) -> bool:
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and _CARD_IIN.match(digits) is not None and luhn.is_valid(digits)


class PaymentCardDetector(_CandidateDetector):
    """Payment card numbers: a known issuer prefix (Visa, Mastercard, Amex, Diners, Discover,
    UnionPay), 13-19 digits and a valid Luhn check (``stdnum.luhn``)."""

    name = "payment_card"
    category = Category.FINANCIAL
    pattern = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
    def check(self, candidate: str) -> bool:
        return bool(_is_card(candidate))


# -- government ids --------------------------------------------------------------------------

class EuVatDetector(_CandidateDetector):
    """EU VAT numbers with country prefix, validated by ``stdnum.eu.vat`` (per-country checks)."""

    name = "eu_vat"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(
        r"\b(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)"
        r" ?[0-9A-Z](?:[ .]?[0-9A-Z+*]){7,11}\b"
    )
    def check(self, candidate: str) -> bool:
        return bool(vat.is_valid(candidate))


class DeIdnrDetector(_CandidateDetector):
    """German Steuer-ID (11 digits), validated by ``stdnum.de.idnr``."""

    name = "de_idnr"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b")
    def check(self, candidate: str) -> bool:
        return bool(idnr.is_valid(candidate))


class FrNirDetector(_CandidateDetector):
    """French social security number (NIR, 15 characters), validated by ``stdnum.fr.nir``."""

    name = "fr_nir"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b")
    def check(self, candidate: str) -> bool:
        return bool(nir.is_valid(candidate))


class EsDniDetector(_CandidateDetector):
    """Spanish DNI (8 digits and a check letter), validated by ``stdnum.es.dni``."""

    name = "es_dni"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(r"\b\d{8}-?[A-Za-z]\b")
    def check(self, candidate: str) -> bool:
        return bool(dni.is_valid(candidate))


class ItCodiceFiscaleDetector(_CandidateDetector):
    """Italian personal codice fiscale (16 characters), validated by ``stdnum.it.codicefiscale``."""

    name = "it_codicefiscale"
    category = Category.GOVERNMENT_ID

    def prefilter(self, text: str) -> bool:  # letters and digits mixed: no digit-run gate
        return self.pattern.search(text) is not None
    pattern = re.compile(r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b")
    def check(self, candidate: str) -> bool:
        return bool(codicefiscale.is_valid(candidate))


class UsSsnDetector(_CandidateDetector):
    """US social security numbers written ``ddd-dd-dddd``, validated by ``stdnum.us.ssn``
    (rejects area 000/666/9xx, zero group or serial, and known advertising numbers)."""

    name = "us_ssn"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
    def check(self, candidate: str) -> bool:
        return bool(ssn.is_valid(candidate))


_NINO = re.compile(
    r"^(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$"
)


def _is_nino(candidate: str) -> bool:
    return _NINO.match(candidate.replace(" ", "").upper()) is not None


class GbNinoDetector(_CandidateDetector):
    """UK National Insurance numbers. python-stdnum has no NINO module (``stdnum.gb`` offers
    nhs, sedol, upn, utr, vat) and a NINO has no check digit, so this is a format check: the
    HMRC prefix rules (first letter not D, F, I, Q, U, V; second not D, F, I, O, Q, U, V;
    prefixes BG, GB, KN, NK, NT, TN, ZZ unused), six digits, suffix A-D."""

    name = "gb_nino"
    category = Category.GOVERNMENT_ID
    pattern = re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
    def check(self, candidate: str) -> bool:
        return bool(_is_nino(candidate))


# -- personal contact data -------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b")


class EmailDetector:
    """E-mail addresses: local part, a dotted domain and an alphabetic top-level label."""

    name = "email"
    category = Category.PII

    def prefilter(self, text: str) -> bool:
        return "@" in text

    def confirm(self, text: str) -> bool:
        return _EMAIL.search(text) is not None


_PHONE_HINT = re.compile(r"(?:\+|\b)\d[\d \-./()]{5,}\d")


def _parses_valid(candidate: str, region: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)))
    except phonenumbers.NumberParseException:
        return False


class PhoneDetector:
    """Phone numbers found by ``phonenumbers.PhoneNumberMatcher`` with leniency VALID.

    Numbers in international form (``+44 ...``) are found whatever the region; national forms are
    tried against each configured region in turn.
    """

    name = "phone"
    category = Category.PII

    def __init__(self, regions: Iterable[str] = ("US", "GB", "DE", "FR")) -> None:
        self.regions = tuple(regions) or ("US",)

    def prefilter(self, text: str) -> bool:
        return _has_digit_run(text) and _PHONE_HINT.search(text) is not None

    def confirm(self, text: str) -> bool:
        leniency = phonenumbers.Leniency.VALID
        for hint in _PHONE_HINT.finditer(text):
            if not 7 <= sum(c.isdigit() for c in hint.group(0)) <= 17:
                continue  # E.164 allows 15 digits (+ a trunk/exit prefix): a longer run is an id, not a phone
            # The matcher runs on the candidate and a little context, not on the whole text.
            window = text[max(0, hint.start() - 4):hint.end() + 8]
            for region in self.regions:
                if not _parses_valid(hint.group(0), region):
                    continue  # the matcher costs ~1 ms; a failed parse rules the region out first
                for _ in phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency):
                    return True
        return False


# -- secrets ---------------------------------------------------------------------------------

_SECRET_HINTS = ("akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox",
                 "-----begin", "eyj", "pass", "pwd", "secret", "key", "token")
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),                     # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),                 # GitHub token
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),               # GitHub fine-grained PAT
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),                    # Slack token
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"),  # PEM / PGP private key
    re.compile(r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
               r"\s*[:=]\s*['\"]?[^\s'\"]{6,}"),                       # credential assignment
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")


def _is_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


class SecretDetector:
    """Credentials: AWS key ids, GitHub and Slack tokens, PEM private keys, JWTs (header must
    decode to JSON with ``alg``) and ``password=``/``api_key:``-style assignments."""

    name = "secret"
    category = Category.SECRET

    def prefilter(self, text: str) -> bool:
        low = text.lower()
        return any(h in low for h in _SECRET_HINTS)

    def confirm(self, text: str) -> bool:
        if any(p.search(text) for p in _SECRET_PATTERNS):
            return True
        return any(_is_jwt(m.group(0)) for m in _JWT.finditer(text))


# -- prompts ---------------------------------------------------------------------------------

_PROMPT_HINTS = ("you are", "{{", "##", "system", "assistant", "<|", "[inst]", "<<sys>>")
_PROMPT_STRONG = (
    re.compile(r"<\|(?:im_start|im_end|system|user|assistant|begin_of_text)\|>"),
    re.compile(r"\[INST\]|<<SYS>>"),
    re.compile(r"(?im)^\s*#{2,}\s*(?:instruction|instructions|system prompt)\b"),
)
_PROMPT_WEAK = (
    re.compile(r"(?im)(?:^|[.!?]\s+)you are (?:a|an|the)\s+\w+"),              # role preamble
    re.compile(r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}"),                               # {{placeholder}}
    re.compile(r"(?im)^\s*(?:system|user|assistant|human|ai)\s*:"),           # chat role markers
    re.compile(r"(?im)^\s*#{2,}\s*(?:response|input|context|output|examples?)\b"),
)


class PromptDetector:
    """Text that looks like an LLM prompt template.

    A hit needs one strong marker (chat-template tokens, ``[INST]``, ``### Instruction``) or two
    different weak ones (a "You are a ..." preamble, ``{{placeholder}}``, ``system:``/``user:``
    role lines, ``### Response``-style headings): one polite "you are a great team" is not a prompt.
    """

    name = "prompt"
    category = Category.PROPRIETARY_PROMPT

    def prefilter(self, text: str) -> bool:
        low = text.lower()
        return any(h in low for h in _PROMPT_HINTS)

    def confirm(self, text: str) -> bool:
        if any(p.search(text) for p in _PROMPT_STRONG):
            return True
        return sum(1 for p in _PROMPT_WEAK if p.search(text)) >= 2


REGISTRY: dict[str, Callable[..., Any]] = {
    cls.name: cls
    for cls in (
        IbanDetector, PaymentCardDetector, EuVatDetector, DeIdnrDetector, FrNirDetector,
        EsDniDetector, ItCodiceFiscaleDetector, UsSsnDetector, GbNinoDetector, EmailDetector,
        PhoneDetector, SecretDetector, PromptDetector,
    )
}
"""Detector factories by name. Only ``phone`` takes an option (``regions``)."""


def build_detectors(names: Iterable[str], *, phone_regions: Iterable[str] = ("US",)) -> tuple[Detector, ...]:
    """Instantiate the named detectors in order. Unknown names raise KeyError naming the name."""
    out: list[Detector] = []
    for name in names:
        factory = REGISTRY[name]
        detector: Detector = factory(regions=phone_regions) if name == "phone" else factory()
        out.append(detector)
    return tuple(out)
