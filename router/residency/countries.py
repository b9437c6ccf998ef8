"""Country names and codes to ISO 3166-1 alpha-2, and the EU / EEA membership tables."""

from __future__ import annotations

from functools import lru_cache

import pycountry

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

_ALIASES = {"UK": "GB", "EL": "GR", "USA": "US", "U.S.": "US", "U.S.A.": "US",
            "UNITED STATES OF AMERICA": "US", "ENGLAND": "GB", "SCOTLAND": "GB", "WALES": "GB",
            "NORTHERN IRELAND": "GB", "GREAT BRITAIN": "GB",
            # Endonyms CRM users type (pycountry knows English names only); upper-cased.
            "DEUTSCHLAND": "DE", "ESPAÑA": "ES", "ESPANA": "ES", "ITALIA": "IT", "ÖSTERREICH": "AT",
            "OESTERREICH": "AT", "NEDERLAND": "NL", "BELGIË": "BE", "BELGIQUE": "BE", "BELGIEN": "BE",
            "SVERIGE": "SE", "DANMARK": "DK", "SUOMI": "FI", "POLSKA": "PL", "ČESKO": "CZ",
            "ČESKÁ REPUBLIKA": "CZ", "MAGYARORSZÁG": "HU", "ΕΛΛΆΔΑ": "GR", "ΕΛΛΑΔΑ": "GR", "HELLAS": "GR",
            "ÉIRE": "IE", "EIRE": "IE", "HRVATSKA": "HR", "SLOVENSKO": "SK", "SLOVENIJA": "SI",
            "ROMÂNIA": "RO", "БЪЛГАРИЯ": "BG", "LIETUVA": "LT", "LATVIJA": "LV", "EESTI": "EE",
            "NORGE": "NO", "NOREG": "NO", "ÍSLAND": "IS", "SCHWEIZ": "CH", "SUISSE": "CH", "SVIZZERA": "CH",
            "SVIZRA": "CH", "CONFOEDERATIO HELVETICA": "CH", "LUXEMBURG": "LU", "LËTZEBUERG": "LU",
            "VEREINIGTES KÖNIGREICH": "GB", "ROYAUME-UNI": "GB", "VEREINIGTE STAATEN": "US",
            "ÉTATS-UNIS": "US", "ESTADOS UNIDOS": "US"}


@lru_cache(maxsize=4096)
def to_alpha2(value: str) -> str | None:
    """ISO alpha-2 for a code (alpha-2/alpha-3) or an English name (pycountry), else None."""
    text = value.strip()
    if not text:
        return None
    upper = text.upper()
    if upper in _ALIASES:
        return _ALIASES[upper]
    try:
        if len(upper) == 2:
            hit = pycountry.countries.get(alpha_2=upper)
        elif len(upper) == 3:
            hit = pycountry.countries.get(alpha_3=upper)
        else:
            hit = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return None if hit is None else str(hit.alpha_2)
