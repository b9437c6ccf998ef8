"""Canary: distinctive values in every field value, key, id and header of events of every format go
through the real pipeline on the real cluster, and none of them appears anywhere outside a
ciphertext: not in any record (value, key, headers) of any topic the router writes, not in its logs,
not in its exported spans or metrics, not in what its /metrics endpoint served during the run."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    # DEBUG logs as JSON lines, console span and metric exporters, and /metrics scraped throughout.
    import yaml

    port = _free_port()
    doc = yaml.safe_load(env.config_path.read_text())
    doc["telemetry"] = {"metrics_address": f"127.0.0.1:{port}", "lag_interval_s": 0.5}
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}
    cmd = [*router_cmd(env, "canary", 6.0)]
    cmd[cmd.index("WARNING")] = "DEBUG"
    cmd[cmd.index("router.cli") + 1:cmd.index("router.cli") + 1] = ["--log-format", "json"]
    # Files, not pipes: nothing reads a pipe while the loop scrapes, and a full one would block it.
    out_path, err_path = tmp_path / "router.out", tmp_path / "router.err"
    with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, env=run_env)
    scraped: list[bytes] = []
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=2
            ) as answer:
                scraped.append(answer.read())
            time.sleep(0.2)  # the scrape interval; the loop waits on the process
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    stdout, stderr = out_path.read_bytes(), err_path.read_bytes()
    assert proc.returncode == 0, stderr[-3000:].decode(errors="replace")
    stats = next(json.loads(x) for x in stdout.splitlines() if x.startswith(b'{"instance_id"'))
    assert stats["consumed"] == len(produced)
    assert b"traceparent" in stdout or b"trace_id" in stdout, "spans were exported to stdout"
    assert any(b"router_decisions_total" in m for m in scraped), "/metrics was scraped while records were decided"
    router_lines = [x for x in stderr.splitlines() if x.startswith(b"{")]
    assert router_lines and all(isinstance(json.loads(x), dict) for x in router_lines), "JSON log lines"
    assert any(b'"level": "DEBUG"' in x or b'"level":"DEBUG"' in x for x in router_lines), "DEBUG logs were on"

    leaks: list[str] = []
    hits = _hits(stdout)
    if hits:
        leaks.append(f"stdout (spans, metrics): {hits}")
    hits = _hits(stderr)
    if hits:
        leaks.append(f"logs: {hits}")
    hits = _hits(b"".join(scraped))
    if hits:
        leaks.append(f"/metrics: {hits}")
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
