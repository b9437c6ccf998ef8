"""Classification quality on the labelled corpus in ``eval/corpus``: a report, not a test.

Run: ``.venv/bin/python eval/evaluate.py [--json eval/report.json] [--config examples/router.yaml]``
(``make eval``). Prints precision, recall and F1 per category and per detector (micro over
fields), recall per language and per special-category sub-kind, every miss and false positive
(record id, field, expected vs found, a short truncated value), µs per record with the default
detectors and with the 13 original ones, the country-name table and the goals with PASS/MISS.
Exit code 0 even when goals are missed; 2 when the corpus is broken (bad line, unknown category,
label on a field the record does not have).

Each record becomes one :class:`ChangeEvent` and is classified by the real
:class:`router.classify.classifier.Classifier`. By default the config is ``ClassificationConfig()``
with every corpus field named in ``free_text_fields``, no ``prompt_fields`` and
``builtin_catalog`` off: detectors are measured, not field names. ``--config`` uses the
``classification`` section of a router YAML instead (catalog, inline fields and name catalog
then count for the categories; the per-detector table still counts only detector findings).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from router.classify.classifier import Classifier  # noqa: E402
from router.classify.config import ClassificationConfig  # noqa: E402
from router.classify.model import Category  # noqa: E402
from router.classify.registry import REGISTRY  # noqa: E402
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem  # noqa: E402
from router.residency.countries import to_alpha2  # noqa: E402

CORPUS = HERE / "corpus"
CATEGORIES = tuple(c.value for c in Category)
ORIGINAL_DETECTORS = ("iban", "payment_card", "eu_vat", "de_idnr", "fr_nir", "es_dni", "it_codicefiscale",
                      "us_ssn", "gb_nino", "email", "phone", "secret", "prompt")
"""The detectors the router had before the classification work measured here ("without")."""
SPECIAL_KINDS = ("health", "religion", "politics", "trade_union", "sex_life", "ethnic_origin", "genetic",
                 "biometric")
SPECIAL_DETECTOR = "special_category"
KNOWN_TYPES: dict[str, str] = {  # label type (a detector name) -> its category
    "iban": "FINANCIAL", "payment_card": "FINANCIAL", "eu_vat": "GOVERNMENT_ID", "de_idnr": "GOVERNMENT_ID",
    "fr_nir": "GOVERNMENT_ID", "es_dni": "GOVERNMENT_ID", "it_codicefiscale": "GOVERNMENT_ID",
    "us_ssn": "GOVERNMENT_ID", "gb_nino": "GOVERNMENT_ID", "email": "PII", "phone": "PII", "secret": "SECRET",
    "prompt": "PROPRIETARY_PROMPT", SPECIAL_DETECTOR: "SPECIAL_CATEGORY",
}
NATIONAL_ID = re.compile(r"^[a-z]{2}_[a-z0-9_]+$")
"""New national-id detectors: ``<cc>_<python-stdnum module>`` (GOVERNMENT_ID)."""
UNCHECKED_IDS = frozenset({"us_ssn", "gb_nino", "dk_cpr", "email", "phone", "secret", "prompt", SPECIAL_DETECTOR})
"""Types that are not checksum-validated identifiers (for the checksum goal): a US SSN and a UK NINO
have no check digit, and python-stdnum checks only the birth date of a Danish CPR number (the
modulus-11 check was dropped in 2007)."""
LANGS_REQUIRED = ("en", "de", "fr", "es", "it", "nl")
VALUE_PREVIEW = 60


class CorpusError(ValueError):
    """A corpus line that cannot be evaluated; the message names the file, line and problem."""


@dataclass(frozen=True)
class Label:
    category: str
    type: str | None = None

    @property
    def detector(self) -> str | None:
        """The detector that should find it: the type, or ``special_category`` for a sub-kind."""
        if self.type is None:
            return None
        return SPECIAL_DETECTOR if self.category == "SPECIAL_CATEGORY" else self.type

    def __str__(self) -> str:
        return self.category if self.type is None else f"{self.category}:{self.type}"


@dataclass(frozen=True)
class Record:
    id: str
    lang: str
    part: str
    entity: str
    fields: Mapping[str, Any]
    labels: Mapping[str, tuple[Label, ...]]
    source: str = ""


def _registered_category(name: str) -> str | None:
    """The category a registered detector factory declares (None when it declares none)."""
    category = getattr(REGISTRY[name], "category", None)
    return str(getattr(category, "value", category)) if category is not None else None


def parse_label(text: str) -> Label:
    """``CATEGORY`` or ``CATEGORY:type``; raises ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"label {text!r} is not a string")  # noqa: TRY004 - reported as a corpus error
    category, colon, kind = text.partition(":")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
    if not colon:
        return Label(category)
    if category == "SPECIAL_CATEGORY":
        if kind not in SPECIAL_KINDS:
            raise ValueError(f"unknown special-category kind {kind!r} (known: {', '.join(SPECIAL_KINDS)})")
        return Label(category, kind)
    expected = KNOWN_TYPES.get(kind)
    if expected is None and NATIONAL_ID.match(kind):
        expected = "GOVERNMENT_ID"  # a national-id detector, whether it exists yet or not
    if expected is None and kind in REGISTRY:
        expected = _registered_category(kind)
    if expected is None:
        raise ValueError(f"unknown label type {kind!r}")
    if expected != category:
        raise ValueError(f"label type {kind!r} belongs to {expected}, not {category}")
    return Label(category, kind)


def parse_record(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: a record must be a JSON object")
    missing = [k for k in ("id", "lang", "part", "entity", "fields") if k not in obj]
    if missing:
        raise CorpusError(f"{where}: missing {', '.join(missing)}")
    fields, labels = obj["fields"], obj.get("labels", {})
    if not isinstance(fields, dict) or not fields or not isinstance(labels, dict):
        raise CorpusError(f"{where}: 'fields' must be a non-empty object and 'labels' an object")
    if obj["part"] not in ("hand", "generated"):
        raise CorpusError(f"{where}: part must be 'hand' or 'generated'")
    parsed: dict[str, tuple[Label, ...]] = {}
    for name, items in labels.items():
        if name not in fields:
            raise CorpusError(f"{where}: label for field {name!r} which the record does not have")
        if not isinstance(items, list) or not items:
            raise CorpusError(f"{where}: labels of {name!r} must be a non-empty list")
        try:
            parsed[name] = tuple(parse_label(item) for item in items)
        except ValueError as exc:
            raise CorpusError(f"{where}: field {name!r}: {exc}") from None
    return Record(str(obj["id"]), str(obj["lang"]), str(obj["part"]), str(obj["entity"]), fields, parsed, where)


GENERATED_KEY = re.compile(r"<generated (rsa|openssh) private key>")
"""A placeholder in the corpus for a private key block: no key is committed; each load puts a key
generated for this run in its place (the labels say what the field holds either way)."""


def _generated_key(kind: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 - one key per kind and run
    if kind not in cache:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415

        if kind == "rsa":
            pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption())
        else:
            pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        cache[kind] = pem.decode("ascii").strip()
    return cache[kind]


def _with_generated_keys(value: Any) -> Any:
    """``value`` with every key placeholder replaced by a key generated for this run."""
    if isinstance(value, str):
        return GENERATED_KEY.sub(lambda m: _generated_key(m.group(1)), value) if "<generated " in value else value
    if isinstance(value, dict):
        return {k: _with_generated_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_generated_keys(v) for v in value]
    return value


def load_records(paths: Iterable[Path]) -> list[Record]:
    records: list[Record] = []
    seen: set[str] = set()
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{where}: not JSON ({exc.msg})") from None
            if isinstance(obj, dict) and "fields" in obj:
                obj["fields"] = _with_generated_keys(obj["fields"])
            record = parse_record(obj, where)
            if record.id in seen:
                raise CorpusError(f"{where}: duplicate id {record.id!r}")
            seen.add(record.id)
            records.append(record)
    return records


def corpus_paths(root: Path = CORPUS) -> list[Path]:
    return [*sorted((root / "hand").glob("*.jsonl")), root / "generated.jsonl"]


@dataclass(frozen=True)
class CountryCase:
    text: str
    expect: str | None
    lang: str


def load_countries(path: Path) -> list[CountryCase]:
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path.name}:{n}: not JSON ({exc.msg})") from None
        expect = obj.get("expect") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "expect" not in obj or not (
                expect is None or (isinstance(expect, str) and re.fullmatch(r"[A-Z]{2}", expect))):
            raise CorpusError(f"{path.name}:{n}: needs 'text' (string) and 'expect' (alpha-2 or null)")
        cases.append(CountryCase(obj["text"], expect, str(obj.get("lang", ""))))
    return cases


# -- scoring ---------------------------------------------------------------------------------------

Found = Mapping[str, frozenset[tuple[str, str]]]
"""Per field: the (category, source) pairs the classifier reported, source as in Finding.source."""


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1, "support": self.tp + self.fn}


@dataclass
class Problem:
    id: str
    field: str
    kind: str  # "miss" or "false_positive"
    expected: list[str]
    found: list[str]
    key: str  # the category or detector the problem counts against
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "field": self.field, "kind": self.kind, "key": self.key, "expected": self.expected,
                "found": self.found, "value": self.value}


@dataclass
class Scores:
    categories: dict[str, Counts] = field(default_factory=dict)
    detectors: dict[str, Counts] = field(default_factory=dict)
    kinds: dict[str, Counts] = field(default_factory=dict)
    """Special-category sub-kinds: recall only (the classifier reports no sub-kind)."""
    langs: dict[str, Counts] = field(default_factory=dict)
    """Per language, over (field, category) pairs."""
    parts: dict[str, Counts] = field(default_factory=dict)
    """Per part (hand, generated), over (field, category) pairs."""
    checksum_ids: Counts = field(default_factory=Counts)
    problems: list[Problem] = field(default_factory=list)
    """Misses and false positives by category."""
    detector_problems: list[Problem] = field(default_factory=list)
    """Misses and false positives by detector where the category was right (another detector or
    the catalog found it, or the expected detector fired on a field of another type)."""
    fields: int = 0


def _detector_of(source: str) -> str | None:
    return source.removeprefix("detector:") if source.startswith("detector:") else None


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= VALUE_PREVIEW else text[:VALUE_PREVIEW - 1] + "…"


def score(records: Sequence[Record], found: Mapping[str, Found],  # noqa: PLR0912, PLR0915 - one pass, every table
          detectors: Iterable[str] = ()) -> Scores:
    """Compare labels with findings, micro over fields.

    A category counts on a field when any finding has it (whatever the source); a detector counts
    when a finding's source is ``detector:<name>``. A field labelled with a type whose detector
    reported nothing is a miss for the category and for the detector (also when no detector of that
    name exists); a detector or category reported on a field without that label is a false
    positive. ``detectors`` names the enabled detectors so that those never reporting and never
    expected still appear (with no figures).
    """
    s = Scores()
    for name in detectors:
        s.detectors.setdefault(name, Counts())
    for c in CATEGORIES:
        s.categories.setdefault(c, Counts())
    for record in records:
        per_field = found.get(record.id, {})
        for fname in sorted(set(record.fields) | set(per_field)):
            s.fields += 1
            labels = record.labels.get(fname, ())
            got = per_field.get(fname, frozenset())
            want_cats = {lab.category for lab in labels}
            got_cats = {cat for cat, _ in got}
            want_dets = {lab.detector for lab in labels if lab.detector}
            got_dets = {d for _, src in got if (d := _detector_of(src))}
            expected = sorted(str(lab) for lab in labels)
            reported = sorted(f"{cat}<-{src}" for cat, src in got)
            value = _preview(record.fields.get(fname, ""))
            lang = s.langs.setdefault(record.lang, Counts())
            part = s.parts.setdefault(record.part, Counts())
            for cat in want_cats | got_cats:
                counts = s.categories.setdefault(cat, Counts())
                if cat in want_cats and cat in got_cats:
                    for c in (counts, lang, part):
                        c.tp += 1
                elif cat in want_cats:
                    for c in (counts, lang, part):
                        c.fn += 1
                    s.problems.append(Problem(record.id, fname, "miss", expected, reported, cat, value))
                else:
                    for c in (counts, lang, part):
                        c.fp += 1
                    s.problems.append(Problem(record.id, fname, "false_positive", expected, reported, cat, value))
            for det in want_dets | got_dets:
                counts = s.detectors.setdefault(det, Counts())
                hit = det in want_dets and det in got_dets
                if hit:
                    counts.tp += 1
                elif det in want_dets:
                    counts.fn += 1
                else:
                    counts.fp += 1
                cat = _category_of(det)
                if not hit and cat in want_cats and cat in got_cats:
                    kind = "miss" if det in want_dets else "false_positive"
                    s.detector_problems.append(Problem(record.id, fname, kind, expected, reported, det, value))
                if det not in UNCHECKED_IDS and _is_identifier(det):
                    if hit:
                        s.checksum_ids.tp += 1
                    elif det in want_dets:
                        s.checksum_ids.fn += 1
                    else:
                        s.checksum_ids.fp += 1
            for lab in labels:
                if lab.category == "SPECIAL_CATEGORY" and lab.type:
                    counts = s.kinds.setdefault(lab.type, Counts())
                    if SPECIAL_DETECTOR in got_dets or "SPECIAL_CATEGORY" in got_cats:
                        counts.tp += 1
                    else:
                        counts.fn += 1
    return s


def _category_of(det: str) -> str | None:
    category = KNOWN_TYPES.get(det)
    if category is None and NATIONAL_ID.match(det):
        category = "GOVERNMENT_ID"
    if category is None and det in REGISTRY:
        category = _registered_category(det)
    return category


def _is_identifier(det: str) -> bool:
    return _category_of(det) in ("FINANCIAL", "GOVERNMENT_ID")


# -- running the classifier ------------------------------------------------------------------------

def event_of(record: Record) -> ChangeEvent:
    return ChangeEvent(SourceSystem.GENERIC, record.entity, Operation.CREATE, (record.id,),
                       RawRecord(b"{}", "application/json"), values=dict(record.fields))


def default_config(records: Sequence[Record], detectors: Sequence[str] | None = None) -> ClassificationConfig:
    """``ClassificationConfig()`` scanning every corpus field, no prompt fields, no name catalog."""
    names = sorted({name for r in records for name in r.fields})
    extra: dict[str, Any] = {} if detectors is None else {"detectors": list(detectors)}
    return ClassificationConfig(free_text_fields={"*": names}, prompt_fields={}, builtin_catalog=False, **extra)


def yaml_config(path: Path) -> ClassificationConfig:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return ClassificationConfig.model_validate(data.get("classification") or {})


def classify_all(classifier: Classifier, records: Sequence[Record]) -> dict[str, Found]:
    out: dict[str, Found] = {}
    for record in records:
        result = classifier.classify(event_of(record))
        per: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for f in result.findings:
            per[f.field].add((f.category.value, f.source))
        out[record.id] = {k: frozenset(v) for k, v in per.items()}
    return out


def time_per_record(classifiers: Sequence[Classifier], records: Sequence[Record], passes: int) -> list[float]:
    """µs per record of each classifier: the median of ``passes`` timed passes over all records
    (events built beforehand). Passes alternate between the classifiers so that drift in the
    machine's speed affects them alike. Each pass starts with the classifier's memory of scanned
    strings emptied (entity plans and RE2 sets stay warm), so it times a first meeting with each
    value, not remembered answers."""
    events = [event_of(r) for r in records]
    for classifier in classifiers:
        for e in events:  # warm caches (entity plans, RE2 sets)
            classifier.classify(e)
    samples: list[list[float]] = [[] for _ in classifiers]
    for _ in range(passes):
        for i, classifier in enumerate(classifiers):
            classifier.forget_texts()
            start = time.perf_counter()
            for e in events:
                classifier.classify(e)
            samples[i].append((time.perf_counter() - start) / len(events) * 1e6)
    return [statistics.median(s) for s in samples]


def score_countries(cases: Sequence[CountryCase], resolve: Callable[[str], str | None]) -> dict[str, Any]:
    rows, table = [], Counter[str]()
    for case in cases:
        try:
            got = resolve(case.text)
        except Exception as exc:  # a crash is reported as wrong: bad input must never crash
            got = f"error:{type(exc).__name__}"
        if got == case.expect:
            outcome = "correct"
        elif got is None:
            outcome = "unknown"
        else:
            outcome = "wrong"
        table[outcome] += 1
        if outcome != "correct":
            rows.append({"text": case.text, "lang": case.lang, "expect": case.expect, "got": got,
                         "outcome": outcome})
    total = len(cases)
    return {"total": total, "correct": table["correct"], "unknown": table["unknown"], "wrong": table["wrong"],
            "correct_rate": table["correct"] / total if total else None, "problems": rows}


# -- goals -------------------------------------------------------------------------------------------

def goals(s: Scores, countries: Mapping[str, Any]) -> list[dict[str, Any]]:
    secret = s.categories.get("SECRET", Counts())
    prompt = s.categories.get("PROPRIETARY_PROMPT", Counts())
    special = s.categories.get("SPECIAL_CATEGORY", Counts())

    def row(name: str, value: float | None, target: float, *, at_most: bool = False) -> dict[str, Any]:
        ok = value is not None and (value <= target if at_most else value >= target)
        return {"goal": name, "value": value, "target": target, "comparison": "<=" if at_most else ">=",
                "status": "PASS" if ok else "MISS"}

    return [
        row("checksum-validated identifiers recall", s.checksum_ids.recall, 0.99),
        row("checksum-validated identifiers precision", s.checksum_ids.precision, 0.995),
        row("secrets recall", secret.recall, 0.98),
        row("secrets precision", secret.precision, 0.95),
        row("prompts recall", prompt.recall, 0.95),
        row("special-category recall", special.recall, 0.8),
        row("special-category precision", special.precision, 0.9),
        row("country names correct", countries.get("correct_rate"), 0.99),
        row("country names wrong", countries.get("wrong"), 0, at_most=True),
    ]


# -- report ------------------------------------------------------------------------------------------

def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def _table(title: str, rows: Mapping[str, Counts], out: list[str], note: Callable[[str], str] = lambda _: "",
           *, skip_idle: bool = False) -> None:
    out.append(f"\n{title}")
    out.append(f"  {'':<22} {'prec':>6} {'recall':>6} {'F1':>6} {'tp':>5} {'fp':>5} {'fn':>5}")
    idle = sorted(k for k, c in rows.items() if skip_idle and not (c.tp or c.fp or c.fn))
    for key in sorted(rows):
        if key in idle:
            continue
        c = rows[key]
        out.append(f"  {key:<22} {_fmt(c.precision)} {_fmt(c.recall)} {_fmt(c.f1)} {c.tp:5d} {c.fp:5d} {c.fn:5d}"
                   f"{note(key)}")
    if idle:
        out.append(f"  enabled, nothing labelled and nothing found: {', '.join(idle)}")


def report(data: Mapping[str, Any], s: Scores, limit: int) -> str:
    out = [f"classification quality: {data['records']} records, {s.fields} fields "
           f"({data['parts']['hand']} hand-written, {data['parts']['generated']} generated records); "
           f"config: {data['config']}; commit {data['commit']}"]
    available = set(data["detectors_enabled"])
    _table("per category (any finding source)", s.categories, out)
    _table("per detector (findings with source detector:<name>)", s.detectors, out,
           lambda k: "" if k in available else "  (no such detector enabled)", skip_idle=True)
    out.append(f"\nchecksum-validated identifiers (all FINANCIAL / GOVERNMENT_ID types but us_ssn, gb_nino, dk_cpr): "
               f"precision {_fmt(s.checksum_ids.precision)} recall {_fmt(s.checksum_ids.recall)} "
               f"(tp {s.checksum_ids.tp}, fp {s.checksum_ids.fp}, fn {s.checksum_ids.fn})")
    out.append("\nspecial-category recall per sub-kind")
    for kind in sorted(s.kinds):
        c = s.kinds[kind]
        out.append(f"  {kind:<22} {_fmt(c.recall)}  ({c.tp}/{c.tp + c.fn})")
    for title, table in (("per language", s.langs), ("per part", s.parts)):
        out.append(f"\n{title} ((field, category) pairs)")
        for key in sorted(table):
            c = table[key]
            out.append(f"  {key:<10} recall {_fmt(c.recall)}  precision {_fmt(c.precision)}  "
                       f"(tp {c.tp}, fp {c.fp}, fn {c.fn})")
    t = data["timing"]
    out.append(f"\nµs per record (median of {t['passes']} alternating passes over {data['records']} records): "
               f"default detectors ({len(t['default_detectors'])}) {t['us_per_record_default']:.1f}; "
               f"the 13 original ({len(t['original_detectors'])}) {t['us_per_record_original']:.1f}")
    c = data["countries"]
    out.append(f"\ncountry names ({c['total']} cases via router.residency.countries.to_alpha2): correct "
               f"{c['correct']}, unknown {c['unknown']}, wrong {c['wrong']}")
    for p in c["problems"][:limit]:
        out.append(f"  {p['outcome']:<8} {p['text']!r} ({p['lang']}) expected {p['expect']} got {p['got']}")
    misses = [p for p in s.problems if p.kind == "miss"]
    fps = [p for p in s.problems if p.kind == "false_positive"]
    for title, rows in (("misses", misses), ("false positives", fps)):
        out.append(f"\n{title} by category: {len(rows)}" + (f" (first {limit} shown; all in --json)"
                                                             if len(rows) > limit else ""))
        for p in rows[:limit]:
            out.append(f"  {p.id:<10} {p.field:<20} {p.key:<18} expected {','.join(p.expected) or '-'} "
                       f"found {','.join(p.found) or '-'}  | {p.value}")
    rows = s.detector_problems
    out.append(f"\nby detector, where the category was right: {len(rows)}"
               + (f" (first {limit} shown; all in --json)" if len(rows) > limit else ""))
    for p in rows[:limit]:
        out.append(f"  {p.id:<10} {p.field:<20} {p.kind:<14} {p.key:<18} expected {','.join(p.expected) or '-'} "
                   f"found {','.join(p.found) or '-'}  | {p.value}")
    out.append("\ngoals")
    for g in data["goals"]:
        value = "n/a" if g["value"] is None else (f"{g['value']:.3f}" if isinstance(g["value"], float)
                                                  else str(g["value"]))
        out.append(f"  {g['status']:<4}  {g['goal']:<42} {value:>7} (target {g['comparison']} {g['target']})")
    return "\n".join(out)


def _commit() -> str:
    cmd = ["git", "describe", "--always", "--dirty", "--abbrev=7"]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=10)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def run(config_path: Path | None, passes: int, limit: int, corpus: Path = CORPUS) -> tuple[dict[str, Any], str]:
    records = load_records(corpus_paths(corpus))
    countries = load_countries(corpus / "countries.jsonl")
    if config_path is None:
        config = default_config(records)
        config_name = "default (every field scanned, no prompt fields, builtin_catalog off)"
        base_dir = None
    else:
        config = yaml_config(config_path)
        config_name = f"classification section of {config_path}"
        base_dir = config_path.parent
    classifier = Classifier(config, base_dir=base_dir)
    found = classify_all(classifier, records)
    s = score(records, found, config.detectors)
    original = [d for d in ORIGINAL_DETECTORS if d in REGISTRY]
    baseline = Classifier(config.model_copy(update={"detectors": original}), base_dir=base_dir)
    default_us, original_us = time_per_record((classifier, baseline), records, passes)
    country_scores = score_countries(countries, to_alpha2)
    data: dict[str, Any] = {
        "commit": _commit(),
        "config": config_name,
        "records": len(records),
        "fields": s.fields,
        "parts": dict(Counter(r.part for r in records)) | {p: 0 for p in ("hand", "generated")
                                                           if p not in {r.part for r in records}},
        "detectors_enabled": list(config.detectors),
        "categories": {k: v.as_dict() for k, v in sorted(s.categories.items())},
        "detectors": {k: v.as_dict() | {"available": k in config.detectors} for k, v in sorted(s.detectors.items())},
        "special_category_kinds": {k: v.as_dict() for k, v in sorted(s.kinds.items())},
        "languages": {k: v.as_dict() for k, v in sorted(s.langs.items())},
        "parts_scores": {k: v.as_dict() for k, v in sorted(s.parts.items())},
        "checksum_identifiers": s.checksum_ids.as_dict(),
        "timing": {
            "passes": passes,
            "default_detectors": list(config.detectors),
            "original_detectors": original,
            "us_per_record_default": default_us,
            "us_per_record_original": original_us,
        },
        "countries": country_scores,
        "misses": [p.as_dict() for p in s.problems if p.kind == "miss"],
        "false_positives": [p.as_dict() for p in s.problems if p.kind == "false_positive"],
        "detector_problems": [p.as_dict() for p in s.detector_problems],
    }
    data["goals"] = goals(s, country_scores)
    return data, report(data, s, limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="classification quality on the labelled corpus (a report)")
    parser.add_argument("--json", type=Path, help="write the whole report as JSON to this path")
    parser.add_argument("--config", type=Path, help="router YAML whose classification section is used")
    parser.add_argument("--passes", type=int, default=5, help="timed passes (the median is reported)")
    parser.add_argument("--limit", type=int, default=60, help="misses / false positives printed per list")
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="corpus directory: hand/*.jsonl, generated.jsonl, countries.jsonl")
    args = parser.parse_args(argv)
    try:
        data, text = run(args.config, max(1, args.passes), args.limit, args.corpus)
    except (CorpusError, OSError) as exc:
        print(f"broken corpus: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.json:
        args.json.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"\nJSON report: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
