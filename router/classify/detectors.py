"""Content detectors for free-text fields.

Every detector is a small class behind the :class:`Detector` protocol: a cheap ``prefilter``
(a substring or one compiled pattern) that rejects plain text quickly, then ``confirm``, which
counts a hit only after validation by a maintained library (python-stdnum checksums,
phonenumbers metadata) or, for secrets and prompts, by structural checks. Detectors see the text
only; they return a bool and never keep, log or raise with the text.

Every pattern is compiled with RE2 (google-re2), whose matching time is linear in the length of
the text whatever the pattern: no input can make a detector backtrack (review §4.5). RE2 has no
look-around, so the few checks that used it are plain Python on short candidates. The phone
detector hands phonenumbers only candidates of at most 17 digits and a few characters of context.

Detectors read the scanned copy of a text (:func:`router.classify.normalize.scanned_copy`: NFKC,
zero-width characters removed, Unicode spaces and dashes as ``' '`` and ``'-'``), made once per
text by :class:`Scanner` (and by ``prefilter``/``confirm`` when called directly); an ASCII text is
its own copy. The payload is never changed.

Each detector declares ``min_length``, the length of the shortest text it can confirm; the
classifier scans no string shorter than the smallest ``min_length`` of the enabled detectors.

Detectors are registered by name in :data:`router.classify.registry.REGISTRY` and selected in
``classification.detectors``. Secrets and prompts live in their own modules.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Protocol, runtime_checkable

import phonenumbers
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.es import dni
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn

from router.classify.model import Category
from router.classify.normalize import scanned_copy


class Match(Protocol):
    """The part of a match object the detectors use (offsets and groups in UTF-8 bytes)."""

    def group(self, index: int = 0) -> bytes: ...

    def start(self, index: int = 0) -> int: ...

    def end(self, index: int = 0) -> int: ...


class Pattern(Protocol):
    """A compiled RE2 pattern over UTF-8 bytes (the part of its API the detectors use)."""

    def search(self, data: bytes) -> Match | None: ...

    def finditer(self, data: bytes) -> Iterator[Match]: ...


def linear(pattern: str) -> Pattern:
    """Compile ``pattern`` with RE2: matching time is linear in the text, for every pattern.

    RE2 syntax is Python's minus look-around and backreferences; ``\\b``, ``\\d``, ``\\s``, ``\\w``
    are ASCII classes. An unsupported construct fails here, at import, not on some input.
    Patterns run on UTF-8 bytes (:func:`utf8`): RE2 reads UTF-8, and its Python wrapper maps
    every match of a ``str`` back to character offsets at several microseconds a match."""
    compiled: Pattern = re2.compile(pattern.encode("utf-8"))
    return compiled


_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


def finder(pattern: Pattern) -> Callable[[bytes], bool]:
    """``lambda data: pattern.search(data) is not None``, calling RE2's match directly when the
    google-re2 wrapper exposes it (the wrapper's generator and match object cost ~1 us a call;
    the answer is the same: one unanchored RE2 match over the bytes)."""
    rx = getattr(pattern, "_regexp", None)
    if rx is None or _UNANCHORED is None:
        return lambda data: pattern.search(data) is not None
    match, anchor = rx.Match, _UNANCHORED

    def found(data: bytes) -> bool:
        return bool(match(anchor, data, 0, len(data))[0][0] >= 0)

    return found


def spans(pattern: Pattern) -> Callable[[bytes], Iterator[tuple[int, int]]]:
    """``(start, end)`` of each match of ``pattern.finditer(data)``, in the same order, through
    RE2's match call directly when the wrapper exposes it (see :func:`finder`)."""
    rx = getattr(pattern, "_regexp", None)
    if rx is None or _UNANCHORED is None:
        return lambda data: ((m.start(), m.end()) for m in pattern.finditer(data))
    match, anchor = rx.Match, _UNANCHORED

    def each(data: bytes) -> Iterator[tuple[int, int]]:
        pos, end = 0, len(data)
        while True:  # the wrapper's loop over bytes, without building match objects
            span = match(anchor, data, pos, end)[0]
            if span[0] < 0:
                return
            yield span
            if pos == end:
                return
            pos = pos + 1 if pos == span[1] else span[1]

    return each


def utf8(text: str) -> bytes:
    """``text`` as the UTF-8 the patterns read, encoded once per text. Lone surrogates (not
    encodable; decoders never produce them) become ``?`` so that no input can raise."""
    return text.encode("utf-8", "replace")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _any_of(hints: Iterable[bytes]) -> str:
    """An RE2 pattern matching any of the lower-case UTF-8 ``hints`` in any case (RE2 folds
    case in UTF-8 too)."""
    escaped = (re2.escape(h.decode("utf-8")) for h in hints)
    return "(?i:" + "|".join(escaped) + ")"


@runtime_checkable
class Detector(Protocol):
    """Finds one kind of sensitive content in a string.

    Contract: ``prefilter`` is cheap and may over-approximate; ``confirm`` is called only when
    ``prefilter`` is true and returns true only for a validated match. Neither raises for any
    string input nor retains the text, and both take time linear in its length. ``min_length`` is
    the length of the shortest text ``confirm`` can accept.
    """

    name: str
    category: Category
    min_length: int

    def prefilter(self, text: str) -> bool: ...

    def confirm(self, text: str) -> bool: ...


class BaseDetector:
    """Shared shape of the built-in detectors.

    Subclasses implement ``screen`` (the cheap check) and ``match`` (the validation), both on the
    text's UTF-8 bytes (:func:`utf8`). ``screen`` is true exactly when ``screen_pattern`` (an RE2
    pattern) occurs in the text, so that :class:`Scanner` can screen for all detectors in one
    pass. Detectors with ``digit_gated`` also need four digits close together; the scanner
    evaluates that gate once per text for all of them."""

    name: ClassVar[str]
    category: ClassVar[Category]
    min_length: ClassVar[int]
    digit_gated: ClassVar[bool] = False
    countries: ClassVar[tuple[str, ...]] = ()
    """ISO 3166 alpha-2 codes of the countries whose national number this detector finds (empty
    for detectors of no one country); ``classification.national_ids`` selects by them."""
    timestamp_clean: ClassVar[bool] = False
    """True when the detector cannot confirm anything in a :data:`_TIMESTAMP` text (a detector must
    be checked against it, tests/unit/test_classify_timestamps.py, before it says so)."""
    screen_pattern: ClassVar[str]
    pattern: ClassVar[Pattern]
    """``screen_pattern`` compiled (set for each subclass that declares one)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "screen_pattern" in cls.__dict__:
            cls.pattern = linear(cls.screen_pattern)

    def screen(self, data: bytes) -> bool:
        return self.pattern.search(data) is not None

    def match(self, data: bytes) -> bool:
        raise NotImplementedError

    def prefilter(self, text: str) -> bool:
        data = utf8(scanned_copy(text))
        return (not self.digit_gated or _has_digit_run(data)) and self.screen(data)

    def confirm(self, text: str) -> bool:
        return self.match(utf8(scanned_copy(text)))


_DIGIT_RUN_PATTERN = r"\d[\d .-]{2,}\d"
_DIGIT_RUN = linear(_DIGIT_RUN_PATTERN)


class _CandidateDetector(BaseDetector):
    """A detector whose candidates come from one pattern and are checked by a validator."""

    digit_gated = True

    def match(self, data: bytes) -> bool:
        return any(_safe(self.check, _text(m.group(0))) for m in self.pattern.finditer(data))

    def check(self, candidate: str) -> bool:
        raise NotImplementedError


_DIGIT_RUN_FOUND = finder(_DIGIT_RUN)


def _has_digit_run(data: bytes) -> bool:
    """Shared gate of the number detectors: four digits close together. Not cached: a cache
    keyed by the text would keep field values alive; :class:`Scanner` asks once per text."""
    return _DIGIT_RUN_FOUND(data)


def _safe(validate: Callable[[str], bool], candidate: str) -> bool:
    try:
        return bool(validate(candidate))
    except Exception:
        return False


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# -- financial ---------------------------------------------------------------------------------

class IbanDetector(_CandidateDetector):
    """IBANs, validated by ``stdnum.iban`` (country length and ISO 7064 mod 97-10 check), in
    either case (an IBAN is case-insensitive; the candidate is upper-cased before validation)."""

    name = "iban"
    timestamp_clean = True
    category = Category.FINANCIAL
    min_length = 15  # Norway's IBANs, the shortest
    screen_pattern = r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?\b"

    def check(self, candidate: str) -> bool:
        # A word after the IBAN can extend the candidate ("... 9466 requested" reads as groups in
        # either case): the IBAN is then a prefix of the candidate ending at one of its spaces.
        upper = candidate.upper()
        cut = len(upper)
        while cut > 0:
            if std_iban.is_valid(upper[:cut]):
                return True
            cut = upper.rfind(" ", 0, cut)
        return False


# Context of weak matches (cards, phones): words that introduce a reference number, and words that
# name a card or a phone. A reference word in the 32 bytes before a run makes it a reference
# unless a word naming the kind is within 48 bytes before or 24 after it.
_REFERENCE_WORDS = linear(r"(?i:\b(?:order|orders|invoice|inv|ref|refs|reference|tracking|ticket|case|po|p\.o|"
                          r"bestellung|bestellnummer|bestell-nr|auftrag|auftragsnummer|rechnung|rechnungsnummer|"
                          r"lieferschein|vorgang|commande|facture|référence|dossier|pedido|factura|referencia|"
                          r"ordine|fattura|riferimento|pratica|bestelling|bestelnummer|factuur|referentie|"
                          r"kenmerk|zaak|build|version|release|revision)\b)")
_CARD_WORDS = linear(r"(?i:\b(?:card|cards|credit|debit|visa|mastercard|master card|amex|american express|"
                     r"diners|discover|maestro|cc|pan|cvv|cvc|karte|kreditkarte|kartennummer|carte|tarjeta|carta|"
                     r"kaart|kaartnummer|creditcard)\b)")
_PHONE_WORDS = linear(r"(?i:\b(?:tel|phone|telephone|call|mobile|mob|cell|fax|whatsapp|telefon|telefonnummer|"
                      r"handy|mobil|rufnummer|téléphone|portable|teléfono|telefono|móvil|movil|cellulare|"
                      r"telefoon|mobiel|bel)\b)")
_REFERENCE_BEFORE = 32
_CONTEXT_BEFORE, _CONTEXT_AFTER = 48, 24
_RUN_DATE = (r"(?:(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])"
             r"|(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:19|20)\d\d"
             r"|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d\d)")
_DATE_BEFORE = finder(linear(rf"\b{_RUN_DATE}[ ,;:()]{{0,3}}$"))
_DATE_AFTER = finder(linear(rf"^[ ,;:()]{{0,3}}{_RUN_DATE}\b"))


def _words_near(words: Pattern, data: bytes, start: int, end: int) -> bool:
    return words.search(data[max(0, start - _CONTEXT_BEFORE):end + _CONTEXT_AFTER]) is not None


def _reference(data: bytes, start: int) -> bool:
    """A reference word in the bytes just before ``start``."""
    return _REFERENCE_WORDS.search(data[max(0, start - _REFERENCE_BEFORE):start]) is not None


_PLUS = ord("+")
_CARD_RUNS = spans(linear(r"\b\d+(?:[ -]\d+)*\b"))
"""Maximal runs of digit groups, each joined to the next by one space or dash."""
_CARD_GROUPINGS = frozenset({(4, 6, 5), (4, 6, 4)})  # Amex, Diners; else groups of 4 and a last of 1-4


def _card_scheme(digits: str) -> bool:
    """An issuer prefix and a length that scheme issues: Visa 4 (13, 16, 19), Mastercard 51-55 and
    2221-2720 (16), Amex 34/37 (15), Diners 30/36/38/39 (14-19), Discover 6011/644-649/65 and
    UnionPay 62 (16-19)."""
    n = len(digits)
    if n < 13 or n > 19:
        return False
    if digits[0] == "4":
        return n in (13, 16, 19)
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (30, 36, 38, 39):
        return n >= 14
    return (four == 6011 or two in (62, 65) or 644 <= int(digits[:3]) <= 649) and n >= 16


def _is_card(candidate: str) -> bool:
    digits = _digits(candidate)
    return _card_scheme(digits) and luhn.is_valid(digits)


def _card_numbers(run: bytes) -> list[bytes]:
    """The card-shaped numbers of a run: the run itself when it is 13-19 digits, or grouped in
    4s (the last group 1-4) or 4-6-5 / 4-6-4 with one separator throughout; each group when
    every group is 13-19 digits (a list of numbers). Otherwise none: a run of mixed separators or
    other groupings is a date and a reference, a phone number, an id."""
    if 13 <= len(run) <= 19 and run.isdigit():
        return [run]
    separators = {c for c in run if c in b" -"}
    if len(separators) != 1:
        return []
    groups = run.split(bytes(separators))
    if all(13 <= len(g) <= 19 for g in groups):
        return groups
    sizes = tuple(len(g) for g in groups)
    total = sum(sizes)
    if sizes in _CARD_GROUPINGS or (13 <= total <= 19 and all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4):
        return [b"".join(groups)]
    return []


class PaymentCardDetector(BaseDetector):
    """Payment card numbers: a known issuer prefix and a length its scheme issues
    (:func:`_card_scheme`) and a valid Luhn check (``stdnum.luhn``), printed as cards are (see
    :func:`_card_numbers`), not after ``+`` (a phone number), and not a reference: a run next to a
    date, after a reference word (order, invoice, ticket, Bestellnummer, commande, pedido, ordine,
    bestelling, ...) or near a national-number keyword (a CNP, an AMKA: 13 digits pass Luhn one
    time in ten) counts only with a card word near it (card, Visa, Kartennummer, carte, ...)."""

    name = "payment_card"
    timestamp_clean = True
    category = Category.FINANCIAL
    min_length = 13
    digit_gated = True
    screen_pattern = r"\b(?:\d[ -]?){12,18}\d\b"

    def match(self, data: bytes) -> bool:
        size = len(data)
        for start, end in _CARD_RUNS(data):
            if end - start < 13 or (start and data[start - 1] == _PLUS):
                continue
            numbers = [n for n in _card_numbers(data[start:end]) if _is_card(n.decode("ascii"))]
            if not numbers:
                continue
            suspect = (_reference(data, start) or _DATE_BEFORE(data[max(0, start - 16):start])
                       or _DATE_AFTER(data[end:min(size, end + 16)]) or _Keywords(data).near(start, end, self.name))
            if not suspect or _words_near(_CARD_WORDS, data, start, end):
                return True
        return False


# -- government ids --------------------------------------------------------------------------

class EuVatDetector(_CandidateDetector):
    """EU VAT numbers with country prefix, validated by ``stdnum.eu.vat`` (per-country checks)."""

    name = "eu_vat"
    timestamp_clean = True
    category = Category.GOVERNMENT_ID
    min_length = 10  # prefix and 8 characters (DK, FI, HU, LU, MT, SI)
    screen_pattern = (
        r"\b(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)"
        r" ?[0-9A-Z](?:[ .]?[0-9A-Z+*]){7,11}\b"
    )

    def check(self, candidate: str) -> bool:
        return bool(vat.is_valid(candidate))


# -- national numbers: validation plus context ---------------------------------------------------
#
# A bare run of 9-13 digits with a mod-10 or mod-11 check passes one validator in ten or so by
# chance, and several national numbers share a length (11 digits: DE, PL, NO, BE, EE, LT, HR, GR,
# LV). Such a candidate counts only with context: a keyword naming the number near it (``BSN``,
# ``PESEL``, ``personnummer``, ...), or a print of the number that names its type (``1234.56.782``
# for a BSN, ``756.1234.5678.97`` for an AHV number), or the text being that number alone (a field
# holding an id) when the number is one of the strongly checked ones and no stronger one also
# reads it. A keyword of another national number near it vetoes the last two.

_KEYWORD_BEFORE = 48  # bytes before a candidate's start in which a keyword counts
_KEYWORD_AFTER = 24   # bytes after its end
_MAX_CHECKS = 64      # candidates validated per detector and text; more count as found
_CANDIDATE_MAX = 32   # bytes of the longest candidate (13 digits and 12 separators, ...)
_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
"""Bytes RE2's ``\\b`` counts as word characters."""
_KEYWORDS: dict[str, set[str]] = {}
"""Keyword (scanned copy, lower case) -> names of the national-id detectors it names."""
_KEYWORD_SCAN: list[tuple[Callable[[bytes], Iterator[tuple[int, int]]], int]] = []
"""The compiled keyword scan and its longest keyword in bytes, built on first use."""
_ALONE: list[type[NationalIdDetector]] = []
"""Detectors that accept a text that is the number alone, strongest first."""


def _keyword_pattern(words: Iterable[str]) -> str:
    """An RE2 pattern for any of ``words`` in any case, on word edges where a word starts or ends
    with an ASCII letter or digit (RE2's ``\\b`` is ASCII)."""
    ordered = sorted({scanned_copy(w).lower() for w in words}, key=lambda w: (-len(w), w))
    edges = (("\\b" if w[0].isascii() and w[0].isalnum() else "") + re2.escape(w)
             + ("\\b" if w[-1].isascii() and w[-1].isalnum() else "") for w in ordered)
    return "(?i:" + "|".join(edges) + ")"


def _keyword_scan() -> tuple[Callable[[bytes], Iterator[tuple[int, int]]], int]:
    if not _KEYWORD_SCAN:
        _KEYWORD_SCAN.append((spans(linear(_keyword_pattern(_KEYWORDS))), max(len(utf8(w)) for w in _KEYWORDS)))
    return _KEYWORD_SCAN[0]


class _Keywords:
    """The national-id keywords in one text: found once, asked per candidate (bisect on starts)."""

    __slots__ = ("ends", "longest", "names", "starts")

    def __init__(self, data: bytes) -> None:
        scan, self.longest = _keyword_scan()
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.names: list[set[str]] = []
        for start, end in scan(data):
            names = _KEYWORDS.get(_text(data[start:end]).lower())
            if names:
                self.starts.append(start)
                self.ends.append(end)
                self.names.append(names)

    def windows(self, name: str, size: int) -> Iterator[tuple[int, int]]:
        """Disjoint byte ranges holding every candidate (of at most :data:`_CANDIDATE_MAX` bytes)
        that a keyword of ``name`` is near."""
        lo = hi = -1
        for start, end, names in zip(self.starts, self.ends, self.names, strict=True):
            if name not in names:
                continue
            a, b = max(0, start - _KEYWORD_AFTER - _CANDIDATE_MAX), min(size, end + _KEYWORD_BEFORE + _CANDIDATE_MAX)
            if a > hi:
                if hi > lo:
                    yield lo, hi
                lo = a
            hi = max(hi, b)
        if hi > lo:
            yield lo, hi

    def near(self, start: int, end: int, name: str) -> int:
        """1 when a keyword of ``name`` is near ``[start, end)``, -1 when only others are, else 0."""
        verdict = 0
        i = bisect_left(self.starts, start - _KEYWORD_BEFORE - self.longest)
        while i < len(self.starts) and self.starts[i] <= end + _KEYWORD_AFTER:
            if self.ends[i] >= start - _KEYWORD_BEFORE:
                if name in self.names[i]:
                    return 1
                verdict = -1
            i += 1
        return verdict


def _digit_run(n: int) -> str:
    """An RE2 pattern for ``n`` digits, each pair separated by at most one of `` ./-``."""
    return rf"\b\d(?:[ ./-]?\d){{{n - 1}}}\b"


_SPACE = "[\\t\\n\\v\\f\\r ]"
_TRAIL = "[\\t\\n\\v\\f\\r .,;]"
_SPACES = b" \t\n\v\f\r"


class NationalIdDetector(_CandidateDetector):
    """A national personal or tax number: ``candidate_pattern`` finds candidates, ``check``
    validates one (python-stdnum), and a valid candidate counts only with context (see above):

    - a keyword of ``keywords`` (matched in any case, on word edges) within 48 bytes before it or
      24 after it;
    - else, unless a keyword of another national number is that near, ``native_pattern`` (the
      print that names the type) matching the whole candidate, or ``alone_rank`` > 0 and the
      text being the candidate alone (white space and a final ``.,;`` aside) and no detector of a
      higher ``alone_rank`` also validating it.

    The screen is therefore not the candidate pattern but what context needs: one of the
    keywords, the native print, or the whole text being a candidate. Most texts with digits hold
    none of these, and a union of many counted digit patterns would make RE2's automaton large."""

    candidate_pattern: ClassVar[str]
    keywords: ClassVar[tuple[str, ...]] = ()
    native_pattern: ClassVar[str | None] = None
    alone_pattern: ClassVar[str | None] = None
    """The shape a text alone must have (default: ``candidate_pattern``)."""
    alone_rank: ClassVar[int] = 0
    category = Category.GOVERNMENT_ID
    timestamp_clean = True  # tests/unit/test_classify_timestamps.py runs every registered detector
    _each: ClassVar[tuple[Callable[[bytes], Iterator[tuple[int, int]]], ...]]
    """The candidate pattern's spans (in tuples: a bare function would bind as a method)."""
    _whole: ClassVar[tuple[Callable[[bytes], bool], ...]]
    """True when the candidate pattern matches the whole of its argument."""
    _natives: ClassVar[tuple[Callable[[bytes], Iterator[tuple[int, int]]], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "candidate_pattern" in cls.__dict__:
            screens = [_keyword_pattern(cls.keywords)] if cls.keywords else []
            if cls.native_pattern is not None:
                screens.append(rf"\b(?:{cls.native_pattern})\b")
                cls._natives = (spans(linear(screens[-1])),)
            alone = cls.alone_pattern or cls.candidate_pattern
            if cls.alone_rank > 0:
                screens.append(rf"^{_SPACE}*(?:{alone}){_TRAIL}*$")
            cls.screen_pattern = "|".join(f"(?:{p})" for p in screens)
            cls._each = (spans(linear(cls.candidate_pattern)),)
            cls._whole = (finder(linear(rf"^(?:{alone})$")),)
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if "countries" not in cls.__dict__:
                cls.countries = (cls.name[:2].upper(),)
            for word in cls.keywords:
                _KEYWORDS.setdefault(scanned_copy(word).lower(), set()).add(cls.name)
            _KEYWORD_SCAN.clear()
            if cls.alone_rank > 0:
                _ALONE.append(cls)
                _ALONE.sort(key=lambda c: -c.alone_rank)

    def match(self, data: bytes) -> bool:
        # Context first, validation (python-stdnum, tens of microseconds) only for a candidate with it.
        # Candidates are looked for only where context is: near this detector's keywords (RE2 finds
        # loosely separated digit runs in time that grows faster than the text when called once per
        # match over a long one), at native prints, or as the whole text.
        # A text with more than _MAX_CHECKS candidates in context counts as found without checking
        # the rest: decoys cannot hide a number, and time stays linear.
        keywords = _Keywords(data)
        name, size = self.name, len(data)
        checks = 0
        for lo, hi in keywords.windows(name, size):
            for at, until in self._each[0](data[lo:hi]):
                start, end = lo + at, lo + until
                if (start and data[start - 1] in _WORD) or (end < size and data[end] in _WORD):
                    continue  # the window cut a longer run
                if keywords.near(start, end, name) > 0:
                    checks += 1
                    if checks > _MAX_CHECKS or _safe(self.check, _text(data[start:end])):
                        return True
        for each in self._natives:
            for start, end in each(data):
                if keywords.near(start, end, name) >= 0:
                    checks += 1
                    if checks > _MAX_CHECKS or _safe(self.check, _text(data[start:end])):
                        return True
        if self.alone_rank > 0:
            start, end = len(data) - len(data.lstrip(_SPACES)), len(data.rstrip(_SPACES + b".,;"))
            if end > start and self._whole[0](data[start:end]) and keywords.near(start, end, name) >= 0:
                candidate = _text(data[start:end])
                return _safe(self.check, candidate) and not self._outranked(candidate)
        return False

    def _outranked(self, candidate: str) -> bool:
        """A detector of a higher ``alone_rank`` validates ``candidate`` too."""
        for other in _ALONE:
            if other.alone_rank <= self.alone_rank:
                return False
            if _safe(other().check, candidate):
                return True
        return False


class DeIdnrDetector(NationalIdDetector):
    """German Steuer-ID (11 digits), validated by ``stdnum.de.idnr``. Printed ``12 345 678 901``, or
    alone in a text, it counts without a keyword (alone, only when no more strongly checked
    11-digit number reads it too); inside other text a bare 11-digit run needs a keyword (a
    PESEL or a Norwegian number passes this check about one time in fifty)."""

    name = "de_idnr"
    min_length = 11
    candidate_pattern = _digit_run(11)
    native_pattern = r"\d{2} \d{3} \d{3} \d{3}"
    alone_rank = 1
    keywords = ("steuer-id", "steuerid", "steuer-idnr", "steueridentifikationsnummer", "identifikationsnummer",
                "steuerliche identifikationsnummer", "idnr", "id-nr", "german tax id", "tax identification number")

    def check(self, candidate: str) -> bool:
        return bool(idnr.is_valid(candidate))


class FrNirDetector(_CandidateDetector):
    """French social security number (NIR, 15 characters), validated by ``stdnum.fr.nir``."""

    name = "fr_nir"
    timestamp_clean = True
    countries = ("FR",)
    category = Category.GOVERNMENT_ID
    min_length = 15
    screen_pattern = r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b"

    def check(self, candidate: str) -> bool:
        return bool(nir.is_valid(candidate))


class EsDniDetector(_CandidateDetector):
    """Spanish DNI (8 digits and a check letter), validated by ``stdnum.es.dni``."""

    name = "es_dni"
    timestamp_clean = True
    countries = ("ES",)
    category = Category.GOVERNMENT_ID
    min_length = 9
    screen_pattern = r"\b\d(?: ?\d){7}[ -]?[A-Za-z]\b"

    def check(self, candidate: str) -> bool:
        return bool(dni.is_valid(candidate))


class ItCodiceFiscaleDetector(_CandidateDetector):
    """Italian personal codice fiscale (16 characters, either case), validated by
    ``stdnum.it.codicefiscale``."""

    name = "it_codicefiscale"
    timestamp_clean = True
    countries = ("IT",)
    category = Category.GOVERNMENT_ID
    min_length = 16
    digit_gated = False  # letters and digits mixed (omocodia replaces digits by letters)
    screen_pattern = (r"\b(?i:[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}"
                      r"[A-Z])\b")

    def check(self, candidate: str) -> bool:
        return bool(codicefiscale.is_valid(candidate.upper()))


_SSN_WORDS = linear(r"(?i:\b(?:ssn|ssns|social security|soc sec|soc\. sec)\b)")


class UsSsnDetector(_CandidateDetector):
    """US social security numbers written ``ddd-dd-dddd`` or ``ddd dd dddd``, validated by ``stdnum.us.ssn``
    (rejects area 000/666/9xx, zero group or serial, and known advertising numbers). The spaced
    print is validated as the dashed one (``stdnum.us.ssn`` strips dashes only). As with cards, a
    number after a reference word (order, invoice, ticket, ...) counts only with an SSN word near
    it (SSN, social security, ...)."""

    name = "us_ssn"
    timestamp_clean = True
    countries = ("US",)
    category = Category.GOVERNMENT_ID
    min_length = 11  # the separators are required
    screen_pattern = r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b"

    def match(self, data: bytes) -> bool:
        for m in self.pattern.finditer(data):
            if not _safe(self.check, _text(m.group(0))):
                continue
            start, end = m.start(), m.end()
            if not _reference(data, start) or _words_near(_SSN_WORDS, data, start, end):
                return True
        return False

    def check(self, candidate: str) -> bool:
        return bool(ssn.is_valid(candidate.replace(" ", "-")))


_NINO = linear(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$")
_NINO_UNUSED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _is_nino(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    return compact[:2] not in _NINO_UNUSED_PREFIXES and _NINO.search(utf8(compact)) is not None


class GbNinoDetector(_CandidateDetector):
    """UK National Insurance numbers. python-stdnum has no NINO module (``stdnum.gb`` offers
    nhs, sedol, upn, utr, vat) and a NINO has no check digit, so this is a format check: the
    HMRC prefix rules (first letter not D, F, I, Q, U, V; second not D, F, I, O, Q, U, V;
    prefixes BG, GB, KN, NK, NT, TN, ZZ unused), six digits, suffix A-D; either case."""

    name = "gb_nino"
    timestamp_clean = True
    countries = ("GB",)
    category = Category.GOVERNMENT_ID
    min_length = 9
    screen_pattern = r"\b[A-Za-z] ?[A-Za-z](?: ?\d){6} ?[A-Da-d]\b"

    def check(self, candidate: str) -> bool:
        return bool(_is_nino(candidate))


# -- personal contact data -------------------------------------------------------------------

_EMAIL = linear(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b")


class EmailDetector(BaseDetector):
    """E-mail addresses: local part, a dotted domain and an alphabetic top-level label."""

    name = "email"
    timestamp_clean = True
    category = Category.PII
    min_length = 6  # a@b.cd
    screen_pattern = "@"

    def match(self, data: bytes) -> bool:
        return _EMAIL.search(data) is not None


# A candidate: 7 or more digits, each separated from the next by at most three of ` -./()`.
# Runs of more than 17 digits are ids, not phones, and are skipped as a whole.
_PHONE_HINT_PATTERN = r"(?:\+|\b)\d(?:[ \-./()]{0,3}\d){6,}"
_PHONE_HINT = linear(_PHONE_HINT_PATTERN)
_PHONE_HINTS = spans(_PHONE_HINT)
_NATIONAL_PRINT = finder(linear(r"^(?:\d{6}[-+]\d{4}|\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}"
                                 r"|\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}|\d{4}\.\d{2}\.\d{3}|\d{3}\.\d{4}\.\d{4}\.\d{2})$"))
_CAPS_BEFORE = finder(linear(r"(?:^|[^A-Za-z0-9])[A-Z]{2,4}\d{0,2} $"))
_PHONE_MAX_DIGITS = 17  # E.164 allows 15 digits, plus a trunk or exit prefix
_PHONE_MAX_HINT = 1 + _PHONE_MAX_DIGITS + 3 * (_PHONE_MAX_DIGITS - 1)
_PHONE_MIN_DIGITS = 7
# A calendar date opening a candidate (2026-11-28, 28.11.2026, 11/28/2026): timestamps are in most
# CRM records, and parsing one as a phone number in every region costs ~0.2 ms. It is cut off and
# the rest of the candidate, if any, is tried.
_DAY, _MONTH, _YEAR = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])", r"(?:19|20)\d\d"
_LEADING_DATE = linear(rf"^(?:{_YEAR}[-./]{_MONTH}[-./]{_DAY}|{_DAY}[-./]{_MONTH}[-./]{_YEAR}"
                       rf"|{_MONTH}/{_DAY}/{_YEAR})(?:[ \-./()]+|$)")
_LEADING_DATES = spans(_LEADING_DATE)
_NO_DIGITS = bytes(range(48, 58))


def _phone_candidate(raw: bytes) -> tuple[int, bytes] | None:
    """``(offset, candidate)`` within a hint, or None when the hint cannot be a phone number:
    more than 17 digits (an id), or fewer than 7 once a leading date is cut off."""
    if len(raw) > _PHONE_MAX_HINT:
        return None
    offset = 0
    date = next(_LEADING_DATES(raw), None)
    if date is not None:
        offset = date[1]
        raw = raw[offset:]
    digits = len(raw) - len(raw.translate(None, _NO_DIGITS))  # the hint is ASCII: digits and separators
    return (offset, raw) if _PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS else None


def _parses_valid(candidate: str, region: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)))
    except phonenumbers.NumberParseException:
        return False


class PhoneDetector(BaseDetector):
    """Phone numbers found by ``phonenumbers.PhoneNumberMatcher`` with leniency VALID.

    A candidate not written with ``+`` is skipped when it is the tail of a code (after ``-``,
    ``/``, ``#`` or ``_`` glued to a letter or digit) or follows a reference word (order,
    invoice, ticket, ...) with no phone word (tel, phone, call, Telefon, ...) near it.

    Numbers in international form (``+44 ...``) are found whatever the region; national forms are
    tried against each configured region in turn. The matcher runs only on a candidate of 7-17
    digits that already parses as a valid number, plus a few characters of context: never on a
    whole text or an arbitrary digit run. Each distinct candidate is parsed once per text, and a
    calendar date opening a candidate is not part of it.
    """

    name = "phone"
    timestamp_clean = True
    category = Category.PII
    min_length = 7
    digit_gated = True
    screen_pattern = _PHONE_HINT_PATTERN

    def __init__(self, regions: Iterable[str] = ("US", "GB", "DE", "FR")) -> None:
        self.regions = tuple(regions) or ("US",)

    def match(self, data: bytes) -> bool:
        leniency = phonenumbers.Leniency.VALID
        tried: set[bytes] = set()
        keywords: list[_Keywords] = []  # the national-number keywords, found on first need
        for hint_start, hint_end in _PHONE_HINTS(data):
            found = _phone_candidate(data[hint_start:hint_end])
            if found is None or found[1] in tried:
                continue
            offset, raw = found
            candidate = raw.decode("ascii")
            if not candidate.startswith("+") and self._reference(data, hint_start + offset, hint_end, keywords):
                continue
            tried.add(raw)
            # A leading + makes the region irrelevant to parsing: one try is enough.
            regions = self.regions[:1] if candidate.startswith("+") else self.regions
            start = hint_start + offset if offset else max(0, hint_start - 4)  # no date in the context
            window = _text(data[start:hint_end + 8])
            for region in regions:
                if not _parses_valid(candidate, region):
                    continue  # the matcher costs ~1 ms; a failed parse rules the region out first
                for _ in phonenumbers.PhoneNumberMatcher(window, region, leniency=leniency):
                    return True
        return False

    @staticmethod
    def _reference(data: bytes, start: int, end: int, keywords: list[_Keywords]) -> bool:
        """The candidate at ``[start, end)`` is no phone number by its context: the tail of a code
        (``SO-2024-123456``, ``INV/2025550143``); printed as a national number is
        (``850730-0332``, ``536-90-4399``, ``1112.22.333``); after an all-capitals token such as an
        IBAN's bank code or a VAT prefix (``BARC 0473 ...``, ``FR 05 ...``); the whole text as one
        bare run of 9 or more digits (an id in a field of its own); or after a reference word
        (order, invoice, build, ...) or near a national-number keyword, with no phone word near."""
        if start >= 2 and data[start - 1] in b"-/#_" and data[start - 2] in _WORD:
            return True
        if _NATIONAL_PRINT(data[start:end]) or _CAPS_BEFORE(data[max(0, start - 6):start]):
            return True
        if start == 0 and end == len(data) and end >= 9 and data.isdigit():
            return True
        if _words_near(_PHONE_WORDS, data, start, end):
            return False
        if _reference(data, start):
            return True
        if not keywords:
            keywords.append(_Keywords(data))  # once per text
        return keywords[0].near(start, end, "phone") < 0


# A date or date-time as CRM records carry them (Salesforce ``2026-11-28T10:00:00.000Z`` and
# ``...+0000``, ISO-8601 with a space): at most 4 fraction digits, a '-' offset only with a colon
# and without a fraction (``04.1193-16:30`` holds 8 digits joined by phone separators).
# No built-in detector can confirm anything in such a text: no letters but T/Z, no '@', no run of
# 7 digits joined by phone separators once the leading calendar date is cut (what the phone
# detector does), no 8-digit run (DNI), nothing of 11 or more digits. So the scanner answers
# "nothing" for it without screening, when all its detectors are built-in ones
# (tests/unit/test_classify_timestamps.py checks the full scan agrees on many such texts).
_HH, _MM = r"(?:[01]\d|2[0-3])", r"[0-5]\d"
_TIMESTAMP = linear(rf"^(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:[T ]{_HH}:{_MM}"
                    rf"(?:(?::{_MM})?(?:Z|\+{_HH}:?{_MM}|-{_HH}:{_MM})?|:{_MM}\.\d{{1,4}}(?:Z|\+{_HH}:?{_MM})?))?$")
_IS_TIMESTAMP = finder(_TIMESTAMP)
_TIMESTAMP_MAX = len("2026-11-28T10:00:00.0000+01:00")

_PlanEntry = tuple[Detector, int, bool, Callable[[bytes], bool], Callable[[bytes], bool]]
"""(detector, its slot in the screen Set or -1, digit-gated, screen, match)."""


class Scanner:
    """Runs a set of detectors over one text at a time.

    Per text: one UTF-8 encoding; one RE2 pass for the union of the detectors' screen patterns,
    which ends the scan of a text in which none occurs (most texts); one ``re2.Set`` pass that
    tells which screens occur, so only those detectors validate; the digit-run gate once for all
    digit-gated detectors. ``re2.Set`` reports nothing when its automaton runs out of memory, so
    it is consulted only after the union matched, and an empty answer then means "ask each
    detector" rather than "nothing found". Texts shorter than a detector's ``min_length`` skip it.
    """

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors = tuple(detectors)
        self.min_length = min((d.min_length for d in self.detectors), default=0)
        """The shortest text any of the detectors can confirm (0 when there are none)."""
        builtin = bool(self.detectors) and all(isinstance(d, BaseDetector) for d in self.detectors)
        screens = sorted({d.screen_pattern for d in self.detectors if isinstance(d, BaseDetector)})
        self._gate: Pattern | None = None
        self._set: Any = None
        slot: dict[str, int] = {}
        self._gate_found: Callable[[bytes], bool] | None = None
        if builtin:
            self._gate = linear("|".join(f"(?:{p})" for p in screens))
            self._gate_found = finder(self._gate)
            self._set = re2.Set.SearchSet()
            for pattern in screens:
                slot[pattern] = self._set.Add(pattern.encode("utf-8"))
            self._set.Compile()
        plan: list[_PlanEntry] = []
        for d in self.detectors:
            if isinstance(d, BaseDetector):
                plan.append((d, slot.get(d.screen_pattern, -1), d.digit_gated, d.screen, d.match))
            else:  # a detector of another shape sees the text
                plan.append((d, -1, False, _on_text(d.prefilter), _on_text(d.confirm)))
        self._plan = tuple(plan)
        self._present: dict[frozenset[int], tuple[_PlanEntry, ...]] = {}
        self._timestamps_clean = builtin and all(getattr(d, "timestamp_clean", False) for d in self.detectors)
        """Every detector is one that cannot confirm a match in a :data:`_TIMESTAMP` text."""

    def hits(self, text: str) -> tuple[Detector, ...]:
        """The detectors that confirm a match in ``text`` (read as its :func:`scanned_copy`), in
        configuration order."""
        if not text.isascii():  # inline: most texts are ASCII and their own scanned copy
            text = scanned_copy(text)
        size = len(text)
        data = utf8(text)
        if self._timestamps_clean and size <= _TIMESTAMP_MAX and text[4:5] == "-" and _IS_TIMESTAMP(data):
            return ()  # a date or date-time: nothing any of these detectors can confirm
        plan = self._plan
        screened = False
        if self._gate_found is not None:
            if not self._gate_found(data):
                return ()  # nothing any detector screens for occurs in the text
            found = self._set.Match(data)
            if found:  # else the Set gave up: screen one by one
                present = frozenset(found)
                plan = self._present.get(present) or self._plan_for(present)
                screened = True
        digit_run: bool | None = None
        out: list[Detector] = []
        for d, _slot, gated, screen, match in plan:
            if size < d.min_length:
                continue
            if gated:
                if digit_run is None:
                    digit_run = _has_digit_run(data)
                if not digit_run:
                    continue
            if (screened or screen(data)) and match(data):
                out.append(d)
        return tuple(out)

    def _plan_for(self, present: frozenset[int]) -> tuple[_PlanEntry, ...]:
        """The detectors whose screens occur (``present`` slots), in configuration order."""
        plan = tuple(entry for entry in self._plan if entry[1] in present)
        if len(self._present) >= 1024:
            self._present.clear()
        self._present[present] = plan
        return plan


def _on_text(check: Callable[[str], bool]) -> Callable[[bytes], bool]:
    return lambda data: check(_text(data))
