"""The transactional engine delivers each input exactly once to read_committed readers,
through SIGKILL crashes and restarts."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
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


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    kafka_cluster: Any, create_topic: Any, unique_group: str
) -> None:
    src = create_topic("ingress", partitions=3)
    dst = create_topic("copy", partitions=3)
    n = 20000
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
    ]
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd)
        time.sleep(rng.uniform(2.5, 5.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = subprocess.run([*cmd, "--idle", "8"], capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= 2, "the pipe finished before it could be killed; raise n"
    committed = read_topic(kafka_cluster.bootstrap, dst)
    got = _values(committed)
    dupes = {v: c for v, c in got.items() if c > 1}
    missing = n - len(got)
    assert not dupes and missing == 0, f"{len(dupes)} duplicated, {missing} missing"
    # Aborted work exists on the log but is invisible to read_committed readers.
    everything = read_topic(kafka_cluster.bootstrap, dst, isolation="read_uncommitted")
    assert len(everything) >= len(committed)
