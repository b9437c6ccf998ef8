"""The dev cluster is a real multi-rack Kafka cluster, and the launcher cleans up after itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.devtools.devcluster.launcher import DEFAULT_RACKS

pytestmark = pytest.mark.integration


def test_each_broker_reports_its_configured_rack(kafka_cluster: Any, kafka_admin: Any) -> None:
    if kafka_cluster.source != "devcluster":
        pytest.skip("rack layout is only known in advance for the project's own dev cluster")
    desc = kafka_admin.describe_cluster(request_timeout=15).result()
    reported = sorted((n.id, n.rack) for n in desc.nodes)
    assert reported == [(i + 1, rack) for i, rack in enumerate(DEFAULT_RACKS)]


def test_topic_assigned_to_eu_brokers_has_exactly_those_replicas(
    kafka_cluster: Any, kafka_admin: Any, create_topic: Any
) -> None:
    eu = kafka_cluster.brokers_in("eu-")
    if len(eu) < 2:
        pytest.skip("needs two brokers with an eu-* rack")
    topic = create_topic("crm.eu", assignment=[eu, list(reversed(eu))])
    md = kafka_admin.list_topics(topic, timeout=15).topics[topic]
    assert sorted(md.partitions) == [0, 1]
    for p in md.partitions.values():
        assert sorted(p.replicas) == eu
        assert all(kafka_cluster.racks[b].startswith("eu-") for b in p.replicas)


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROUTER_DEVCLUSTER_STATE": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "devcluster", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is not running.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_cli_up_status_down_leaves_no_process_and_reuses_the_cache(tmp_path: Path) -> None:
    state = tmp_path / "one-node"
    first = _cli(state, "up", "--json", "--rack", "eu-west-1a", "--heap-mb", "384")
    assert first.returncode == 0, first.stderr
    up = json.loads(first.stdout)
    pids = [b["pid"] for b in up["brokers"]]
    assert [b["rack"] for b in up["brokers"]] == ["eu-west-1a"]

    status = _cli(state, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["bootstrap"] == up["bootstrap"]
    assert all(b["running"] for b in json.loads(status.stdout)["brokers"])

    down = _cli(state, "down", "--json")
    assert down.returncode == 0, down.stderr
    assert not any(_alive(p) for p in pids)
    assert not state.exists()

    # A second start after `down` finds every jar in the cache and runs no Maven.
    again = _cli(state, "up", "--rack", "eu-west-1a", "--heap-mb", "384")
    try:
        assert again.returncode == 0, again.stderr
        assert "cache used, nothing downloaded" in again.stdout
    finally:
        _cli(state, "down")
    after = _cli(state, "status", "--json")
    assert after.returncode == 1
    assert json.loads(after.stdout) == {"running": False}
