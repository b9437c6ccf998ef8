"""The evaluation corpus (eval/corpus) is well-formed and complete, the generated part is
reproducible, and the scoring of eval/evaluate.py is right on small examples whose figures are
written out below by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pycountry
import pytest

from router.classify.model import Category

pytestmark = pytest.mark.unit

EVAL = Path(__file__).resolve().parents[2] / "eval"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"eval_{name}", EVAL / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


evaluate = _load("evaluate")
generate = _load("generate")
RECORDS = evaluate.load_records(evaluate.corpus_paths())
SIX = ("en", "de", "fr", "es", "it", "nl")


def _labels(part: str | None = None) -> list[tuple[str, object]]:
    return [(r.lang, lab) for r in RECORDS if part in (None, r.part) for labs in r.labels.values() for lab in labs]


def test_both_parts_are_present_and_ids_are_unique() -> None:
    parts = Counter(r.part for r in RECORDS)
    assert parts["hand"] >= 150 and parts["generated"] >= 500
    assert len({r.id for r in RECORDS}) == len(RECORDS)
    hand_fields = sum(len(r.fields) for r in RECORDS if r.part == "hand")
    assert hand_fields >= 300


def test_every_category_is_labelled_in_both_parts() -> None:
    every = {c.value for c in Category}
    for part in ("hand", "generated"):
        assert {lab.category for _, lab in _labels(part)} == every, part


def test_six_languages_have_hand_written_labelled_fields_of_several_categories() -> None:
    for lang in SIX:
        cats = {lab.category for lg, lab in _labels("hand") if lg == lang}
        assert {"FINANCIAL", "PII", "SECRET", "SPECIAL_CATEGORY", "PROPRIETARY_PROMPT", "GOVERNMENT_ID"} <= cats, lang
        # and look-alike fields without a label
        assert any(set(r.fields) - set(r.labels) for r in RECORDS if r.lang == lang and r.part == "hand")


def test_every_special_kind_and_the_new_national_ids_are_labelled() -> None:
    kinds = {lab.type for _, lab in _labels() if lab.category == "SPECIAL_CATEGORY"}
    assert kinds == set(evaluate.SPECIAL_KINDS)
    types = {lab.type for _, lab in _labels()}
    assert {"nl_bsn", "be_nn", "pl_pesel", "se_personnummer", "dk_cpr", "fi_hetu", "no_fodselsnummer",
            "ch_ssn"} <= types
    assert set(evaluate.ORIGINAL_DETECTORS) <= types


def test_generated_part_regenerates_byte_identical() -> None:
    committed = (EVAL / "corpus" / "generated.jsonl").read_text(encoding="utf-8")
    assert generate.render(generate.build(generate.SEED)) == committed


def test_generated_identifiers_carry_the_formatting_variants() -> None:
    text = (EVAL / "corpus" / "generated.jsonl").read_text(encoding="utf-8")
    values = [json.dumps(r.fields, ensure_ascii=False) for r in RECORDS if r.part == "generated" and r.labels]
    assert any("\u00a0" in v for v in values)  # no-break space
    assert any("\u200b" in v for v in values)  # zero-width space
    assert any("\uff10" <= c <= "\uff19" for v in values for c in v)  # full-width digits
    assert '"password' in text  # JSON-quoted credential keys


def test_generated_look_alikes_fail_their_checksum() -> None:
    # the invalid-checksum look-alike beside each generated identifier, checked with python-stdnum
    for kind, (_, _, _, valid) in (generate.ID_GENERATORS | generate.MORE_IDS).items():
        if kind in ("gb_nino", "us_ssn", "dk_cpr"):
            continue
        records = [r for r in RECORDS if r.part == "generated" and "Reference__c" in r.fields
                   and any(lab.type == kind for labs in r.labels.values() for lab in labs)]
        assert records, kind
        for r in records:
            assert not valid(r.fields["Reference__c"]), (r.id, kind)
            assert "Reference__c" not in r.labels


def test_country_cases_are_valid_and_include_confusables() -> None:
    cases = evaluate.load_countries(EVAL / "corpus" / "countries.jsonl")
    assert len(cases) >= 150
    for case in cases:
        assert case.expect is None or pycountry.countries.get(alpha_2=case.expect) is not None, case
    assert {"The Netherlands", "Federal Republic of Germany", "Allemagne"} <= {c.text for c in cases}
    # mixed-script spellings (Cyrillic / Greek letters among Latin ones) must resolve to nothing
    mixed = {c.text: c.expect for c in cases if not c.text.isascii() and any("a" <= ch <= "z" for ch in c.text)
             and any("\u0370" <= ch <= "\u04ff" for ch in c.text)}
    assert mixed.get("Germ\u0430ny", "absent") is None
    assert len(mixed) >= 5 and set(mixed.values()) == {None}


@pytest.mark.parametrize(("line", "problem"), [
    ({"id": "x", "lang": "en", "part": "hand", "entity": "Case", "fields": {"a": "t"}, "labels": {"a": ["PHI"]}},
     "unknown category"),
    ({"id": "x", "lang": "en", "part": "hand", "entity": "Case", "fields": {"a": "t"}, "labels": {"a": ["PII:iban"]}},
     "belongs to FINANCIAL"),
    ({"id": "x", "lang": "en", "part": "hand", "entity": "Case", "fields": {"a": "t"}, "labels": {"b": ["PII"]}},
     "does not have"),
    ({"id": "x", "lang": "en", "part": "hand", "entity": "Case", "fields": {"a": "t"},
      "labels": {"a": ["SPECIAL_CATEGORY:hobbies"]}}, "special-category kind"),
    ({"id": "x", "lang": "en", "part": "other", "entity": "Case", "fields": {"a": "t"}}, "part"),
])
def test_a_broken_line_is_a_corpus_error(line: dict[str, object], problem: str) -> None:
    with pytest.raises(evaluate.CorpusError, match=problem):
        evaluate.parse_record(line, "t.jsonl:1")


def test_a_broken_corpus_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hand").mkdir()
    line = {"id": "x", "lang": "en", "part": "hand", "entity": "Case", "fields": {"a": "t"}, "labels": {"a": ["NOPE"]}}
    (tmp_path / "hand" / "x.jsonl").write_text(json.dumps(line) + "\n")
    (tmp_path / "generated.jsonl").write_text("")
    (tmp_path / "countries.jsonl").write_text("")
    assert evaluate.main(["--corpus", str(tmp_path), "--passes", "1"]) == 2
    assert "x.jsonl:1" in capsys.readouterr().err


def _record(rid: str, lang: str, fields: dict[str, str], labels: dict[str, list[str]]) -> object:
    return evaluate.parse_record({"id": rid, "lang": lang, "part": "hand", "entity": "Case", "fields": fields,
                                  "labels": labels}, rid)


def test_scoring_on_a_tiny_example() -> None:
    records = [
        _record("r1", "en", {"a": "-", "b": "-", "c": "-", "d": "-"},
                {"a": ["FINANCIAL:iban"], "c": ["GOVERNMENT_ID:nl_bsn"], "d": ["SPECIAL_CATEGORY:health"]}),
        _record("r2", "de", {"x": "-", "y": "-"}, {"x": ["SECRET:secret", "PII:email"]}),
    ]
    found = {
        "r1": {"a": frozenset({("FINANCIAL", "detector:iban"), ("PII", "detector:phone")}),
               "b": frozenset({("PII", "detector:email")}),
               "d": frozenset({("SPECIAL_CATEGORY", "detector:special_category")})},
        "r2": {"x": frozenset({("SECRET", "detector:secret")})},
    }
    s = evaluate.score(records, found, ["iban", "phone", "email", "secret", "prompt"])
    assert s.fields == 6

    def counts(c: object) -> tuple[int, int, int]:
        return (c.tp, c.fp, c.fn)  # type: ignore[attr-defined]

    assert counts(s.categories["FINANCIAL"]) == (1, 0, 0)
    assert counts(s.categories["PII"]) == (0, 2, 1)
    assert counts(s.categories["GOVERNMENT_ID"]) == (0, 0, 1)
    assert counts(s.categories["SPECIAL_CATEGORY"]) == (1, 0, 0)
    assert counts(s.categories["SECRET"]) == (1, 0, 0)
    assert counts(s.categories["PROPRIETARY_PROMPT"]) == (0, 0, 0)
    assert s.categories["PII"].precision == 0.0 and s.categories["PII"].f1 == 0.0
    assert s.categories["PROPRIETARY_PROMPT"].recall is None

    assert counts(s.detectors["iban"]) == (1, 0, 0)
    assert counts(s.detectors["phone"]) == (0, 1, 0)
    assert counts(s.detectors["email"]) == (0, 1, 1)
    assert counts(s.detectors["nl_bsn"]) == (0, 0, 1)  # no such detector: a miss, recall 0
    assert s.detectors["nl_bsn"].recall == 0.0
    assert counts(s.detectors["special_category"]) == (1, 0, 0)
    assert counts(s.detectors["prompt"]) == (0, 0, 0)  # enabled, never expected, never fired

    assert counts(s.checksum_ids) == (1, 0, 1)  # iban found, nl_bsn missed; phone/email are not ids
    assert counts(s.kinds["health"]) == (1, 0, 0)
    assert counts(s.langs["en"]) == (2, 2, 1)
    assert counts(s.langs["de"]) == (1, 0, 1)

    problems = sorted((p.kind, p.id, p.field, p.key) for p in s.problems)
    assert problems == [("false_positive", "r1", "a", "PII"), ("false_positive", "r1", "b", "PII"),
                        ("miss", "r1", "c", "GOVERNMENT_ID"), ("miss", "r2", "x", "PII")]

    goals = {g["goal"]: g["status"] for g in evaluate.goals(s, {"correct_rate": 1.0, "wrong": 0})}
    assert goals["checksum-validated identifiers recall"] == "MISS"  # 0.5
    assert goals["checksum-validated identifiers precision"] == "PASS"  # 1.0
    assert goals["secrets recall"] == "PASS"
    assert goals["special-category recall"] == "PASS"
    assert goals["prompts recall"] == "MISS"  # nothing to measure is not a pass
    assert goals["country names wrong"] == "PASS"


def test_country_scoring_counts_correct_unknown_wrong_and_crashes() -> None:
    cases = [evaluate.CountryCase("Germany", "DE", "en"), evaluate.CountryCase("Germ\u0430ny", None, "en"),
             evaluate.CountryCase("Holland", "NL", "en"), evaluate.CountryCase("boom", None, "en")]
    answers = {"Germany": "DE", "Germ\u0430ny": "DE", "Holland": None}

    def resolve(text: str) -> str | None:
        if text == "boom":
            raise ValueError("no")
        return answers[text]

    result = evaluate.score_countries(cases, resolve)
    assert (result["correct"], result["unknown"], result["wrong"]) == (1, 1, 2)
    assert result["correct_rate"] == 0.25


def _stdnum_check(kind: str) -> object:
    """python-stdnum's ``is_valid`` for a label type (``<cc>_<module>`` names the module)."""
    from stdnum import iban, luhn
    from stdnum.eu import vat

    if kind == "iban":
        return iban.is_valid
    if kind == "payment_card":
        return lambda v: (d := v.replace("-", "")).isdigit() and 13 <= len(d) <= 19 and luhn.is_valid(d)
    if kind == "eu_vat":
        return vat.is_valid
    cc, _, module = kind.partition("_")
    return importlib.import_module(f"stdnum.{cc}.{module}").is_valid


def test_hand_written_identifiers_pass_their_python_stdnum_check() -> None:
    """A typo in a hand-written identifier would make its label wrong: some run of at most eight
    consecutive tokens of the labelled field must validate with python-stdnum."""
    checked = 0
    for r in RECORDS:
        if r.part != "hand":
            continue
        for name, labels in r.labels.items():
            value = r.fields[name]
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            tokens = [t.strip(".") for t in re.split(r"[\s,;:()\"'{}\[\]=]+", text) if t.strip(".")]
            windows = {"".join(tokens[i:j]) for i in range(len(tokens))
                       for j in range(i + 1, min(i + 9, len(tokens) + 1))}
            for lab in labels:
                if lab.type in (None, "us_ssn", "gb_nino", "email", "phone", "secret", "prompt") or \
                        lab.category == "SPECIAL_CATEGORY":
                    continue
                valid = _stdnum_check(lab.type)
                assert any(valid(w) for w in windows), (r.id, name, str(lab))  # type: ignore[operator]
                checked += 1
    assert checked >= 40


def test_a_right_category_from_the_wrong_detector_is_a_detector_miss_and_false_positive() -> None:
    records = [_record("r3", "nl", {"z": "-"}, {"z": ["GOVERNMENT_ID:nl_bsn"]})]
    found = {"r3": {"z": frozenset({("GOVERNMENT_ID", "detector:eu_vat")})}}
    s = evaluate.score(records, found)
    assert (s.categories["GOVERNMENT_ID"].tp, s.categories["GOVERNMENT_ID"].fn) == (1, 0)
    assert (s.detectors["nl_bsn"].fn, s.detectors["eu_vat"].fp) == (1, 1)
    assert (s.checksum_ids.tp, s.checksum_ids.fp, s.checksum_ids.fn) == (0, 1, 1)
    assert not s.problems
    assert sorted((p.kind, p.key) for p in s.detector_problems) == [("false_positive", "eu_vat"), ("miss", "nl_bsn")]


def test_no_private_key_is_committed_and_each_load_puts_a_generated_one_in_its_place() -> None:
    from cryptography.hazmat.primitives import serialization

    committed = "".join(p.read_text(encoding="utf-8") for p in evaluate.corpus_paths())
    assert "PRIVATE KEY-----" not in committed
    assert committed.count("<generated ") >= 2
    blocks = [v for r in RECORDS for v in r.fields.values() if isinstance(v, str) and "PRIVATE KEY-----" in v]
    assert len(blocks) == committed.count("<generated ")
    for text in blocks:
        pem = text[text.index("-----BEGIN"):text.rindex("-----") + 5].encode()
        if b"OPENSSH" in pem:
            serialization.load_ssh_private_key(pem, password=None)
        else:
            serialization.load_pem_private_key(pem, password=None)
