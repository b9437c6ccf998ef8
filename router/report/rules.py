"""Which policy rule allowed a route, derived from the policy that was in force.

An audit record does not name the rule that allowed its route. It names what the rules decide on:
the data's jurisdictions (the bindings), the classification level and the categories, and the
``policy_version`` in force, ``<label>:<12 hex of the sha256 of the classification, residency and
policy sections>``. For a *routed* event the policy's verdict depends on exactly those three
values (:meth:`router.residency.policy.Policy.decide`: gap events, incomplete scans, unresolved
and conflicting bindings are quarantined before the rules are read), so a policy whose version
equals the record's gives the same rules the router applied. The derivation is checked: the
policy must permit the recorded destination jurisdiction, or the rule is reported as not derived.

A record decided under a policy the report was not given (an older version) gets no rule; the
report says so instead of guessing from the current rules.

Pure: no Kafka import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.classify.model import Category, Classification, Finding, Level
from router.residency.policy import Policy


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Per bound jurisdiction, the rule that allowed it; or ``None`` and why not."""

    rules: dict[str, str] | None
    basis: str


class RuleDeriver:
    """Derives the allowing rules of routed events from the policies given, by version."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._policies = {p.version: p for p in policies}
        self._cache: dict[tuple[str, tuple[str, ...], str, tuple[str, ...], str], RuleMatch] = {}

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(sorted(self._policies))

    def derive(self, policy_version: str, bound: tuple[str, ...], level: str, categories: tuple[str, ...],
               destination: str) -> RuleMatch:
        key = (policy_version, bound, level, categories, destination)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._derive(*key)
        return found

    def _derive(self, policy_version: str, bound: tuple[str, ...], level: str, categories: tuple[str, ...],
                destination: str) -> RuleMatch:
        policy = self._policies.get(policy_version)
        if policy is None:
            return RuleMatch(None, f"policy {policy_version} not given to the report (--policy-config)")
        try:
            cls = Classification(Level(level), tuple(Finding(Category(c), "-", "audit") for c in categories))
        except ValueError:
            return RuleMatch(None, "the record's level or a category is unknown to this version")
        # The same functions decide() uses for a resolved, complete, unconflicted event.
        verdict = policy._rules_verdict(bound, cls)
        if getattr(verdict, "dest", None) != destination:
            return RuleMatch(None, f"policy {policy_version} does not route this to {destination}: "
                                   "the record does not match the policy it names")
        rules: dict[str, str] = {}
        for j in bound:
            rule = policy._rule_for(j, cls)
            if rule is None:  # cannot happen after a permitted verdict; never guess
                return RuleMatch(None, f"policy {policy_version} has no rule for {j}")
            rules[j] = rule.name
        return RuleMatch(rules, f"derived from policy {policy_version}")
