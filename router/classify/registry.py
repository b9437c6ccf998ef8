"""Every built-in detector by name, and :func:`build_detectors` (``classification.detectors``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from router.classify.detectors import (
    Detector,
    EmailDetector,
    EsDniDetector,
    EuVatDetector,
    FrNirDetector,
    GbNinoDetector,
    IbanDetector,
    ItCodiceFiscaleDetector,
    PaymentCardDetector,
    PhoneDetector,
    UsSsnDetector,
)
from router.classify.identifiers import NATIONAL_IDS
from router.classify.prompts import PromptDetector
from router.classify.secrets import SecretDetector
from router.classify.special import SpecialCategoryDetector, SpecialSettings

REGISTRY: dict[str, Callable[..., Any]] = {
    cls.name: cls
    for cls in (
        IbanDetector, PaymentCardDetector, EuVatDetector, FrNirDetector,
        EsDniDetector, ItCodiceFiscaleDetector, UsSsnDetector, GbNinoDetector, EmailDetector,
        PhoneDetector, SecretDetector, PromptDetector, SpecialCategoryDetector,
    )
} | {cls.name: cls for cls in NATIONAL_IDS}
"""Detector factories by name. ``phone`` takes ``regions``, ``special_category`` its settings."""


def build_detectors(names: Iterable[str], *, phone_regions: Iterable[str] = ("US",),
                    special: SpecialSettings | None = None) -> tuple[Detector, ...]:
    """Instantiate the named detectors in order. Unknown names raise KeyError naming the name."""
    out: list[Detector] = []
    for name in names:
        factory = REGISTRY[name]
        if name == "phone":
            detector: Detector = factory(regions=phone_regions)
        elif name == "special_category":
            detector = factory(special)
        else:
            detector = factory()
        out.append(detector)
    return tuple(out)
