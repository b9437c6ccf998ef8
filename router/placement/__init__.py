"""Topic placement: which jurisdictions a topic's replicas sit in, checked at start and while running.

``model`` is the pure core (snapshot, verify, plan_assignment); ``kafka`` is the Admin API shell
(snapshot, PlacementWatch, check_startup); ``cli`` adds ``placement`` and ``topics create``.
"""

# router.config.models imports placement.config part-way through (after StrictModel); loading it
# first keeps that order whichever of the two modules a caller imports first.
import router.config.models  # noqa: F401
