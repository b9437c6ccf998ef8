"""Jurisdiction resolution and the routing policy. No Kafka import."""
