"""Placement snapshots in the audit trail on a real cluster: a run during which a replica of an EU
destination is moved to a US broker leaves, in its chain, a placement snapshot from before the move
and one from after it; the records quarantined PLACEMENT_VIOLATION reference a snapshot that shows
the replica abroad; and ``audit verify`` proves every decision against the snapshot it references.

Ground truth is the cluster itself: the broker ids the dev cluster puts in ``eu-*`` and ``us-*``
racks, and the replica list the test reassigns the partition to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.audit.chain import verify_chain
from router.audit.record import AuditRecord, PlacementRecord, decode_entry
from tests.integration.placement_moves import wait_for_decisions
from tests.integration.router_env import make_env
from tests.integration.test_placement import reassign  # noqa: F401 - fixture
from tests.integration.test_router_e2e import load_samples
from tests.integration.test_router_resilience import (
    _probe_until_diverted,
    _router_cmd,
    _wait_for_replicas,
)
from tests.kafka_util import read_topic

pytestmark = pytest.mark.integration


def test_the_trail_holds_the_snapshots_before_and_after_a_replica_moves_abroad(
    kafka_cluster: Any,
    kafka_admin: Any,
    tmp_path: Path,
    reassign: Any,  # noqa: F811
) -> None:
    eu, us = kafka_cluster.brokers_in("eu-"), kafka_cluster.brokers_in("us-")
    if len(eu) < 2 or not us:
        pytest.skip("needs two eu-* brokers and one us-* broker")
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    moved = f"crm.eu.contact.{env.suffix}"
    first = load_samples(env, n=200, seed=13)
    router = subprocess.Popen(_router_cmd(env, "a", 15), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_decisions(env, len(first))
        reassign(moved, 0, [eu[0], us[0]])
        _wait_for_replicas(kafka_admin, moved, 0, [eu[0], us[0]])
        _probe_until_diverted(env, first_offset=len(first))
        load_samples(env, n=100, seed=14)
        _out, err = router.communicate(timeout=180)
        assert router.returncode == 0, err[-2000:]
    finally:
        if router.poll() is None:
            router.kill()

    trail = [(m.partition(), m.offset(), m.value()) for m in read_topic(env.bootstrap, env.audit_topic)]
    assert verify_chain(trail).ok
    chain = sorted((decode_entry(v) for _p, _o, v in trail), key=lambda r: r.seq)  # one ingress partition: one chain
    placements = [r for r in chain if isinstance(r, PlacementRecord)]
    decisions = [r for r in chain if isinstance(r, AuditRecord)]
    by_hash = {p.snapshot.sha256: p for p in placements}

    def abroad(p: PlacementRecord) -> bool:
        replicas = p.snapshot.replicas(moved, 0) or ()
        return us[0] in replicas and p.snapshot.broker_jurisdiction(us[0]) == "us"

    before = [p for p in placements if not abroad(p)]
    after = [p for p in placements if abroad(p)]
    assert before and after, "a snapshot from before the move and one from after it"
    assert before[0].seq < after[0].seq
    assert all(p.snapshot.broker_jurisdiction(b) == "eu" for p in before for b in p.snapshot.replicas(moved, 0) or ())
    assert all(p.snapshot.verdict == "violation" for p in after)

    assert all(d.fields.placement_snapshot in by_hash for d in decisions), "every decision references a snapshot"
    violations = [d for d in decisions if d.fields.reason == "PLACEMENT_VIOLATION"]
    assert violations, "eu contacts after the move are quarantined with PLACEMENT_VIOLATION"
    for d in violations:
        assert d.fields.destination_topic == f"quarantine.eu.{env.suffix}"
        assert d.fields.destination_jurisdiction == "eu"
        assert d.fields.placement_snapshot is not None
        assert abroad(by_hash[d.fields.placement_snapshot]), "quarantined under the snapshot that shows the move"
    routed_to_moved = [d for d in decisions if d.fields.destination_topic == moved]
    assert routed_to_moved, "the first records were routed to the EU topic"
    for d in routed_to_moved:
        assert d.fields.placement_snapshot is not None
        assert not abroad(by_hash[d.fields.placement_snapshot]), "routed only under a snapshot with no replica abroad"

    done = subprocess.run(
        [sys.executable, "-m", "router.cli", "audit", "verify", "--config", str(env.config_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["ok"]
    assert out["residency"]["snapshot_referenced"] == len(decisions)
    assert out["residency"]["not_snapshot_referenced"] == 0
    assert out["residency"]["placement_records"] == len(placements)
