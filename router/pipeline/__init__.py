"""The Kafka shell: the transactional engine and the router processor around the pure core."""

import router.config.models  # noqa: F401  (config sections import each other; load the root first)
