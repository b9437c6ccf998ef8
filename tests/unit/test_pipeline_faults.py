"""Fault points (router/pipeline/faults.py, ROUTER_FAULT): parsing, and that each step's kill, stop
or raise lands where it is named. Kills and stops run the engine over the in-memory Kafka fakes in a
child process that logs every client call to stdout before making it, so the test sees which call
was the last one before the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from router.errors import ConfigError
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine
from router.pipeline.faults import ENV, STEPS, FaultPoints
from tests.unit.fake_kafka import FakeCluster, wire_engine

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# The child: 3 transactions of 4 records each over the fakes; every fake client call is written to
# stdout (unbuffered) before it is made (CALL) and once it returned (RET, with the number of
# transactions committed by then).
CHILD = """
import os, sys
from router.pipeline import engine as engine_mod
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine
from tests.unit.fake_kafka import FakeCluster

cluster = FakeCluster()
cluster.add_input("in", 0, [b"v%d" % i for i in range(12)])
check = cluster._check
def logged(call, txn, **kw):
    os.write(1, f"CALL {call} txn={txn}\\n".encode())
    check(call, txn, **kw)
    os.write(1, f"RET {call} txn={txn} committed={len(cluster.committed)}\\n".encode())
cluster._check = logged
engine_mod.Producer = cluster.producer
engine_mod.Consumer = cluster.consumer
settings = EngineSettings({"bootstrap.servers": "fake:9092"}, ["in"], "g", "t", batch_size=4, commit_interval_ms=0)
TransactionalEngine(settings, CopyProcessor("out"), sleep=lambda _s: None).run(until=lambda _s: cluster.done())
os.write(1, f"DONE committed={len(cluster.committed)} outputs={len(cluster.outputs('out'))}\\n".encode())
"""


def _child(fault: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, ENV: fault, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


# -- parsing ------------------------------------------------------------------------------------


def test_unset_or_empty_means_no_fault_points() -> None:
    assert FaultPoints.from_env({}) is None
    assert FaultPoints.from_env({ENV: ""}) is None
    assert FaultPoints.from_env({ENV: "  "}) is None


def test_a_list_of_entries_is_parsed_with_counts_flags_and_codes() -> None:
    fp = FaultPoints.from_env(
        {ENV: "after_begin:kill, before_commit:raise=NOT_ENOUGH_REPLICAS/abortable@3+,in_rebalance:stop@2,"
              "after_commit:raise=_TIMED_OUT/retriable/fatal@4"}
    )
    assert fp is not None
    got = [(f.step, f.action, f.n, f.onwards, f.code, f.retriable, f.abortable, f.fatal) for f in fp.faults]
    assert got == [
        ("after_begin", "kill", 1, False, 0, False, False, False),
        ("before_commit", "raise=NOT_ENOUGH_REPLICAS/abortable", 3, True, 19, False, True, False),
        ("in_rebalance", "stop", 2, False, 0, False, False, False),
        ("after_commit", "raise=_TIMED_OUT/retriable/fatal", 4, False, -185, True, False, True),
    ]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("after_bgin:kill", "unknown step 'after_bgin'"),
        ("after_begin:explode", "syntax"),
        ("after_begin:kill@0", "syntax"),
        ("after_begin:kill@x", "syntax"),
        ("after_begin", "syntax"),
        ("after_begin:raise=NO_SUCH_CODE", "'NO_SUCH_CODE' is not a confluent_kafka.KafkaError code name"),
        ("after_begin:raise=", "syntax"),
        ("after_begin:raise=_TIMED_OUT/sometimes", "unknown flag 'sometimes'"),
        (",", "empty"),
    ],
)
def test_a_malformed_value_is_a_config_error_naming_the_variable(spec: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        FaultPoints.from_env({ENV: spec})
    message = str(info.value)
    assert message.startswith(f"{ENV}: ")
    assert named in message


def test_a_malformed_value_stops_the_engine_at_construction() -> None:
    settings = EngineSettings({"bootstrap.servers": "-"}, ["in"], "g", "t")
    with pytest.raises(ConfigError, match=ENV):
        TransactionalEngine(settings, CopyProcessor("out"), environ={ENV: "before_commit:kill@"})


def test_raise_fires_on_the_nth_arrival_and_from_n_on_with_plus(capfd: pytest.CaptureFixture[str]) -> None:
    fp = FaultPoints("after_produce:raise=MSG_SIZE_TOO_LARGE@2,before_commit:raise=_TIMED_OUT/retriable@3+")
    fired: dict[str, list[int]] = {"after_produce": [], "before_commit": []}
    for step, hits in fired.items():
        for n in range(1, 6):
            try:
                fp.hit(step)
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                hits.append(n)
                assert (err.code(), err.retriable(), err.fatal(), err.txn_requires_abort()) == (
                    (KafkaError.MSG_SIZE_TOO_LARGE, False, False, False)
                    if step == "after_produce"
                    else (KafkaError._TIMED_OUT, True, False, False)
                )
                assert ENV in err.str()
    assert fired == {"after_produce": [2], "before_commit": [3, 4, 5]}
    fp.hit("after_begin")  # no fault planned there: silent
    assert capfd.readouterr().err.splitlines() == [
        "FAULT after_produce #1 pass",
        "FAULT after_produce #2 raise=MSG_SIZE_TOO_LARGE",
        "FAULT after_produce #3 pass",
        "FAULT after_produce #4 pass",
        "FAULT after_produce #5 pass",
        "FAULT before_commit #1 pass",
        "FAULT before_commit #2 pass",
        "FAULT before_commit #3 raise=_TIMED_OUT/retriable",
        "FAULT before_commit #4 raise=_TIMED_OUT/retriable",
        "FAULT before_commit #5 raise=_TIMED_OUT/retriable",
    ]


# -- kill and stop land where they are named ------------------------------------------------------

# step -> (the last client call that returned before the kill, transactions committed by then) for
# "@2": the second time the step is reached (in_rebalance: the only assignment, so "@1").
LANDS = {
    "after_begin": ("begin_transaction txn=2", 1),
    "after_produce": ("produce txn=2", 1),
    "after_send_offsets": ("send_offsets_to_transaction txn=2", 1),
    "before_commit": ("send_offsets_to_transaction txn=2", 1),
    "after_commit": ("commit_transaction txn=2", 2),
    "in_rebalance": ("init_transactions txn=0", 0),
}


@pytest.mark.parametrize("step", STEPS)
def test_kill_lands_at_its_step_and_is_logged_before(step: str) -> None:
    n = 1 if step == "in_rebalance" else 2
    child = _child(f"{step}:kill@{n}")
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    lines = err.decode().splitlines()
    assert lines[-1] == f"FAULT {step} #{n} kill"
    assert [line for line in lines if line.startswith("FAULT")] == [
        *(f"FAULT {step} #{i} pass" for i in range(1, n)), f"FAULT {step} #{n} kill"
    ]
    calls = out.decode().splitlines()
    assert not any(c.startswith("DONE") for c in calls)
    last_call, committed = LANDS[step]
    assert calls[-1] == f"RET {last_call} committed={committed}"


def test_stop_suspends_at_its_step_and_the_run_goes_on_after_sigcont() -> None:
    child = _child("after_send_offsets:stop@2")
    _pid, status = os.waitpid(child.pid, os.WUNTRACED)  # returns once the child has stopped itself
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
    os.kill(child.pid, signal.SIGCONT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()
    assert "FAULT after_send_offsets #2 stop" in err.decode().splitlines()
    assert out.decode().splitlines()[-1] == "DONE committed=3 outputs=12"


# -- raise goes through the engine's error model ------------------------------------------------------


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    return wire_engine(FakeCluster(), monkeypatch)


def _run(cluster: FakeCluster, fault: str) -> TransactionalEngine:
    cluster.add_input("in", 0, [b"v%d" % i for i in range(12)])
    settings = EngineSettings({"bootstrap.servers": "fake:9092"}, ["in"], "g", "t", batch_size=4,
                              commit_interval_ms=0, max_retries=2)
    eng = TransactionalEngine(settings, CopyProcessor("out"), wait=lambda _s: None, sleep=lambda _s: None,
                              environ={ENV: fault})
    eng.run(until=lambda _s: cluster.done())
    return eng


def test_an_abortable_error_before_commit_aborts_and_the_batch_is_committed_once(cluster: FakeCluster) -> None:
    eng = _run(cluster, "before_commit:raise=NOT_ENOUGH_REPLICAS/abortable@2")
    assert eng.stats.aborts == 1
    assert [o.value for o in cluster.outputs("out")] == [b"v%d" % i for i in range(12)]


def test_a_fatal_error_after_commit_recreates_the_producer_and_nothing_is_repeated(cluster: FakeCluster) -> None:
    eng = _run(cluster, "after_commit:raise=_TIMED_OUT/fatal@1")
    assert eng.stats.producer_restarts == 1
    assert len(cluster.producers) == 2
    assert [o.value for o in cluster.outputs("out")] == [b"v%d" % i for i in range(12)]


def test_an_error_raised_in_a_rebalance_callback_is_handled_by_the_loop(cluster: FakeCluster) -> None:
    """in_rebalance (on_assign here): a fatal error re-creates the producer before anything is
    consumed; it never surfaces through consume()."""
    eng = _run(cluster, "in_rebalance:raise=_FATAL/fatal@1")
    assert eng.stats.producer_restarts == 1
    assert [o.value for o in cluster.outputs("out")] == [b"v%d" % i for i in range(12)]


def test_a_retriable_error_at_a_step_is_retried_and_the_step_goes_on(cluster: FakeCluster) -> None:
    eng = _run(cluster, "after_send_offsets:raise=_TIMED_OUT/retriable@1")
    assert eng._faults is not None and eng._faults.counts["after_send_offsets"] == 4  # 3 commits + 1 retry
    assert (eng.stats.aborts, eng.stats.producer_restarts) == (0, 0)
    assert len(cluster.committed) == 3
    assert [o.value for o in cluster.outputs("out")] == [b"v%d" % i for i in range(12)]
