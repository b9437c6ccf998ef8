"""/metrics, /healthz and /readyz of a router running on the real cluster: scraped while it drains a
backlog, the consumer lag is non-zero before it catches up and zero after, the counters move, every
input is counted once in the decisions, and /readyz turns ready once partitions are assigned. /readyz
turns not-ready while OpenBao does not answer and ready again after."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.router_env import make_env, router_cmd
from tests.kafka_util import produce_all

pytestmark = pytest.mark.integration

N_EVENTS = 20_000
"""Enough backlog that draining it spans several lag readings (every 0.5 s)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes] | None:
    """Status and body, or None while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _scrape(base: str) -> dict[str, float] | None:
    """Sums per metric name (over every label set) of one /metrics scrape."""
    got = _get(base + "/metrics")
    if got is None or got[0] != 200:
        return None
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(got[1].decode()):
        for s in family.samples:
            sums[s.name] = sums.get(s.name, 0.0) + s.value
    return sums


def test_a_running_router_exports_lag_counters_and_readiness(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path
) -> None:
    from router.ingest.samples import generate

    port = _free_port()
    env = make_env(kafka_cluster, kafka_admin, tmp_path,
                   extra={"telemetry": {"metrics_address": f"127.0.0.1:{port}", "lag_interval_s": 0.5}})
    produce_all(env.bootstrap, env.ingress, ((r.key, r.value) for r in generate(N_EVENTS, seed=7)))
    base = f"http://127.0.0.1:{port}"

    proc = subprocess.Popen(router_cmd(env, "m", 6.0), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes: list[dict[str, float]] = []
    ready_codes: list[int] = []
    paired: list[tuple[dict[str, float], int, dict[str, Any]]] = []  # a scrape, the /readyz answer after it
    healthz: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if (s := _scrape(base)) is not None:
                scrapes.append(s)
            if (r := _get(base + "/readyz")) is not None:
                ready_codes.append(r[0])
                body = json.loads(r[1])  # always a JSON body saying why
                if s is not None:
                    paired.append((s, r[0], body))
            if (h := _get(base + "/healthz")) is not None:
                healthz.append(h[0])
            time.sleep(0.2)  # the scrape interval, not a synchronisation: the loop waits on the process
        assert proc.poll() is not None, "the router did not finish draining within the deadline"
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["consumed"] == N_EVENTS

    assert scrapes, "no /metrics scrape succeeded while the router ran"
    assert set(healthz) == {200}
    lags = [s.get("router_consumer_lag", 0.0) for s in scrapes if "router_consumer_lag" in s]
    assert any(lag > 0 for lag in lags), "no non-zero lag was seen before the router caught up"
    assert lags[-1] == 0, "the lag did not come down to zero once the backlog was drained"

    decided = [s.get("router_decisions_total", 0.0) for s in scrapes]
    assert decided == sorted(decided), "a counter went down"
    assert any(0 < d < N_EVENTS for d in decided), "no scrape caught the decisions counter mid-run"
    last = scrapes[-1]
    if stats["aborts"] == 0:  # a re-processed batch is decided (and counted) again
        assert decided[-1] == N_EVENTS
        assert last.get("router_records_consumed_total", 0) == N_EVENTS
    else:
        assert decided[-1] >= N_EVENTS
    assert last.get("router_batches_total", 0) == stats["commits"] > 0
    assert last.get("router_keys_duration_seconds_count", 0) > 0

    assert 200 in ready_codes, "/readyz never answered ready"
    first_ok = ready_codes.index(200)
    assert set(ready_codes[:first_ok]) <= {503}, "before it is ready, /readyz answers 503"
    # Drained and idle, before it shuts down (the last scrapes may see it give its partitions back):
    # all decided, its three partitions held, not stalled, a fresh verdict, and ready.
    idle = [(s, code, body) for s, code, body in paired
            if s.get("router_decisions_total", 0) >= N_EVENTS and s.get("router_partitions_assigned", 0) == 3]
    assert idle, "no scrape saw the drained router holding its three partitions"
    for s, _code, _body in idle:
        assert s.get("router_stalled", 1) == 0
        assert 0 <= s.get("router_placement_verdict_age_seconds", -1) <= 10  # placement.max_verdict_age_s
    # Each /readyz answer is judged by what it says it saw: the router may give its partitions back
    # (its idle limit reached) between a scrape and the /readyz request that follows it.
    holding = [(code, body) for _s, code, body in idle if len(body.get("partitions", [])) == 3]
    assert holding, f"no /readyz answer saw the drained router holding its three partitions: {idle[-1][2]}"
    for code, body in holding:
        assert code == 200, f"a drained, idle router with its partitions stays ready: {body.get('reasons')}"


def _wait_ready(base: str, want: int, proc: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    """Until /readyz answers ``want``; its JSON body. Fails if the router exits first."""
    deadline = time.monotonic() + timeout
    while True:
        got = _get(base + "/readyz")
        if got is not None and got[0] == want:
            body: dict[str, Any] = json.loads(got[1])
            return body
        assert proc.poll() is None, f"the router exited ({proc.returncode}) before /readyz answered {want}"
        assert time.monotonic() < deadline, f"/readyz never answered {want}: last {got}"
        time.sleep(0.2)


def test_readyz_turns_not_ready_while_openbao_is_stopped_and_ready_again_after(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, openbao_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenBao frozen (SIGSTOP: its calls time out; its in-memory keys survive) under a running
    router with transit KEKs: /readyz answers 503 naming the stall while records wait, and 200 again
    once OpenBao answers (SIGCONT); every record then lands exactly once."""
    import os
    import signal

    from tests.integration.test_faults_kms import TOKEN_ENV
    from tests.integration.test_router_e2e import load_samples
    from tests.integration.test_router_resilience import _exactly_once

    server = openbao_factory()
    for j in ("eu", "us"):
        server.client().secrets.transit.create_key(f"rr-{j}")
    monkeypatch.setenv(TOKEN_ENV, server.token)
    port = _free_port()
    keys = {
        "providers": {"bao": {"type": "openbao", "url": server.url, "ca_file": str(server.ca_file),
                              "token_env": TOKEN_ENV, "timeout_s": 1.0}},
        "jurisdictions": {"eu": {"provider": "bao", "key": "rr-eu"}, "us": {"provider": "bao", "key": "rr-us"}},
        "signer": {"keyring": str(tmp_path / "keyring.json")},
        "data_keys": {"max_records": 20},
    }
    env = make_env(kafka_cluster, kafka_admin, tmp_path, extra={
        "keys": keys, "telemetry": {"metrics_address": f"127.0.0.1:{port}", "lag_interval_s": 0.5}})
    base = f"http://127.0.0.1:{port}"
    load_samples(env, n=200, seed=61)
    proc = subprocess.Popen(router_cmd(env, "r", 20.0), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(base, 200, proc)
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            load_samples(env, n=200, seed=62)
            body = _wait_ready(base, 503, proc)
            assert any("stalled" in r or "key" in r for r in body["reasons"]), body
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        _wait_ready(base, 200, proc)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert server.token not in err
    _exactly_once(env, 400)
