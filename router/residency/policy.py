"""Policy -> Decision. Fail closed: anything no rule explicitly allows is quarantined."""

from __future__ import annotations

from dataclasses import dataclass

from router.classify.model import Classification
from router.errors import ReasonCode
from router.ingest.event import ChangeEvent, Operation
from router.residency.config import ANY, PolicyConfig, ResidencyConfig, Rule
from router.residency.resolver import Resolution


@dataclass(frozen=True, slots=True)
class Route:
    """Write the sealed event to ``topic``, whose replicas must all sit in ``jurisdiction``."""

    topic: str
    jurisdiction: str
    classification: Classification
    policy_version: str
    rule: str
    encrypt_fields: tuple[str, ...] = ()
    reason: ReasonCode = ReasonCode.ROUTED


@dataclass(frozen=True, slots=True)
class Quarantine:
    """Seal the original bytes into ``topic`` in ``jurisdiction``. ``detail`` is value-free."""

    reason: ReasonCode
    detail: str
    jurisdiction: str
    topic: str
    policy_version: str
    classification: Classification | None = None


Decision = Route | Quarantine


def topic_entity(entity: str) -> str:
    """The entity as it appears in a topic name: lower-cased, other characters as ``_``."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in entity.lower())


class Policy:
    """Decides per event. Semantics:

    * a gap event is quarantined (GAP_EVENT); no binding -> UNRESOLVED_JURISDICTION, as is a
      country field naming no configured jurisdiction (unless ``unmapped_country: ignore``);
    * for each bound jurisdiction the first rule whose ``data`` and ``when`` match applies; none
      -> NO_PERMITTED_DESTINATION; ``deny`` -> POLICY_DENIED;
    * the destination must be allowed for every binding (intersection); empty with several
      bindings -> CONFLICTING_JURISDICTION. Among permitted destinations a binding itself is
      preferred, then the first rule's ``allow`` order;
    * quarantine goes to the data's jurisdiction: the only binding, else the first binding in
      ``residency.precedence`` (default: first mention in the rules, then name); unknown -> ``residency.home``;
    * an applying rule's ``max_level`` or ``deny_categories`` exceeded -> POLICY_DENIED.
    """

    def __init__(self, policy: PolicyConfig, residency: ResidencyConfig, version: str) -> None:
        self.config = policy
        self.residency = residency
        self.version = version
        # Most restrictive first: residency.precedence, then first mention in the rules, then name.
        mentioned = [*residency.precedence, *(j for r in policy.rules for j in (*r.data, *r.allow) if j != ANY)]
        self._order = {j: i for i, j in reversed(list(enumerate(mentioned)))}

    def _quarantine(self, reason: ReasonCode, detail: str, bound: tuple[str, ...],
                    cls: Classification | None) -> Quarantine:
        j = self.residency.home
        if bound:
            order = self._order
            j = min(bound, key=lambda b: (order.get(b, len(order)), b))
        return Quarantine(reason, detail, j, self.config.quarantine_topic.format(jurisdiction=j, entity=""),
                          self.version, cls)

    def _rule_for(self, jurisdiction: str, cls: Classification) -> Rule | None:
        cats = cls.categories
        for rule in self.config.rules:
            if ANY not in rule.data and jurisdiction not in rule.data:
                continue
            w = rule.when
            if w.min_level is not None and not cls.level.at_least(w.min_level):
                continue
            if w.max_level is not None and not w.max_level.at_least(cls.level):
                continue
            if w.categories_any and not cats.intersection(w.categories_any):
                continue
            if cats.intersection(w.categories_none):
                continue
            return rule
        return None

    def decide(  # noqa: PLR0911 -- one return per documented outcome reads clearest
        self, event: ChangeEvent, cls: Classification, res: Resolution,
    ) -> Route | Quarantine:
        """The decision for one classified, resolved event. Never raises for event content."""
        bound = res.jurisdictions
        if event.operation is Operation.GAP:
            return self._quarantine(ReasonCode.GAP_EVENT, f"gap event {event.gap_type or ''}".strip(), bound, cls)
        if res.unmapped:
            return self._quarantine(ReasonCode.UNRESOLVED_JURISDICTION,
                                    f"fields name no configured jurisdiction: {', '.join(res.unmapped)}", bound, cls)
        if not bound:
            return self._quarantine(ReasonCode.UNRESOLVED_JURISDICTION,
                                    "no tenant, country field or trusted header resolved and no residency.default",
                                    bound, cls)
        permitted: list[str] | None = None
        rules: list[Rule] = []
        for j in bound:
            rule = self._rule_for(j, cls)
            if rule is None:
                return self._quarantine(ReasonCode.NO_PERMITTED_DESTINATION,
                                        f"no policy rule allows {j} data at level {cls.level}", bound, cls)
            if rule.action == "deny":
                return self._quarantine(ReasonCode.POLICY_DENIED, f"rule {rule.name} denies {j} data", bound, cls)
            if rule.max_level is not None and not rule.max_level.at_least(cls.level):
                return self._quarantine(ReasonCode.POLICY_DENIED,
                                        f"rule {rule.name}: level {cls.level} is above max_level {rule.max_level}",
                                        bound, cls)
            denied = sorted(cls.categories.intersection(rule.deny_categories))
            if denied:
                return self._quarantine(ReasonCode.POLICY_DENIED,
                                        f"rule {rule.name} denies categories {', '.join(denied)}", bound, cls)
            rules.append(rule)
            permitted = list(rule.allow) if permitted is None else [d for d in permitted if d in rule.allow]
        if not permitted:
            return self._quarantine(ReasonCode.CONFLICTING_JURISDICTION,
                                    f"no destination is permitted for all of {', '.join(bound)}", bound, cls)
        dest = next((d for d in permitted if d in bound), permitted[0])
        topic = self.config.topic.format(jurisdiction=dest, entity=topic_entity(event.entity))
        encrypt = {f for r in rules for c in r.encrypt for f in cls.fields(c)}
        return Route(topic, dest, cls, self.version, "+".join(r.name for r in rules), tuple(sorted(encrypt)))
