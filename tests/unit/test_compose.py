"""compose.yaml (for users with Docker) has the same topology as the launcher's default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from router.devtools.devcluster.launcher import DEFAULT_RACKS

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"


def _kafka_services() -> dict[str, dict[str, str]]:
    doc = yaml.safe_load(COMPOSE.read_text())
    return {
        name: svc["environment"]
        for name, svc in doc["services"].items()
        if str(svc.get("image", "")).startswith("apache/kafka")
    }


def test_compose_has_the_default_node_count_and_racks() -> None:
    services = _kafka_services()
    racks = [
        env["KAFKA_BROKER_RACK"] for _, env in sorted(services.items(), key=lambda kv: int(kv[1]["KAFKA_NODE_ID"]))
    ]
    assert racks == list(DEFAULT_RACKS)


def test_compose_nodes_form_one_quorum_and_run_the_pinned_kafka() -> None:
    from router.devtools.devcluster.artifacts import kafka_version

    doc = yaml.safe_load(COMPOSE.read_text())
    services = _kafka_services()
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in services.values()}
    assert len(voters) == 1
    assert len(next(iter(voters)).split(",")) == len(services)
    images = {doc["services"][name]["image"] for name in services}
    assert images == {f"apache/kafka:{kafka_version()}"}
    assert "router" in doc["services"]
