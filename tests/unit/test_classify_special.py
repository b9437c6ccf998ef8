"""The special-category detector (GDPR Art. 9) on hand-labelled CRM text in six languages.

Each text was labelled by hand: the kind of special-category data it holds about a person, or
none. The look-alikes are about organisations, products or figures of speech.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.classify import Category, Classifier
from router.classify.config import ClassificationConfig, SpecialCategoryConfig
from router.classify.registry import build_detectors
from router.classify.special import KINDS, LANGUAGES, SpecialCategoryDetector, SpecialSettings
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
(SPECIAL,) = build_detectors(["special_category"])
assert isinstance(SPECIAL, SpecialCategoryDetector)

FOUND = [
    ("She was diagnosed with diabetes last year and asked for paper invoices.", "health"),
    ("Olivia Bennett is on sick leave after knee surgery until March.", "health"),
    ("Customer suffers from asthma; avoid on-site visits in spring.", "health"),
    ("Mein Mann hat Brustkrebs, bitte verschieben Sie den Termin.", "health"),
    ("Kundin ist schwanger und möchte den Vertrag pausieren.", "health"),
    ("Chloé Martin est en arrêt maladie suite à un burn-out.", "health"),
    ("Marta López está de baja médica por una hernia discal.", "health"),
    ("Marco Rossi è in malattia dopo un infarto.", "health"),
    ("Eva Bakker is zwanger en met verlof vanaf juni.", "health"),
    ("He is Muslim and asked for halal catering at the event.", "religion"),
    ("Julia Schneider ist Zeugin Jehovas und möchte keine Geburtstagskarten.", "religion"),
    ("Javier Fernández es judío practicante y no trabaja en sabbat.", "religion"),
    ("Lotte Smit is streng gereformeerd en wil op zondag niet gebeld worden.", "religion"),
    ("Chloé Martin milite à La France insoumise et refuse les newsletters.", "politics"),
    ("Sitzt für die Grünen im Kreistag und möchte keine Parteiwerbung.", "politics"),
    ("Il est membre de la CGT et délégué du personnel.", "trade_union"),
    ("Emily Clarke is a Unite union rep at the Birmingham plant.", "trade_union"),
    ("Hij is lid van de FNV en wil geen mails over cao-onderhandelingen.", "trade_union"),
    ("Ella es lesbiana y pidió que no se mencione a su pareja en eventos.", "sex_life"),
    ("Camille Dubois est bisexuel selon ce qu'il a partagé avec l'équipe.", "sex_life"),
    ("Lucía García es de etnia gitana según el formulario de diversidad.", "ethnic_origin"),
    ("Daan Jansen is van Marokkaanse afkomst volgens de diversiteitsenquête.", "ethnic_origin"),
    ("Gentest von Anna Fischer: Trägerin der Mukoviszidose-Mutation.", "genetic"),
    ("Thijs Visser is drager van een erfelijke genmutatie volgens de DNA-test.", "genetic"),
    ("His fingerprints were enrolled for the door access system.", "biometric"),
    ("Impronta digitale di Sara Ricci registrata per il badge di accesso.", "biometric"),
]

NOT_FOUND = [
    "Customer wants a quote for our health insurance product for their employees.",
    "Customer sells asthma inhalers to pharmacies in the region.",
    "Account is the Diocese of Leeds (a church organisation); invoices go to the finance office.",
    "Interessent ist eine Gewerkschaft mit 12.000 Mitgliedern; möchte ein Mitgliederportal.",
    "El cliente potencial es un sindicato con 30.000 afiliados; quiere un portal.",
    "Genetic algorithm used for the route optimisation module.",
    "They religiously follow up every Monday.",
    "Customer asked about biometric login support in the mobile app.",
    "Please archive the ticket and disable the old user account.",
    "Credenziali nella chat: password Roma_2026 da cambiare subito.",
    "Badge biométrique",
    "Renewal call went well; they want 20 more seats next quarter.",
    "Der Kunde fragt nach dem Status der Bestellung und bittet um Rückruf.",
]


@pytest.mark.parametrize(("text", "kind"), FOUND)
def test_special_category_data_about_a_person_is_found(text: str, kind: str) -> None:
    assert SPECIAL.prefilter(text) and SPECIAL.confirm(text), text
    assert kind in SPECIAL.kinds(text)


@pytest.mark.parametrize("text", NOT_FOUND)
def test_organisations_products_and_figures_of_speech_are_not(text: str) -> None:
    assert not (SPECIAL.prefilter(text) and SPECIAL.confirm(text)), text


def event(**values: object) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, "Case", Operation.UPDATE, ("500x",),
                       RawRecord(b"{}", "application/json"), values=values)


def test_the_default_classifier_runs_the_detector_and_names_the_field_only() -> None:
    assert "special_category" in ClassificationConfig().detectors
    result = Classifier.from_config(None).classify(event(Description=FOUND[0][0]))
    assert result.fields(Category.SPECIAL_CATEGORY) == ("Description",)
    assert {f.source for f in result.findings} == {"detector:special_category"}
    assert "diabetes" not in repr(result)


def test_languages_disabled_kinds_extra_terms_and_the_context_rule_are_configurable() -> None:
    german_only = SpecialCategoryDetector(SpecialSettings(languages=("de",)))
    assert german_only.kinds("Mein Mann hat Brustkrebs.") == {"health"}
    assert not german_only.kinds("She told us she is pregnant.")  # English only
    no_health = SpecialCategoryDetector(SpecialSettings(disabled=("health",)))
    assert not no_health.kinds("She was diagnosed with diabetes.")
    assert no_health.kinds("He is Muslim.") == {"religion"}
    extra = SpecialCategoryDetector(SpecialSettings(extra_terms={"health": ("long covid clinic*",)}))
    assert extra.kinds("She attends the long covid clinics weekly.") == {"health"}
    text = "Customer sells asthma inhalers to pharmacies in the region."
    assert not SPECIAL.kinds(text)
    assert SpecialCategoryDetector(SpecialSettings(person_context=False)).kinds(text) == {"health"}


def test_the_config_section_builds_the_detector_settings() -> None:
    cfg = ClassificationConfig.model_validate({"special_category": {
        "languages": ["en"], "disabled": ["politics"], "extra_terms": {"health": ["long covid"]}}})
    classifier = Classifier(cfg)
    result = classifier.classify(event(Description="Her long covid means calls only after 2pm."))
    assert result.fields(Category.SPECIAL_CATEGORY) == ("Description",)
    assert Category.SPECIAL_CATEGORY not in classifier.classify(
        event(Description="Mein Mann hat Brustkrebs.")).categories  # German not enabled


@pytest.mark.parametrize(("section", "setting"), [
    ({"languages": ["xx"]}, "languages"),
    ({"disabled": ["hobbies"]}, "disabled"),
    ({"extra_terms": {"hobbies": ["golf"]}}, "extra_terms"),
    ({"extra_terms": {"health": ["*"]}}, "extra_terms.health[0]"),
])
def test_bad_settings_are_rejected_naming_the_setting(section: dict[str, object], setting: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"special_category.{setting}")):
        SpecialCategoryConfig.model_validate(section)


def test_every_language_and_kind_has_a_lexicon() -> None:
    for lang in LANGUAGES:
        alone = SpecialCategoryDetector(SpecialSettings(languages=(lang,)))
        assert {t.kind for terms in alone._lex.exact.values() for t in terms} | {
            t.kind for terms in alone._lex.prefix.values() for t in terms} == set(KINDS), lang


def test_the_lexicons_and_rule_data_are_package_data() -> None:
    """tests/integration/test_wheel.py builds the wheel; here: every data file the classifier
    reads is matched by a [tool.setuptools.package-data] pattern."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["router"]
    package = ROOT / "router"
    data = [*package.glob("classify/lexicons/*"), *package.glob("classify/data/*")]
    assert any(p.name.endswith(".json") for p in data)
    for path in data:
        if path.suffix == ".py":
            continue  # the refresh script is not shipped
        rel = path.relative_to(package).as_posix()
        assert any(fnmatch(rel, pattern) for pattern in patterns), rel


def test_a_long_text_examines_a_bounded_number_of_candidates() -> None:
    text = "She has diabetes. " * 5_000
    assert SPECIAL.kinds(text) == {"health"}
    assert not SPECIAL.kinds("Customer sells diabetes test strips. " * 5_000)


@pytest.mark.parametrize("make", [
    lambda n: "diabetes " * (n // 9),                      # a candidate in every word
    lambda n: "She has " + "x" * n + " diabetes",          # one long word, no sentence end
    lambda n: "krebs" * (n // 5),                          # an infix stem, repeated in one word
    lambda n: "trade " * (n // 6) + "union",               # a phrase's first word, repeated
], ids=["dense", "long-word", "infix-run", "phrase-prefix"])
def test_time_grows_linearly(make: Callable[[int], str]) -> None:
    from tests.unit.test_classify_linear import MAX_RATIO, _ratio

    ratio = _ratio(lambda t: SPECIAL.prefilter(t) and SPECIAL.confirm(t), make)
    assert ratio < MAX_RATIO, f"8x input took {ratio:.1f}x the time"


# The limits docs/classification.md lists as verified examples (and the module docstring repeats):
# a business sentence without a business word counts ("bought" is not one, "sells" is); a
# business word with no person word vetoes the term.
@pytest.mark.parametrize(("text", "found"), [
    ("customer bought a wheelchair", True),
    ("the app for her diabetes", True),
    ("Customer sells asthma inhalers", False),
    ("Customer has diabetes and asked about the insurance product renewal.", False),
])
def test_the_documented_limits_of_the_person_context_rule_hold(text: str, found: bool) -> None:
    assert bool(SPECIAL.prefilter(text) and SPECIAL.confirm(text)) is found
