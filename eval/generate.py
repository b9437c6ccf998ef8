"""The generated part of the evaluation corpus: ``eval/corpus/generated.jsonl``, seeded.

Run: ``.venv/bin/python eval/generate.py [--seed 20261129] [--out eval/corpus/generated.jsonl]``.
The same seed writes the same bytes (a unit test regenerates it and compares).

Every label is written by the code that inserts the value: a generator builds a valid identifier
(check digits from python-stdnum's ``calc_check_digit`` functions or the published algorithm,
confirmed with python-stdnum or phonenumbers, never with router code), formats it in one of the
ways people type it, puts it in a sentence of the record's language, and labels the field with
the identifier's category and type. Look-alikes (the same identifiers with a wrong check digit,
order and tracking numbers, dates, versions, masked values, a reference number next to a date
whose digits pass the Luhn check) go in fields without a label.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import random
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import phonenumbers
from stdnum import ean, iban, luhn
from stdnum.at import vnr as at_vnr
from stdnum.be import nn as be_nn
from stdnum.bg import egn as bg_egn
from stdnum.ch import ssn as ch_ssn
from stdnum.cz import rc as cz_rc
from stdnum.de import idnr as de_idnr
from stdnum.dk import cpr as dk_cpr
from stdnum.ee import ik as ee_ik
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.eu import vat as eu_vat
from stdnum.fi import hetu as fi_hetu
from stdnum.fr import nir as fr_nir
from stdnum.gb import nhs as gb_nhs
from stdnum.gr import amka as gr_amka
from stdnum.hr import oib as hr_oib
from stdnum.ie import pps as ie_pps
from stdnum.is_ import kennitala as is_kennitala
from stdnum.iso7064 import mod_11_10
from stdnum.it import codicefiscale as it_cf
from stdnum.lt import asmens as lt_asmens
from stdnum.nl import bsn as nl_bsn
from stdnum.no import fodselsnummer as no_fnr
from stdnum.pl import pesel as pl_pesel
from stdnum.pt import nif as pt_nif
from stdnum.ro import cnp as ro_cnp
from stdnum.se import personnummer as se_pnr
from stdnum.si import emso as si_emso
from stdnum.us import ssn as us_ssn

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus" / "generated.jsonl"
SEED = 20261129
LANGS = ("en", "de", "fr", "es", "it", "nl")

Gen = Callable[[random.Random], str]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _complete(body: str, valid: Callable[[str], bool], alphabet: str = string.digits) -> str | None:
    """``body`` plus the check character that makes it valid, or None when none does."""
    for c in alphabet:
        if valid(body + c):
            return body + c
    return None


def _retry(make: Callable[[], str | None], valid: Callable[[str], bool]) -> str:
    for _ in range(10_000):
        value = make()
        if value is not None and valid(value):
            return value
    raise RuntimeError("generator could not build a valid value")  # a bug in a generator


def _birth(rng: random.Random, first: int = 1950, last: int = 2004) -> datetime.date:
    start = datetime.date(first, 1, 1).toordinal()
    return datetime.date.fromordinal(rng.randint(start, datetime.date(last, 12, 31).toordinal()))


def _break_check(value: str, valid: Callable[[str], bool], rng: random.Random) -> str:
    """``value`` with its last digit changed so that the checksum fails (a look-alike)."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    for _ in range(100):
        i = positions[-1] if rng.random() < 0.7 else rng.choice(positions)
        out = value[:i] + rng.choice([d for d in string.digits if d != value[i]]) + value[i + 1:]
        if not valid(out):
            return out
    raise RuntimeError("could not break the check digit")


# -- identifier generators: (compact valid value) ----------------------------------------------

IBAN_BBAN = {  # country: BBAN shape (n digit, a upper letter, c alnum), from the SWIFT IBAN registry
    "DE": "n" * 18, "FR": "n" * 10 + "c" * 11 + "nn", "ES": "n" * 20, "IT": "a" + "n" * 10 + "c" * 12,
    "NL": "aaaa" + "n" * 10, "BE": "n" * 12, "AT": "n" * 16, "PL": "n" * 24, "SE": "n" * 20,
    "DK": "n" * 14, "FI": "n" * 14, "NO": "n" * 11, "CH": "n" * 5 + "c" * 12, "GB": "aaaa" + "n" * 14,
    "IE": "aaaa" + "n" * 14, "PT": "n" * 21, "LU": "nnn" + "c" * 13,
}
NL_BANKS = ("ABNA", "INGB", "RABO", "SNSB", "TRIO", "ASNB", "KNAB")
GB_BANKS = ("NWBK", "BARC", "LOYD", "HBUK", "MIDL")


def _bban(rng: random.Random, shape: str) -> str:
    pools = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits * 3 + string.ascii_uppercase}
    return "".join(rng.choice(pools[c]) for c in shape)


def gen_iban(rng: random.Random, country: str | None = None) -> str:
    cc = country or rng.choice(sorted(IBAN_BBAN))

    def make() -> str:
        bban = _bban(rng, IBAN_BBAN[cc])
        if cc == "NL":
            bban = rng.choice(NL_BANKS) + bban[4:]
        elif cc in ("GB", "IE"):
            bban = (rng.choice(GB_BANKS) if cc == "GB" else "AIBK") + bban[4:]
        return cc + iban.calc_check_digits(cc + "00" + bban) + bban

    return _retry(make, iban.is_valid)  # BE, ES, NO also carry a national check


CARD_PREFIXES = (("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16), ("2221", 16), ("2720", 16),
                 ("34", 15), ("37", 15), ("6011", 16), ("36", 14))


def gen_card(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def gen_de_idnr(rng: random.Random) -> str:
    def make() -> str:
        digits = rng.sample(string.digits, 9)
        digits.append(rng.choice(digits))  # exactly one digit twice
        rng.shuffle(digits)
        body = "".join(digits)
        return body + mod_11_10.calc_check_digit(body)

    return _retry(make, de_idnr.is_valid)


def gen_fr_nir(rng: random.Random) -> str:
    def make() -> str:
        born = _birth(rng)
        dept = rng.choice(["75", "69", "13", "33", "59", "31", "44", "67", "06", "92", "93", "2A", "2B"])
        body = f"{rng.choice('12')}{born.year % 100:02d}{born.month:02d}{dept}{rng.randint(1, 990):03d}" \
               f"{rng.randint(1, 999):03d}"
        return body + fr_nir.calc_check_digits(body)

    return _retry(make, fr_nir.is_valid)


def gen_es_dni(rng: random.Random) -> str:
    body = _digits(rng, 8)
    return body + es_dni.calc_check_digit(body)


CF_MONTHS = "ABCDEHLMPRST"
CF_TOWNS = ("H501", "F205", "L219", "A944", "G273", "F839", "D612", "L736", "C351", "A662")


def gen_it_cf(rng: random.Random) -> str:
    born = _birth(rng)
    day = born.day + (40 if rng.random() < 0.5 else 0)
    letters = "".join(rng.choice("BCDFGLMNPRSTVZ") for _ in range(4)) + rng.choice("AEIO") + rng.choice("BCDFGLMNPRST")
    body = f"{letters}{born.year % 100:02d}{CF_MONTHS[born.month - 1]}{day:02d}{rng.choice(CF_TOWNS)}"
    return _retry(lambda: body + it_cf.calc_check_digit(body), it_cf.is_valid)


def gen_us_ssn(rng: random.Random) -> str:
    def make() -> str:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    return _retry(make, us_ssn.is_valid)


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
NINO_UNUSED = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


def gen_gb_nino(rng: random.Random) -> str:
    """HMRC's published format (no check digit, no python-stdnum module)."""
    while True:
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if prefix not in NINO_UNUSED:
            return prefix + _digits(rng, 6) + rng.choice("ABCD")


def gen_nl_bsn(rng: random.Random) -> str:
    return _retry(lambda: _complete(rng.choice("123456789") + _digits(rng, 7), lambda v: nl_bsn.checksum(v) == 0),
                  nl_bsn.is_valid)


def gen_be_nn(rng: random.Random) -> str:
    def make() -> str:
        born = _birth(rng)
        body = f"{born.year % 100:02d}{born.month:02d}{born.day:02d}{rng.randint(1, 997):03d}"
        base = int(("2" if born.year >= 2000 else "") + body)
        return body + f"{97 - base % 97:02d}"

    return _retry(make, be_nn.is_valid)


def gen_pl_pesel(rng: random.Random) -> str:
    born = _birth(rng)
    month = born.month + (20 if born.year >= 2000 else 0)
    body = f"{born.year % 100:02d}{month:02d}{born.day:02d}{_digits(rng, 4)}"
    return _retry(lambda: body + pl_pesel.calc_check_digit(body), pl_pesel.is_valid)


def gen_se_pnr(rng: random.Random) -> str:
    born = _birth(rng)
    body = f"{born.year % 100:02d}{born.month:02d}{born.day:02d}{_digits(rng, 3)}"
    return _retry(lambda: f"{body[:6]}-{body[6:]}{luhn.calc_check_digit(body)}", se_pnr.is_valid)


def gen_dk_cpr(rng: random.Random) -> str:
    born = _birth(rng, 1950, 1999)
    seventh = rng.choice("0123") if born.year < 2000 else "4"
    return _retry(lambda: f"{born.day:02d}{born.month:02d}{born.year % 100:02d}-{seventh}{_digits(rng, 3)}",
                  dk_cpr.is_valid)


HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def gen_fi_hetu(rng: random.Random) -> str:
    born = _birth(rng)
    sign = "-" if born.year < 2000 else "A"
    individual = rng.randint(2, 899)
    stem = f"{born.day:02d}{born.month:02d}{born.year % 100:02d}"
    check = HETU_CHECK[int(f"{stem}{individual:03d}") % 31]
    return _retry(lambda: f"{stem}{sign}{individual:03d}{check}", fi_hetu.is_valid)


def gen_no_fnr(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng, 1950, 1999)
        body = f"{born.day:02d}{born.month:02d}{born.year % 100:02d}{rng.randint(0, 499):03d}"
        try:
            body += no_fnr.calc_check_digit1(body)
            return body + no_fnr.calc_check_digit2(body)
        except Exception:  # a check digit of 10: no such number
            return None

    return _retry(make, no_fnr.is_valid)


def gen_ch_ssn(rng: random.Random) -> str:
    body = "756" + _digits(rng, 9)
    return _retry(lambda: body + ean.calc_check_digit(body), ch_ssn.is_valid)


def gen_eu_vat(rng: random.Random) -> str:
    cc = rng.choice(["DE", "NL", "FR", "IT", "ES", "BE", "AT", "PL"])

    def make() -> str | None:  # noqa: PLR0911 - one branch per country
        if cc == "DE":
            body = rng.choice("123456789") + _digits(rng, 7)
            return "DE" + body + mod_11_10.calc_check_digit(body)
        if cc == "NL":
            bsn = gen_nl_bsn(rng)
            return f"NL{bsn}B{rng.randint(1, 99):02d}"
        if cc == "FR":
            siren = rng.choice("123456789") + _digits(rng, 7)
            siren += luhn.calc_check_digit(siren)
            return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"
        if cc == "IT":
            body = "0" + _digits(rng, 6) + rng.choice(["001", "015", "037", "058", "096"])
            return "IT" + body + luhn.calc_check_digit(body)
        if cc == "ES":
            return _complete("ES" + rng.choice("ABG") + _digits(rng, 7), eu_vat.is_valid)
        if cc == "BE":
            body = "0" + rng.choice("4567") + _digits(rng, 6)
            return f"BE{body}{97 - int(body) % 97:02d}"
        if cc == "AT":
            return _complete("ATU" + _digits(rng, 7), eu_vat.is_valid)
        return _complete("PL" + rng.choice("123456789") + _digits(rng, 8), eu_vat.is_valid)

    return _retry(make, eu_vat.is_valid)


PHONE_SHAPES = {  # region: (country code, national significant number shape) for mobile ranges
    "DE": ("49", ["151########", "160#######", "170#######", "176########"]),
    "GB": ("44", ["7911######", "7700######", "7456######"]),
    "FR": ("33", ["6########", "7########"]),
    "US": ("1", ["212######?", "415######?", "617######?", "312######?"]),
    "ES": ("34", ["6########", "7########"]),
    "IT": ("39", ["32########", "33########", "34########", "39########"]),
    "NL": ("31", ["61#######", "62#######", "63#######", "64#######", "65#######"]),
}


def gen_phone(rng: random.Random, region: str) -> tuple[str, str]:
    """A valid (phonenumbers metadata) mobile or US number: (international E.164, national digits)."""
    cc, shapes = PHONE_SHAPES[region]

    def make() -> str:
        shape = rng.choice(shapes)
        nsn = "".join(rng.choice(string.digits) if c in "#?" else c for c in shape)
        if region == "US":  # exchange: 2-9 then two digits, not N11
            nsn = nsn[:3] + rng.choice("23456789") + _digits(rng, 2) + _digits(rng, 4)
        return f"+{cc}{nsn}"

    e164 = _retry(make, lambda v: phonenumbers.is_valid_number(phonenumbers.parse(v, None)))
    return e164, e164[len(cc) + 1:]


def format_phone(rng: random.Random, region: str, e164: str, nsn: str) -> str:
    parsed = phonenumbers.parse(e164, None)
    style = rng.choice(["intl", "intl", "national", "e164", "0049"])
    if style == "intl":
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if style == "national":
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    if style == "e164":
        return e164
    cc = e164[1:len(e164) - len(nsn)]
    return f"00{cc} {nsn[:3]} {nsn[3:]}" if region != "US" else f"+1 ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}"


# -- formatting variants ------------------------------------------------------------------------

SEPARATED = frozenset({"us_ssn", "se_personnummer", "dk_cpr", "fi_hetu"})
"""Identifiers written with a '-' that is part of the number's usual form."""
FULLWIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})


def groups(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i:i + size] for i in range(0, len(value), size))


def variant(rng: random.Random, value: str, kind: str) -> tuple[str, str]:  # noqa: PLR0911
    """(formatted value, variant name) for a compact identifier."""
    options = ["plain", "plain", "nbsp", "zwsp", "fullwidth"]
    if kind in ("iban", "payment_card"):
        options += ["spaced", "spaced", "dashed" if kind == "payment_card" else "lower"]
    choice = rng.choice(options)
    if kind in SEPARATED and choice in ("nbsp", "zwsp"):  # the separator typed otherwise
        return value.replace("-", "\u00a0" if choice == "nbsp" else "-\u200b"), choice
    if choice == "spaced":
        return groups(value), choice
    if choice == "dashed":
        return groups(value, sep="-"), choice
    if choice == "lower":
        return groups(value.lower()) if rng.random() < 0.5 else value.lower(), choice
    if choice == "nbsp":
        return groups(value, sep="\u00a0") if kind in ("iban", "payment_card") else _split(value, "\u00a0"), choice
    if choice == "zwsp":
        return groups(value, sep="\u200b") if kind in ("iban", "payment_card") else _split(value, "\u200b"), choice
    if choice == "fullwidth":
        return value.translate(FULLWIDTH), choice
    return value, choice


def _split(value: str, sep: str) -> str:
    """A national number split once in the middle by ``sep`` (how copy-paste from PDFs looks)."""
    mid = len(value) // 2
    return value[:mid] + sep + value[mid:]


def native(value: str, kind: str) -> str:  # noqa: PLR0911 - one shape per type
    """The way the identifier is usually printed in its country."""
    if kind == "de_idnr":
        return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"
    if kind == "fr_nir":
        return f"{value[0]} {value[1:3]} {value[3:5]} {value[5:7]} {value[7:10]} {value[10:13]} {value[13:]}"
    if kind == "nl_bsn":
        return f"{value[:4]}.{value[4:6]}.{value[6:]}"
    if kind == "be_nn":
        return f"{value[:2]}.{value[2:4]}.{value[4:6]}-{value[6:9]}.{value[9:]}"
    if kind == "ch_ssn":
        return f"{value[:3]}.{value[3:7]}.{value[7:11]}.{value[11:]}"
    if kind == "gb_nino":
        return f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8]}"
    if kind == "gb_nhs":
        return f"{value[:3]} {value[3:6]} {value[6:]}"
    if kind == "cz_rc":
        return f"{value[:6]}/{value[6:]}"
    if kind == "is_kennitala":
        return f"{value[:6]}-{value[6:]}"
    if kind == "iban":
        return groups(value)
    if kind == "payment_card":
        return groups(value) if len(value) == 16 else f"{value[:4]} {value[4:10]} {value[10:]}"
    return value


# -- sentences ------------------------------------------------------------------------------------

NAMES = {
    "en": ["Sarah Thompson", "James Carter", "Emily Clarke", "Daniel Hughes", "Olivia Bennett"],
    "de": ["Julia Schneider", "Markus Weber", "Anna Fischer", "Tobias Hoffmann", "Lena Wagner"],
    "fr": ["Camille Dubois", "Julien Lefèvre", "Chloé Martin", "Nicolas Moreau", "Léa Laurent"],
    "es": ["Lucía García", "Javier Fernández", "Marta López", "Pablo Sánchez", "Elena Romero"],
    "it": ["Giulia Bianchi", "Marco Rossi", "Chiara Romano", "Luca Esposito", "Sara Ricci"],
    "nl": ["Sanne de Vries", "Daan Jansen", "Eva Bakker", "Thijs Visser", "Lotte Smit"],
}

NOUNS: dict[str, dict[str, str]] = {
    "iban": {"en": "IBAN", "de": "IBAN", "fr": "IBAN", "es": "IBAN", "it": "IBAN", "nl": "IBAN"},
    "payment_card": {"en": "card number", "de": "Kartennummer", "fr": "numéro de carte", "es": "número de tarjeta",
                     "it": "numero di carta", "nl": "kaartnummer"},
    "eu_vat": {"en": "VAT number", "de": "USt-IdNr.", "fr": "numéro de TVA", "es": "NIF-IVA", "it": "partita IVA",
               "nl": "btw-nummer"},
    "id": {"en": "ID number", "de": "Ausweisnummer", "fr": "numéro d'identification", "es": "número de identidad",
           "it": "numero identificativo", "nl": "identificatienummer"},
    "de_idnr": {"de": "Steuer-ID", "en": "German tax ID"},
    "fr_nir": {"fr": "numéro de sécurité sociale", "en": "French social security number"},
    "es_dni": {"es": "DNI", "en": "DNI"},
    "it_codicefiscale": {"it": "codice fiscale", "en": "codice fiscale"},
    "us_ssn": {"en": "SSN"},
    "gb_nino": {"en": "NI number"},
    "nl_bsn": {"nl": "BSN", "en": "BSN"},
    "be_nn": {"nl": "rijksregisternummer", "fr": "numéro de registre national"},
    "pl_pesel": {"pl": "PESEL", "en": "PESEL"},
    "se_personnummer": {"sv": "personnummer", "en": "Swedish personal number"},
    "dk_cpr": {"da": "CPR-nummer", "en": "CPR number"},
    "fi_hetu": {"fi": "henkilötunnus", "en": "Finnish personal identity code"},
    "no_fodselsnummer": {"no": "fødselsnummer", "en": "Norwegian national ID"},
    "ch_ssn": {"de": "AHV-Nummer", "fr": "numéro AVS", "it": "numero AVS"},
    "es_nie": {"es": "NIE", "en": "NIE"}, "pt_nif": {"en": "Portuguese NIF"}, "ee_ik": {"en": "Estonian isikukood"},
    "lt_asmens": {"en": "Lithuanian asmens kodas"}, "ro_cnp": {"en": "Romanian CNP"}, "hr_oib": {"en": "Croatian OIB"},
    "ie_pps": {"en": "PPS number"}, "cz_rc": {"en": "Czech rodné číslo"}, "bg_egn": {"en": "Bulgarian EGN"},
    "si_emso": {"en": "Slovenian EMŠO"}, "is_kennitala": {"en": "Icelandic kennitala"},
    "at_vnr": {"de": "Sozialversicherungsnummer", "en": "Austrian social security number"},
    "gb_nhs": {"en": "NHS number"}, "gr_amka": {"en": "Greek AMKA"},
    "email": {"en": "email", "de": "E-Mail", "fr": "adresse e-mail", "es": "correo", "it": "email", "nl": "e-mail"},
    "phone": {"en": "phone", "de": "Telefon", "fr": "téléphone", "es": "teléfono", "it": "telefono", "nl": "telefoon"},
}

SENTENCES = {
    "en": ["{name} sent the {noun} {value} for the refund.", "Please update the account: {noun} {value}.",
           "Customer confirmed {noun}: {value} on the call today.", "{noun} {value} (checked with the customer)"],
    "de": ["{name} hat die {noun} {value} für die Erstattung geschickt.", "Bitte im Konto ändern: {noun} {value}.",
           "Kunde bestätigt {noun}: {value} im Telefonat heute.", "{noun} {value} (mit dem Kunden geprüft)"],
    "fr": ["{name} a envoyé le {noun} {value} pour le remboursement.", "Merci de mettre à jour le compte : "
           "{noun} {value}.", "Le client confirme {noun} : {value} lors de l'appel.", "{noun} {value} (vérifié)"],
    "es": ["{name} envió el {noun} {value} para el reembolso.", "Por favor actualizar la cuenta: {noun} {value}.",
           "El cliente confirma {noun}: {value} en la llamada de hoy.", "{noun} {value} (verificado con el cliente)"],
    "it": ["{name} ha inviato il {noun} {value} per il rimborso.", "Aggiornare l'anagrafica: {noun} {value}.",
           "Il cliente conferma {noun}: {value} durante la chiamata.", "{noun} {value} (verificato col cliente)"],
    "nl": ["{name} heeft het {noun} {value} gestuurd voor de terugbetaling.", "Graag het account bijwerken: "
           "{noun} {value}.", "Klant bevestigt {noun}: {value} tijdens het gesprek.", "{noun} {value} (gecontroleerd)"],
    "pl": ["Klient podał {noun} {value} podczas rozmowy."],
    "sv": ["Kunden uppgav {noun} {value} i samtalet."],
    "da": ["Kunden oplyste {noun} {value} i samtalen."],
    "fi": ["Asiakas antoi {noun} {value} puhelun aikana."],
    "no": ["Kunden oppga {noun} {value} i samtalen."],
}

def _with_check(prefix: str, suffix: str, valid: Callable[[str], bool], alphabet: str = string.digits) -> str | None:
    """``prefix + c + suffix`` for the check character ``c`` that makes it valid (None: no such c)."""
    for c in alphabet:
        if valid(prefix + c + suffix):
            return prefix + c + suffix
    return None


def _ymd(born: datetime.date) -> str:
    return f"{born.year % 100:02d}{born.month:02d}{born.day:02d}"


def _dmy(born: datetime.date) -> str:
    return f"{born.day:02d}{born.month:02d}{born.year % 100:02d}"


def gen_es_nie(rng: random.Random) -> str:
    return _retry(lambda: _complete(rng.choice("XYZ") + _digits(rng, 7), es_nie.is_valid, string.ascii_uppercase),
                  es_nie.is_valid)


def gen_pt_nif(rng: random.Random) -> str:
    return _retry(lambda: _complete(rng.choice("123") + _digits(rng, 7), pt_nif.is_valid), pt_nif.is_valid)


def gen_ee_ik(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        return _complete(f"{rng.choice('34' if born.year < 2000 else '56')}{_ymd(born)}{_digits(rng, 3)}",
                         ee_ik.is_valid)

    return _retry(make, ee_ik.is_valid)


def gen_lt_asmens(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        return _complete(f"{rng.choice('34' if born.year < 2000 else '56')}{_ymd(born)}{_digits(rng, 3)}",
                         lt_asmens.is_valid)

    return _retry(make, lt_asmens.is_valid)


def gen_ro_cnp(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        sex = rng.choice("12" if born.year < 2000 else "56")
        return _complete(f"{sex}{_ymd(born)}{rng.randint(1, 46):02d}{_digits(rng, 3)}", ro_cnp.is_valid)

    return _retry(make, ro_cnp.is_valid)


def gen_hr_oib(rng: random.Random) -> str:
    return _retry(lambda: _complete(rng.choice("123456789") + _digits(rng, 9), hr_oib.is_valid), hr_oib.is_valid)


def gen_ie_pps(rng: random.Random) -> str:
    return _retry(lambda: _complete(_digits(rng, 7), ie_pps.is_valid, "ABCDEFGHIJKLMNOPQRSTUVW"), ie_pps.is_valid)


def gen_cz_rc(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng, 1954, 2004)
        month = born.month + (50 if rng.random() < 0.5 else 0)
        return _complete(f"{born.year % 100:02d}{month:02d}{born.day:02d}{_digits(rng, 3)}", cz_rc.is_valid)

    return _retry(make, cz_rc.is_valid)


def gen_bg_egn(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        month = born.month + (40 if born.year >= 2000 else 0)
        return _complete(f"{born.year % 100:02d}{month:02d}{born.day:02d}{_digits(rng, 3)}", bg_egn.is_valid)

    return _retry(make, bg_egn.is_valid)


def gen_si_emso(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        return _complete(f"{born.day:02d}{born.month:02d}{born.year % 1000:03d}50{_digits(rng, 3)}", si_emso.is_valid)

    return _retry(make, si_emso.is_valid)


def gen_is_kennitala(rng: random.Random) -> str:
    def make() -> str | None:
        born = _birth(rng)
        century = "9" if born.year < 2000 else "0"
        return _with_check(f"{_dmy(born)}{rng.randint(20, 99):02d}", century, is_kennitala.is_valid)

    return _retry(make, is_kennitala.is_valid)


def gen_at_vnr(rng: random.Random) -> str:
    def make() -> str | None:
        return _with_check(f"{rng.randint(100, 999)}", _dmy(_birth(rng)), at_vnr.is_valid)

    return _retry(make, at_vnr.is_valid)


def gen_gb_nhs(rng: random.Random) -> str:
    return _retry(lambda: _complete(rng.choice("456789") + _digits(rng, 8), gb_nhs.is_valid), gb_nhs.is_valid)


def gen_gr_amka(rng: random.Random) -> str:
    return _retry(lambda: _complete(_dmy(_birth(rng)) + _digits(rng, 4), gr_amka.is_valid), gr_amka.is_valid)


ID_GENERATORS: dict[str, tuple[str, Gen, tuple[str, ...], Callable[[str], bool]]] = {
    # type: (category, generator, languages, stdnum validity for building look-alikes)
    "iban": ("FINANCIAL", gen_iban, LANGS, iban.is_valid),
    "payment_card": ("FINANCIAL", gen_card, LANGS, luhn.is_valid),
    "eu_vat": ("GOVERNMENT_ID", gen_eu_vat, LANGS, eu_vat.is_valid),
    "de_idnr": ("GOVERNMENT_ID", gen_de_idnr, ("de", "en"), de_idnr.is_valid),
    "fr_nir": ("GOVERNMENT_ID", gen_fr_nir, ("fr", "en"), fr_nir.is_valid),
    "es_dni": ("GOVERNMENT_ID", gen_es_dni, ("es", "en"), es_dni.is_valid),
    "it_codicefiscale": ("GOVERNMENT_ID", gen_it_cf, ("it", "en"), it_cf.is_valid),
    "us_ssn": ("GOVERNMENT_ID", gen_us_ssn, ("en",), us_ssn.is_valid),
    "gb_nino": ("GOVERNMENT_ID", gen_gb_nino, ("en",), lambda v: True),
    "nl_bsn": ("GOVERNMENT_ID", gen_nl_bsn, ("nl", "en"), nl_bsn.is_valid),
    "be_nn": ("GOVERNMENT_ID", gen_be_nn, ("nl", "fr"), be_nn.is_valid),
    "pl_pesel": ("GOVERNMENT_ID", gen_pl_pesel, ("pl", "en"), pl_pesel.is_valid),
    "se_personnummer": ("GOVERNMENT_ID", gen_se_pnr, ("sv", "en"), se_pnr.is_valid),
    "dk_cpr": ("GOVERNMENT_ID", gen_dk_cpr, ("da", "en"), dk_cpr.is_valid),
    "fi_hetu": ("GOVERNMENT_ID", gen_fi_hetu, ("fi", "en"), fi_hetu.is_valid),
    "no_fodselsnummer": ("GOVERNMENT_ID", gen_no_fnr, ("no", "en"), no_fnr.is_valid),
    "ch_ssn": ("GOVERNMENT_ID", gen_ch_ssn, ("de", "fr", "it"), ch_ssn.is_valid),
}

MORE_IDS: dict[str, tuple[str, Gen, tuple[str, ...], Callable[[str], bool]]] = {
    # more national numbers python-stdnum validates: fewer records each, same shape
    "es_nie": ("GOVERNMENT_ID", gen_es_nie, ("es", "en"), es_nie.is_valid),
    "pt_nif": ("GOVERNMENT_ID", gen_pt_nif, ("en",), pt_nif.is_valid),
    "ee_ik": ("GOVERNMENT_ID", gen_ee_ik, ("en",), ee_ik.is_valid),
    "lt_asmens": ("GOVERNMENT_ID", gen_lt_asmens, ("en",), lt_asmens.is_valid),
    "ro_cnp": ("GOVERNMENT_ID", gen_ro_cnp, ("en",), ro_cnp.is_valid),
    "hr_oib": ("GOVERNMENT_ID", gen_hr_oib, ("en",), hr_oib.is_valid),
    "ie_pps": ("GOVERNMENT_ID", gen_ie_pps, ("en",), ie_pps.is_valid),
    "cz_rc": ("GOVERNMENT_ID", gen_cz_rc, ("en",), cz_rc.is_valid),
    "bg_egn": ("GOVERNMENT_ID", gen_bg_egn, ("en",), bg_egn.is_valid),
    "si_emso": ("GOVERNMENT_ID", gen_si_emso, ("en",), si_emso.is_valid),
    "is_kennitala": ("GOVERNMENT_ID", gen_is_kennitala, ("en",), is_kennitala.is_valid),
    "at_vnr": ("GOVERNMENT_ID", gen_at_vnr, ("de", "en"), at_vnr.is_valid),
    "gb_nhs": ("GOVERNMENT_ID", gen_gb_nhs, ("en",), gb_nhs.is_valid),
    "gr_amka": ("GOVERNMENT_ID", gen_gr_amka, ("en",), gr_amka.is_valid),
}

ENTITIES = ("Case", "Contact", "Lead", "Account", "Opportunity", "Task")
ID_FIELDS = {"FINANCIAL": "Payment_Details__c", "GOVERNMENT_ID": "National_Id__c"}


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
        self.records: list[dict[str, Any]] = []

    def add(self, lang: str, entity: str, fields: dict[str, Any], labels: dict[str, list[str]]) -> None:
        n = len(self.records) + 1
        self.records.append({"id": f"gen-{n:04d}", "lang": lang, "part": "generated", "entity": entity,
                             "fields": fields, "labels": {k: v for k, v in labels.items() if v}})

    def sentence(self, lang: str, noun: str, value: str) -> str:
        template = self.rng.choice(SENTENCES.get(lang, SENTENCES["en"]))
        return template.format(name=self.rng.choice(NAMES.get(lang, NAMES["en"])), noun=noun, value=value)

    def noun(self, kind: str, lang: str) -> str:
        nouns = NOUNS[kind]
        return nouns.get(lang) or nouns.get("en") or NOUNS["id"].get(lang, "ID")


def build_identifiers(b: Builder, per_type: int, generators: Mapping[str, tuple[str, Gen, tuple[str, ...],
                                                                            Callable[[str], bool]]]) -> None:
    rng = b.rng
    for kind, (category, gen, langs, valid) in generators.items():
        for i in range(per_type):
            lang = langs[i % len(langs)]
            value = gen(rng)
            printed = native(value, kind) if rng.random() < 0.5 else value
            if i % 3 == 2:  # every third: a formatting variant of the compact value
                printed, _ = variant(rng, value, kind)
            label = [f"{category}:{kind}"]
            fields: dict[str, Any] = {"Description": b.sentence(lang, b.noun(kind, lang), printed)}
            labels = {"Description": label}
            if i % 4 == 0:  # the identifier alone in a structured field too
                fields[ID_FIELDS[category]] = native(value, kind)
                labels[ID_FIELDS[category]] = label
            # A look-alike beside it: the same shape with a wrong check digit.
            if kind not in ("gb_nino", "us_ssn", "dk_cpr"):
                fake = _break_check(gen(rng), valid, rng)
                fields["Reference__c"] = native(fake, kind) if rng.random() < 0.5 else fake
            b.add(lang, rng.choice(ENTITIES), fields, labels)


def build_contacts(b: Builder, per_lang: int) -> None:
    rng = b.rng
    regions = {"en": ["GB", "US"], "de": ["DE"], "fr": ["FR"], "es": ["ES"], "it": ["IT"], "nl": ["NL"]}
    domains = {"en": ["example.co.uk", "acme-corp.com"], "de": ["beispiel.de", "mueller-gmbh.de"],
               "fr": ["exemple.fr", "societe-dupont.fr"], "es": ["ejemplo.es", "grupo-iberia.es"],
               "it": ["esempio.it", "rossi-srl.it"], "nl": ["voorbeeld.nl", "bakker-bv.nl"]}
    for lang in LANGS:
        for _ in range(per_lang):
            name = rng.choice(NAMES[lang])
            first, last = name.split(" ", 1)
            local = f"{first}.{last.replace(' ', '')}".lower()
            local = local.translate(str.maketrans("éèçíáóúàìòü", "eeciaouaiou"))
            email = f"{local}@{rng.choice(domains[lang])}"
            if rng.random() < 0.2:
                email = email.upper()
            region = rng.choice(regions[lang])
            e164, nsn = gen_phone(rng, region)
            phone = format_phone(rng, region, e164, nsn)
            fields: dict[str, Any] = {
                "Subject": b.sentence(lang, b.noun("email", lang), email),
                "Comments": b.sentence(lang, b.noun("phone", lang), phone),
                "Order_Number__c": f"SO-{rng.randint(2019, 2026)}-{_digits(rng, 6)}",
            }
            b.add(lang, rng.choice(("Contact", "Lead", "Case")), fields,
                  {"Subject": ["PII:email"], "Comments": ["PII:phone"]})


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    sig = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(43))
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': _digits(rng, 8), 'iat': 1764000000})}.{sig}"


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _password(rng: random.Random) -> str:
    return _token(rng, rng.randint(10, 16), string.ascii_letters + string.digits + "!#%&*+-?@")


SECRET_LEADS = {
    "en": "Credentials for the integration", "de": "Zugangsdaten für die Schnittstelle",
    "fr": "Identifiants pour l'intégration", "es": "Credenciales para la integración",
    "it": "Credenziali per l'integrazione", "nl": "Inloggegevens voor de koppeling",
}


def build_secrets(b: Builder, n: int) -> None:
    rng = b.rng
    makers: list[Callable[[], Any]] = [
        lambda: f"AKIA{_token(rng, 16, string.ascii_uppercase + '234567')}",
        lambda: f"aws_secret_access_key = {_token(rng, 40, string.ascii_letters + string.digits + '/+')}",
        lambda: f"ghp_{_token(rng, 36)}",
        lambda: f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-{_token(rng, 24)}",
        lambda: f"sk_live_{_token(rng, 24)}",
        lambda: f"AIza{_token(rng, 35, string.ascii_letters + string.digits + '_-')}",
        lambda: _jwt(rng),
        # eval/evaluate.py puts a key generated per run in its place (the draw keeps the seeded stream)
        lambda: "<generated rsa private key>" if _token(rng, 64) else "",
        lambda: f"password={_password(rng)}",
        lambda: f"Passwort: {_password(rng)}",
        lambda: f"mot de passe : {_password(rng)}",
        lambda: f"contraseña: {_password(rng)}",
        lambda: f"wachtwoord: {_password(rng)}",
        lambda: json.dumps({"user": "svc_crm", "password": _password(rng)}),
        lambda: {"connection": {"host": "db.internal", "auth": {"password": _password(rng)}}},
        lambda: {"tokens": [{"name": "ci", "api_key": _token(rng, 32)}]},
        lambda: json.dumps({"config": {"client_secret": _token(rng, 32)}}),
        lambda: f"postgres://crm_app:{_password(rng)}@db.internal:5432/crm",
        lambda: f"DefaultEndpointsProtocol=https;AccountName=crmstore;AccountKey={_token(rng, 86)}==",
    ]
    lookalikes: list[Callable[[], Any]] = [
        lambda: "password: ********",
        lambda: "Passwort: ****** (im Tresor)",
        lambda: json.dumps({"password": "********"}),
        lambda: "token: [REDACTED]",
        lambda: "api_key=<your-api-key>",
        lambda: "The customer asked how to reset the password for the portal.",
        lambda: "Le client a oublié son mot de passe, lien de réinitialisation envoyé.",
        lambda: "API key rotated by the customer's admin last week; no action needed.",
        lambda: "El token de acceso ha caducado, el cliente volverá a iniciar sesión.",
        lambda: "secret santa gift list for the team",
        lambda: "Key account review scheduled with the regional director.",
        lambda: f"Tracking number 1Z{_token(rng, 6, string.ascii_uppercase + string.digits)}{_digits(rng, 10)}",
    ]
    for i in range(n):
        lang = LANGS[i % len(LANGS)]
        secret = makers[i % len(makers)]()
        if isinstance(secret, str) and "\n" not in secret and not secret.startswith("{") and i % 2 == 0:
            secret = f"{SECRET_LEADS[lang]}: {secret}"
        fields: dict[str, Any] = {"Notes__c": secret, "Summary__c": lookalikes[i % len(lookalikes)]()}
        b.add(lang, rng.choice(("Case", "Task", "Account")), fields, {"Notes__c": ["SECRET:secret"]})


PROMPTS = {
    "en": ["You are a support assistant for {{company}}. Answer the customer's question using only the "
           "knowledge base below.\n### Context\n{{kb_articles}}\n### Question\n{{question}}",
           "Summarise this case for the account manager in three bullet points. Case: {{case_body}}",
           "system: You are a polite sales assistant.\nuser: {{customer_message}}",
           "Rewrite the email below in a friendly tone, keep it under 120 words:\n{email_text}"],
    "de": ["Du bist ein Kundenservice-Assistent von {{firma}}. Beantworte die Frage nur mit dem Wissen aus "
           "den Artikeln.\n### Kontext\n{{artikel}}",
           "Fasse den folgenden Fall in drei Stichpunkten für den Vertrieb zusammen: {{fall_text}}",
           "Schreibe eine höfliche Antwort auf diese Beschwerde, maximal 100 Wörter: {beschwerde}"],
    "fr": ["Tu es un assistant commercial pour {{societe}}. Réponds uniquement à partir des documents fournis."
           "\n### Contexte\n{{documents}}",
           "Résume ce ticket en trois points pour le responsable du compte : {{ticket}}",
           "Agis comme un conseiller clientèle et rédige une réponse courte et polie à : {message}"],
    "es": ["Eres un asistente de atención al cliente de {{empresa}}. Responde solo con la información de la "
           "base de conocimiento.\n### Contexto\n{{articulos}}",
           "Resume el siguiente caso en tres puntos para el gestor de cuenta: {{caso}}",
           "Actúa como agente de ventas y redacta una respuesta breve al cliente: {mensaje}"],
    "it": ["Sei un assistente clienti di {{azienda}}. Rispondi solo usando la base di conoscenza.\n### Contesto"
           "\n{{articoli}}",
           "Riassumi il seguente caso in tre punti per il commerciale: {{caso}}",
           "Comportati come un consulente e scrivi una risposta cortese a questo reclamo: {reclamo}"],
    "nl": ["Je bent een klantenservice-assistent van {{bedrijf}}. Antwoord alleen met informatie uit de "
           "kennisbank.\n### Context\n{{artikelen}}",
           "Vat deze case samen in drie punten voor de accountmanager: {{case_tekst}}",
           "Gedraag je als verkoopadviseur en schrijf een kort, vriendelijk antwoord op: {bericht}"],
}
PROMPT_LOOKALIKES = {
    "en": ["You are a valued customer and we appreciate your patience.", "System maintenance on Saturday 02:00-04:00.",
           "## Notes from the quarterly review: renewal likely."],
    "de": ["Sie sind ein geschätzter Kunde; vielen Dank für Ihre Geduld.", "Systemwartung am Samstag."],
    "fr": ["Vous êtes un client fidèle, merci de votre patience.", "Maintenance du système samedi matin."],
    "es": ["Usted es un cliente muy valioso para nosotros.", "Mantenimiento del sistema el sábado."],
    "it": ["Lei è un cliente importante per noi, grazie della pazienza.", "Manutenzione del sistema sabato."],
    "nl": ["U bent een gewaardeerde klant, bedankt voor uw geduld.", "Systeemonderhoud op zaterdag."],
}


def build_prompts(b: Builder) -> None:
    rng = b.rng
    fields_by_entity = ("AI_Template__c", "Instructions__c", "Body", "Config__c")
    for lang in LANGS:
        for i, prompt in enumerate(PROMPTS[lang]):
            field = fields_by_entity[i % len(fields_by_entity)]
            value: Any = prompt
            if i == 1:  # inside a JSON config
                value = json.dumps({"model": "gpt-4o", "temperature": 0.2, "template": prompt})
            fields: dict[str, Any] = {field: value, "Status__c": rng.choice(PROMPT_LOOKALIKES[lang])}
            b.add(lang, "AI_Prompt_Config__c", fields, {field: ["PROPRIETARY_PROMPT:prompt"]})


SPECIAL: dict[str, dict[str, list[str]]] = {  # sub-kind -> language -> statements about a person
    "health": {
        "en": ["{name} is on sick leave after knee surgery until March.",
               "{name} told us she was diagnosed with type 2 diabetes and needs paper invoices."],
        "de": ["{name} ist nach einer Chemotherapie bis Ende des Monats krankgeschrieben.",
               "{name} hat eine Depression und bittet um Kontakt nur per E-Mail."],
        "fr": ["{name} est en arrêt maladie suite à un burn-out.", "{name} suit un traitement contre le cancer."],
        "es": ["{name} está de baja por una hernia discal.", "{name} nos dijo que tiene esclerosis múltiple."],
        "it": ["{name} è in malattia dopo un intervento al cuore.",
               "{name} soffre di epilessia, niente chiamate serali."],
        "nl": ["{name} is met ziekteverlof na een hernia-operatie.", "{name} is zwanger en met verlof vanaf juni."],
    },
    "religion": {
        "en": ["{name} asked not to be called on Fridays for prayer at the mosque.",
               "{name} is a practising Catholic and asked for no meetings on Good Friday."],
        "de": ["{name} ist Zeuge Jehovas und möchte keine Geburtstagsgrüße erhalten."],
        "fr": ["{name} observe le ramadan, éviter les déjeuners d'affaires ce mois-ci."],
        "es": ["{name} es judío practicante y no trabaja en sabbat."],
        "it": ["{name} è musulmano praticante, niente riunioni il venerdì a mezzogiorno."],
        "nl": ["{name} is streng gereformeerd en wil op zondag niet gebeld worden."],
    },
    "politics": {
        "en": ["{name} is a member of the Labour Party and campaigns for the local council."],
        "de": ["{name} ist Mitglied der AfD und kandidiert für den Stadtrat."],
        "fr": ["{name} milite à La France insoumise et refuse les newsletters politiques."],
        "es": ["{name} es afiliado a Podemos y vota siempre a la izquierda."],
        "it": ["{name} è iscritto alla Lega e fa volontariato per il partito."],
        "nl": ["{name} is lid van de PVV en actief in de gemeenteraad."],
    },
    "trade_union": {
        "en": ["{name} is a Unite union rep at the Birmingham plant."],
        "de": ["{name} ist Verdi-Mitglied und sitzt im Betriebsrat."],
        "fr": ["{name} est syndiqué à la CGT et délégué du personnel."],
        "es": ["{name} está afiliada a CCOO y es delegada sindical."],
        "it": ["{name} è iscritta alla CGIL ed è rappresentante sindacale."],
        "nl": ["{name} is lid van de FNV en kaderlid bij de vakbond."],
    },
    "sex_life": {
        "en": ["{name} mentioned his husband will join the call; he is gay and out at work."],
        "de": ["{name} ist lesbisch und lebt mit ihrer Partnerin zusammen."],
        "fr": ["{name} est bisexuel(le) selon ce qu'il a partagé avec l'équipe."],
        "es": ["{name} es homosexual y su pareja es el contacto de emergencia."],
        "it": ["{name} ha fatto coming out come transgender e usa il nome nuovo."],
        "nl": ["{name} is homoseksueel en getrouwd met zijn partner Joost."],
    },
    "ethnic_origin": {
        "en": ["{name} identifies as Black British of Caribbean heritage (diversity survey)."],
        "de": ["{name} gehört der Minderheit der Sinti an (Angabe im Diversitätsbogen)."],
        "fr": ["{name} est d'origine maghrébine, selon le questionnaire diversité."],
        "es": ["{name} es de etnia gitana según el formulario de diversidad."],
        "it": ["{name} è di origine rom, indicato nel modulo diversità."],
        "nl": ["{name} is van Marokkaanse afkomst volgens de diversiteitsenquête."],
    },
    "genetic": {
        "en": ["{name} carries the BRCA1 mutation according to her genetic test."],
        "de": ["Gentest von {name}: Träger der Mukoviszidose-Mutation."],
        "fr": ["Le test génétique de {name} montre une mutation BRCA2."],
        "es": ["{name} es portador de la mutación del gen HTT (prueba genética)."],
        "it": ["Il test genetico di {name} indica una predisposizione ereditaria (mutazione BRCA1)."],
        "nl": ["{name} is drager van een erfelijke genmutatie (DNA-test)."],
    },
    "biometric": {
        "en": ["Fingerprint template of {name} enrolled for the door access system."],
        "de": ["Gesichtsbild-Template von {name} für die Zutrittskontrolle gespeichert."],
        "fr": ["Empreinte digitale de {name} enregistrée pour le contrôle d'accès."],
        "es": ["Plantilla de reconocimiento facial de {name} registrada para el acceso."],
        "it": ["Impronta digitale di {name} registrata per il badge biometrico."],
        "nl": ["Vingerafdruk van {name} vastgelegd voor de toegangscontrole."],
    },
}
SPECIAL_LOOKALIKES = {
    "en": ["The server health check failed twice overnight.", "The deal is in good health, closing in Q1.",
           "They religiously follow up every Monday.", "Office politics delayed the decision.",
           "Ships to all European Union countries.", "Third-party integration via the partner portal.",
           "Genetic algorithm used for the route optimisation module.", "Customer asked about biometric login "
           "support in the mobile app roadmap."],
    "de": ["Der Health-Check des Servers ist fehlgeschlagen.", "Die Europäische Union hat neue Zollregeln.",
           "Party zum Firmenjubiläum am Freitag."],
    "fr": ["Le bilan de santé financière du compte est bon.", "Partenaire tiers pour l'intégration.",
           "La politique tarifaire change en janvier."],
    "es": ["La salud del proyecto es buena, cierre en enero.", "Política de devoluciones actualizada.",
           "Fiesta de fin de año del equipo."],
    "it": ["Controllo di salute del server completato.", "La politica dei prezzi cambia a gennaio.",
           "Festa aziendale venerdì sera."],
    "nl": ["De health check van de server is mislukt.", "Het beleid voor retouren is gewijzigd.",
           "Feestje voor het jubileum van het team."],
}


def build_special(b: Builder) -> None:
    rng = b.rng
    for kind, by_lang in SPECIAL.items():
        for lang, statements in by_lang.items():
            for statement in statements:
                name = rng.choice(NAMES[lang])
                text = statement.format(name=name)
                fields = {"Description": text, "Comments": rng.choice(SPECIAL_LOOKALIKES[lang])}
                b.add(lang, rng.choice(("Case", "Contact", "Task")), fields,
                      {"Description": [f"SPECIAL_CATEGORY:{kind}"]})


def _luhn_reference(rng: random.Random) -> str:
    """A reference number, then a date, whose digits together pass the Luhn check and start like a
    Visa card: what a card detector that joins digit groups reads as a card number."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice([2024, 2025, 2026])
    date = f"{day:02d} {month:02d} {year}"
    while True:
        ref = "4" + _digits(rng, 5)
        for d in string.digits:
            candidate = ref[:-1] + d
            if luhn.is_valid(candidate + date.replace(" ", "")):
                return f"{candidate} {date}"


def build_lookalikes(b: Builder, n: int) -> None:
    rng = b.rng
    makers: list[Callable[[], str]] = [
        lambda: f"Order #SO-{rng.randint(2019, 2026)}-{_digits(rng, 6)} shipped",
        lambda: f"PO {4500000000 + rng.randint(0, 999999)} approved",
        lambda: f"Bestellnummer {_digits(rng, 10)} vom {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2026",
        lambda: f"Tracking 1Z{_token(rng, 6, string.ascii_uppercase + string.digits)}{_digits(rng, 10)}",
        lambda: f"DHL Sendungsnummer JJD{_digits(rng, 18)}",
        lambda: f"PostNL track & trace 3S{_token(rng, 4, string.ascii_uppercase)}{_digits(rng, 9)}",
        lambda: f"Updated {rng.choice([2024, 2025, 2026])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000Z",
        lambda: f"Release v{rng.randint(1, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} build "
                f"{rng.randint(2024, 2026)}.{rng.randint(1, 12)}.{_digits(rng, 4)}",
        lambda: f"Version 10.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{_digits(rng, 5)}",
        lambda: "Card on file: **** **** **** " + _digits(rng, 4),
        lambda: "IBAN DE** **** **** **** **" + _digits(rng, 2) + " " + _digits(rng, 2),
        lambda: "SSN on file XXX-XX-" + _digits(rng, 4),
        lambda: f"Invoice INV-{rng.randint(2019, 2026)}-{_digits(rng, 6)}, total EUR {rng.randint(100, 99999)},"
                f"{_digits(rng, 2)}",
        lambda: f"Ticket CS-{_digits(rng, 7)} escalated to tier 2",
        lambda: f"Record 0035g0000{_token(rng, 9)}",
        lambda: f"Request id {rng.getrandbits(128):032x}",
        lambda: f"Host 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} port 8443",
        lambda: f"Ref {_luhn_reference(rng)}",
        lambda: f"Meeting {rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2026 {rng.randint(8, 17)}:00-"
                f"{rng.randint(8, 17)}:30",
        lambda: f"Contract {_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)} renewed for 24 months",
    ]
    for i in range(n):
        lang = LANGS[i % len(LANGS)]
        fields = {"Description": makers[i % len(makers)](), "Subject": makers[(i * 7 + 3) % len(makers)]()}
        b.add(lang, rng.choice(ENTITIES), fields, {})


def build(seed: int = SEED) -> list[dict[str, Any]]:
    b = Builder(seed)
    build_identifiers(b, 24, ID_GENERATORS)
    build_contacts(b, per_lang=12)
    build_secrets(b, n=76)
    build_prompts(b)
    build_special(b)
    build_lookalikes(b, n=120)
    build_identifiers(b, 12, MORE_IDS)  # last: the records before keep their values
    return b.records


def render(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = build(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(records), encoding="utf-8")
    print(f"{len(records)} records -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
