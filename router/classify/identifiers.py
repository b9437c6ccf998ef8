"""National personal and tax numbers of the EU/EEA, the UK and Switzerland.

One detector per number, named ``<cc>_<python-stdnum module>``, category GOVERNMENT_ID, each
validated by that python-stdnum module and counted only with context
(:class:`router.classify.detectors.NationalIdDetector`: a keyword naming the number near it, a
print that names its type, or the number alone in a text when it is strongly checked).

Included: numbers that identify a natural person (national, citizen, social-security and
health-service numbers, birth numbers, personal codes of foreigners) and tax numbers issued to
persons, wherever python-stdnum validates them:

AT vnr (social security), tin (Abgabenkontonummer); BE nn (national register), bis (BIS);
BG egn, pnf (foreigners); CH ssn (AHV/AVS); CZ and SK rc (birth number; ``stdnum.sk.rc`` is
``stdnum.cz.rc``, so one detector ``cz_rc`` serves both and is enabled by either code);
DE idnr (in :mod:`router.classify.detectors`), stnr (Steuernummer); DK cpr; EE ik; ES nie
(foreigners; ``es_dni`` is in :mod:`router.classify.detectors`); FI hetu, veronumero; FR nif
(``fr_nir`` is in :mod:`router.classify.detectors`); GB nhs, utr (``gb_nino`` is in
:mod:`router.classify.detectors`); GR amka; HR oib; IE pps (individuals: not the ``H`` suffix);
IS kennitala (persons: not the organisation day offset); LT asmens; LV pvn (personal codes only:
a first digit 0-3); NL bsn, onderwijsnummer (pupils); NO fodselsnummer; PL pesel; PT cc (citizen
card), nif (persons: first digit 1-3); RO cnp; SE personnummer; SI emso, ddv (davčna številka).

Left out: company and VAT registers (BE vat, CZ dic, EE registrikood, FI ytunnus, FR siren/siret,
NO orgnr, PL nip and regon, SE orgnr, ...: not personal data; EU VAT numbers with a country
prefix are ``eu_vat``), bank and postal codes, document numbers without a check digit (NL
identiteitskaartnummer) and LI peid (up to 12 digits with no check at all: any digit run passes).
HU, CY, LU and MT have no personal number in python-stdnum (their VAT numbers are ``eu_vat``).

Numbers without a check digit (DK cpr since 2007, FI veronumero, DE stnr) and those issued to
companies as well (HR oib, GB utr, AT tin) need a keyword near them: their digits alone say
nothing. Keywords are matched in any case on word edges, in the language(s) of the country and
English.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from stdnum.at import tin as at_tin
from stdnum.at import vnr as at_vnr
from stdnum.be import bis as be_bis
from stdnum.be import nn as be_nn
from stdnum.bg import egn as bg_egn
from stdnum.bg import pnf as bg_pnf
from stdnum.ch import ssn as ch_ssn
from stdnum.cz import rc as cz_rc
from stdnum.de import stnr as de_stnr
from stdnum.dk import cpr as dk_cpr
from stdnum.ee import ik as ee_ik
from stdnum.es import nie as es_nie
from stdnum.fi import hetu as fi_hetu
from stdnum.fi import veronumero as fi_veronumero
from stdnum.fr import nif as fr_nif
from stdnum.gb import nhs as gb_nhs
from stdnum.gb import utr as gb_utr
from stdnum.gr import amka as gr_amka
from stdnum.hr import oib as hr_oib
from stdnum.ie import pps as ie_pps
from stdnum.is_ import kennitala as is_kennitala
from stdnum.lt import asmens as lt_asmens
from stdnum.lv import pvn as lv_pvn
from stdnum.nl import bsn as nl_bsn
from stdnum.nl import onderwijsnummer as nl_onderwijsnummer
from stdnum.no import fodselsnummer as no_fodselsnummer
from stdnum.pl import pesel as pl_pesel
from stdnum.pt import cc as pt_cc
from stdnum.pt import nif as pt_nif
from stdnum.ro import cnp as ro_cnp
from stdnum.se import personnummer as se_personnummer
from stdnum.si import ddv as si_ddv
from stdnum.si import emso as si_emso

from router.classify.detectors import DeIdnrDetector, NationalIdDetector, _digit_run, _digits

_D8, _D9, _D10, _D11, _D12, _D13 = (_digit_run(n) for n in (8, 9, 10, 11, 12, 13))
_RC = r"\b\d(?:[ /-]?\d){8,9}\b"  # CZ/SK: 9 digits before 1954, 10 since; often 710319/2745
_SE = r"\b\d(?:[ +-]?\d){9}(?:(?:[ +-]?\d){2})?\b"  # 10 or 12 digits; '+' marks a centenarian


def _define(name: str, valid: Callable[[str], Any], screen: str, min_length: int, keywords: tuple[str, ...],
            *, native: str | None = None, alone: str | None = None, alone_rank: int = 0,
            doc: str) -> type[NationalIdDetector]:
    """A :class:`NationalIdDetector` subclass named ``name`` (``<cc>_<module>``)."""

    def check(self: NationalIdDetector, candidate: str) -> bool:
        return bool(valid(candidate.replace(" ", "")))  # a space typed inside (or a no-break one)

    title = "".join(part.title() for part in name.split("_")) + "Detector"
    namespace = {"name": name, "countries": ("CZ", "SK") if name == "cz_rc" else (name[:2].upper(),),
                 "min_length": min_length, "candidate_pattern": screen,
                 "keywords": keywords, "native_pattern": native, "alone_pattern": alone, "alone_rank": alone_rank,
                 "check": check,
                 "__doc__": doc, "__module__": __name__, "__qualname__": title}
    return cast("type[NationalIdDetector]", type(title, (NationalIdDetector,), namespace))


def _first(valid: Callable[[str], Any], allowed: str) -> Callable[[str], bool]:
    """``valid``, and the first digit in ``allowed`` (the persons' range of a mixed register)."""
    return lambda candidate: bool(valid(candidate)) and _digits(candidate)[:1] in tuple(allowed)


def _kennitala_person(candidate: str) -> bool:
    digits = _digits(candidate)
    return bool(is_kennitala.is_valid(candidate)) and int(digits[:2] or "99") < 40  # organisations: day + 40


def _pps_person(candidate: str) -> bool:
    return bool(ie_pps.is_valid(candidate)) and not candidate.upper().endswith("H")  # H: not an individual


NATIONAL_IDS: tuple[type[NationalIdDetector], ...] = (
    DeIdnrDetector,
    _define("at_vnr", at_vnr.is_valid, _D10, 10,
            ("versicherungsnummer", "sozialversicherungsnummer", "svnr", "sv-nummer", "sv-nr", "vsnr",
             "austrian social security"),
            doc="Austrian social security number (10 digits, serial, check digit, birth date)."),
    _define("at_tin", at_tin.is_valid, _D9, 9, ("abgabenkontonummer", "steuernummer", "st.-nr", "stnr"),
            doc="Austrian tax number (Abgabenkontonummer: tax office and subject, check digit)."),
    _define("be_nn", be_nn.is_valid, _D11, 11,
            ("rijksregisternummer", "rijksregister", "registre national", "numéro national", "nationalregisternummer",
             "niss", "insz", "national register number", "national number"),
            native=r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", alone_rank=5,
            doc="Belgian national register number (birth date, serial, mod-97 check)."),
    _define("be_bis", be_bis.is_valid, _D11, 11,
            ("bis-nummer", "bisnummer", "numéro bis", "bis number", "niss", "insz"),
            native=r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}",
            doc="Belgian BIS number (persons not in the national register; mod-97 check)."),
    _define("bg_egn", bg_egn.is_valid, _D10, 10, ("егн", "egn", "единен граждански номер"),
            alone=r"\d{10}", alone_rank=2,
            doc="Bulgarian personal number (EGN: birth date, serial, check digit)."),
    _define("bg_pnf", bg_pnf.is_valid, _D10, 10, ("лнч", "lnch", "pnf", "личен номер на чужденец"),
            doc="Bulgarian personal number of a foreigner (LNCh, check digit)."),
    _define("ch_ssn", ch_ssn.is_valid, _D13, 13,
            ("ahv", "avs", "ahvn13", "navs13", "sozialversicherungsnummer", "numéro avs", "numero avs",
             "swiss social security"),
            native=r"756\.\d{4}\.\d{4}\.\d{2}", alone_rank=6,
            doc="Swiss social security number (AHV/AVS, 756 and an EAN-13 check)."),
    _define("cz_rc", cz_rc.is_valid, _RC, 9,
            ("rodné číslo", "rodne cislo", "rodného čísla", "rodné č", "birth number"), native=r"\d{6}/\d{3,4}",
            doc="Czech and Slovak birth number (rodné číslo: birth date, serial, mod-11 check)."),
    _define("de_stnr", de_stnr.is_valid, r"\b\d(?:[ ./-]?\d){9,12}\b", 10,
            ("steuernummer", "steuer-nr", "st.-nr", "stnr"),
            doc="German tax number (Steuernummer: the regional formats; no check digit)."),
    _define("dk_cpr", dk_cpr.is_valid, _D10, 10, ("cpr", "cpr-nummer", "cpr-nr", "cpr number"),
            doc="Danish CPR number (birth date and serial; no check digit since 2007)."),
    _define("ee_ik", ee_ik.is_valid, _D11, 11, ("isikukood", "personal identification code"),
            doc="Estonian personal identification code (isikukood: sex, birth date, serial, check)."),
    _define("es_nie", es_nie.is_valid, r"\b[XYZxyz][ -]?\d(?: ?\d){6}[ -]?[A-Za-z]\b", 9,
            ("nie", "número de identidad de extranjero", "numero de identidad de extranjero",
             "número de identificación de extranjero", "tarjeta de residencia"),
            native=r"[XYZ]-?\d{7}-?[A-Z]",
            doc="Spanish foreigner number (NIE: X, Y or Z, 7 digits and a check letter)."),
    _define("fi_hetu", fi_hetu.is_valid,
            r"\b\d(?: ?\d){5} ?[-+A-FU-Ya-fu-y] ?\d(?: ?\d){2} ?[0-9A-Ya-y]\b", 11,
            ("henkilötunnus", "hetu", "henkilotunnus", "personbeteckning", "personal identity code"),
            native=r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]",
            doc="Finnish personal identity code (HETU: birth date, century sign, serial, check character)."),
    _define("fi_veronumero", fi_veronumero.is_valid, _D12, 12, ("veronumero", "skattenummer"),
            doc="Finnish individual tax number (12 digits, no check digit)."),
    _define("fr_nif", fr_nif.is_valid, _D13, 13,
            ("numéro fiscal", "numero fiscal", "numéro d'identification fiscale", "référence fiscale", "spi",
             "nif"),
            doc="French tax number of a person (numéro fiscal / SPI, 13 digits, check)."),
    _define("gb_nhs", gb_nhs.is_valid, _D10, 10, ("nhs", "nhs number", "nhs no"), native=r"\d{3} \d{3} \d{4}",
            doc="UK NHS number (patients in England, Wales, Isle of Man; mod-11 check)."),
    _define("gb_utr", gb_utr.is_valid, _D10, 10, ("utr", "unique taxpayer reference", "taxpayer reference"),
            doc="UK Unique Taxpayer Reference (10 digits, check digit)."),
    _define("gr_amka", gr_amka.is_valid, _D11, 11, ("αμκα", "amka"),
            doc="Greek social security number (AMKA: birth date, serial, Luhn check)."),
    _define("hr_oib", hr_oib.is_valid, _D11, 11, ("oib", "osobni identifikacijski broj"),
            doc="Croatian personal identification number (OIB, ISO 7064 mod 11,10)."),
    _define("ie_pps", _pps_person, r"\b\d(?: ?\d){6} ?[A-Wa-w][ABWTXabwtx]?\b", 8,
            ("pps", "ppsn", "pps number", "personal public service"), native=r"\d{7}[A-W][ABWTX]?",
            doc="Irish Personal Public Service number (7 digits, check letter; individuals)."),
    _define("is_kennitala", _kennitala_person, _D10, 10, ("kennitala", "kt."), alone=r"\d{6}-\d{4}", alone_rank=3,
            doc="Icelandic personal identity code (kennitala of a person: birth date, check digit)."),
    _define("lt_asmens", lt_asmens.is_valid, _D11, 11, ("asmens kodas", "asmens kodą", "asmens kodo"),
            doc="Lithuanian personal code (asmens kodas: sex, birth date, serial, check)."),
    _define("lv_pvn", _first(lv_pvn.is_valid, "0123"), r"\b\d{6}-?\d{5}\b", 11,
            ("personas kods", "personas kodu", "personas koda"),
            doc="Latvian personal code (personas kods, as validated by stdnum.lv.pvn; persons only)."),
    _define("nl_bsn", nl_bsn.is_valid, _D9, 9,
            ("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "citizen service number"),
            native=r"\d{4}\.\d{2}\.\d{3}",
            doc="Dutch citizen service number (BSN, 9 digits, eleven-test)."),
    _define("nl_onderwijsnummer", nl_onderwijsnummer.is_valid, _D9, 9, ("onderwijsnummer", "education number"),
            doc="Dutch education number (pupils without a BSN; eleven-test variant)."),
    _define("no_fodselsnummer", no_fodselsnummer.is_valid, _D11, 11,
            ("fødselsnummer", "fodselsnummer", "fødselsnr", "norwegian national id",
             "national identity number"),
            alone_rank=6,
            doc="Norwegian birth number (fødselsnummer: birth date, serial, two check digits)."),
    _define("pl_pesel", pl_pesel.is_valid, _D11, 11, ("pesel",), alone_rank=4,
            doc="Polish PESEL (birth date, serial, sex, check digit)."),
    _define("pt_cc", pt_cc.is_valid, r"\b\d{8} ?\d ?[A-Za-z]{2}\d\b", 12,
            ("cartão de cidadão", "cartao de cidadao", "identificação civil", "identificacao civil",
             "citizen card"),
            doc="Portuguese citizen card number (civil identification number, version, check)."),
    _define("pt_nif", _first(pt_nif.is_valid, "123"), _D9, 9,
            ("nif", "contribuinte", "número de identificação fiscal", "numero de identificacao fiscal"),
            alone=r"[123]\d{8}", alone_rank=1,
            doc="Portuguese tax number of a person (NIF starting 1-3, check digit)."),
    _define("ro_cnp", ro_cnp.is_valid, _D13, 13, ("cnp", "cod numeric personal"), alone_rank=3,
            doc="Romanian personal numeric code (CNP: sex, birth date, county, serial, check)."),
    _define("se_personnummer", se_personnummer.is_valid, _SE, 10,
            ("personnummer", "personnr", "person number", "personal number", "samordningsnummer",
             "personal identity number"),
            alone=r"(?:\d{2})?\d{6}[-+]\d{4}", alone_rank=4,
            doc="Swedish personal identity number (birth date, serial, Luhn check)."),
    _define("si_emso", si_emso.is_valid, _D13, 13, ("emšo", "emso", "enotna matična številka"), alone_rank=2,
            doc="Slovenian unique master citizen number (EMŠO: birth date, register, serial, check)."),
    _define("si_ddv", si_ddv.is_valid, _D8, 8, ("davčna številka", "davcna stevilka", "davčna št"),
            doc="Slovenian tax number (davčna številka, 8 digits, check digit)."),
)
"""Every national-id detector, the existing ``de_idnr`` first."""
