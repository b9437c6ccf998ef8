import pytest

from router.classify.registry import REGISTRY, build_detectors
from tests.unit.test_classify_identifiers import BROKEN, SAMPLES

pytestmark = pytest.mark.unit

VALID = {
    "iban": "please pay GR16 0110 1050 0000 1054 7023 795 today",
    "payment_card": "card 4111 1111 1111 1111 exp 12/29",
    "eu_vat": "our VAT id is BE697449992.",
    "de_idnr": "Steuer-ID 36 574 261 809",
    "fr_nir": "NIR 2 95 10 99 126 111 93",
    "es_dni": "DNI 54362315-K",
    "it_codicefiscale": "CF RCCMNL83S18D969H",
    "us_ssn": "SSN 536-90-4399",
    "gb_nino": "NI number JG 10 37 59 A",
    "email": "write to jane.doe@example.com",
    "phone": "call +44 20 7946 0958 after 5",
    "secret": "aws key AKIAIOSFODNN7EXAMPLE in the ticket",
    "prompt": "You are a sales assistant.\nUse {{account_name}} in the reply.",
    "special_category": "Spoke with Mrs Jones: she was diagnosed with diabetes in May.",
}
INVALID = {
    "iban": "please pay GR17 0110 1050 0000 1054 7023 795 today",  # wrong check digits
    "payment_card": "card 4111 1111 1111 1112 exp 12/29",  # Luhn fails
    "eu_vat": "our VAT id is BE697449993.",
    "de_idnr": "Steuer-ID 36 574 261 890",
    "fr_nir": "NIR 2 95 10 99 126 111 99",
    "es_dni": "DNI 54362315-Z",
    "it_codicefiscale": "CF RCCMNL83S18D969X",
    "us_ssn": "SSN 078-05-1120",  # the Woolworth advertising number
    "gb_nino": "NI number QQ 12 34 56 C",  # QQ is not an issued prefix
    "email": "meet @ noon at example dot com",
    "phone": "order 12345 shipped",
    "secret": "the password policy changed",
    "prompt": "You are a great customer, thanks!",
    "special_category": "Customer sells diabetes test strips to pharmacies.",  # a product, not a person's health
}
# The national numbers: each after its keyword (tests/unit/test_classify_identifiers.py).
VALID.update({name: f"{keyword} {number}" for name, (keyword, number) in SAMPLES.items() if name not in VALID})
INVALID.update({name: f"{SAMPLES[name][0]} {number}" for name, number in BROKEN.items() if name not in INVALID})


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_detector_finds_a_valid_sample(name: str) -> None:
    (detector,) = build_detectors([name], phone_regions=["GB"])
    assert detector.prefilter(VALID[name])
    assert detector.confirm(VALID[name])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_detector_rejects_an_invalid_checksum_or_lookalike(name: str) -> None:
    (detector,) = build_detectors([name], phone_regions=["GB"])
    text = INVALID[name]
    assert not (detector.prefilter(text) and detector.confirm(text))


@pytest.mark.parametrize("text", [
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE",  # split: no key-shaped literal in the tree
    "token ghp_" + "Zq8rT3mK1vX9pL2wN7cB4yH6jD0sF5gA8eU1",  # repeated "a1B2" is too regular: a placeholder
    "slack xoxb-" + "1234567890-1234567890123-aBcDeFgHiJkLmNoPqRsTuVwX",
    "db password = hunter2hunter2",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_secret_detector_covers_each_pattern(text: str) -> None:
    (d,) = build_detectors(["secret"])
    assert d.prefilter(text)
    assert d.confirm(text)


def test_a_jwt_lookalike_whose_header_is_not_json_is_not_a_secret() -> None:
    (d,) = build_detectors(["secret"])
    assert not d.confirm("eyJub3Rqc29uIn0x.eyJzdWIiOiIxIn0.abcdefghijklmnop")


def test_prompt_detector_accepts_one_strong_marker() -> None:
    (d,) = build_detectors(["prompt"])
    assert d.confirm("### Instruction\nSummarise the account.")


def test_plain_text_passes_no_prefilter_of_the_id_detectors() -> None:
    text = "Customer asked about renewal pricing and wants a call next week."
    for d in build_detectors(["iban", "payment_card", "us_ssn", "de_idnr", "email", "phone"]):
        assert not d.prefilter(text), d.name


SCANNER_TEXTS = [
    *VALID.values(), *INVALID.values(),
    "plain words only", "2026-11-28T10:00:00Z", "005xx000001Sv6QAAS", "https://example.com/a@b",
    "on 2026-11-28 call 030 1234567", "ünïcödé jane.doe@example.com", "lone \ud800 surrogate AKIAIOSFODNN7EXAMPLE",
    "system\n" * 50 + "user: hi {{name}}", "IBAN GR16 0110 1050 0000 1054 7023 795 and SSN 536-90-4399",
]


@pytest.mark.parametrize("set_gives_up", [False, True])
def test_the_scanner_finds_exactly_what_each_detector_confirms(monkeypatch: pytest.MonkeyPatch,
                                                                 set_gives_up: bool) -> None:
    from router.classify.detectors import Scanner

    detectors = build_detectors(sorted(REGISTRY), phone_regions=["GB", "DE"])
    scanner = Scanner(detectors)
    if set_gives_up:  # re2.Set answers nothing when its automaton runs out of memory
        monkeypatch.setattr(scanner, "_set", type("GaveUp", (), {"Match": staticmethod(lambda data: None)})())
    for text in SCANNER_TEXTS:
        expected = {d.name for d in detectors if d.prefilter(text) and d.confirm(text)}
        assert {d.name for d in scanner.hits(text)} == expected, text[:40]


def test_detectors_accept_any_str_including_lone_surrogates() -> None:
    for d in build_detectors(sorted(REGISTRY), phone_regions=["GB"]):
        text = "\udc00 write to jane.doe@example.com \ud800"
        assert isinstance(d.prefilter(text) and d.confirm(text), bool)
