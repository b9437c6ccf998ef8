"""Faults on the real cluster: the router killed or frozen at named steps of its transaction, a
destination that cannot take writes, SIGTERM mid-batch. Each test asserts the invariants by ground
truth: every ingress record (read from the ingress topic itself) lands exactly once by source
position, with one audit record, the audit chains verify, and every output opens only under its
topic's jurisdiction (``collect`` opens each record with the key of the topic it sits in).

The router is made to fail through its fault points (``ROUTER_FAULT``, router/pipeline/faults.py):
it logs ``FAULT <step> #<n> <action>`` to stderr and then kills or stops itself, so a test knows
the fault landed at that step. Tests marked ``faults`` run in ``make test-faults``; the others are
the representative subset in ``make test``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from router.audit.record import is_placement_record
from tests.integration.router_env import RouterEnv, make_env, router_cmd
from tests.integration.test_router_e2e import load_samples, run_router
from tests.integration.test_router_resilience import _exactly_once
from tests.kafka_util import read_topic, wait_for_cluster

pytestmark = pytest.mark.integration

STEPS = ("after_begin", "after_produce", "after_send_offsets", "before_commit", "after_commit")
SUBSET = {"before_commit", "after_commit"}
"""Kill steps that also run in ``make test``; every step runs in ``make test-faults``."""


class RouterProcess:
    """One ``residency-router run`` subprocess whose stderr lines are collected as they come."""

    def __init__(self, env: RouterEnv, instance: str = "a", idle: float = 20.0, fault: str | None = None,
                 log_level: str = "WARNING") -> None:
        cmd = router_cmd(env, instance, idle)
        cmd[cmd.index("--log-level") + 1] = log_level
        child_env = dict(os.environ)
        child_env.pop("ROUTER_FAULT", None)
        if fault:
            child_env["ROUTER_FAULT"] = fault
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stdout, self._stdout), daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._changed:
                into.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 120) -> str:
        """The first stderr line matching ``pattern``; fails after ``timeout`` or when the process
        ends without printing one."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    tail = "".join(self.lines[-30:])
                    raise AssertionError(f"no stderr line matching {pattern!r} (exit {self.proc.poll()}):\n{tail}")
                self._changed.wait(min(left, 1.0))

    def wait(self, timeout: float = 240) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=10)
        return rc

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def routers() -> Iterator[list[RouterProcess]]:
    """Router processes started by a test; any still alive at the end are killed."""
    started: list[RouterProcess] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            os.kill(r.proc.pid, signal.SIGCONT)  # a stopped process must run to die cleanly
        r.kill()


def _start(routers: list[RouterProcess], env: RouterEnv, **kw: Any) -> RouterProcess:
    r = RouterProcess(env, **kw)
    routers.append(r)
    return r


@pytest.mark.parametrize(
    "step", [pytest.param(s, marks=() if s in SUBSET else pytest.mark.faults) for s in STEPS]
)
def test_sigkill_at_a_transaction_step_then_restart_is_exactly_once(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess], step: str
) -> None:
    env = make_env(kafka_cluster, kafka_admin, tmp_path)
    n = 1500
    load_samples(env, n=n, seed=21)
    # The second transaction: the first has committed, so the restart resumes from a real offset.
    first = _start(routers, env, fault=f"{step}:kill@2")
    first.wait_for_line(rf"^FAULT {step} #2 kill\b")
    assert first.wait(timeout=60) == -signal.SIGKILL, first.stderr[-2000:]
    committed_before = _audited(env)
    assert 0 < committed_before < n, "the kill must land after one commit and before the end"
    run_router(env, idle=8)
    _exactly_once(env, n)


@pytest.mark.faults
def test_sigkill_in_a_rebalance_then_the_other_instance_finishes_exactly_once(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=4)
    n = 3000
    load_samples(env, n=n, seed=22)
    # #1 is the first assignment; #2 is the revocation when the second instance joins.
    a = _start(routers, env, instance="a", fault="in_rebalance:kill@2")
    a.wait_for_line(r"^FAULT in_rebalance #1 ")
    b = _start(routers, env, instance="b", idle=10)
    a.wait_for_line(r"^FAULT in_rebalance #2 kill\b")
    assert a.wait(timeout=60) == -signal.SIGKILL
    assert b.wait(timeout=300) == 0, b.stderr[-2000:]
    _exactly_once(env, n)


def test_sigterm_mid_batch_finishes_the_transaction_and_exits_zero(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    env = make_env(kafka_cluster, kafka_admin, tmp_path)
    n = 1500
    load_samples(env, n=n, seed=23)
    # Frozen after producing the second batch, so SIGTERM arrives with a transaction open.
    r = _start(routers, env, fault="after_produce:stop@2", idle=60)
    r.wait_for_line(r"^FAULT after_produce #2 stop\b")
    _wait_until_stopped(r.proc.pid)
    os.kill(r.proc.pid, signal.SIGTERM)
    os.kill(r.proc.pid, signal.SIGCONT)
    assert r.wait(timeout=120) == 0, r.stderr[-2000:]
    committed = _audited(env)
    assert 0 < committed < n, "SIGTERM must stop the run before the end of the input"
    run_router(env, idle=8)
    _exactly_once(env, n)


def _wait_until_stopped(pid: int, timeout: float = 30) -> None:
    """Until the kernel reports ``pid`` stopped (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in {"T", "t"}:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop in {timeout} s")


def _set_topic_config(admin: Any, topic: str, key: str, value: str) -> None:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                         incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result()


@pytest.mark.faults
@pytest.mark.parametrize("resume", ["before_its_transaction_times_out", "after_the_other_instance_committed"])
def test_a_zombie_frozen_before_its_commit_cannot_duplicate_or_fork_the_audit_chain(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess], resume: str
) -> None:
    """Instance a freezes (SIGSTOP) with a transaction open, just before committing it. Instance b
    takes its partitions once a's session times out, reading the chain tails while a's transaction
    is still open. a is then resumed, either before its transaction times out (its commit may
    still land) or once b has committed past it (a is long fenced): either way each record lands
    once and every chain has one unbroken sequence."""
    from tests.integration.test_router_resilience import _wait_for_a_commit_by, _wait_for_members

    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=2)
    n = 1500
    load_samples(env, n=n, seed=25)
    group = env.config.pipeline.group_id  # type: ignore[union-attr]
    a = _start(routers, env, instance="a", fault="before_commit:stop@2", idle=20)
    a.wait_for_line(r"^FAULT before_commit #2 stop\b")
    _wait_until_stopped(a.proc.pid)
    b = _start(routers, env, instance="b", idle=20)
    # a is evicted after session.timeout.ms; b then owns every partition and reads the tails.
    _wait_for_members(kafka_admin, group, 1)
    if resume == "after_the_other_instance_committed":
        _wait_for_a_commit_by(env, "b")
    os.kill(a.proc.pid, signal.SIGCONT)
    assert b.wait(timeout=300) == 0, b.stderr[-2000:]
    a.wait(timeout=300)  # fenced (non-zero) or done (0): both are fine, its output is what counts
    _exactly_once(env, n)


# -- broker faults: a cluster of the module's own, so that killing brokers disturbs no other test --

@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    """(cluster for make_env, admin client, DevCluster) of a 3-node dev cluster for this module."""
    from confluent_kafka.admin import AdminClient

    from router.devtools.devcluster.launcher import DevCluster
    from tests.conftest import KafkaTestCluster

    if os.environ.get("ROUTER_TEST_BOOTSTRAP") or os.environ.get("ROUTER_TEST_CLUSTER"):
        pytest.skip("broker faults need the project's own dev cluster (they kill and restart its nodes)")
    state = tmp_path_factory.mktemp("faultcluster")
    dev = DevCluster(state)
    try:
        info = dev.up()
        cluster = KafkaTestCluster(info.bootstrap, {n.node_id: n.rack for n in info.nodes}, "devcluster", state)
        yield cluster, AdminClient(cluster.client_config()), dev
    finally:
        dev.down()


def _wait_for_isr(admin: Any, topic: str, size: int, timeout: float = 60) -> None:
    """Until every partition of ``topic`` has exactly ``size`` in-sync replicas (a metadata request
    that fails, as one to a broker the test has just killed does, is asked again)."""
    def isrs(md: Any) -> str:
        return f"in-sync replicas {[sorted(p.isrs) for p in md.partitions.values()]}" if md is not None else "no topic"

    wait_for_cluster(
        lambda: admin.list_topics(topic, timeout=10).topics.get(topic),
        lambda md: md is not None and md.error is None and bool(md.partitions)
        and all(len(p.isrs) == size for p in md.partitions.values()),
        what=f"{topic} did not reach {size} in-sync replicas per partition", timeout=timeout, show=isrs,
    )


def _set_pipeline(env: RouterEnv, **settings: Any) -> None:
    """Add ``pipeline`` settings to the environment's config file."""
    import yaml

    doc = yaml.safe_load(env.config_path.read_text())
    doc["pipeline"].update(settings)
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _audited(env: RouterEnv) -> int:
    """Committed decisions (one audit record per input; the placement records not counted)."""
    return sum(not is_placement_record(m.value()) for m in read_topic(env.bootstrap, env.audit_topic, timeout=30))


def _stacks(router: RouterProcess | None) -> str:
    """Where a router that makes no progress waits: every thread's stack (SIGUSR1, written by
    faulthandler to its stderr), for the failure message."""
    if router is None or router.proc.poll() is not None:
        return ""
    before = len(router.lines)
    os.kill(router.proc.pid, signal.SIGUSR1)
    try:
        router.wait_for_line(r"^(Current thread|Thread) 0x", timeout=10)
    except AssertionError:
        return "\n(no stack dump)"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(router.lines) < before + 40:
        time.sleep(0.1)  # the dump arrives in pieces; take what came within two seconds
    return "\n-- stacks --\n" + "".join(router.lines[before:])[-8000:]


def _wait_for_progress(env: RouterEnv, beyond: int, timeout: float = 120, router: RouterProcess | None = None) -> int:
    """Until more than ``beyond`` audit records are committed; returns how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _audited(env)
        if now > beyond:
            return now
        time.sleep(0.5)
    if router is None:
        raise AssertionError(f"no commit beyond {beyond} audit records in {timeout} s")
    stacks = _stacks(router)
    kept = env.config_path.parent / f"router-{router.proc.pid}.stderr"
    kept.write_text(router.stderr)  # the whole of it; the message keeps only its end
    raise AssertionError(
        f"no commit beyond {beyond} audit records in {timeout} s (the router's stderr: {kept})\n"
        f"{router.stderr[-3000:]}{stacks}"
    )


@pytest.mark.faults
def test_min_insync_replicas_unmet_stalls_with_a_clear_reason_and_resumes(
    own_cluster: tuple[Any, Any, Any], tmp_path: Path, routers: list[RouterProcess]
) -> None:
    cluster, admin, dev = own_cluster
    eu = cluster.brokers_in("eu-")
    if len(eu) < 2:
        pytest.skip("needs two eu-* brokers (eu topics with two replicas)")
    env = make_env(cluster, admin, tmp_path)
    blocked = f"crm.eu.contact.{env.suffix}"
    _set_topic_config(admin, blocked, "min.insync.replicas", "2")
    n = 300
    load_samples(env, n=n, seed=24)
    r = _start(routers, env, idle=30, log_level="INFO")
    _wait_for_progress(env, n - 1, router=r)  # running, every topic placed and writable
    dev.kill_node(eu[1])  # the destination keeps one in-sync replica of the two it needs
    try:
        _wait_for_isr(admin, blocked, 1)
        load_samples(env, n=300, seed=124)
        n += 300
        # The log names the partitions whose writes failed and why: their deliveries failed, or the
        # transaction coordinator aborted the transaction they kept open past transaction.timeout.ms
        # (whichever timer fires first). The escalation ERROR that names min.insync.replicas is
        # unit-tested: once the abort itself cannot complete, the new producer waits in
        # init_transactions until the replicas return.
        topic = re.escape(blocked)
        r.wait_for_line(rf"level=WARNING.*({topic}\[\d\] (NOT_ENOUGH_REPLICAS|_MSG_TIMED_OUT)"
                        rf"|writes to .*{topic}\[\d\].* were unacknowledged.*min\.insync\.replicas)",
                        timeout=240)
        assert r.proc.poll() is None, "the router stalls; it does not exit"
        assert _audited(env) < n
    finally:
        dev.start_node(eu[1])
    assert r.wait(timeout=300) == 0, r.stderr[-2000:]
    _exactly_once(env, n)


@pytest.mark.faults
def test_coordinators_and_leaders_killed_in_turn_lose_and_duplicate_nothing(
    own_cluster: tuple[Any, Any, Any], tmp_path: Path, routers: list[RouterProcess]
) -> None:
    """SIGKILL the group coordinator's broker mid-run, then every broker in turn (a rolling restart
    that takes down the transaction coordinator and each partition leader), the router running
    throughout; each broker is back before the next goes."""
    cluster, admin, dev = own_cluster
    env = make_env(cluster, admin, tmp_path)
    n = 400
    load_samples(env, n=400, seed=26)
    r = _start(routers, env, idle=30, log_level="INFO")
    group = env.config.pipeline.group_id  # type: ignore[union-attr]
    seen = _wait_for_progress(env, 0, router=r)
    coordinator = admin.describe_consumer_groups([group], request_timeout=30)[group].result().coordinator.id
    order = [coordinator] + [b for b in sorted(cluster.racks) if b != coordinator]
    for i, broker in enumerate(order):
        dev.kill_node(broker)
        load_samples(env, n=300, seed=100 + i)  # new input while the broker is down
        n += 300
        # The router runs through the outage (it may stall: single-replica topics on that broker
        # cannot take writes); its placement watch sees the broker go.
        r.wait_for_line(rf"broker {broker} offline", timeout=120)
        dev.start_node(broker)
        seen = _wait_for_progress(env, seen, timeout=240, router=r)
        load_samples(env, n=100, seed=200 + i)
        n += 100
    assert r.wait(timeout=400) == 0, r.stderr[-2000:]
    _exactly_once(env, n)


# -- several ingress topics, two instances ----------------------------------------------------

def _positions_exactly_once(env: RouterEnv, ingress: list[str]) -> list[Any]:
    """Every record of the ``ingress`` topics (ground truth: the topics themselves) has exactly one
    output (routed, quarantined or audit-only) and one audit record, by (topic, partition, offset);
    every audit chain verifies. Returns the decoded audit records."""
    from collections import Counter

    from router.audit.chain import verify_chain
    from router.audit.record import decode_audit
    from router.envelope import Opener
    from router.keys.factory import build_jurisdiction_keys, build_public_keys
    from router.quarantine.record import decode_quarantine

    inputs = {(t, m.partition(), m.offset()) for t in ingress for m in read_topic(env.bootstrap, t)}
    keys = build_jurisdiction_keys(env.config.keys)  # type: ignore[arg-type]
    opener = Opener(keys, build_public_keys(env.config.keys))  # type: ignore[arg-type]
    placed = {t.name: t.jurisdiction for t in env.config.topics}
    outputs: Counter[tuple[str, int, int]] = Counter()
    for topic in env.routed_topics():
        if topic in ingress:
            continue
        for m in read_topic(env.bootstrap, topic):
            if m.value() is None:
                continue
            ctx = opener.open(m.value(), m.headers(), topic=topic, partition=m.partition(),
                              expected_jurisdiction=placed[topic]).ctx
            outputs[(ctx.source_topic, ctx.source_partition, ctx.source_offset)] += 1
    for topic in env.quarantine_topics():
        for m in read_topic(env.bootstrap, topic):
            rec = decode_quarantine(m.value())
            outputs[(rec.source_topic, rec.source_partition, rec.source_offset)] += 1
    audit_values = [(m.partition(), m.offset(), m.value()) for m in read_topic(env.bootstrap, env.audit_topic)]
    audited: Counter[tuple[str, int, int]] = Counter()
    decoded = []
    for _p, _o, value in audit_values:
        if is_placement_record(value):
            continue
        f = decode_audit(value).fields
        decoded.append(f)
        audited[(f.source_topic, f.source_partition, f.source_offset)] += 1
        if f.decision == "audit_only":
            outputs[(f.source_topic, f.source_partition, f.source_offset)] += 1
    assert set(audited) == inputs and all(c == 1 for c in audited.values()), "one audit record per input"
    dupes = [k for k, c in outputs.items() if c > 1]
    missing = inputs - set(outputs)
    assert not dupes and not missing, f"{len(dupes)} duplicated, {len(missing)} missing"
    report = verify_chain(audit_values)
    assert report.ok, report
    return decoded


def test_ingress_topics_of_unequal_partition_counts_and_two_instances_keep_one_writer_per_chain(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    """Ingress A has 2 partitions, B has 3; with two instances the range assignor gives A[i] and
    B[i] to different instances. Each chain (one per ingress partition) must have one writer at a
    time: every chain verifies, every record lands once."""
    import yaml

    from router.placement.kafka import create_topics, wait_for_topics
    from tests.integration.test_router_resilience import _wait_for_members

    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=2)
    doc = yaml.safe_load(env.config_path.read_text())
    second = f"crm.ingress.b.{env.suffix}"
    ingress_entry = dict(doc["pipeline"]["ingress"][0])
    doc["topics"].append({**next(t for t in doc["topics"] if t["name"] == env.ingress), "name": second,
                          "partitions": 3})
    doc["pipeline"]["ingress"].append({**ingress_entry, "topic": second})
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    from router.config.loader import parse_config

    env.config = parse_config(doc, str(env.config_path))
    create_topics(env.config, kafka_admin)
    wait_for_topics(kafka_admin, [second], timeout=30)

    from router.ingest.samples import generate
    from tests.kafka_util import produce_all

    a = _start(routers, env, instance="a", idle=20)
    b = _start(routers, env, instance="b", idle=20)
    _wait_for_members(kafka_admin, env.config.pipeline.group_id, 2)  # type: ignore[union-attr]
    for topic, seed in ((env.ingress, 31), (second, 32)):
        produce_all(env.bootstrap, topic, ((r.key, r.value) for r in generate(1200, seed=seed)))
    assert a.wait(timeout=300) == 0, a.stderr[-2000:]
    assert b.wait(timeout=300) == 0, b.stderr[-2000:]
    audit = _positions_exactly_once(env, [env.ingress, second])
    writers = {f.instance_id for f in audit}
    assert writers == {"a", "b"}, f"both instances should have processed a share: {writers}"


@pytest.mark.faults
def test_a_second_instance_with_the_same_transactional_id_fences_the_first_which_exits_clearly(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    """Two processes started with the same ``--instance-id`` share one ``transactional.id``. The
    second one's ``init_transactions`` fences the first: its next transactional call fails as
    fenced, it exits 2 with an error naming the cause, and whatever it left open is aborted. The
    second one finishes the input: every record lands once, every chain verifies."""
    from router.ingest.samples import generate
    from tests.integration.test_router_resilience import _wait_for_a_commit_by
    from tests.kafka_util import produce_all

    env = make_env(kafka_cluster, kafka_admin, tmp_path)
    total = 1000
    load_samples(env, n=total, seed=41)
    first = _start(routers, env, instance="a", idle=120)
    _wait_for_a_commit_by(env, "a")
    second = _start(routers, env, instance="a", idle=15)
    # New input until the first instance has met the fence: each of its transactions after the
    # second's init_transactions fails. Bounded, so a router that never notices fails the test.
    seed = 42
    deadline = time.monotonic() + 180
    while first.proc.poll() is None:
        assert time.monotonic() < deadline, "the first instance was never fenced:\n" + first.stderr[-2000:]
        produce_all(env.bootstrap, env.ingress, ((r.key, r.value) for r in generate(100, seed=seed)))
        total += 100
        seed += 1
        try:
            first.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            continue
    assert first.wait(timeout=60) == 2, first.stderr[-3000:]
    assert re.search(r"fenced .*another producer took over", first.stderr), first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert second.wait(timeout=300) == 0, second.stderr[-2000:]
    _exactly_once(env, total)


@pytest.mark.faults
def test_a_destination_deleted_mid_run_diverts_and_loses_nothing(
    kafka_cluster: Any, kafka_admin: Any, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    """A routed destination is deleted while the router runs: records for it are quarantined
    (PLACEMENT_VIOLATION, its placement is MISSING) and the router neither crashes nor stops;
    every input after the deletion has exactly one surviving output."""
    from router.quarantine.record import decode_quarantine

    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1)
    load_samples(env, n=300, seed=27)
    r = _start(routers, env, idle=20, log_level="INFO")
    _wait_for_progress(env, 299, router=r)
    gone = f"crm.us.contact.{env.suffix}"
    kafka_admin.delete_topics([gone], request_timeout=30)[gone].result()
    load_samples(env, n=600, seed=28)
    assert r.wait(timeout=300) == 0, r.stderr[-2000:]
    # Outputs of the first 300 records that went to the deleted topic went with it: check from 300 on.
    env.config.topics[:] = [t for t in env.config.topics if t.name != gone]
    inputs = {(m.partition(), m.offset()) for m in read_topic(env.bootstrap, env.ingress) if m.offset() >= 300}
    from tests.integration.test_router_e2e import collect

    out = collect(env)
    got = [(p, o) for p, o, *_ in out["routed"] + out["quarantined"] + out["audit_only"] if o >= 300]
    assert sorted(got) == sorted(inputs), "every record after the deletion has exactly one output"
    violations = [m for m in read_topic(env.bootstrap, f"quarantine.us.{env.suffix}")
                  if decode_quarantine(m.value()).reason == "PLACEMENT_VIOLATION"]
    assert violations, "us contacts after the deletion are quarantined"


# -- a network partition between the router and every broker, at EndTxn ------------------------

END_TXN = 26
"""Kafka API key of EndTxn (the commit or abort request)."""


@pytest.fixture(scope="module")
def proxied_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any, str]]:
    """(cluster for make_env, admin around the proxies, ProxyControl, bootstrap around the proxies)
    of a 3-node dev cluster whose client listeners are fronted by fault proxies."""
    from confluent_kafka.admin import AdminClient

    from router.devtools.devcluster.launcher import DevCluster
    from router.devtools.netproxy import ProxyControl
    from tests.conftest import KafkaTestCluster

    if os.environ.get("ROUTER_TEST_BOOTSTRAP") or os.environ.get("ROUTER_TEST_CLUSTER"):
        pytest.skip("the fault proxies front the project's own dev cluster only")
    dev = DevCluster(tmp_path_factory.mktemp("proxycluster"))
    try:
        info = dev.up(proxy=True)
        assert info.proxy is not None
        cluster = KafkaTestCluster(info.bootstrap, {n.node_id: n.rack for n in info.nodes}, "devcluster")
        direct = info.direct_bootstrap
        yield cluster, AdminClient({"bootstrap.servers": direct}), ProxyControl(info.proxy.control), direct
    finally:
        dev.down()


@pytest.mark.faults
def test_a_partition_that_swallows_the_end_txn_answer_loses_and_duplicates_nothing(
    proxied_cluster: tuple[Any, Any, Any, str], tmp_path: Path, routers: list[RouterProcess]
) -> None:
    """The router's EndTxn reaches the coordinator, then every answer from every broker is held
    (the router is cut off from the cluster): the brokers commit while the router cannot know it.
    After the partition heals the router must go on from what is committed: every record once,
    chains intact."""
    cluster, admin, proxy, direct = proxied_cluster
    env = make_env(cluster, admin, tmp_path)
    n = 1500
    load_samples(env, n=n, seed=29)
    r = _start(routers, env, idle=20, log_level="INFO")
    try:
        _wait_for_progress(env, n - 1, router=r)
        proxy.arm(END_TXN, "blackhole", direction="downstream")
        load_samples(env, n=500, seed=30)  # the next transaction's EndTxn trips the partition
        n += 500
        deadline = time.monotonic() + 120
        while not proxy.status()["trigger"]["fired"]:
            assert time.monotonic() < deadline, "no EndTxn passed the proxies"
            time.sleep(0.2)
        # Seen around the proxies: the transaction whose answer is held did commit.
        deadline = time.monotonic() + 120
        while sum(not is_placement_record(m.value())
                  for m in read_topic(direct, env.audit_topic, timeout=30)) <= 1500:
            assert time.monotonic() < deadline, "the held transaction never committed on the brokers"
            time.sleep(0.5)
        assert r.proc.poll() is None
    finally:
        proxy.disarm()
        proxy.set_mode("pass")
    assert r.wait(timeout=300) == 0, r.stderr[-2000:]
    _exactly_once(env, n)
