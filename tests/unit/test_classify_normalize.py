"""The scanned copy (router.classify.normalize) and the misses it fixes.

Reported misses: IBANs written in lower case; identifiers split by a no-break or zero-width
space, or typed with full-width digits. The payload is never changed: only the copy is scanned.
"""

from __future__ import annotations

import pytest

from router.classify import Classifier
from router.classify.detectors import Scanner
from router.classify.normalize import scanned_copy
from router.classify.registry import REGISTRY, build_detectors
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

def _full_width(text: str) -> str:
    """``text`` typed in full-width forms (U+FF01..U+FF5E; a space stays a space)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(("text", "expected"), [
    ("plain ASCII - stays", "plain ASCII - stays"),
    (_full_width("4111"), "4111"),                               # full-width digits
    (_full_width("GR16"), "GR16"),                               # full-width letters
    ("1\u00a02\u202f3\u20094\u30005", "1 2 3 4 5"),       # no-break, narrow no-break, thin, ideographic
    ("1\u200b2\u200c3\u200d4\u20605\ufeff6\u00ad7", "1234567"),  # zero-width and soft hyphen removed
    ("a\u2010b\u2011c\u2012d\u2013e\u2014f\u2015g\u2212h\ufe58i\ufe63j\uff0dk", "a-b-c-d-e-f-g-h-i-j-k"),
    ("ﬁle №5", "file No5"),                                # NFKC compatibility forms
    ("café", "café"),                                       # composed letters stay
    ("e\u200b\u0301", "é"),                                 # a zero-width char no longer blocks composition
])
def test_scanned_copy(text: str, expected: str) -> None:
    assert scanned_copy(text) == expected


def test_an_ascii_text_is_returned_as_it_is() -> None:
    text = "".join(["ascii ", "text"])
    assert scanned_copy(text) is text


def test_lone_surrogates_do_not_raise() -> None:
    assert scanned_copy("a\ud800b\u00a0c") == "a\ud800b c"


# Each of these was missed before the scanned copy (the detectors read ASCII digits and spaces).
MISSES = {
    "lower-case IBAN": ("iban", "please pay gr16 0110 1050 0000 1054 7023 795 today"),
    "lower-case IBAN, compact": ("iban", "iban de89370400440532013000"),
    "IBAN before a word": ("iban", "Refund to account BE07974871579466 requested."),
    "lower-case IBAN before a word": ("iban", "refund to be07 9748 7157 9466 requested."),
    "IBAN split by no-break spaces": ("iban", "IBAN GR16\u00a00110\u00a01050\u00a00000\u00a01054\u00a07023\u00a0795"),
    "IBAN split by narrow no-break spaces": ("iban", "IBAN DE89\u202f3704\u202f0044\u202f0532\u202f0130\u202f00"),
    "IBAN with a zero-width space": ("iban", "IBAN DE89370400\u200b440532013000"),
    "IBAN in full-width characters": ("iban", _full_width("IBAN DE89370400440532013000")),
    "card with no-break spaces": ("payment_card", "card 4111\u00a01111\u00a01111\u00a01111"),
    "card with zero-width spaces": ("payment_card", "card 4111\u200b1111\u200b1111\u200b1111"),
    "card in full-width digits": ("payment_card", "card " + _full_width("4111 1111 1111 1111")),
    "SSN with en dashes": ("us_ssn", "SSN 536\u201390\u20134399"),
    "SSN with minus signs": ("us_ssn", "SSN 536\u221290\u22124399"),
    "Steuer-ID with no-break spaces": ("de_idnr", "Steuer-ID 36\u00a0574\u00a0261\u00a0809"),
    "Steuer-ID in full-width digits": ("de_idnr", "Steuer-ID " + _full_width("36574261809")),
    "NIR with thin spaces": ("fr_nir", "NIR 2\u200995\u200910\u200999\u2009126\u2009111\u200993"),
    "DNI with a soft hyphen": ("es_dni", "DNI 5436\u00ad2315-K"),
    "lower-case NINO": ("gb_nino", "NI number jg 10 37 59 a"),
    "lower-case codice fiscale": ("it_codicefiscale", "CF rccmnl83s18d969h"),
    "phone with no-break spaces": ("phone", "call +44\u00a020\u00a07946\u00a00958 after 5"),
}


@pytest.mark.parametrize("case", sorted(MISSES))
def test_the_scanner_finds_identifiers_typed_with_unicode_variants(case: str) -> None:
    name, text = MISSES[case]
    scanner = Scanner(build_detectors(sorted(REGISTRY), phone_regions=["GB"]))
    assert name in {d.name for d in scanner.hits(text)}


@pytest.mark.parametrize("case", sorted(MISSES))
def test_each_detector_reads_the_scanned_copy_too(case: str) -> None:
    name, text = MISSES[case]
    (detector,) = build_detectors([name], phone_regions=["GB"])
    assert detector.prefilter(text) and detector.confirm(text)


@pytest.mark.parametrize("text", [
    "iban gr17 0110 1050 0000 1054 7023 795",             # wrong check digits, lower case
    "card 4111\u00a01111\u00a01111\u00a01112",            # Luhn fails
    _full_width("SSN 078-05-1120"),                 # the Woolworth number, full width
    "ni number qq 12 34 56 c",                             # QQ is not an issued prefix
])
def test_invalid_identifiers_stay_invalid_in_any_typing(text: str) -> None:
    scanner = Scanner(build_detectors(sorted(REGISTRY), phone_regions=["GB"]))
    assert {d.name for d in scanner.hits(text)} & {"iban", "payment_card", "us_ssn", "gb_nino"} == set()


def test_the_payload_is_not_changed() -> None:
    original = "IBAN GR16\u00a00110\u00a01050\u00a00000\u00a01054\u00a07023\u00a0795 " + _full_width("ABC")
    value = "".join(list(original))  # an equal string, not the same object
    values = {"Description": value}
    event = ChangeEvent(SourceSystem.SALESFORCE, "Case", Operation.UPDATE, ("500x",),
                        RawRecord(value.encode(), "text/plain"), values=values)
    result = Classifier.from_config(None).classify(event)
    assert "detector:iban" in {f.source for f in result.findings}
    assert event.values["Description"] == original
    assert event.raw.payload == original.encode()
