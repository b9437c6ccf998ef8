"""National personal and tax numbers (router.classify.identifiers): names, validation, context,
selection by country.

Valid and invalid numbers are python-stdnum's own documented examples (or found with stdnum's
validators below), so the ground truth is the library's, not the detectors'.
"""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError
from stdnum.de import idnr
from stdnum.dk import cpr
from stdnum.pl import pesel
from stdnum.se import personnummer

from router.classify import Classifier
from router.classify.config import ClassificationConfig
from router.classify.detectors import NationalIdDetector, Scanner
from router.classify.identifiers import NATIONAL_IDS
from router.classify.registry import REGISTRY, build_detectors
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

# name: (keyword, valid number as printed in its country). From python-stdnum's docstrings.
SAMPLES = {
    "at_tin": ("Abgabenkontonummer", "59-119/9013"),
    "at_vnr": ("Versicherungsnummer", "1237 010180"),
    "be_bis": ("BIS-nummer", "98.47.28-997.65"),
    "be_nn": ("rijksregisternummer", "85.07.30-033.28"),
    "bg_egn": ("ЕГН", "8032056031"),
    "bg_pnf": ("ЛНЧ", "7111 042 925"),
    "ch_ssn": ("AHV-Nummer", "756.9217.0769.85"),
    "cz_rc": ("rodné číslo", "710319/2745"),
    "de_idnr": ("Steuer-ID", "36574261809"),
    "de_stnr": ("Steuernummer", "181/815/08155"),
    "dk_cpr": ("CPR-nummer", "211062-5629"),
    "ee_ik": ("isikukood", "36805280109"),
    "es_nie": ("NIE", "X-2482300-W"),
    "fi_hetu": ("henkilötunnus", "131052-308T"),
    "fi_veronumero": ("veronumero", "123456789123"),
    "fr_nif": ("numéro fiscal", "3023217600053"),
    "gb_nhs": ("NHS number", "943 476 5870"),
    "gb_utr": ("UTR", "1955839661"),
    "gr_amka": ("\u0391\u039c\u039a\u0391", "01013099997"),  # AMKA in Greek
    "hr_oib": ("OIB", "33392005961"),
    "ie_pps": ("PPS number", "6433435F"),
    "is_kennitala": ("kennitala", "120174-3399"),
    "lt_asmens": ("asmens kodas", "33309240064"),
    "lv_pvn": ("personas kods", "161175-19997"),
    "nl_bsn": ("BSN", "1112.22.333"),
    "nl_onderwijsnummer": ("onderwijsnummer", "1012.22.331"),
    "no_fodselsnummer": ("fødselsnummer", "151086 95088"),
    "pl_pesel": ("PESEL", "44051401359"),
    "pt_cc": ("cartão de cidadão", "00000000 0 ZZ4"),
    "pt_nif": ("NIF", "123456789"),
    "ro_cnp": ("CNP", "1630615123457"),
    "se_personnummer": ("personnummer", "880320-0016"),
    "si_ddv": ("davčna številka", "50223054"),
    "si_emso": ("EMŠO", "0101006500006"),
}
NAMES = sorted(SAMPLES)
# Printed so that the print alone names the type, or strongly checked enough to count alone.
NATIVE = {"be_bis", "be_nn", "ch_ssn", "cz_rc", "es_nie", "fi_hetu", "gb_nhs", "ie_pps", "nl_bsn"}
ALONE = NATIVE | {"bg_egn", "de_idnr", "is_kennitala", "no_fodselsnummer", "pl_pesel", "pt_nif", "ro_cnp",
                  "se_personnummer", "si_emso"}


SCANNER = Scanner(build_detectors(sorted(REGISTRY), phone_regions=["GB", "DE"]))


def _ids(text: str) -> set[str]:
    return {d.name for d in SCANNER.hits(text) if d.category.value == "GOVERNMENT_ID"}


def test_every_national_id_detector_is_named_after_its_stdnum_module() -> None:
    assert {cls.name for cls in NATIONAL_IDS} == set(SAMPLES)
    for cls in NATIONAL_IDS:
        cc, module = cls.name.split("_", 1)
        importlib.import_module(f"stdnum.{cc if cc != 'is' else 'is_'}.{module}")
        assert cls.category.value == "GOVERNMENT_ID"
        assert issubclass(cls, NationalIdDetector)
        assert REGISTRY[cls.name] is cls


def test_the_existing_detector_names_stay() -> None:
    assert {"de_idnr", "fr_nir", "es_dni", "it_codicefiscale", "gb_nino", "eu_vat", "iban", "payment_card",
            "us_ssn"} <= set(REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_a_valid_number_after_its_keyword_is_found_by_its_detector_only(name: str) -> None:
    keyword, number = SAMPLES[name]
    assert _ids(f"Customer confirmed {keyword}: {number} on the call today.") == {name}


@pytest.mark.parametrize("name", NAMES)
def test_the_keyword_counts_in_any_case_and_after_the_number(name: str) -> None:
    keyword, number = SAMPLES[name]
    assert name in _ids(f"{keyword.upper()} {number}")
    assert name in _ids(f"{number} ({keyword.lower()})")


@pytest.mark.parametrize("name", sorted(set(NAMES) - NATIVE))
def test_a_valid_number_in_text_without_a_keyword_is_not_a_national_id(name: str) -> None:
    _, number = SAMPLES[name]
    assert name not in _ids(f"Order {number} was shipped on Monday, see the note.")


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_a_print_that_names_the_type_counts_without_a_keyword(name: str) -> None:
    _, number = SAMPLES[name]
    assert name in _ids(f"Customer sent {number} for the refund.")


@pytest.mark.parametrize("name", sorted(ALONE))
def test_a_strongly_checked_number_alone_in_a_field_counts(name: str) -> None:
    _, number = SAMPLES[name]
    assert _ids(number) == {name}
    assert _ids(f"  {number}.\n") == {name}


@pytest.mark.parametrize("name", sorted(set(NAMES) - ALONE))
def test_a_weakly_checked_number_alone_needs_a_keyword(name: str) -> None:
    _, number = SAMPLES[name]
    assert name not in _ids(number)


def test_a_keyword_too_far_away_does_not_count() -> None:
    text = "PESEL " + "customer called about the renewal of the contract, " * 2 + "44051401359"
    assert "pl_pesel" not in _ids(text)


def test_the_keyword_of_another_number_vetoes_a_print_or_a_number_alone() -> None:
    assert "de_idnr" in _ids("36 574 261 809")
    assert "de_idnr" not in _ids("PESEL 36 574 261 809")
    assert "nl_bsn" not in _ids("PESEL: 1112.22.333")


def test_the_stronger_check_wins_a_number_alone_that_both_read() -> None:
    both = "85032364797"  # found with stdnum: a valid PESEL and a valid Steuer-ID
    assert pesel.is_valid(both) and idnr.is_valid(both)
    assert _ids(both) == {"pl_pesel"}
    assert _ids(f"Steuer-ID {both}") == {"de_idnr"}
    either = "141228-3929"  # a valid Swedish personnummer and a valid Danish CPR date
    assert personnummer.is_valid(either) and cpr.is_valid(either)
    assert _ids(either) == {"se_personnummer"}
    assert _ids(f"CPR-nummer {either}") == {"dk_cpr"}


def _stdnum_valid(name: str, number: str) -> bool:
    cc, module = name.split("_", 1)
    return bool(importlib.import_module(f"stdnum.{cc if cc != 'is' else 'is_'}.{module}").is_valid(number))


def _broken(name: str) -> str:
    """The sample with its last digit changed so that python-stdnum rejects it. Without a check digit
    (CPR since 2007: the date is the check; Veronumero; Steuernummer: the format is) a bad date,
    length or format instead."""
    fixed = {"dk_cpr": "511062-5629", "fi_veronumero": "12345678912", "de_stnr": "18/815/0815"}
    number = fixed.get(name) or SAMPLES[name][1]
    last = max(i for i, c in enumerate(number) if c.isdigit())
    return next(b for b in (number[:last] + d + number[last + 1:] for d in "0123456789")
                if not _stdnum_valid(name, b))


BROKEN = {name: _broken(name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_an_invalid_number_is_not_found_even_with_its_keyword(name: str) -> None:
    assert not _stdnum_valid(name, BROKEN[name])
    assert name not in _ids(f"{SAMPLES[name][0]} {BROKEN[name]}")


@pytest.mark.parametrize(("text", "name"), [
    ("Klant bevestigt BSN: 1112.22.333 tijdens het gesprek.", "nl_bsn"),
    ("Le client confirme numéro de registre national : 85.07.30-033.28 lors de l'appel.", "be_nn"),
    ("Klient podał PESEL 44051401359 podczas rozmowy.", "pl_pesel"),
    ("Kunden uppgav personnummer 880320-0016 i samtalet.", "se_personnummer"),
    ("Sarah sent the Swedish personal number 880320-0016 for the refund.", "se_personnummer"),
    ("Kunden oplyste CPR-nummer 211062-5629 i samtalen.", "dk_cpr"),
    ("Asiakas antoi henkilötunnus 131052-308T puhelun aikana.", "fi_hetu"),
    ("Please update the account: Finnish personal identity code 131052-308T.", "fi_hetu"),
    ("Kunden oppga fødselsnummer 15108695088 i samtalen.", "no_fodselsnummer"),
    ("Customer confirmed Norwegian national ID: 15108695088 on the call today.", "no_fodselsnummer"),
    ("Bitte im Konto ändern: AHV-Nummer 7569217076985.", "ch_ssn"),
    ("Il cliente conferma numero AVS: 756.9217.0769.85 durante la chiamata.", "ch_ssn"),
    ("Kunde bestätigt Steuer-ID: 36574261809 im Telefonat heute.", "de_idnr"),
    ("James sent the German tax ID 36574261809 for the refund.", "de_idnr"),
    ("FØDSELSNUMMER 15108695088", "no_fodselsnummer"),
    ("αμκα 01013099997", "gr_amka"),
])
def test_sentences_in_the_countries_languages(text: str, name: str) -> None:
    assert _ids(text) == {name}


@pytest.mark.parametrize("printed", [
    "44051\u00a0401359",          # split by a no-break space
    "44051\u200b401359",          # split by a zero-width space
    "".join(chr(ord(c) + 0xFEE0) for c in "44051401359"),  # full-width digits
    "4405 1401 359",
])
def test_typing_variants_of_a_number_after_its_keyword(printed: str) -> None:
    assert _ids(f"PESEL {printed}") == {"pl_pesel"}


# -- selection by country (classification.national_ids) ----------------------------------------

def test_by_default_every_national_id_detector_is_enabled() -> None:
    assert set(ClassificationConfig().detectors) == set(REGISTRY)
    assert set(ClassificationConfig(national_ids=["EU", "EEA", "GB", "CH", "US"]).detectors) == set(REGISTRY)


def test_national_ids_selects_countries_and_groups() -> None:
    nl_uk = set(ClassificationConfig(national_ids=["NL", "uk"]).detectors)
    assert {"nl_bsn", "nl_onderwijsnummer", "gb_nino", "gb_nhs", "gb_utr", "eu_vat", "iban", "email"} <= nl_uk
    assert not nl_uk & {"de_idnr", "pl_pesel", "us_ssn", "ch_ssn", "no_fodselsnummer", "fr_nir"}
    eu = set(ClassificationConfig(national_ids=["EU"]).detectors)
    assert {"de_idnr", "pl_pesel", "fr_nir", "it_codicefiscale", "cz_rc", "si_emso"} <= eu
    assert not eu & {"no_fodselsnummer", "is_kennitala", "ch_ssn", "gb_nino", "us_ssn"}
    eea = set(ClassificationConfig(national_ids=["EEA"]).detectors)
    assert {"no_fodselsnummer", "is_kennitala"} <= eea
    assert "ch_ssn" not in eea
    assert "cz_rc" in set(ClassificationConfig(national_ids=["SK"]).detectors)  # one birth number for CZ and SK
    assert "gb_nino" not in set(ClassificationConfig(national_ids=[]).detectors)


def test_explicit_detectors_win_over_national_ids() -> None:
    assert ClassificationConfig(detectors=["pl_pesel"], national_ids=["NL"]).detectors == ["pl_pesel"]


def test_an_unknown_country_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match=r"classification\.national_ids.*'XX'"):
        ClassificationConfig(national_ids=["XX"])


def test_a_classifier_without_a_country_does_not_find_its_number() -> None:
    def classify(config: ClassificationConfig) -> set[str]:
        event = ChangeEvent(SourceSystem.SALESFORCE, "Case", Operation.UPDATE, ("500x",),
                            RawRecord(b"{}", "application/json"), values={"Description": "PESEL 44051401359"})
        return {f.source for f in Classifier(config).classify(event).findings}

    assert classify(ClassificationConfig(national_ids=["PL"])) == {"detector:pl_pesel"}
    assert classify(ClassificationConfig(national_ids=["DE", "NL"])) == set()


# US SSNs (detector us_ssn): 536-90-4399 is python-stdnum's own valid example (stdnum.us.ssn).
@pytest.mark.parametrize("text", [
    "Please update the account: SSN 536 90 4399.",  # spaces, as in the eval corpus (gen-0183, gen-0186)
    "SSN 536-90-4399",
    "536 90 4399",
    "Order for SSN 536-90-4399 on file",  # a reference word, but the SSN word next to the number wins
])
def test_a_us_ssn_with_dashes_or_spaces_is_found(text: str) -> None:
    assert "us_ssn" in _ids(text)


@pytest.mark.parametrize("text", [
    "Order 536-90-4399 shipped",
    "Invoice 536 90 4399",
    "ticket 536-90-4399",
    "SSN 078 05 1120",  # the Woolworth advertising number, rejected by stdnum.us.ssn
    "SSN 536 90-4399",  # mixed separators: not how an SSN is printed
])
def test_a_us_ssn_shaped_reference_or_invalid_number_is_not_found(text: str) -> None:
    assert "us_ssn" not in _ids(text)
