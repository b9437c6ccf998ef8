"""Short-lived Kafka credentials: OAuth bearer tokens the clients fetch and refresh themselves."""
