"""Jurisdiction resolution and the routing policy. No Kafka import."""

import router.config.models  # noqa: F401 -- load the root config first: it imports this package's config
