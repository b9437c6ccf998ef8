"""Build a complete router deployment for one integration test: config, dev keyring, topics.

Every topic name carries a per-test suffix, so tests share the session cluster without seeing each
other's records. Jurisdictions follow the dev cluster's racks: eu (eu-*), us (us-*).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.keys.local import LocalKeyring

ENTITIES = ("account", "contact", "lead", "case", "opportunity")


@dataclass
class RouterEnv:
    config: RouterConfig
    config_path: Path
    suffix: str
    bootstrap: str
    ingress: str

    def routed_topics(self) -> list[str]:
        return [t.name for t in self.config.topics if t.name.startswith("crm.") and t.name != self.ingress]

    def quarantine_topics(self) -> list[str]:
        return [t.name for t in self.config.topics if t.name.startswith("quarantine.")]

    @property
    def audit_topic(self) -> str:
        assert self.config.audit is not None
        return self.config.audit.topic


def router_cmd(env: RouterEnv, instance: str, idle: float) -> list[str]:
    """The command line of one router instance for ``env``."""
    import sys

    return [
        sys.executable,
        "-m",
        "router.cli",
        "run",
        "--config",
        str(env.config_path),
        "--instance-id",
        instance,
        "--max-idle-s",
        str(idle),
        "--stats-json",
        "--log-level",
        "WARNING",
    ]


def make_env(
    kafka_cluster: Any,
    kafka_admin: Any,
    tmp_path: Path,
    *,
    ingress_partitions: int = 3,
    extra: dict[str, Any] | None = None,
    decoder: str = "auto",
) -> RouterEnv:
    sfx = uuid.uuid4().hex[:8]
    keyring = tmp_path / "keyring.json"
    LocalKeyring.create(keyring, ["eu", "us"])
    eu_brokers = kafka_cluster.brokers_in("eu-")
    topics: list[dict[str, Any]] = []
    for j in ("eu", "us"):
        rf = 2 if j == "eu" and len(eu_brokers) >= 2 else 1
        topics += [
            {"name": f"crm.{j}.{e}.{sfx}", "jurisdiction": j, "partitions": 2, "replication_factor": rf}
            for e in ENTITIES
        ]
        topics.append({"name": f"quarantine.{j}.{sfx}", "jurisdiction": j, "partitions": 2, "replication_factor": rf})
    topics.append(
        {
            "name": f"audit.{sfx}",
            "jurisdiction": "eu",
            "partitions": ingress_partitions,
            "replication_factor": 2 if len(eu_brokers) >= 2 else 1,
        }
    )
    ingress = f"crm.ingress.{sfx}"
    # The ingress topic holds raw data of every jurisdiction: it sits in eu, checked like any topic.
    topics.append(
        {"name": ingress, "jurisdiction": "eu", "partitions": ingress_partitions,
         "replication_factor": 2 if len(eu_brokers) >= 2 else 1}
    )
    doc: dict[str, Any] = {
        "clusters": {"default": {"bootstrap": kafka_cluster.bootstrap, "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}, "us": {"racks": ["us-*"]}},
        "topics": topics,
        "residency": {"countries": {"eu": ["EEA"], "us": ["US"]}},
        "policy": {
            "version": "test",
            "topic": "crm.{jurisdiction}.{entity}." + sfx,
            "quarantine_topic": "quarantine.{jurisdiction}." + sfx,
            "rules": [
                {"name": "no-secrets", "data": ["*"], "when": {"categories_any": ["SECRET"]}, "action": "deny"},
                {"name": "eu", "data": ["eu"], "allow": ["eu"]},
                {"name": "us", "data": ["us"], "allow": ["us"]},
            ],
        },
        "keys": {
            "providers": {"dev": {"type": "local", "keyring": str(keyring)}},
            "jurisdictions": {"eu": {"provider": "dev"}, "us": {"provider": "dev"}},
            "signer": {"keyring": str(keyring)},
        },
        "audit": {"topic": f"audit.{sfx}", "jurisdiction": "eu"},
        "pipeline": {
            "ingress": [{"topic": ingress, "jurisdiction": "eu", "decoder": decoder}],
            "group_id": f"router-{sfx}",
            "transactional_id_prefix": f"router-{sfx}",
            "session_timeout_ms": 6000,
        },
        "placement": {"recheck_interval_s": 1, "max_verdict_age_s": 10},
    }
    for key, value in (extra or {}).items():
        doc[key] = value
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = parse_config(doc, str(path))

    from router.placement.kafka import create_topics, wait_for_topics

    create_topics(config, kafka_admin)
    wait_for_topics(kafka_admin, [t["name"] for t in topics], timeout=30)
    return RouterEnv(config, path, sfx, kafka_cluster.bootstrap, ingress)
