"""Country names and codes to ISO 3166-1 alpha-2, and the EU / EEA membership tables.

:func:`to_alpha2` answers a code (alpha-2, alpha-3, ISO's three-digit numeric) or a name in any
language CLDR covers (every locale babel ships), official and common names (pycountry) and a few
aliases CLDR lacks (UK nations, "U.S.A."). It fails closed: a name that means different countries
in different languages, a value mixing writing systems ("Germany" with a Cyrillic "e"), a
region or withdrawn code (``EU``, ``150``, ``XK``, ``YU``) or anything unknown resolves to nothing,
never to a guess. Wrong is worse than unknown: an unknown country quarantines the event where it
already sits; a wrong one moves personal data across a border.

The name index is built once, on first use, from babel's locale files (about half a second and a
few MB here; see :func:`name_index_stats`). Nothing is generated into the source tree.
"""

from __future__ import annotations

import pickle
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pycountry
from babel import localedata

# EU member states (27 since 1 February 2020), ISO alpha-2. Source: europa.eu, "EU countries"
# (https://european-union.europa.eu/principles-countries-history/eu-countries_en). Greece is GR in
# ISO 3166 (EL is only the EU's own VAT prefix).
EU: frozenset[str] = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})
# EEA = EU + Iceland, Liechtenstein, Norway. Source: EFTA, "EEA Agreement"
# (https://www.efta.int/eea). Switzerland is in EFTA but not the EEA.
EEA: frozenset[str] = EU | {"IS", "LI", "NO"}

GROUPS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA}
"""Tokens accepted in ``residency.countries`` lists besides alpha-2 codes."""

_ALIASES = {
    # Codes outside ISO 3166-1 that mean one country: the EU's prefix for Greece, the UK.
    "EL": "GR", "UK": "GB",
    # Names neither CLDR nor pycountry carries.
    "U.S.": "US", "U.S.A.": "US", "ENGLAND": "GB", "SCOTLAND": "GB", "WALES": "GB", "NORTHERN IRELAND": "GB",
    "GREAT BRITAIN": "GB", "CONFOEDERATIO HELVETICA": "CH",
}
"""Checked against the CLDR index when it is built: an alias never contradicts it."""

_MAX_CHARS = 100
"""No country name is longer (the longest CLDR name has 60-odd characters)."""

_ARTICLES = ("the ", "die ", "der ", "la ", "le ", "les ", "l'", "el ", "los ", "las ", "il ", "lo ", "gli ",
             "het ", "de ")
"""A leading article is ignored when the text without it is a name ("The Netherlands",
"die Schweiz", "l'Allemagne"); the text itself is tried first ("El Salvador", "La Réunion")."""

_PUNCT = str.maketrans({
    **dict.fromkeys("\N{RIGHT SINGLE QUOTATION MARK}\N{LEFT SINGLE QUOTATION MARK}\N{MODIFIER LETTER APOSTROPHE}"
                    "`", "'"),
    **dict.fromkeys("-_\N{HYPHEN}\N{NON-BREAKING HYPHEN}\N{EN DASH}\N{EM DASH}", " "),
    ".": "",
})
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_HAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "IDEOGRAPHIC"})
"""Japanese mixes kana and kanji, Korean may mix hangul and hanja: one writing system here."""
_LOOSE_SCRIPTS = frozenset({"LATIN", "GREEK"})
"""Scripts whose names are also written without accents ("Espana", "ΕΛΛΑΔΑ")."""


def _scripts(text: str) -> set[str]:
    """The scripts of the letters of ``text`` (NFKC), by the first word of their Unicode names."""
    out: set[str] = set()
    for ch in text:
        if ch.isalpha():
            word = unicodedata.name(ch, "UNNAMED").split(" ", 1)[0]
            if word != "MODIFIER":  # modifier letters (turned comma, apostrophe) mark sounds in Latin text
                out.add("HAN" if word in _HAN else word)
    return out


def _fold(nfkc: str) -> str:
    """A name as matched: case-folded, apostrophes alike, without dots, dashes as spaces,
    whitespace collapsed."""
    return " ".join(nfkc.casefold().translate(_PUNCT).split())


def _unaccented(key: str) -> str:
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", key)
                                                if not unicodedata.combining(c)))


@dataclass(frozen=True, slots=True)
class _Index:
    exact: dict[str, str | None]
    """Folded name or code -> alpha-2; None for a name that means different countries."""
    loose: dict[str, str | None]
    """Names of Latin and Greek script without accents, German umlauts as ae/oe/ue -> alpha-2;
    None when two countries' names meet there."""
    stats: dict[str, int]


def _add(table: dict[str, str | None], key: str, code: str) -> None:
    if key and table.setdefault(key, code) != code:
        table[key] = None


def _cldr_names(iso: frozenset[str]) -> tuple[list[tuple[str, str]], int]:
    """(name, alpha-2) from every locale babel ships, ISO 3166-1 countries only; and how many
    locale files could not be read (their names are then unknown, never wrong)."""
    names: list[tuple[str, str]] = []
    unreadable = 0
    for locale in localedata.locale_identifiers():
        # The locale's own file, not babel's merged and cached view: every name any locale
        # defines is in some file, and babel's cache (shared with other users of babel) stays as it is.
        try:
            with open(localedata.resolve_locale_filename(locale), "rb") as fh:
                data = pickle.load(fh)  # noqa: S301 - babel's own data files, as babel itself loads them
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            unreadable += 1
            continue
        territories = data.get("territories") if isinstance(data, dict) else None
        if isinstance(territories, dict):
            names.extend((n, c) for c, n in territories.items()
                         if isinstance(c, str) and c in iso and isinstance(n, str))
    return names, unreadable


def _named(countries: list[object], iso: frozenset[str]) -> tuple[dict[str, str | None], int, int, int]:
    """Folded CLDR and pycountry names -> alpha-2 (None: ambiguous); CLDR entries read, names
    skipped for mixing scripts, unreadable locale files."""
    cldr, unreadable = _cldr_names(iso)
    named: dict[str, str | None] = {}
    mixed = 0
    for name, code in cldr:
        nfkc = unicodedata.normalize("NFKC", name)
        if len(_scripts(nfkc)) > 1:  # a few CLDR names mix scripts ("sar", Chuvash with Latin ă); never matched
            mixed += 1
            continue
        _add(named, _fold(nfkc), code)
    for c in countries:
        for attr in ("name", "official_name", "common_name"):
            text = getattr(c, attr, None)
            if isinstance(text, str):
                _add(named, _fold(unicodedata.normalize("NFKC", text)), str(getattr(c, "alpha_2", "")))
    return named, len(cldr), mixed, unreadable


def _loose(named: dict[str, str | None]) -> dict[str, str | None]:
    """Accent-free and umlaut-as-ae spellings of the Latin and Greek names."""
    loose: dict[str, str | None] = {}
    for key, code in named.items():
        if _scripts(key) <= _LOOSE_SCRIPTS:
            for variant in {_unaccented(key), _unaccented(key.translate(_UMLAUTS))} - {key}:
                if code is None:
                    loose[variant] = None
                else:
                    _add(loose, variant, code)
    for variant, code in loose.items():  # "espana" must not mean another country than "España" does
        if named.get(variant, code) != code:
            loose[variant] = None
    return loose


def _build() -> _Index:
    countries: list[object] = list(pycountry.countries)
    iso = frozenset(str(getattr(c, "alpha_2", "")) for c in countries)
    named, entries, mixed, unreadable = _named(countries, iso)
    exact = dict(named)
    for c in countries:  # codes share the table: a code that is another country's name is ambiguous ("NGA")
        code = str(getattr(c, "alpha_2", ""))
        for attr in ("alpha_2", "alpha_3", "numeric"):
            _add(exact, _fold(str(getattr(c, attr, ""))), code)
    for alias, code in _ALIASES.items():
        key = _fold(alias)
        if exact.get(key, code) != code:  # pragma: no cover - the unit tests resolve every alias
            raise AssertionError(f"country alias {alias} contradicts CLDR")
        exact[key] = code
    loose = _loose(named)
    stats = {"names": len(named), "ambiguous": sum(1 for v in named.values() if v is None),
             "loose": len(loose), "loose_ambiguous": sum(1 for v in loose.values() if v is None),
             "mixed_script_skipped": mixed, "cldr_entries": entries, "unreadable_locales": unreadable,
             "keys": len(exact)}
    return _Index(exact, loose, stats)


_index: _Index | None = None
_lock = threading.Lock()


def _get_index() -> _Index:
    global _index  # noqa: PLW0603 - built once, on first use
    if _index is None:
        with _lock:
            if _index is None:
                _index = _build()
    return _index


def name_index_stats() -> dict[str, int]:
    """Counts of the name index (building it if needed): ``names`` (distinct folded names),
    ``ambiguous`` (names meaning different countries in different languages, which resolve to
    nothing), ``loose`` / ``loose_ambiguous`` (accent-free spellings), ``mixed_script_skipped``
    (CLDR names that mix scripts and are left out), ``cldr_entries``, ``unreadable_locales``."""
    return dict(_get_index().stats)


def _lookup(key: str, index: _Index) -> tuple[bool, str | None]:
    """(found, code): found with None means ambiguous, which ends the search."""
    if key in index.exact:
        return True, index.exact[key]
    if key in index.loose:
        return True, index.loose[key]
    bare = _unaccented(key)
    if bare != key:
        for table in (index.exact, index.loose):
            if bare in table:
                return True, table[bare]
    return False, None


@lru_cache(maxsize=4096)
def to_alpha2(value: str) -> str | None:
    """ISO 3166-1 alpha-2 for a code or a country name in any CLDR language, else None.

    Codes: alpha-2 (and ``UK``, ``EL``), alpha-3, and the numeric code in ISO's own three-digit
    form only (``"040"`` is Austria; ``"40"`` is nothing). A bare number is accepted in that form
    because a field of numeric ISO codes holds exactly that; shorter numbers are more likely
    calling codes (40 is Romania's), counts or postal codes and resolve to nothing. A
    three-digit postal code (Iceland, the Faroes) or calling code (372 is Estonia's, ISO's
    Ireland) in a field mapped as a country would still resolve: do not map such fields.

    Names: case, NFKC compatibility forms, accents (Latin and Greek), apostrophe, dot and dash
    variants and a leading article ("The Netherlands") do not matter. A value whose letters mix
    scripts, a name meaning different countries in different languages ("Kongo"), a region or a
    withdrawn country resolves to nothing.
    """
    text = value.strip()
    if not text or len(text) > _MAX_CHARS:
        return None
    nfkc = unicodedata.normalize("NFKC", text)
    if len(_scripts(nfkc)) > 1:
        return None
    key = _fold(nfkc)
    if key.isdigit() and (len(key) != 3 or not key.isascii()):
        return None
    index = _get_index()
    found, code = _lookup(key, index)
    if not found:
        rest = next((key[len(a):].lstrip() for a in _ARTICLES if key.startswith(a) and len(key) > len(a)), "")
        if rest and not rest.isdigit():  # "de 276": a number after an article is no code
            code = _lookup(rest, index)[1]
    return code
