"""Canary: distinctive values in every field value, key, id and header of events of every format go
through the real pipeline on the real cluster, and none of them appears anywhere outside a
ciphertext: not in any record (value, key, headers) of any topic the router writes, not in its logs,
not in its exported spans or metrics."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from router.devtools import samples
from tests.integration.router_env import make_env, router_cmd
from tests.kafka_util import read_topic

pytestmark = pytest.mark.integration

CANARY = "Zq7Canary"
"""Every planted value contains this; it occurs nowhere in the router's code or fixtures."""


def _plant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the sample generator fill names, companies, free text and prompts with canaries."""
    monkeypatch.setattr(samples, "FIRST", [f"{CANARY}First{i}" for i in range(5)])
    monkeypatch.setattr(samples, "LAST", [f"{CANARY}Last{i}" for i in range(5)])
    monkeypatch.setattr(samples, "COMPANY", [f"{CANARY}Co{i}" for i in range(5)])
    monkeypatch.setattr(samples, "FILLER", f" {CANARY}Filler note.")
    monkeypatch.setattr(samples, "PROMPTS", [f"You are a {CANARY}Bot. Answer {{{{question}}}}."])


def _with_canary_ids(value: bytes | None, n: int) -> bytes | None:
    """JSON Salesforce events get a canary EventUuid (connectors' ids are opaque input too)."""
    if value is None or value[:1] != b"{":
        return value
    doc = json.loads(value)
    if isinstance(doc, dict) and "ChangeEventHeader" in doc:
        doc["EventUuid"] = f"{CANARY}-uuid-{n}"
        return json.dumps(doc).encode()
    return value


def _needles() -> list[bytes]:
    text = CANARY.encode()
    return [text, text.lower(), base64.b64encode(text)[:8], text.hex().encode()]


def _hits(blob: bytes) -> list[bytes]:
    low = blob.lower()
    return [n for n in _needles() if n.lower() in low]


def test_no_canary_value_appears_outside_a_ciphertext(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant(monkeypatch)
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=2)
    records = list(samples.generate(120, seed=5))
    assert {r.format for r in records} >= {"salesforce-json", "debezium-json"}
    produced: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    for n, r in enumerate(records):
        key = json.dumps({"id": f"{CANARY}-key-{n}", "email": f"{CANARY}{n}@example.de"}).encode()
        headers = [*((k, v.encode()) for k, v in r.headers.items()),
                   ("x-data-region", f"{CANARY}-region".encode()), ("sf-org-id", f"{CANARY}-org".encode()),
                   ("x-note", f"{CANARY}-header-{n}".encode())]
        produced.append((key, _with_canary_ids(r.value, n), headers))
    # A Debezium delete of a German subject and its bare tombstone: the erasure path too.
    delete = {"op": "d", "source": {"table": "contacts", "connector": "pg", "lsn": 77},
              "before": {"id": 9, "email": f"{CANARY}del@example.de", "country": "DE"}, "after": None}
    produced.append((b'{"id": "' + CANARY.encode() + b'-del"}', json.dumps(delete).encode(), []))
    produced.append((b'{"id": "' + CANARY.encode() + b'-del"}', None, []))
    planted = sum(1 for k, v, h in produced if CANARY.encode() in (k or b"") + (v or b"") + b"".join(x for _, x in h))
    assert planted == len(produced), "every input carries canaries"
    producer = Producer({"bootstrap.servers": env.bootstrap, "enable.idempotence": True})
    for key, value, headers in produced:  # in order: the delete precedes its tombstone
        producer.produce(env.ingress, value, key, partition=0, headers=headers)
    assert producer.flush(60) == 0

    run_env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}
    cmd = [*router_cmd(env, "canary", 6.0)]
    cmd[cmd.index("WARNING")] = "DEBUG"
    proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False, env=run_env)
    assert proc.returncode == 0, proc.stderr[-3000:].decode(errors="replace")
    stats = next(json.loads(x) for x in proc.stdout.splitlines() if x.startswith(b'{"instance_id"'))
    assert stats["consumed"] == len(produced)
    assert b"traceparent" in proc.stdout or b"trace_id" in proc.stdout, "spans were exported to stdout"

    leaks: list[str] = []
    hits = _hits(proc.stdout)
    if hits:
        leaks.append(f"stdout (spans, metrics): {hits}")
    hits = _hits(proc.stderr)
    if hits:
        leaks.append(f"logs: {hits}")
    written = [*env.routed_topics(), *env.quarantine_topics(), env.audit_topic]
    seen = 0
    for topic in written:
        for m in read_topic(env.bootstrap, topic, isolation="read_uncommitted"):
            seen += 1
            blob = (m.key() or b"") + (m.value() or b"") + b"".join(
                k.encode() + (v or b"") for k, v in (m.headers() or [])
            )
            hits = _hits(blob)
            if hits:
                leaks.append(f"{topic}[{m.partition()}]@{m.offset()}: {hits}")
    assert seen >= 2 * len(produced) - 1, "every input produced its outputs and audit records"
    assert not leaks, leaks[:10]
