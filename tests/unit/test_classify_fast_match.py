"""The direct RE2 calls (:func:`finder`, :func:`spans`) answer as the wrapper's search/finditer."""

from __future__ import annotations

import random

import pytest

from router.classify import detectors as d
from router.classify import registry
from router.classify.identifiers import NATIONAL_IDS

pytestmark = pytest.mark.unit

_PIECES = [b"2026-11-28T10:00:00Z", b"+44 20 7946 0958", b"DE89 3704 0044 0532 0130 00", b"a@b.example",
           b"4111 1111 1111 1111", b"pwd=hunter2hunter2", b"You are a helpful", b"{{name}}", b"", b" ",
           b"123-45-6789", b"\xc3\xa9t\xc3\xa9", b"00DEU0000000001", b"\n", b"((((", b"12.03.2025 ", b"1" * 40,
           b"PESEL 44051401359", b"85.07.30-033.28", "\u0391\u039c\u039a\u0391 fødselsnummer".encode(), b"131052-308T"]


def _texts() -> list[bytes]:
    rng = random.Random(5)
    return [b"".join(rng.choice(_PIECES) for _ in range(rng.randrange(0, 6))) for _ in range(800)]


def _patterns() -> list[d.Pattern]:
    out = [d._DIGIT_RUN, d._PHONE_HINT, d._LEADING_DATE, d.linear("")]
    factories = registry.REGISTRY.values()
    out += [cls.pattern for cls in factories if isinstance(cls, type) and issubclass(cls, d.BaseDetector)]
    out += [d.linear(cls.candidate_pattern) for cls in NATIONAL_IDS]  # what match() iterates
    out.append(d.linear(d._keyword_pattern(d._KEYWORDS)))
    return out


def test_finder_and_spans_agree_with_the_wrapper() -> None:
    texts = _texts()
    for pattern in _patterns():
        found, each = d.finder(pattern), d.spans(pattern)
        for text in texts:
            assert found(text) is (pattern.search(text) is not None)
            assert list(each(text)) == [(m.start(), m.end()) for m in pattern.finditer(text)]
