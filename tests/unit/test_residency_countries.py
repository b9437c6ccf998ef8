"""Country names and codes -> ISO 3166-1 alpha-2 (``to_alpha2``).

Ground truth here is not the CLDR data the index is built from (that would be circular): English
names, official names and codes come from pycountry's ISO 3166 tables, endonyms and exonyms are
written by hand, and confusable spellings are built from pycountry's names.
"""

from __future__ import annotations

import unicodedata

import pycountry
import pytest

from router.residency.countries import name_index_stats, to_alpha2

pytestmark = pytest.mark.unit

COUNTRIES = list(pycountry.countries)


# -- the reported misses --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "code"), [
    ("The Netherlands", "NL"), ("the Netherlands", "NL"), ("THE NETHERLANDS", "NL"), ("the United Kingdom", "GB"),
    ("Federal Republic of Germany", "DE"), ("Allemagne", "DE"), ("The Gambia", "GM"), ("the Bahamas", "BS"),
])
def test_reported_misses_resolve(text: str, code: str) -> None:
    assert to_alpha2(text) == code


# -- names in many languages, written by hand -------------------------------------------------

ENDONYMS_AND_EXONYMS = {
    "DE": ["Deutschland", "Allemagne", "Alemania", "Germania", "Duitsland", "Niemcy", "Tyskland", "Saksa",
           "Německo", "Németország", "Almanya", "Германия", "Німеччина", "Γερμανία", "ドイツ", "德国", "독일",
           "ألمانيا", "גרמניה", "जर्मनी"],
    "NL": ["Nederland", "Niederlande", "Pays-Bas", "Países Bajos", "Paesi Bassi", "Holandia", "Nederländerna",
           "Alankomaat", "Нидерланды", "オランダ", "荷兰"],
    "GB": ["United Kingdom", "Vereinigtes Königreich", "Royaume-Uni", "Reino Unido", "Regno Unito",
           "Verenigd Koninkrijk", "Wielka Brytania", "Storbritannien", "Великобритания", "イギリス", "英国"],
    "CH": ["Schweiz", "Suisse", "Svizzera", "Svizra", "Szwajcaria", "Zwitserland", "Швейцария", "スイス", "瑞士"],
    "US": ["United States", "Vereinigte Staaten", "États-Unis", "Estados Unidos", "Stati Uniti", "Verenigde Staten",
           "Stany Zjednoczone", "アメリカ合衆国", "美国"],
    "AT": ["Österreich", "Autriche", "Austria", "Oostenrijk", "Rakousko", "Австрия"],
    "FR": ["France", "Frankreich", "Francia", "Frankrijk", "Francja", "Frankrike", "Франция", "フランス", "法国"],
    "IT": ["Italia", "Italien", "Italie", "Italië", "Włochy", "Itália", "Италия", "イタリア"],
    "ES": ["España", "Spanien", "Espagne", "Spagna", "Spanje", "Hiszpania", "Испания"],
    "PL": ["Polska", "Polen", "Pologne", "Polonia", "Польша"],
    "IE": ["Ireland", "Éire", "Irland", "Irlande", "Irlanda", "Ierland"],
    "GR": ["Ελλάδα", "Griechenland", "Grèce", "Grecia", "Griekenland", "Grecja"],
    "SE": ["Sverige", "Schweden", "Suède", "Suecia", "Svezia", "Zweden"],
    "CZ": ["Česko", "Tschechien", "Tchéquie", "Chequia"],
    "BE": ["België", "Belgique", "Belgien", "Bélgica", "Belgio"],
    "NO": ["Norge", "Noreg", "Norwegen", "Norvège", "Noruega"],
    "JP": ["日本", "Japan", "Japon", "Giappone", "Япония"],
    "CN": ["中国", "China", "Chine", "Cina", "Китай"],
}


@pytest.mark.parametrize(("text", "code"), [(t, c) for c, names in ENDONYMS_AND_EXONYMS.items() for t in names])
def test_names_in_many_languages(text: str, code: str) -> None:
    assert to_alpha2(text) == code


@pytest.mark.parametrize(("text", "code"), [
    ("germany", "DE"), ("GERMANY", "DE"), ("  Germany\t", "DE"), ("United   Kingdom", "GB"),
    ("".join(chr(ord(c) + 0xFEE0) for c in "GERMANY"), "DE"),  # fullwidth: NFKC
    ("Espana", "ES"), ("Osterreich", "AT"), ("Oesterreich", "AT"), ("Eire", "IE"), ("ελλαδα".upper(), "GR"),
    ("Cote d'Ivoire", "CI"), ("Côte d\N{RIGHT SINGLE QUOTATION MARK}Ivoire", "CI"), ("Guinea Bissau", "GW"),
    ("Bosnia and Herzegovina", "BA"),
    ("England", "GB"), ("Scotland", "GB"), ("Wales", "GB"), ("Northern Ireland", "GB"), ("Great Britain", "GB"),
    ("U.S.", "US"), ("U.S.A.", "US"), ("USA", "US"), ("UK", "GB"), ("UAE", "AE"), ("EE. UU.", "US"),
    ("Netherlands, The", "NL"), ("Korea, Republic of", "KR"), ("Republic of Korea", "KR"), ("Holy See", "VA"),
])
def test_spelling_variants(text: str, code: str) -> None:
    assert to_alpha2(text) == code


@pytest.mark.parametrize(("text", "code"), [
    ("Bundesrepublik Deutschland", "DE"), ("République fédérale d'Allemagne", "DE"),
    ("República Federal de Alemania", "DE"),
    ("Schweizerische Eidgenossenschaft", "CH"), ("Confédération suisse", "CH"), ("République française", "FR"),
    ("Reino de España", "ES"), ("Rzeczpospolita Polska", "PL"), ("Republik Österreich", "AT"),
    ("Vereinigte Staaten von Amerika", "US"), ("Repubblica Italiana", "IT"), ("Koninkrijk der Nederlanden", "NL"),
])
def test_official_long_forms_in_other_languages(text: str, code: str) -> None:
    assert to_alpha2(text) == code


# -- pycountry's ISO 3166 tables, an independent source -----------------------------------------

COMMON_USE_AMBIGUOUS = {"Congo"}
"""ISO's short name of CG, but in common use for either Congo."""


@pytest.mark.parametrize("country", COUNTRIES, ids=lambda c: c.alpha_2)
def test_every_iso_country_by_code_and_english_name(country: object) -> None:
    code = country.alpha_2  # type: ignore[attr-defined]
    assert to_alpha2(code) == code
    assert to_alpha2(country.alpha_3) == code  # type: ignore[attr-defined]
    assert to_alpha2(country.numeric) == code  # type: ignore[attr-defined]
    assert to_alpha2(code.lower()) in (code, None)  # "ao" is also Vietnamese for Austria, less its accent
    for attr in ("name", "official_name", "common_name"):
        name = getattr(country, attr, None)
        if name is not None and name not in COMMON_USE_AMBIGUOUS:
            assert to_alpha2(name) == code, attr


def test_no_iso_name_or_code_resolves_to_another_country() -> None:
    wrong = []
    for country in COUNTRIES:
        for attr in ("alpha_2", "alpha_3", "numeric", "name", "official_name", "common_name"):
            text = getattr(country, attr, None)
            if text is not None and to_alpha2(text) not in (None, country.alpha_2):
                wrong.append((attr, country.alpha_2))
    assert wrong == []


# -- codes ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "code"), [
    ("276", "DE"), ("040", "AT"), ("826", "GB"), ("840", "US"), ("756", "CH"), (" 528 ", "NL"),
    ("EL", "GR"),  # the EU's own prefix for Greece
    ("NGA", "NG"), ("AO", "AO"), ("de", "DE"), ("deu", "DE"),  # upper case is a code; lower case, if no name
])
def test_codes(text: str, code: str) -> None:
    assert to_alpha2(text) == code


@pytest.mark.parametrize("text", [
    "40", "0040", "0276", "2760", "49", "1", "12345", "999", "000",  # only ISO's three-digit form of an assigned code
    "EU", "EZ", "UN", "QO", "ZZ", "XK", "XA", "150", "001", "419",  # CLDR regions and private-use codes
    "Europe", "Europa", "European Union", "Kosovo",
    "YU", "CS", "Yugoslavia", "Czechoslovakia", "Serbia and Montenegro", "SUN",  # ISO 3166-3 (withdrawn)
    "Nga", "nga",  # Vietnamese for Russia, and in upper case ISO alpha-3 of Nigeria
    "ao",  # Vietnamese for Austria without its accent (Áo), and in upper case Angola's code
])
def test_non_countries_and_ambiguous_codes_resolve_to_nothing(text: str) -> None:
    assert to_alpha2(text) is None


# -- ambiguity --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Kongo", "Конго",  # either Congo (CG, CD) depending on the language
    "Sant Martin",  # Saint-Martin (MF) in one language, Sint Maarten (SX) in another
    "Congo", "Virgin Islands", "Korea",  # in use for two countries each
    "America", "Amerika",  # the United States or the continent
])
def test_names_meaning_different_countries_in_different_languages_resolve_to_nothing(text: str) -> None:
    assert to_alpha2(text) is None


def test_the_ambiguous_names_are_counted_and_no_alias_contradicts_the_data() -> None:
    stats = name_index_stats()
    assert stats["alias_conflicts"] == 0
    assert stats["ambiguous"] >= 3  # at least the three above
    assert stats["names"] > 30_000  # every CLDR locale's names, not a handful of languages


# -- confusables and mixed scripts --------------------------------------------------------------

def _table(script: str, letters: dict[str, str]) -> dict[int, str]:
    return str.maketrans({c: unicodedata.lookup(f"{script} {'CAPITAL' if c.isupper() else 'SMALL'} LETTER {n}")
                          for c, n in letters.items()})


CYRILLIC_LOOKALIKE = _table("CYRILLIC", {
    "a": "A", "c": "ES", "e": "IE", "o": "O", "p": "ER", "x": "HA", "y": "U", "i": "BYELORUSSIAN-UKRAINIAN I",
    "j": "JE", "s": "DZE", "h": "SHHA", "A": "A", "B": "VE", "C": "ES", "E": "IE", "H": "EN",
    "I": "BYELORUSSIAN-UKRAINIAN I", "J": "JE", "K": "KA", "M": "EM", "O": "O", "P": "ER", "T": "TE", "X": "HA",
    "Y": "U"})
GREEK_LOOKALIKE = _table("GREEK", {
    "A": "ALPHA", "B": "BETA", "E": "EPSILON", "H": "ETA", "I": "IOTA", "K": "KAPPA", "M": "MU", "N": "NU",
    "O": "OMICRON", "P": "RHO", "T": "TAU", "X": "CHI", "Y": "UPSILON", "Z": "ZETA", "o": "OMICRON", "v": "NU",
    "i": "IOTA"})


def swap(text: str, i: int, table: dict[int, str]) -> str:
    """``text`` with its ``i``-th letter replaced by a look-alike from ``table``."""
    out = text[:i] + text[i].translate(table) + text[i + 1:]
    assert out != text
    return out


@pytest.mark.parametrize("text", [
    swap("Germany", 1, CYRILLIC_LOOKALIKE), swap("France", 2, CYRILLIC_LOOKALIKE), swap("Italy", 0, GREEK_LOOKALIKE),
    swap("Switzerland", 2, CYRILLIC_LOOKALIKE), swap("Netherlands", 1, CYRILLIC_LOOKALIKE),
    swap("USA", 2, GREEK_LOOKALIKE), swap("DE", 1, GREEK_LOOKALIKE), swap("Deutschland", 8, CYRILLIC_LOOKALIKE),
    swap("USA", 2, CYRILLIC_LOOKALIKE), "\N{CYRILLIC CAPITAL LETTER GHE}ermany",
])
def test_mixed_script_values_resolve_to_nothing(text: str) -> None:
    assert to_alpha2(text) is None


@pytest.mark.parametrize("table", [CYRILLIC_LOOKALIKE, GREEK_LOOKALIKE], ids=["cyrillic", "greek"])
def test_look_alike_spellings_of_iso_names_and_codes_never_resolve_to_another_country(table: dict[int, str]) -> None:
    """Every letter that has a look-alike is replaced (single-script when all of them have one:
    MEXICO in Cyrillic letters), then one at a time (mixed script): nothing, or the same country."""
    wrong, tried = [], 0
    for country in COUNTRIES:
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            text = getattr(country, attr, None)
            if text is None:
                continue
            for form in (text, text.upper()):
                variants = {form.translate(table)}
                variants |= {form[:i] + form[i].translate(table) + form[i + 1:] for i in range(len(form))}
                variants.discard(form)
                for variant in variants:
                    tried += 1
                    if to_alpha2(variant) not in (None, country.alpha_2):
                        wrong.append((attr, country.alpha_2))
    assert tried > 5_000
    assert wrong == []


@pytest.mark.parametrize("text", [
    "MEXICO".translate(CYRILLIC_LOOKALIKE), "MEXICO".translate(CYRILLIC_LOOKALIKE).lower(),
    "OMAN".translate(CYRILLIC_LOOKALIKE), "TOKYO".translate(GREEK_LOOKALIKE),
])
def test_whole_word_look_alikes_resolve_to_nothing(text: str) -> None:
    assert to_alpha2(text) is None


def test_a_look_alike_that_is_a_real_name_resolves_to_its_own_country() -> None:
    # KENYA in Greek capitals is Greek's own name for Kenya (Κένυα) without its accent.
    assert to_alpha2("KENYA".translate(GREEK_LOOKALIKE)) == "KE"


def test_real_names_written_in_one_non_latin_script_still_resolve() -> None:
    assert to_alpha2("Мексика") == "MX"  # Russian
    assert to_alpha2("Μεξικό") == "MX"  # Greek
    assert to_alpha2("アメリカ合衆国") == "US"  # Katakana and Han together are one writing system


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", ".", "the", "The ", "-", "??", "Ger\u200bmany", "Atlantis", "x" * 10_000,
                                  "Germany" * 20, "\x00", "\ud800", "Germany; DROP TABLE"])
def test_anything_else_resolves_to_nothing(text: str) -> None:
    assert to_alpha2(text) is None
