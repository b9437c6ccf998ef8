"""Kafka ACLs from the routing config: the least-privilege plan (``plan``), its comparison with the
cluster's live ACLs (``check``) and the Admin API shell (``kafka``); ``config`` is the ``access:`` section.
"""
