"""Special-category data (GDPR Art. 9) in free text: multilingual lexicons, a context rule, lemmas.

Lexicons (``lexicons/<lang>.json``, package data, see ``lexicons/README.md``; English, German,
French, Spanish, Italian, Dutch) list terms per kind - ``health``, ``religion``, ``politics``,
``trade_union``, ``sex_life``, ``ethnic_origin``, ``genetic``, ``biometric`` - and per language
strong person words, business words and function words. A term is a word (``hiv``), a stem
(``diabet*``), a stem anywhere in a word (``*krebs*``: German compounds such as ``Brustkrebs``) or
a phrase of those (``sick leave``, ``trade union*``; an inflected phrase word counts through its
``simplemma`` lemma).

The rule (``person_context``, on by default), for a term in a sentence (with the sentence before):

1. the term counts only in the language the sentence reads as (most function words: "the, and,
   der, und, le, et, ..."; any language on a tie), so ``religi*`` of the Italian lexicon does not
   read "They religiously follow up" as religion;
2. a *strong* person word of that language - a pronoun or possessive naming a person (he, her,
   I, my, er, ihm, elle, él, lui, hij, ...), a family noun, "patient" - makes it count;
3. else a *business* word of any language vetoes it (product, insurance, sells, members,
   diocese, algorithm, Produkt, assurance, afiliados, ...; inflected forms by their lemma):
   "Customer sells asthma inhalers", "a health insurance product for their employees",
   "Interessent ist eine Gewerkschaft mit 12.000 Mitgliedern" are about a business;
4. else a label of fewer than four words ("Badge biométrique") does not count;
5. else it counts: a CRM note's subject is usually the person it is about ("Olivia Bennett is
   on sick leave after knee surgery", "Fingerabdruck des neuen Mitarbeiters").

Conservative by design: a hit raises the event's level, so the rule leans to counting; the
evaluation corpus (``eval/``) measures misses and false positives. ``person_context: false``
counts every term. Limits: ~190-225 terms per language written for this project (not a
third-party list); spelling mistakes, compounds not listed as ``*stem*``, other languages, and
context beyond two sentences are missed; a business sentence naming a person's attribute without
a business word counts ("the app for her diabetes", "customer bought a wheelchair": "bought" is
not a business word, "sells" is), and a person's attribute in a sentence with a business word and
no pronoun ("Customer has diabetes and asked about the insurance product renewal") does not.

Cost: the detector screens with one RE2 pattern (the first letters of each term's longest word),
so it joins the scanner's one union pass; only a text with a candidate is split into words, and
only the one or two sentences around a candidate (at most 64 candidates per text). simplemma
loads a language's dictionary on its first lemma (0.8-5 s and tens of MB per language, once per
process). The detector keeps no text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
import simplemma

from router.classify.detectors import BaseDetector, linear, spans
from router.classify.model import Category

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl")
KINDS: tuple[str, ...] = ("health", "religion", "politics", "trade_union", "sex_life", "ethnic_origin",
                          "genetic", "biometric")
_WINDOW = 300
"""Most characters looked at on each side of a candidate term (the context sentences are cut there)."""
_MAX_CANDIDATES = 64
"""Most candidate terms examined per text: more means the text is about those topics anyway, and the
first 64 decided; keeps the cost per text bounded whatever its length."""
_APOSTROPHE = "\u2019"  # typographic apostrophe, folded to '
_WORD = linear(r"[\pL\pN]+(?:['\x{2019}][\pL]+)?")
_WORDS = spans(_WORD)
_SENTENCE_ENDS = (b". ", b"! ", b"? ", b";", b"\n")
"""What ends a sentence ("30.000 members" does not)."""
_COMMON = frozenset({"called", "leave", "note", "member", "members", "party", "view", "views", "opinion",
                     "about", "after", "before", "with", "from", "under", "between", "person", "persons", "está",
                     "tiene", "dans", "sur", "avec", "pour", "für", "mit", "von", "van", "voor", "met", "della",
                     "alla", "nella", "come", "comme", "como", "als", "analysis", "test", "mutation"})
"""Words of a phrase that the screen does not key on (common in CRM text): "called in sick" is
screened by "sick", "gait analysis" by "gait"."""
_KEY = 5
_MIN_WORDS = 4
"""Letters of a term's longest word that the screen looks for."""


@dataclass(frozen=True, slots=True)
class _Part:
    """One word of a term: ``exact`` (the word or its lemma), ``prefix`` or ``infix``."""

    kind: str
    text: str

    def matches(self, word: str, lemma: str | None) -> bool:
        if self.kind == "prefix":
            return word.startswith(self.text)
        if self.kind == "infix":
            return self.text in word
        return self.text in (word, lemma)


@dataclass(frozen=True, slots=True)
class _Term:
    kind: str
    lang: str
    parts: tuple[_Part, ...]


def _part(token: str) -> _Part:
    if token.startswith("*") and token.endswith("*") and len(token) > 2:
        return _Part("infix", token[1:-1])
    if token.endswith("*"):
        return _Part("prefix", token[:-1])
    return _Part("exact", token)


def parse_term(term: str) -> tuple[_Part, ...]:
    """``"trade union*"`` -> its word matchers. Raises ValueError for an empty or malformed term."""
    tokens = term.casefold().replace(_APOSTROPHE, "'").split()
    if not tokens or any(t.strip("*") == "" for t in tokens) or len(term) > 80:
        raise ValueError("a term is 1-80 characters of words, each optionally 'stem*' or '*stem*'")
    return tuple(_part(t) for t in tokens)


@dataclass(frozen=True, slots=True)
class _Context:
    strong: frozenset[str]
    veto: frozenset[str]
    function: frozenset[str]
    """Frequent function words: which language a sentence is in (a stem such as ``religi*`` is in
    several lexicons; it counts for the sentence's language, and "religiously" is English)."""


@lru_cache(maxsize=len(LANGUAGES))
def _lexicon(lang: str) -> Mapping[str, Any]:
    """The packaged lexicon of ``lang`` (read once per process)."""
    text = resources.files("router.classify").joinpath(f"lexicons/{lang}.json").read_text("utf-8")
    doc: Mapping[str, Any] = json.loads(text)
    return doc


def _words(value: Iterable[str]) -> frozenset[str]:
    return frozenset(w.casefold().replace(_APOSTROPHE, "'") for w in value)


@dataclass(frozen=True)
class SpecialSettings:
    """What ``classification.special_category`` configures (see :class:`SpecialCategoryDetector`)."""

    languages: tuple[str, ...] = LANGUAGES
    extra_terms: Mapping[str, tuple[str, ...]] | None = None
    disabled: tuple[str, ...] = ()
    person_context: bool = True


class _Lexicon:
    """The terms and context words of some settings, indexed for lookup, and their RE2 screen."""

    def __init__(self, s: SpecialSettings) -> None:
        terms: list[_Term] = []
        self.context: dict[str, _Context] = {}
        for lang in s.languages:
            doc = _lexicon(lang)
            ctx = doc["context"]
            self.context[lang] = _Context(_words(ctx["strong"]), _words(ctx["veto"]), _words(ctx["function_words"]))
            for kind, kind_terms in doc["terms"].items():
                if kind not in s.disabled:
                    terms.extend(_Term(kind, lang, parse_term(t)) for t in kind_terms)
        for kind, kind_terms in (s.extra_terms or {}).items():
            if kind not in s.disabled:  # extra terms are in no one language: context of every language
                terms.extend(_Term(kind, "", parse_term(t)) for t in kind_terms)
        self.exact: dict[str, list[_Term]] = {}
        self.prefix: dict[str, list[_Term]] = {}
        self.infix: list[_Term] = []
        for term in terms:
            first = term.parts[0]
            if first.kind == "infix":
                self.infix.append(term)
            else:
                (self.prefix if first.kind == "prefix" else self.exact).setdefault(first.text, []).append(term)
        self.prefix_lengths = sorted({len(p) for p in self.prefix}, reverse=True)
        short = {len(p) for p in self.prefix if len(p) < 3}
        by_start: dict[str, set[int]] = {}
        for p in self.prefix:
            if len(p) >= 3:
                by_start.setdefault(p[:3], set()).add(len(p))
        self.prefix_lengths_at = {start: tuple(sorted(n | short, reverse=True)) for start, n in by_start.items()}
        """Per first three letters, the lengths of the prefixes a word starting so can have, longest
        first: a prefix of three or more letters shares the word's first three, a shorter one is
        always a candidate. The other lengths of :attr:`prefix_lengths` can find nothing there."""
        self.short_prefix_lengths = tuple(sorted(short, reverse=True))
        self.starts = frozenset(w[:3] for w in (*self.exact, *self.prefix))
        """The first three letters of every term's first word (but infix ones): a word starting
        otherwise starts no term."""
        langs_of: dict[str, list[str]] = {}
        for lang, ctx in self.context.items():
            for w in ctx.function:
                langs_of.setdefault(w, []).append(lang)
        self.function_langs = {w: tuple(langs) for w, langs in langs_of.items()}
        """Per function word, the languages it is a function word of."""
        contexts = self.context.values()
        self.any_context = _Context(frozenset(w for c in contexts for w in c.strong),
                                    frozenset(w for c in contexts for w in c.veto),
                                    frozenset(w for c in contexts for w in c.function))
        self.screen = self._screen()

    def _screen(self) -> str:
        """Text in which some term may occur: per term, the first ``_KEY`` letters of its longest
        word (an acronym of three letters or fewer as a whole ASCII word). A short case-insensitive
        literal alternation keeps RE2's automaton small enough to join the scanner's union pass; the
        words and the word boundaries are checked by :meth:`SpecialCategoryDetector.match`."""
        keys: set[str] = set()
        acronyms: set[str] = set()
        for term in (t for terms in (*self.exact.values(), *self.prefix.values()) for t in terms):
            words = [p.text for p in term.parts if p.text not in _COMMON] or [term.parts[0].text]
            longest = next((w for w in words if len(w) >= 4), max(words, key=len))  # the first word that says much
            (acronyms if len(longest) <= 3 else keys).add(longest[:_KEY])
        for term in self.infix:
            keys.add(max((p.text for p in term.parts), key=len)[:_KEY])
        keys = {k for k in keys if not any(k != other and k.startswith(other) for other in keys)}
        alternatives = []
        if keys:
            alternatives.append("(?i:" + "|".join(re2.escape(k) for k in sorted(keys)) + ")")
        if acronyms:
            alternatives.append(r"(?i:\b(?:" + "|".join(re2.escape(k) for k in sorted(acronyms)) + r")\b)")
        return "|".join(alternatives) or r"\b\B"  # no terms: a pattern that never matches


_DEFAULT = _Lexicon(SpecialSettings())


class SpecialCategoryDetector(BaseDetector):
    """GDPR Art. 9 special-category data in free text, by lexicon and person context (see the
    module docstring). ``kinds(text)`` tells which of :data:`KINDS` were found."""

    name = "special_category"
    category = Category.SPECIAL_CATEGORY
    min_length = 6  # "I'm gay", "his HIV"
    timestamp_clean = True
    screen_pattern = _DEFAULT.screen

    def __init__(self, settings: SpecialSettings | None = None) -> None:
        s = settings or SpecialSettings()
        self.person_context = s.person_context
        lex = _DEFAULT if s == SpecialSettings(person_context=s.person_context) else _Lexicon(s)
        self._lex = lex
        if lex.screen != self.screen_pattern:
            self.screen_pattern = lex.screen  # type: ignore[misc]  # per configuration, not per class
            self.pattern = linear(lex.screen)  # type: ignore[misc]
        self._hits = spans(self.pattern)

    def match(self, data: bytes) -> bool:
        return next(self._found(data), None) is not None

    def kinds(self, text: str) -> frozenset[str]:
        """The special-category kinds found in ``text`` (for evaluation and reports; no text kept)."""
        data = text.encode("utf-8", "replace")
        return frozenset(self._found(data)) if self.screen(data) else frozenset()

    def _found(self, data: bytes) -> Iterator[str]:
        """The kind of each term found with its context, in text order (repeats possible)."""
        last_end = -1
        for n, (start, _end) in enumerate(self._hits(data)):
            if n >= _MAX_CANDIDATES:
                return
            if start < last_end:
                continue  # inside a window already examined
            lo, hi = _window(data, start)
            yield from self._in_window(data[lo:hi])
            last_end = hi

    def _in_window(self, window: bytes) -> Iterator[str]:
        if window.isascii():  # decoded and folded once: ASCII offsets are character offsets
            text = window.decode("ascii").lower()
            low = [text[a:b] for a, b in _WORDS(window)]
        else:
            low = [window[a:b].decode("utf-8", "replace").casefold().replace(_APOSTROPHE, "'")
                   for a, b in _WORDS(window)]
        folded = window.lower()
        infixes = [t for t in self._lex.infix if t.parts[0].text.encode() in folded]
        languages: frozenset[str] | None = None
        lemmas: dict[tuple[str, str], str] = {}
        for i, word in enumerate(low):
            for term in self._candidates(word, infixes):
                if term.lang and languages is None:
                    languages = self._languages(low)
                if (not term.lang or term.lang in (languages or ())) and self._term_at(term, low, i, lemmas) and (
                        not self.person_context or self._about_person(term.lang, low, lemmas)):
                    yield term.kind

    def _languages(self, low: list[str]) -> frozenset[str]:
        """The lexicon languages the words most look like by their function words (all on a tie
        or when none occurs)."""
        scores = dict.fromkeys(self._lex.context, 0)
        langs_of = self._lex.function_langs
        for w in low:  # one lookup per word, whatever the number of languages
            for lang in langs_of.get(w, ()):
                scores[lang] += 1
        best = max(scores.values(), default=0)
        return frozenset(lang for lang, n in scores.items() if n == best)

    def _candidates(self, word: str, infixes: list[_Term]) -> Iterator[_Term]:
        lex = self._lex
        if word[:3] in lex.starts:
            yield from lex.exact.get(word, ())
            for n in lex.prefix_lengths_at.get(word[:3], lex.short_prefix_lengths):
                if n <= len(word):
                    yield from lex.prefix.get(word[:n], ())
        for term in infixes:
            if term.parts[0].text in word:
                yield term

    def _term_at(self, term: _Term, low: list[str], i: int, lemmas: dict[tuple[str, str], str]) -> bool:
        if i + len(term.parts) > len(low):
            return False
        for k, part in enumerate(term.parts):
            word = low[i + k]
            lemma = None
            if part.kind == "exact" and word != part.text and term.lang and word[:3] == part.text[:3]:
                lemma = lemmas.get((word, term.lang))
                if lemma is None:
                    lemma = lemmas[(word, term.lang)] = _lemma(word, term.lang)
            if not part.matches(word, lemma):
                return False
        return True

    def _about_person(self, lang: str, low: list[str], lemmas: dict[tuple[str, str], str]) -> bool:
        """The context rule: a strong person word of the term's language decides yes; else a
        business word of any language decides no; else a bare label of fewer than four words
        ("Badge biométrique") decides no; else yes - a CRM note's subject is usually the person
        it is about ("Olivia Bennett is on sick leave after knee surgery")."""
        ctx = self._lex.context.get(lang, self._lex.any_context)
        if any(w in ctx.strong for w in low):
            return True
        if len(low) < _MIN_WORDS:
            return False
        veto = self._lex.any_context.veto
        if any(w in veto for w in low):
            return False
        if not lang:
            return True
        own = self._lex.context[lang].veto  # inflected business words ("Produkten", "verkauft") by lemma
        for w in low:
            lemma = lemmas.get((w, lang))
            if lemma is None:
                lemma = lemmas[(w, lang)] = _lemma(w, lang)
            if lemma in own:
                return False
        return True


def _lemma(word: str, lang: str) -> str:
    try:
        return str(simplemma.lemmatize(word, lang=lang)).casefold()
    except Exception:  # a lemmatiser failure must not fail classification: the word stands for itself
        return word


def _window(data: bytes, pos: int) -> tuple[int, int]:
    """The sentence around ``pos`` and the one before it, at most ``_WINDOW`` bytes each side."""
    lo_bound, hi_bound = max(0, pos - _WINDOW), min(len(data), pos + _WINDOW)
    ends = _SENTENCE_ENDS
    start = max(data.rfind(e, lo_bound, pos) for e in ends)
    if start > lo_bound:  # one more sentence back
        start = max(data.rfind(e, lo_bound, start) for e in ends)
    end_candidates = [i for i in (data.find(e, pos, hi_bound) for e in ends) if i >= 0]
    end = min(end_candidates) if end_candidates else hi_bound
    return max(start + 1, lo_bound), end
