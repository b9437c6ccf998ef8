"""The pure core in one object: classify -> resolve -> decide. The one façade the pipeline calls."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from router.classify.classifier import Classifier
from router.classify.model import Classification
from router.config.models import RouterConfig
from router.errors import ConfigError
from router.ingest.event import ChangeEvent
from router.residency.config import policy_version
from router.residency.policy import Policy, Quarantine, Route, topic_entity
from router.residency.resolver import Origin, Resolution, Resolver


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything explaining one decision (value-free)."""

    decision: Route | Quarantine
    classification: Classification
    resolution: Resolution
    policy_version: str


class PolicyEngine:
    """Built once at start-up from a validated config; :meth:`evaluate` is pure and never raises for
    event content.

    ``version`` is ``<policy.version label>:<12 hex>``, the hex being the start of the sha256 of
    the canonical JSON of the classification, residency and policy sections (defaults filled in):
    any change that can alter a decision changes it.
    """

    def __init__(self, config: RouterConfig, base_dir: Path | None = None) -> None:
        if config.residency is None or config.policy is None:
            raise ConfigError("the config needs 'residency' and 'policy' sections to decide routes "
                              "(see examples/router.yaml)")
        self.config = config
        self.classifier = Classifier.from_config(config.classification, base_dir)
        self.resolver = Resolver.from_config(config.residency)
        self._version = policy_version(self.classifier.config, config.residency, config.policy)
        self.policy = Policy(config.policy, config.residency, self._version)

    @classmethod
    def from_config(cls, config: RouterConfig, base_dir: Path | None = None) -> PolicyEngine:
        """``base_dir`` resolves relative paths in the config (the catalog file); default: cwd."""
        return cls(config, base_dir)

    @property
    def version(self) -> str:
        return self._version

    def evaluate(self, event: ChangeEvent, origin: Origin) -> Outcome:
        """Classify, resolve and decide ``event``, which arrived on ``origin`` (its jurisdiction is
        where an event that cannot be placed stays; only a trusted origin lets headers bind)."""
        cls = self.classifier.classify(event)
        res = self.resolver.resolve(event, origin)
        return Outcome(decision=self.policy.decide(event, cls, res, origin.jurisdiction), classification=cls,
                       resolution=res, policy_version=self._version)

    def topics(self, entities: Iterable[str]) -> list[tuple[str, str]]:
        """``(topic, jurisdiction)`` for every routed topic the rules can produce for ``entities``,
        plus the quarantine topic of every jurisdiction (a quarantine goes to a bound jurisdiction
        or the ingress topic's, which may be any of them). Sorted, without repeats."""
        policy = self.policy.config
        destinations = {d for rule in policy.rules if rule.action == "allow" for d in rule.allow}
        out = {(policy.topic.format(jurisdiction=j, entity=topic_entity(e)), j)
               for j in destinations for e in entities}
        out |= {(policy.quarantine_topic.format(jurisdiction=j, entity=""), j) for j in self.config.jurisdictions}
        return sorted(out)


Engine = PolicyEngine
"""Former name, kept for callers written before the façade was pinned."""
