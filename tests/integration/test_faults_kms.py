"""The key service stops answering under a running router (scenario 9 of docs/reliability.md).

OpenBao's dev server keeps its keys in memory, so the outage is a frozen server (SIGSTOP): the
router's calls time out exactly as they would against a host that went silent, and the keys are
still there when it answers again (SIGCONT). While it is silent the router must stall: abort,
leave its offsets, produce nothing, back off; once it answers, resume and finish with every
record landed exactly once, each audited once, every chain verified, and every output opening
under its topic's jurisdiction key (read back through OpenBao).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest_openbao import OpenBaoServer
from tests.integration.router_env import make_env
from tests.integration.test_faults import RouterProcess, _start, routers  # noqa: F401 - fixture
from tests.integration.test_router_e2e import load_samples
from tests.integration.test_router_resilience import _decisions, _exactly_once
from tests.kafka_util import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOKEN_ENV = "RR_TEST_BAO_TOKEN"


def _committed(bootstrap: str, topics: list[str]) -> int:
    return sum(len(read_topic(bootstrap, t)) for t in topics)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.3)


def _lines(r: RouterProcess, pattern: str) -> int:
    rx = re.compile(pattern)
    return sum(1 for line in list(r.lines) if rx.search(line))


def test_openbao_silent_mid_run_stalls_without_output_then_resumes_exactly_once(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess],  # noqa: F811
    openbao_factory: Callable[[], OpenBaoServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = openbao_factory()
    for j in ("eu", "us"):
        server.client().secrets.transit.create_key(f"rr-{j}")
    monkeypatch.setenv(TOKEN_ENV, server.token)
    keys = {
        "providers": {"bao": {"type": "openbao", "url": server.url, "ca_file": str(server.ca_file),
                              "token_env": TOKEN_ENV, "timeout_s": 1.0}},
        "jurisdictions": {"eu": {"provider": "bao", "key": "rr-eu"}, "us": {"provider": "bao", "key": "rr-us"}},
        "signer": {"keyring": str(tmp_path / "keyring.json")},
        "data_keys": {"max_records": 20},  # a new data key every 20 records: the outage is met at once
    }
    env = make_env(kafka_cluster, kafka_admin, tmp_path, extra={"keys": keys})
    outputs = [*env.routed_topics(), *env.quarantine_topics()]

    load_samples(env, n=300, seed=51)
    r = _start(routers, env, idle=20)
    _wait_for(lambda: _decisions(env) == 300, "the first 300 are committed")
    before = _committed(env.bootstrap, outputs)

    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        load_samples(env, n=300, seed=52)
        stall = r"stalling [0-9.]+s, offsets not advanced"
        # two stalls: the first was backed off and retried, and the key service is still silent
        _wait_for(lambda: _lines(r, stall) >= 2, "the router stalled twice", timeout=180)
        assert r.proc.poll() is None, r.stderr[-2000:]
        assert _decisions(env) == 300, "nothing committed while keys are out"
        assert _committed(env.bootstrap, outputs) == before, "no output while keys are out"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)

    assert r.wait(timeout=300) == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and server.token not in r.stderr
    _exactly_once(env, 600)
