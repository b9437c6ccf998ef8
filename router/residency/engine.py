"""The pure core in one object: classify -> resolve -> decide."""

from __future__ import annotations

from dataclasses import dataclass

from router.classify.classifier import Classifier
from router.classify.model import Classification
from router.config.models import RouterConfig
from router.errors import ConfigError
from router.ingest.event import ChangeEvent
from router.residency.config import canonical_digest
from router.residency.policy import Policy, Quarantine, Route
from router.residency.resolver import Resolution, Resolver


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything explaining one decision (value-free)."""

    classification: Classification
    resolution: Resolution
    decision: Route | Quarantine
    policy_version: str


class Engine:
    """Built once at start-up from a validated config; :meth:`evaluate` is pure.

    ``version`` is ``sha256:<hex>`` of the canonical JSON of the classification, residency and
    policy sections (defaults filled in), so any change that can alter a decision changes it.
    """

    def __init__(self, config: RouterConfig) -> None:
        if config.residency is None or config.policy is None:
            raise ConfigError("the config needs 'residency' and 'policy' sections to decide routes "
                              "(see examples/router.yaml)")
        self.classifier = Classifier.from_config(config.classification)
        self.resolver = Resolver(config.residency)
        self.version = canonical_digest(self.classifier.config, config.residency, config.policy)
        self.policy = Policy(config.policy, config.residency, self.version)
        self.home = config.residency.home

    def evaluate(self, event: ChangeEvent, connector: str | None = None) -> Outcome:
        cls = self.classifier.classify(event)
        res = self.resolver.resolve(event, connector)
        return Outcome(cls, res, self.policy.decide(event, cls, res), self.version)
