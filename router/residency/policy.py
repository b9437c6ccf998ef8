"""Policy -> Decision. Fail closed: anything no rule explicitly allows is quarantined."""

from __future__ import annotations

from dataclasses import dataclass

from router.classify.model import Category, Classification, Level
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
    erasure: bool = False
    """A delete: the pipeline writes a tombstone under the subject's record key to ``topic``."""
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

_MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class _Permitted:
    dest: str
    rules: str


@dataclass(frozen=True, slots=True)
class _Refused:
    reason: ReasonCode
    detail: str


_Verdict = _Permitted | _Refused


def topic_entity(entity: str) -> str:
    """The entity as it appears in a topic name: lower-cased, other characters as ``_``."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in entity.lower())


class Policy:
    """Decides per event. Semantics:

    * a gap event is quarantined (GAP_EVENT); an event classification could not scan completely
      is quarantined (SCAN_LIMIT); a country field naming no configured jurisdiction (unless
      ``unmapped_country: ignore``) or no binding at all -> UNRESOLVED_JURISDICTION; a delete with
      no binding from what it carries -> ERASURE_UNRESOLVED;
    * an untrusted header (a hint) naming a jurisdiction the data is not bound to ->
      CONFLICTING_JURISDICTION: a hint can turn a route into a quarantine, never choose a place;
    * for each bound jurisdiction the first rule whose ``data`` and ``when`` match applies; none
      -> NO_PERMITTED_DESTINATION; ``deny`` -> POLICY_DENIED;
    * the destination must be allowed for every binding (intersection); empty with several
      bindings -> CONFLICTING_JURISDICTION. Among permitted destinations a binding itself is
      preferred, then the first rule's ``allow`` order;
    * an applying rule's ``max_level`` or ``deny_categories`` exceeded -> POLICY_DENIED;
    * a routed delete is an erasure: the pipeline writes a tombstone to the destination.

    Where a quarantine is written (:meth:`quarantine_jurisdiction`): where the record already
    sits (the ingress topic's jurisdiction) when the data is bound to it or to nothing known;
    else the data's only binding; else the first of its bindings in ``residency.precedence``.
    Never a jurisdiction only a hint names.
    """

    def __init__(self, policy: PolicyConfig, residency: ResidencyConfig, version: str) -> None:
        self.config = policy
        self.residency = residency
        self.version = version
        # Most restrictive first: residency.precedence, then first mention in the rules, then name.
        mentioned = [*residency.precedence, *(j for r in policy.rules for j in (*r.data, *r.allow) if j != ANY)]
        self._order = {j: i for i, j in reversed(list(enumerate(mentioned)))}
        self._verdicts: dict[tuple[tuple[str, ...], Level, frozenset[Category]], _Verdict] = {}
        """What the rules say per (bindings, level, categories): a decision is a lookup after the
        first event of each signature."""
        self._topics: dict[tuple[str, str], str] = {}
        self._quarantine_topics: dict[str, str] = {}

    def quarantine_topic(self, jurisdiction: str) -> str:
        topic = self._quarantine_topics.get(jurisdiction)
        if topic is None:
            topic = self.config.quarantine_topic.format(jurisdiction=jurisdiction, entity="")
            if len(self._quarantine_topics) < _MAX_CACHED:
                self._quarantine_topics[jurisdiction] = topic
        return topic

    def _topic(self, jurisdiction: str, entity: str) -> str:
        topic = self._topics.get((jurisdiction, entity))
        if topic is None:
            topic = self.config.topic.format(jurisdiction=jurisdiction, entity=topic_entity(entity))
            if len(self._topics) >= _MAX_CACHED:
                self._topics.clear()  # entity names come from events: keep the cache bounded
            self._topics[(jurisdiction, entity)] = topic
        return topic

    def quarantine_jurisdiction(self, bound: tuple[str, ...], origin: str) -> str:
        """Where an event bound to ``bound`` that arrived in ``origin`` is quarantined."""
        if not bound or origin in bound:
            return origin
        if len(bound) == 1:
            return bound[0]
        order = self._order
        return min(bound, key=lambda b: (order.get(b, len(order)), b))

    def _quarantine(self, reason: ReasonCode, detail: str, bound: tuple[str, ...], origin: str,
                    cls: Classification | None) -> Quarantine:
        j = self.quarantine_jurisdiction(bound, origin)
        return Quarantine(reason, detail, j, self.quarantine_topic(j), self.version, cls)

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
        self, event: ChangeEvent, cls: Classification, res: Resolution, origin: str,
    ) -> Route | Quarantine:
        """The decision for one classified, resolved event that arrived in jurisdiction ``origin``.
        Never raises for event content."""
        bound = res.jurisdictions
        if event.operation is Operation.GAP:
            return self._quarantine(ReasonCode.GAP_EVENT, f"gap event {event.gap_type or ''}".strip(), bound,
                                    origin, cls)
        if cls.incomplete:
            return self._quarantine(ReasonCode.SCAN_LIMIT, cls.incomplete, bound, origin, cls)
        if event.operation is Operation.DELETE and (res.unmapped or not bound):
            why = (f"its fields name no configured jurisdiction: {', '.join(res.unmapped)}" if res.unmapped
                   else "it carries no tenant, country field or trusted header")
            return self._quarantine(ReasonCode.ERASURE_UNRESOLVED, f"a delete whose erasure cannot be routed: {why}",
                                    bound, origin, cls)
        if res.unmapped:
            return self._quarantine(ReasonCode.UNRESOLVED_JURISDICTION,
                                    f"fields name no configured jurisdiction: {', '.join(res.unmapped)}", bound,
                                    origin, cls)
        if not bound:
            return self._quarantine(ReasonCode.UNRESOLVED_JURISDICTION,
                                    "no tenant, country field or trusted header resolved and no residency.default",
                                    bound, origin, cls)
        conflicting = res.conflicting_hints if res.hints else ()
        if conflicting:
            names = ", ".join(sorted({f"{h.name} -> {h.jurisdiction}" for h in conflicting}))
            return self._quarantine(ReasonCode.CONFLICTING_JURISDICTION,
                                    f"untrusted header disagrees with the data's binding ({names})", bound, origin,
                                    cls)
        signature = (bound, cls.level, cls.categories)
        verdict = self._verdicts.get(signature)
        if verdict is None:
            verdict = self._rules_verdict(bound, cls)
            if len(self._verdicts) >= _MAX_CACHED:
                self._verdicts.clear()
            self._verdicts[signature] = verdict
        if isinstance(verdict, _Refused):
            return self._quarantine(verdict.reason, verdict.detail, bound, origin, cls)
        return Route(self._topic(verdict.dest, event.entity), verdict.dest, cls, self.version, verdict.rules,
                     erasure=event.operation is Operation.DELETE)

    def _rules_verdict(self, bound: tuple[str, ...], cls: Classification) -> _Verdict:
        """What the rules decide for data bound to ``bound`` classified ``cls`` (its level and
        categories only)."""
        permitted: list[str] | None = None
        rules: list[Rule] = []
        for j in bound:
            rule = self._rule_for(j, cls)
            if rule is None:
                return _Refused(ReasonCode.NO_PERMITTED_DESTINATION,
                                f"no policy rule allows {j} data at level {cls.level}")
            if rule.action == "deny":
                return _Refused(ReasonCode.POLICY_DENIED, f"rule {rule.name} denies {j} data")
            if rule.max_level is not None and not rule.max_level.at_least(cls.level):
                return _Refused(ReasonCode.POLICY_DENIED,
                                f"rule {rule.name}: level {cls.level} is above max_level {rule.max_level}")
            denied = sorted(cls.categories.intersection(rule.deny_categories))
            if denied:
                return _Refused(ReasonCode.POLICY_DENIED, f"rule {rule.name} denies categories {', '.join(denied)}")
            rules.append(rule)
            permitted = list(rule.allow) if permitted is None else [d for d in permitted if d in rule.allow]
        if not permitted:
            return _Refused(ReasonCode.CONFLICTING_JURISDICTION,
                            f"no destination is permitted for all of {', '.join(bound)}")
        dest = next((d for d in permitted if d in bound), permitted[0])
        return _Permitted(dest, "+".join(r.name for r in rules))
