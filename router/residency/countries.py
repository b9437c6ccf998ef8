"""Country names and codes to ISO 3166-1 alpha-2, and the EU / EEA membership tables.

:func:`to_alpha2` answers a code (alpha-2, alpha-3, ISO's three-digit numeric) or a name: the
names of every locale CLDR covers (babel's locale files), pycountry's English names, official and
common names and their translations (iso-codes, checked against CLDR; official long forms such as
"Bundesrepublik Deutschland" come from there), and a few aliases neither has (UK nations, "UAE").
It fails closed: a name that means different countries in different languages, a value mixing
writing systems ("Germany" with a Cyrillic "e"), a region or withdrawn code (``EU``, ``150``,
``XK``, ``YU``) or anything unknown resolves to nothing, never to a guess. Wrong is worse than
unknown: an unknown country quarantines the event where it already sits; a wrong one moves
personal data across a border.

The name index is built once, on the first name looked up, or by :func:`load_names` (the resolver
calls it when it is built, so ``run`` and ``simulate`` pay at start-up, not on their first event;
a code such as ``DE`` needs no index, so a config's ``residency.countries`` check does not build
it): about 1.2-2 s of CPU on this 2-core host, about 10 MB kept (28 MB at the peak of the build);
:func:`name_index_stats` counts what it holds. Nothing is generated into the source tree.
"""

from __future__ import annotations

import gettext
import os
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
    "GREAT BRITAIN": "GB", "BRITAIN": "GB", "GROSSBRITANNIEN": "GB", "CONFOEDERATIO HELVETICA": "CH",
    "REPUBLIC OF IRELAND": "IE", "UAE": "AE", "BRD": "DE", "EEUU": "US", "EE. UU.": "US", "HOLY SEE": "VA",
}
"""Checked against the CLDR index when it is built: an alias never contradicts it."""

_AMBIGUOUS = ("Congo", "Virgin Islands", "America", "Amerika")
"""Names that ISO or a CLDR language give one country but that are in use for more (Congo-Brazzaville
and Congo-Kinshasa; the British and the U.S. Virgin Islands; the continent): nothing."""

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


@lru_cache(maxsize=8192)
def _script(ch: str) -> str | None:
    """The script of a letter by the first word of its Unicode name; None for other characters
    and for modifier letters (turned comma, apostrophe), which mark sounds in Latin text."""
    if not ch.isalpha():
        return None
    word = unicodedata.name(ch, "UNNAMED").split(" ", 1)[0]
    return None if word == "MODIFIER" else "HAN" if word in _HAN else word


def _scripts(text: str) -> set[str]:
    """The scripts of the letters of ``text`` (NFKC)."""
    if text.isascii():
        return {"LATIN"} if any(c.isalpha() for c in text) else set()
    return {script for ch in text if (script := _script(ch)) is not None}


def _fold(nfkc: str) -> str:
    """A name as matched: case-folded, apostrophes alike, without dots, dashes as spaces,
    whitespace collapsed."""
    return " ".join(nfkc.casefold().translate(_PUNCT).split())


def _unaccented(key: str) -> str:
    if key.isascii():
        return key
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


def _cldr_territories(iso: frozenset[str]) -> tuple[dict[str, dict[str, str]], int]:
    """locale -> {alpha-2: name} as each of babel's locale files defines it, ISO 3166-1 countries
    only; and how many locale files could not be read (their names are then unknown, never wrong)."""
    out: dict[str, dict[str, str]] = {}
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
            out[locale] = {c: n for c, n in territories.items()
                           if isinstance(c, str) and c in iso and isinstance(n, str)}
    return out, unreadable


def _key(text: str) -> str:
    return _fold(unicodedata.normalize("NFKC", text))


def _forms(key: str) -> tuple[str, ...]:
    """A folded name and, for ISO's inverted form "korea, republic of", "republic of korea"."""
    head, sep, tail = key.partition(", ")
    return (key, f"{tail} {head}") if sep and ", " not in tail else (key,)


_CLDR_FOR_PO = {"sr@latin": "sr_Latn", "zh_TW": "zh_Hant", "zh_HK": "zh_Hant"}
"""pycountry translation locales whose CLDR locale is not their own name or language."""


def _stems(key: str) -> tuple[str, ...]:
    return tuple(_unaccented(word)[:4] for word in key.split())


def _translated(countries: list[object], cldr: dict[str, dict[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """(folded name, alpha-2) from pycountry's translations of ISO 3166-1 (iso-codes; official
    long forms CLDR lacks: "Bundesrepublik Deutschland"); and how many were refused.

    Those translations hold mistakes (one names Malaysia "Mexico"), so a translated name counts
    only when it contains the first four letters of every word of one of the country's CLDR names
    in that language ("Bundesrepublik Deutschland" has "deut" of "Deutschland"; "Mexico" has no
    "mala" of "Malaysia"). A mistake that passes still meets the ambiguity check."""
    out: list[tuple[str, str]] = []
    refused = 0
    try:
        po_locales = sorted(os.listdir(pycountry.LOCALES_DIR))
    except OSError:
        return out, 0
    english = [(str(getattr(c, "alpha_2", "")), [t for a in ("name", "official_name", "common_name")
                                                 if isinstance(t := getattr(c, a, None), str)]) for c in countries]
    stems_of: dict[tuple[str, str], tuple[str, ...]] = {}
    for po in po_locales:
        path = gettext.find("iso3166-1", pycountry.LOCALES_DIR, languages=[po])
        try:  # read directly: gettext.translation() would keep every catalogue in its module cache
            with open(path or "", "rb") as fh:
                translation = gettext.GNUTranslations(fh)
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        own = [loc for loc in dict.fromkeys([po, _CLDR_FOR_PO.get(po, po), po.split("@")[0].split("_")[0]])
               if loc in cldr]
        for code, texts in english:
            stems = []
            for loc in own:
                if code in cldr[loc]:
                    st = stems_of.get((loc, code))
                    if st is None:
                        st = stems_of[(loc, code)] = _stems(_key(cldr[loc][code]))
                    stems.append(st)
            for text in texts:
                translated = translation.gettext(text)
                if translated == text:
                    continue
                key = _key(translated)
                bare = _unaccented(key)
                if stems and any(all(s in bare for s in st) for st in stems) and len(_scripts(key)) <= 1:
                    out.extend((form, code) for form in _forms(key))
                else:
                    refused += 1
    return out, refused


def _named(countries: list[object], iso: frozenset[str]) -> tuple[dict[str, str | None], dict[str, int]]:
    """Folded names -> alpha-2 (None: ambiguous) from CLDR, pycountry's English names and its
    checked translations; and counts of what was read and left out."""
    cldr, unreadable = _cldr_territories(iso)
    named: dict[str, str | None] = {}
    entries = mixed = 0
    for territories in cldr.values():
        for code, name in territories.items():
            entries += 1
            key = _key(name)
            if len(_scripts(key)) > 1:  # a few CLDR names mix scripts ("sar", Chuvash with Latin ă); never matched
                mixed += 1
                continue
            _add(named, key, code)
    for c in countries:
        for attr in ("name", "official_name", "common_name"):
            text = getattr(c, attr, None)
            if isinstance(text, str):
                for form in _forms(_key(text)):
                    _add(named, form, str(getattr(c, "alpha_2", "")))
    translated, refused = _translated(countries, cldr)
    for key, code in translated:
        _add(named, key, code)
    for name in _AMBIGUOUS:
        named[_key(name)] = None
    return named, {"cldr_entries": entries, "mixed_script_skipped": mixed, "unreadable_locales": unreadable,
                   "translations": len(translated), "translations_refused": refused}


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


@lru_cache(maxsize=1)
def _codes() -> dict[str, str]:
    """Codes as ISO writes them (upper-case alpha-2 and alpha-3, three digits) and the upper-case
    code aliases (``UK``, ``EL``) -> alpha-2. Cheap: a config's code check needs no name index."""
    codes: dict[str, str] = {}
    for c in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "numeric"):
            codes[str(getattr(c, attr, ""))] = str(c.alpha_2)
    for alias, code in _ALIASES.items():
        if alias.isalpha() and alias.isupper() and len(alias) <= 3:
            codes.setdefault(alias, code)
    return codes


def _build() -> _Index:
    countries: list[object] = list(pycountry.countries)
    iso = frozenset(str(getattr(c, "alpha_2", "")) for c in countries)
    named, counts = _named(countries, iso)
    exact = dict(named)
    codes = _codes()
    for text, code in codes.items():  # a lower-case code that is also another country's name is ambiguous ("nga")
        if text not in _ALIASES:
            _add(exact, _fold(text), code)
    conflicts = 0
    for alias, code in _ALIASES.items():
        key = _fold(alias)
        conflicts += exact.get(key, code) != code or codes.get(alias, code) != code
        exact[key] = code  # an alias is checked by hand: it wins (the unit tests check it meets no CLDR name)
    loose = _loose(named)
    stats = {"names": len(named), "ambiguous": sum(1 for v in named.values() if v is None),
             "loose": len(loose), "loose_ambiguous": sum(1 for v in loose.values() if v is None),
             "keys": len(exact), "alias_conflicts": conflicts, **counts}
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


def load_names() -> None:
    """Build the name index now (a process that will resolve names calls it at start-up, so the
    first event does not wait for it)."""
    _get_index()


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


def _name(key: str, index: _Index) -> str | None:
    """The country a folded name means: as written, in ISO's order ("netherlands, the" ->
    "the netherlands"), without a leading article."""
    for form in _forms(key):
        found, code = _lookup(form, index)
        if found:
            return code
        rest = next((form[len(a):].lstrip() for a in _ARTICLES if form.startswith(a) and len(form) > len(a)), "")
        if rest and not rest.isdigit():  # "de 276": a number after an article is no code
            found, code = _lookup(rest, index)
            if found:
                return code
    return None


@lru_cache(maxsize=4096)
def to_alpha2(value: str) -> str | None:
    """ISO 3166-1 alpha-2 for a code or a country name in any CLDR language, else None.

    Codes: alpha-2 (and ``UK``, ``EL``), alpha-3, and the numeric code in ISO's own three-digit
    form only: ``"040"`` is Austria, ``"40"`` is nothing. Letters in upper case are a code; in
    lower case they are also read as a name, and resolve to nothing when that name means another
    country (``"AO"`` is Angola; ``"ao"`` is nothing, as Vietnamese for Austria is "Áo").

    A bare number resolves in that three-digit form because a field of ISO numeric codes holds
    exactly that; shorter or longer numbers are more likely calling codes (40 is Romania's),
    counts or postal codes and resolve to nothing. A three-digit postal code (Iceland, the
    Faroes) or calling code (372 is Estonia's, and ISO's Ireland) in a field mapped as a country
    field would still resolve: such fields must not be mapped as country fields.

    Names: case, NFKC compatibility forms, accents (Latin and Greek script), apostrophe, dot and
    dash variants, ISO's inverted order ("Korea, Republic of") and a leading article ("The
    Netherlands") do not matter. A value whose letters mix scripts, a name meaning different
    countries in different languages ("Kongo") or in common use ("Congo"), a region or a
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
    code = _codes().get(nfkc.strip())
    if code is not None:  # "AO" is Angola, though "ao" is also Vietnamese for Austria without its accent
        return code
    return _name(key, _get_index())
