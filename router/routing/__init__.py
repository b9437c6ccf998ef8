"""The routing decision: one home for what ``run`` and ``simulate`` decide per record."""

from router.routing.evaluate import CoreEvaluator, Evaluation, Ingress

__all__ = ["CoreEvaluator", "Evaluation", "Ingress"]
