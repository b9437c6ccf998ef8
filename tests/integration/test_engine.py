"""The transactional engine delivers each input exactly once to read_committed readers,
through SIGKILL crashes and restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration


def _values(msgs: list[Any]) -> Counter[bytes]:
    return Counter(m.value() for m in msgs)


def test_copy_pipe_delivers_each_record_exactly_once(kafka_cluster: Any, create_topic: Any, unique_group: str) -> None:
    src = create_topic("ingress", partitions=3)
    dst = create_topic("copy", partitions=3)
    n = 2000
    produce_all(kafka_cluster.bootstrap, src, ((f"k{i}".encode(), f"v{i}".encode()) for i in range(n)))
    engine = TransactionalEngine(
        EngineSettings(
            kafka_cluster.client_config(),
            [src],
            unique_group,
            f"tx-{unique_group}",
            batch_size=200,
            commit_interval_ms=50,
            session_timeout_ms=6000,
        ),
        CopyProcessor(dst),
    )
    stats = engine.run(until=lambda s: s.consumed >= n, max_idle_s=20)
    assert stats.consumed == n
    got = _values(read_topic(kafka_cluster.bootstrap, dst))
    assert got == Counter(f"v{i}".encode() for i in range(n))
    assert stats.commits >= 1


def test_sigkill_at_transaction_steps_loses_and_duplicates_nothing(
    kafka_cluster: Any, create_topic: Any, unique_group: str
) -> None:
    """The copy pipe killed inside open transactions (after producing, before committing) and right
    after a commit, each kill logged at its step and landing mid-run, then run to the end:
    read_committed sees every input once."""
    src = create_topic("ingress", partitions=3)
    dst = create_topic("copy", partitions=3)
    n = 5000
    produce_all(kafka_cluster.bootstrap, src, ((f"k{i}".encode(), f"v{i}".encode()) for i in range(n)))
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.copy_pipe_main",
        "--bootstrap",
        kafka_cluster.bootstrap,
        "--source",
        src,
        "--dest",
        dst,
        "--group",
        unique_group,
        "--txid",
        f"tx-{unique_group}",
        "--commit-max-records",
        "300",
    ]
    for fault in ("after_produce:kill@3", "before_commit:kill@2", "after_commit:kill@4"):
        step = fault.split(":")[0]
        # --idle: a fault that never fires ends the run (and fails the test) instead of hanging it
        proc = subprocess.run([*cmd, "--idle", "20"], capture_output=True, text=True, timeout=180, check=False,
                              env={**os.environ, "ROUTER_FAULT": fault})
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert f"FAULT {step} #" in proc.stderr
        assert len(read_topic(kafka_cluster.bootstrap, dst)) < n, "the kill must land before the end of the input"
    final = subprocess.run([*cmd, "--idle", "8"], capture_output=True, text=True, timeout=300, check=False,
                           env={k: v for k, v in os.environ.items() if k != "ROUTER_FAULT"})
    assert final.returncode == 0, final.stderr[-2000:]
    got = _values(read_topic(kafka_cluster.bootstrap, dst))
    dupes = {v: c for v, c in got.items() if c > 1}
    missing = n - len(got)
    assert not dupes and missing == 0, f"{len(dupes)} duplicated, {missing} missing"
