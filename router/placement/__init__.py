"""Topic placement: which jurisdictions a topic's replicas sit in, checked at start and while running.

``model`` is the pure core (snapshot, verify, plan_assignment); ``kafka`` is the Admin API shell
(snapshot, PlacementWatch, check_startup); :mod:`router.cli.topics` adds ``placement`` and ``topics create``.
"""
