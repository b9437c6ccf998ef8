"""Operator views of a running deployment, read from Kafka and the config (``residency-router status``).

:mod:`router.ops.model` holds the status as plain dataclasses and the arithmetic over them (rates,
lag, topic roles) with no Kafka import; :mod:`router.ops.status` is the shell that collects them
from an admin client, a ``read_committed`` consumer and the key providers; :mod:`router.ops.render`
turns a status into a text table or JSON.
"""
