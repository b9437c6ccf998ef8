"""Helpers for integration tests that move a destination's replica during a run: wait until the
router has decided a number of inputs, read a partition's replicas, and probe with single EU
contacts until one is routed again after the replica is put back.

Each wait polls a condition against a deadline; none sleeps to synchronise.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.integration.router_env import RouterEnv
from tests.integration.test_router_resilience import _decisions
from tests.kafka_util import produce_all, read_topic

PROBE_KEY = b"probe"
PROBE_COUNTRY = "DE"
"""The country of every probe: an EU contact, routed to the EU contact topic when it is placed."""


def probe_value() -> bytes:
    """One Salesforce CDC JSON update of an EU contact (no generator involved)."""
    header = {"entityName": "Contact", "changeType": "UPDATE", "recordIds": ["003PROBE"],
              "changedFields": ["MailingCountry", "Email"]}
    return json.dumps({"ChangeEventHeader": header, "MailingCountry": PROBE_COUNTRY,
                       "Email": "probe@example.de"}).encode()


def wait_for_decisions(env: Any, n: int, timeout: float = 90) -> None:
    """Until ``n`` decisions are committed (polled against a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _decisions(env) >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} decisions committed in {timeout} s")


def replicas_of(admin: Any, topic: str, partition: int) -> list[int]:
    """``topic[partition]``'s replicas as cluster metadata lists them."""
    md = admin.list_topics(topic, timeout=10).topics[topic]
    return list(md.partitions[partition].replicas)


def probe_until_routed(env: RouterEnv, topic: str, *, first_offset: int, timeout: float = 90) -> int:
    """Produce one EU contact at a time (single-partition ingress, whose next offset is
    ``first_offset``) until one lands in ``topic`` (the EU contact topic) instead of a quarantine;
    returns how many probes it took. Each probe is decided before the next is sent."""
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        before = len(read_topic(env.bootstrap, topic))
        produce_all(env.bootstrap, env.ingress, [(PROBE_KEY, probe_value())])
        sent += 1
        while _decisions(env) < first_offset + sent:  # the probe is decided and committed
            if time.monotonic() > deadline:
                raise AssertionError(f"probe {sent} was not decided within {timeout} s")
            time.sleep(0.2)
        if len(read_topic(env.bootstrap, topic)) > before:
            return sent
    raise AssertionError(f"no probe was routed to {topic} within {timeout} s")
