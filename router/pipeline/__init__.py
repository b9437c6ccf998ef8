"""The Kafka shell: the transactional engine and the router processor around the pure core."""
