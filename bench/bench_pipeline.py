"""Pipeline benchmark (issue 7): the router against a plain transactional copy, same cluster, same run.

Every variant is a subprocess command that consumes a fresh ingress topic in a fresh consumer
group, exits after ``--max-idle-s`` without input and prints its stats as one JSON line:

- ``baseline``: ``bench/worker_baseline.py`` (TransactionalEngine + CopyProcessor, router defaults);
- ``router``: ``python -m router.cli run --config <cfg> --bootstrap <b> --instance-id <id>
  --max-idle-s <x> --stats-json``, with a config generated from ``examples/router.yaml``;
- ``... x2``: two instances of the same command in one group.

Throughput: the workers start first and the harness waits until the group is stable; then the
N events are written in ONE producer transaction, so they become visible to the read_committed
workers all at once (a full backlog, no rebalance while measuring). The harness polls the group's
committed offsets: events/s and CPU are taken between the first and the last commit it observes,
so start-up, group join and the idle tail are excluded. Peak RSS comes from ``wait4``.
Variants alternate run by run, so drift on this shared machine hits all of them alike.

Latency (see ``docs/performance.md``): at a fixed ``--latency-rate`` (1,000/s) and at ``--latency-load``
(70 %) of each variant's median events/s, a paced producer process (``worker_paced.py``) sends
pre-generated records on a timeline fixed up front; a read_committed reader process
(``worker_visibility.py``) records when each output becomes visible; outputs are matched to inputs
by the ``bench-seq`` header (baseline) or by the source position the router writes into the
envelope, quarantine and audit records. Latency = visibility of an input's last output - its
scheduled time. The schedule starts once the workers have committed a priming record per
partition (start-up is not latency); its first ``--latency-warmup-s`` are not counted. The floor
(commit interval, consume timeout, linger) is printed, and the baseline's p99 at the fixed load
checks the harness itself.

Without ``ROUTER_BENCH_BOOTSTRAP`` a dev cluster is started in a temporary state directory and
stopped at the end. The last line printed is ``router/baseline = X.XX`` (or ``n/a``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
import json
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from router.devtools.demo import DEMO_RACKS
from router.devtools.devcluster.launcher import DevCluster
from router.keys.local import LocalKeyring

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker_paced import EVENT_SOURCE, generate

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable


# -- cluster -------------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """``$ROUTER_BENCH_BOOTSTRAP``, else a dev cluster of its own in a temp dir, stopped on exit."""
    if bootstrap := os.environ.get("ROUTER_BENCH_BOOTSTRAP"):
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="router-bench-cluster-") as state:
        dc = DevCluster(Path(state) / "dc")
        log(f"starting a dev cluster in {state} ...")
        # the example config's jurisdictions (eu, uk, us, ch) each need brokers for their topics
        info = dc.up(DEMO_RACKS, heap_mb=384)
        try:
            yield info.bootstrap
        finally:
            log("stopping the dev cluster")
            dc.down()


def ru_unknown() -> Any:
    """A stand-in rusage for a worker whose exit status Popen collected first (peak RSS unknown)."""
    return types.SimpleNamespace(ru_maxrss=0, ru_utime=0.0, ru_stime=0.0)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ingress_brokers(bootstrap: str, config: Path) -> list[int]:
    """Ids of the brokers in the jurisdiction of the config's first ingress topic."""
    from router.config.loader import load_config  # noqa: PLC0415

    cfg = load_config(config)
    if cfg.pipeline is None or not cfg.pipeline.ingress:
        return []
    want = cfg.pipeline.ingress[0].jurisdiction
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held: a collected client destroys its pending future
    nodes = admin.describe_cluster(request_timeout=30).result().nodes
    return sorted(n.id for n in nodes if cfg.jurisdiction_of_rack(n.rack) == want)


INGRESS_TOPIC_CONFIG = {"retention.ms": "3600000", "segment.ms": "600000", "cleanup.policy": "delete"}
"""Within the default ``pipeline.ingress[].max_retention`` (6h), which ``run`` checks on its ingress topics."""


class Topics:
    """Creates uuid-named topics and deletes every one of them at the end."""

    def __init__(self, bootstrap: str, partitions: int, rf: int, brokers: list[int] | None = None) -> None:
        self.admin: Any = AdminClient({"bootstrap.servers": bootstrap})
        self.partitions, self.rf = partitions, rf
        self.brokers = brokers or []
        """Brokers every replica must sit on (the router checks that its ingress topic is in its jurisdiction)."""
        self.created: list[str] = []

    def create(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        if self.brokers:
            rf = min(self.rf, len(self.brokers))
            plan = [[self.brokers[(p + r) % len(self.brokers)] for r in range(rf)] for p in range(self.partitions)]
            new = NewTopic(name, num_partitions=len(plan), replica_assignment=plan, config=dict(INGRESS_TOPIC_CONFIG))
        else:
            new = NewTopic(name, self.partitions, self.rf, config=dict(INGRESS_TOPIC_CONFIG))
        self.admin.create_topics([new], request_timeout=30)[name].result()
        self.created.append(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until every partition has a leader in metadata
            md = self.admin.list_topics(name, timeout=10).topics.get(name)
            if md is not None and md.error is None and len(md.partitions) == self.partitions and all(
                p.leader >= 0 for p in md.partitions.values()
            ):
                break
            time.sleep(0.1)
        return name

    def delete(self, names: list[str]) -> None:
        names = [n for n in names if n in self.created]
        if not names:
            return
        for name, fut in self.admin.delete_topics(names, request_timeout=30).items():
            with contextlib.suppress(KafkaException):
                fut.result()
            self.created.remove(name)

    def close(self) -> None:
        """Delete every topic created, then drop the client (it must not outlive the cluster)."""
        self.delete(list(self.created))
        self.admin = None
        gc.collect()


# -- variants ------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    kind: str  # "baseline" | "router"
    instances: int


@dataclass
class RouterSetup:
    """How to run the router, or why it cannot run yet."""

    available: bool = False
    reason: str = ""
    template: dict[str, Any] = field(default_factory=dict)
    output_topics: list[str] = field(default_factory=list)
    audit_topic: str = ""
    workdir: Path = Path()
    overrides: dict[str, Any] = field(default_factory=dict)
    client: dict[str, str] = field(default_factory=dict)
    """librdkafka properties the bench adds to ``clusters.*.client`` (``--client``)."""
    """``pipeline.*`` settings the bench sets (``--commit-interval-ms``, ``--batch-size``)."""

    def config_for(self, bootstrap: str, ingress: str, group: str) -> Path:
        data = json.loads(json.dumps(self.template))
        for c in (data.get("clusters") or {}).values():
            c["bootstrap"] = bootstrap
            if self.client:
                c["client"] = {**(c.get("client") or {}), **self.client}
        pipeline = data.setdefault("pipeline", {})
        if isinstance(pipeline.get("ingress"), list):  # the router's shape: [{topic, decoder, options}]
            pipeline["ingress"] = [{**(pipeline["ingress"][0] if pipeline["ingress"] else {}), "topic": ingress}]
        else:
            _set_ingress(data, ingress)
        pipeline["group_id"] = group
        pipeline["transactional_id_prefix"] = group
        pipeline.update(self.overrides)
        path = self.workdir / f"router-{group}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path


def _set_ingress(data: Any, topic: str) -> bool:
    """Point the config's ingress topic at ``topic``; False if the config has no ingress setting."""
    if not isinstance(data, dict):
        return False
    found = False
    for key, value in list(data.items()):
        if key in ("ingress", "ingress_topic", "ingress_topics"):
            if isinstance(value, str):
                data[key], found = topic, True
            elif isinstance(value, list):
                data[key], found = [topic], True
            elif isinstance(value, dict):
                for sub in ("topic", "topics"):
                    if sub in value:
                        value[sub] = [topic] if isinstance(value[sub], list) else topic
                        found = True
        elif isinstance(value, dict):
            found = _set_ingress(value, topic) or found
    return found


def _cli_has(*words: str) -> bool:
    r = subprocess.run([PY, "-m", "router.cli", *words, "--help"], cwd=ROOT, capture_output=True, check=False)
    return r.returncode == 0


PARTITIONS = 6  # set from --partitions in main()
PACED_LINGER_MS = 1
"""linger.ms of the paced producer (idempotent, acks=all): part of the latency it measures."""


def router_setup(bootstrap: str, config: Path, workdir: Path, topics: Topics) -> RouterSetup:
    if not _cli_has("run"):
        return RouterSetup(reason="`python -m router.cli run` does not exist yet")
    if not config.exists():
        return RouterSetup(reason=f"{config} does not exist yet")
    template = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    template.pop("access", None)  # the bench's cluster runs no authorizer and its ingress topics are renamed
    if not _set_ingress(json.loads(json.dumps(template)), "probe"):
        return RouterSetup(reason=f"{config} has no ingress topic setting the bench could override")
    # A development keyring of the bench's own, and an audit topic with a partition per ingress
    # partition (one writer per audit chain).
    keyring = workdir / "bench-keyring.json"
    if not keyring.exists():
        LocalKeyring.create(keyring, list(template.get("jurisdictions") or {}))
    template["keys"] = {
        "providers": {"dev": {"type": "local", "keyring": str(keyring)}},
        "jurisdictions": {j: {"provider": "dev"} for j in template.get("jurisdictions") or {}},
        "signer": {"keyring": str(keyring)},
    }
    parts = max(PARTITIONS, 3)
    audit = template.setdefault("audit", {"topic": "audit", "jurisdiction": "eu"})
    audit["topic"] = f"audit-bench-{uuid.uuid4().hex[:6]}"
    template["topics"] = [t for t in template.get("topics") or [] if t["name"] != "audit"] + [
        {"name": audit["topic"], "jurisdiction": audit["jurisdiction"], "partitions": parts, "replication_factor": 1}]
    setup = RouterSetup(available=True, template=template, workdir=workdir, audit_topic=audit["topic"])
    setup.output_topics = [t["name"] for t in template.get("topics") or [] if "audit" not in t["name"]]
    if _cli_has("topics", "create"):
        probe = topics.create("bench-probe")  # an ingress topic in place, so that the check passes
        cfg = setup.config_for(bootstrap, probe, "bench-setup")
        r = subprocess.run([PY, "-m", "router.cli", "topics", "create", "--config", str(cfg), "--bootstrap", bootstrap],
                           cwd=ROOT, capture_output=True, text=True, check=False)
        topics.delete([probe])
        if r.returncode != 0:
            log(f"router topics create failed (continuing): {(r.stdout + r.stderr).strip()[-800:]}")
    else:
        log("`router.cli topics create` does not exist yet; assuming the router's topics exist")
    return setup


# -- one worker process --------------------------------------------------------------------------
class Worker:
    def __init__(self, cmd: list[str], logdir: Path, tag: str) -> None:
        self.out_path, self.err_path = logdir / f"{tag}.out", logdir / f"{tag}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        self.ps = psutil.Process(self.proc.pid)
        self.rusage: Any = None

    def cpu(self) -> float:
        try:
            t = self.ps.cpu_times()
        except psutil.Error:
            return float("nan")
        return t.user + t.system + t.children_user + t.children_system

    def alive(self) -> bool:
        return self.rusage is None and self.proc.poll() is None

    def reap(self, timeout: float) -> None:
        """Wait for exit (SIGTERM after ``timeout``, SIGKILL 10 s later) and keep its rusage."""
        if self.rusage is not None:
            return
        deadline = time.monotonic() + timeout
        sig_sent = 0
        while True:
            try:
                pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # already reaped by Popen.poll(): no rusage left to read
                self.rusage = ru_unknown()
                return
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.rusage = ru
                return
            if time.monotonic() > deadline:
                if sig_sent == 0:
                    self.proc.send_signal(signal.SIGTERM)
                    sig_sent, deadline = 1, time.monotonic() + 10
                else:
                    self.proc.kill()
                    deadline = time.monotonic() + 3600
            time.sleep(0.05)

    def stats(self) -> dict[str, Any] | None:
        for line in reversed(self.out_path.read_text(encoding="utf-8", errors="replace").splitlines()):
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
        return None

    def err_tail(self) -> str:
        return "\n".join(self.err_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])


@dataclass
class Ctx:
    bootstrap: str
    args: argparse.Namespace
    topics: Topics
    router: RouterSetup
    logdir: Path


def worker_cmd(ctx: Ctx, v: Variant, ingress: str, output: str | None, group: str, idx: int) -> list[str]:
    idle = str(ctx.args.max_idle_s)
    if v.kind == "baseline":
        assert output is not None
        cmd = [PY, str(BENCH / "worker_baseline.py"), "--bootstrap", ctx.bootstrap, "--ingress", ingress,
               "--output", output, "--group", group, "--instance-id", str(idx), "--max-idle-s", idle]
        if ctx.args.commit_interval_ms is not None:
            cmd += ["--commit-interval-ms", str(ctx.args.commit_interval_ms)]
        if ctx.args.batch_size is not None:
            cmd += ["--batch-size", str(ctx.args.batch_size)]
        for kv in ctx.args.client:
            cmd += ["--client", kv]
        return cmd
    cfg = ctx.router.config_for(ctx.bootstrap, ingress, group)
    return [PY, "-m", "router.cli", "run", "--config", str(cfg), "--bootstrap", ctx.bootstrap,
            "--instance-id", f"{group}-{idx}", "--max-idle-s", idle, "--stats-json"]


def wait_group_stable(bootstrap: str, group: str, members: int, partitions: int, workers: list[Worker],
                      timeout: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not all(w.alive() for w in workers):
            tails = "\n".join(w.err_tail() for w in workers)
            raise RuntimeError(f"a worker exited before its group was stable:\n{tails}")
        with contextlib.suppress(KafkaException):
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            assigned = sum(len(m.assignment.topic_partitions) for m in desc.members)
            if desc.state.name == "STABLE" and len(desc.members) == members and assigned == partitions:
                return
        time.sleep(0.1)
    raise RuntimeError(f"group {group} did not become stable with {members} members within {timeout:.0f}s")


def preload(bootstrap: str, topic: str, events: list[Any]) -> None:
    """Write all events in one transaction: read_committed consumers see the whole backlog at once."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-loader-{uuid.uuid4().hex}",
                  "linger.ms": 20, "transaction.timeout.ms": 120_000})
    p.init_transactions(30)
    p.begin_transaction()
    for key, value, headers in events:
        while True:
            try:
                p.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                p.poll(0.01)
    p.commit_transaction(120)


def stop_all(workers: list[Worker]) -> None:
    """SIGTERM every worker still running (the engine commits what it holds, then exits), then reap."""
    for w in workers:
        if w.alive():
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        w.reap(20)


def start_workers(ctx: Ctx, v: Variant, ingress: str, output: str | None, group: str, tag: str,
                  profile: Path | None = None) -> list[Worker]:
    workers = []
    for i in range(v.instances):
        cmd = worker_cmd(ctx, v, ingress, output, group, i)
        if profile is not None:
            cmd = [PY, "-m", "cProfile", "-o", str(profile), *cmd[1:]]
        workers.append(Worker(cmd, ctx.logdir, f"{tag}-{i}"))
    wait_group_stable(ctx.bootstrap, group, v.instances, ctx.args.partitions, workers)
    return workers


# -- throughput ----------------------------------------------------------------------------------
def run_throughput(ctx: Ctx, v: Variant, run: int, events: list[Any], profile: Path | None = None) -> dict[str, Any]:
    n, a = len(events), ctx.args
    ingress = ctx.topics.create("bench-in")
    output = ctx.topics.create("bench-out") if v.kind == "baseline" else None
    group = f"bench-{v.kind}-{uuid.uuid4().hex[:12]}"
    tag = f"{v.name.replace(' ', '')}-r{run}{'-profile' if profile else ''}"
    workers: list[Worker] = []
    try:
        workers = start_workers(ctx, v, ingress, output, group, tag, profile)
        tps = [TopicPartition(ingress, p) for p in range(a.partitions)]
        # read_uncommitted: OffsetFetch without require_stable, which would wait out pending transactions
        watcher = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": group, "enable.auto.commit": False,
                            "isolation.level": "read_uncommitted"})
        try:
            preload(ctx.bootstrap, ingress, events)
            t_visible, cpu_visible = time.monotonic(), sum(w.cpu() for w in workers)
            t_first = c_first = cpu_first = None
            deadline = time.monotonic() + 120 + n / 500
            while True:
                done = sum(max(tp.offset, 0) for tp in watcher.committed(tps, timeout=10))
                now = time.monotonic()
                if done and t_first is None:
                    t_first, c_first, cpu_first = now, done, sum(w.cpu() for w in workers)
                if done >= n:
                    t_done, cpu_done = now, sum(w.cpu() for w in workers)
                    break
                if now > deadline or not any(w.alive() for w in workers):
                    tails = "\n".join(w.err_tail() for w in workers)
                    raise RuntimeError(f"{v.name}: only {done}/{n} committed:\n{tails}")
                time.sleep(0.01)
        finally:
            watcher.close()
        stop_all(workers)  # everything is committed: SIGTERM (a clean stop) instead of waiting out --max-idle-s
    finally:
        for w in workers:
            w.reap(0)
        ctx.topics.delete([t for t in (ingress, output) if t])
    assert t_first is not None
    assert c_first is not None
    assert cpu_first is not None
    counted, secs = n - c_first, t_done - t_first
    if counted < n // 4:  # too few commits to measure between them: count from the moment the backlog was visible
        counted, secs, cpu_first = n, t_done - t_visible, cpu_visible
    stats = [w.stats() or {} for w in workers]
    return {
        "variant": v.name, "run": run, "events": n,
        "events_per_s": counted / secs if secs > 0 and counted > 0 else float("nan"),
        "cpu_s_per_1k": (cpu_done - cpu_first) / counted * 1000 if counted > 0 else float("nan"),
        "cpu_total_s": sum(w.rusage.ru_utime + w.rusage.ru_stime for w in workers),
        "peak_rss_mb": max(w.rusage.ru_maxrss for w in workers) / 1024,
        "window_s": secs, "window_events": counted,
        "consumed": sum(s.get("consumed", 0) for s in stats),
        "exit_codes": [w.proc.returncode for w in workers],
        "worker_stats": stats,
    }


# -- latency -------------------------------------------------------------------------------------
def engine_floor(commit_interval_ms: int) -> dict[str, float]:
    """What bounds latency from below in the engine both variants run on, read from the engine
    itself so that the statement stays true: the commit interval, the batch consume timeout (a
    consume() call waits this long for a full batch), the producer's linger, the fetch wait."""
    from router.pipeline.copy import CopyProcessor  # noqa: PLC0415
    from router.pipeline.engine import EngineSettings, TransactionalEngine  # noqa: PLC0415

    eng = TransactionalEngine(EngineSettings({"bootstrap.servers": "-"}, ["-"], "-", "-"), CopyProcessor("-"))
    # The batch consume() call, wherever in the engine module it lives (the loop's steps move).
    found = re.findall(r"consume\(num_messages=self\.s\.batch_size, timeout=([0-9.]+)\)",
                       inspect.getsource(inspect.getmodule(TransactionalEngine)))
    if len(set(found)) != 1:
        raise RuntimeError(f"the engine's batch consume() timeout could not be read from its source: {found!r}")
    return {
        "commit_interval_ms": float(commit_interval_ms),
        "consume_timeout_ms": float(found[0]) * 1000,
        "linger_ms": float(eng._producer_config()["linger.ms"]),
        "fetch_wait_max_ms": float(eng._consumer_config()["fetch.wait.max.ms"]),
        "paced_linger_ms": float(PACED_LINGER_MS),
        "reader_poll_ms": 2.0,
    }


def floor_text(f: dict[str, float]) -> str:
    return (f"floor: a record waits for its transaction to commit: commit interval {f['commit_interval_ms']:.0f} ms "
            f"(checked after each consume(), which waits up to {f['consume_timeout_ms']:.0f} ms for a full batch), "
            f"then the commit round trip (send_offsets + EndTxn); plus linger {f['linger_ms']:.0f} ms (engine "
            f"producer) and {f['paced_linger_ms']:.0f} ms (paced producer), reader poll <= "
            f"{f['reader_poll_ms']:.0f} ms. Expected at light load: p50 ~ (commit interval + consume timeout) / 2 "
            f"+ commit, p99 ~ commit interval + consume timeout + commit (~{harness_ceiling(f):.0f} ms)")


COMMIT_ALLOWANCE_MS = 50.0
"""What a transaction's commit round trip may take on a busy 2-core host, for the harness check."""


def harness_ceiling(f: dict[str, float]) -> float:
    """The baseline's p99 at light load should stay under this (ms), or the harness is the bottleneck."""
    return (f["commit_interval_ms"] + f["consume_timeout_ms"] + f["linger_ms"] + f["paced_linger_ms"]
            + f["reader_poll_ms"] + COMMIT_ALLOWANCE_MS)


def latency_stats(paced: dict[str, Any], positions: list[list[int]], vis: dict[str, Any], mode: str,
                  warm: int) -> dict[str, Any]:
    """Per input: latency = when its last output became visible - its scheduled send time."""
    count, t0, interval = paced["count"], paced["t0"], 1.0 / paced["rate"]
    seen: dict[int, float] = {}
    outputs_matched = 0
    if mode == "header":
        for seq, t in vis["visible"]:
            if 0 <= seq < count:
                seen[seq] = max(t, seen.get(seq, t))
    else:
        seq_of = {(p, o): i for i, (p, o) in enumerate(positions) if p >= 0}
        audited: set[int] = set()
        for part, off, t, kind in vis["visible"]:
            seq = seq_of.get((part, off))
            if seq is None:
                continue
            seen[seq] = max(t, seen.get(seq, t))
            if kind == "audit":
                audited.add(seq)
            else:
                outputs_matched += 1
        seen = {s: t for s, t in seen.items() if s in audited}  # complete only once its audit record is visible
    by_seq = [((seen[i] - (t0 + i * interval)) * 1000 if i in seen else None) for i in range(count)]
    lat = sorted(x for x in by_seq[warm:] if x is not None)
    missing = (count - warm) - len(lat)
    per_s = max(1, int(paced["rate"]))
    timeline = []  # [second of the schedule, p50, max] (warm-up included): queueing shows as a rising line
    for start in range(0, count, per_s):
        part = sorted(x for x in by_seq[start:start + per_s] if x is not None)
        if part:
            timeline.append([start // per_s, round(part[len(part) // 2], 1), round(part[-1], 1)])

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")

    return {
        "rate": paced["rate"], "count": count, "warmup": warm, "measured": len(lat), "missing": missing,
        "outputs_matched": outputs_matched if mode == "source" else len(seen),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": lat[-1] if lat else float("nan"),
        "min_ms": lat[0] if lat else float("nan"),
        "producer_lag_p99_ms": paced["lag_p99_ms"], "producer_lag_max_ms": paced["lag_max_ms"],
        "producer_overrun_s": paced["overrun_s"], "producer_cpu_s": paced["cpu_s"], "sent": paced["sent"],
        "method": "bench-seq header" if mode == "header" else "source position (envelope / quarantine / audit)",
        "timeline": timeline,
    }


def prime(ctx: Ctx, ingress: str, group: str, workers: list[Worker], record: Any, timeout: float = 120.0) -> float:
    """Send one record to every ingress partition and wait until the group has committed them all.

    A router instance reads its audit chain tails and checks placement after it joins the group,
    so the first records wait seconds that are start-up, not latency. The paced schedule starts
    only once every worker has processed and committed a record of each of its partitions.
    Returns the seconds this took.
    """
    started = time.monotonic()
    key, value, headers = record
    p = Producer({"bootstrap.servers": ctx.bootstrap, "enable.idempotence": True, "acks": "all"})
    for part in range(ctx.args.partitions):
        p.produce(ingress, value, key, partition=part, headers=headers)
    p.flush(30)
    tps = [TopicPartition(ingress, part) for part in range(ctx.args.partitions)]
    watcher = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": group, "enable.auto.commit": False,
                        "isolation.level": "read_uncommitted"})
    try:
        while time.monotonic() - started < timeout:
            if all(tp.offset >= 1 for tp in watcher.committed(tps, timeout=10)):
                return time.monotonic() - started
            if not all(w.alive() for w in workers):
                raise RuntimeError("a worker exited while priming:\n" + "\n".join(w.err_tail() for w in workers))
            time.sleep(0.05)
    finally:
        watcher.close()
    raise RuntimeError(f"the workers did not commit a priming record per partition within {timeout:.0f}s")


def run_latency(ctx: Ctx, v: Variant, rate: float, load: str, record: Any) -> dict[str, Any]:
    """One paced run of ``v`` at ``rate`` events/s: warm-up, then ``--latency-seconds`` measured."""
    a = ctx.args
    warm = int(rate * a.latency_warmup_s)
    count = warm + max(1, int(rate * a.latency_seconds))
    ingress = ctx.topics.create("bench-lat-in")
    output = ctx.topics.create("bench-lat-out") if v.kind == "baseline" else None
    group = f"bench-lat-{v.kind}-{uuid.uuid4().hex[:12]}"
    tag = f"lat-{v.name.replace(' ', '')}-{load}"
    vis_file, pos_file = ctx.logdir / f"{tag}.visible.json", ctx.logdir / f"{tag}.positions.json"
    if output:
        mode, topics, count_topic = "header", [output], output
    else:
        audit = ctx.router.audit_topic
        mode, topics, count_topic = "source", [*ctx.router.output_topics, audit], audit
    cmd = [PY, str(BENCH / "worker_visibility.py"), "--bootstrap", ctx.bootstrap, "--topics", ",".join(topics),
           "--match", mode, "--count-topic", count_topic, "--expect", str(count + a.partitions), "--out", str(vis_file),
           "--idle-s", "20"]
    if mode == "source":
        cmd += ["--audit-topic", ctx.router.audit_topic, "--ingress", ingress]
    workers: list[Worker] = []
    vis = Worker(cmd, ctx.logdir, f"{tag}-visibility")
    try:
        deadline = time.monotonic() + 60
        while "ready" not in vis.out_path.read_text(encoding="utf-8"):
            if not vis.alive() or time.monotonic() > deadline:
                raise RuntimeError("visibility consumer did not start:\n" + vis.err_tail())
            time.sleep(0.05)
        workers = start_workers(ctx, v, ingress, output, group, tag)
        primed_s = prime(ctx, ingress, group, workers, record)
        cpu0 = sum(w.cpu() for w in workers)
        prod = subprocess.run([PY, str(BENCH / "worker_paced.py"), "--bootstrap", ctx.bootstrap, "--topic", ingress,
                               "--rate", f"{rate:.3f}", "--count", str(count), "--positions", str(pos_file),
                               "--linger-ms", str(PACED_LINGER_MS)],
                              cwd=ROOT, capture_output=True, text=True, check=False,
                              timeout=120 + count / rate * 2)
        if prod.returncode != 0:
            raise RuntimeError(f"paced producer failed: {prod.stderr[-1500:]}")
        paced = json.loads(prod.stdout.strip().splitlines()[-1])
        vis.reap(120 + 2 * (a.latency_seconds + a.latency_warmup_s))  # then SIGTERM: it writes what it saw
        cpu1 = sum(w.cpu() for w in workers)
    finally:
        vis.reap(0)
        stop_all(workers)
        ctx.topics.delete([t for t in (ingress, output) if t])
    positions = json.loads(pos_file.read_text(encoding="utf-8"))["positions"]
    out = latency_stats(paced, positions, json.loads(vis_file.read_text(encoding="utf-8")), mode, warm)
    out["worker_cpu_us_per_event"] = (cpu1 - cpu0) / count * 1e6
    out["reader"] = vis.stats()
    out["worker_stats"] = [w.stats() for w in workers]
    commits = sum((st or {}).get("commits", 0) for st in out["worker_stats"])
    # how long one consume-process-commit cycle took on average (the commit interval is its floor)
    out["txn_cycle_ms"] = paced["schedule_s"] * 1000 / commits * len(workers) if commits else float("nan")
    out["load"] = load
    out["primed_s"] = primed_s
    return out


# -- profile -------------------------------------------------------------------------------------
def run_profile(ctx: Ctx, v: Variant, events: list[Any]) -> str:
    prof = ctx.logdir / f"profile-{v.kind}.prof"
    run_throughput(ctx, v, 0, events, profile=prof)
    buf = io.StringIO()
    st = pstats.Stats(str(prof), stream=buf)
    st.strip_dirs().sort_stats("tottime").print_stats(20)
    st.sort_stats("cumulative").print_stats(15)
    return buf.getvalue()


# -- report --------------------------------------------------------------------------------------
def run_core(args: argparse.Namespace) -> str:
    """``bench_core.py``'s per-stage table (pure path, no Kafka), run before any broker starts."""
    cmd = [PY, str(BENCH / "bench_core.py"), *args.core_args.split()]
    log(f"core path: {' '.join(cmd[1:])}")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"bench_core.py failed ({r.returncode}):\n{r.stderr[-1500:]}"
    return r.stdout.rstrip()


def fmt(x: Any, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


LOADS = ("1k", "70%")


def print_report(args: argparse.Namespace, variants: list[Variant], summary: dict[str, dict[str, Any]],
                 floor: dict[str, float], avg: float, core_text: str | None) -> None:
    if core_text:
        print("== per-stage cost of the router's pure path (bench/bench_core.py)")
        print(core_text)
        print()
    print(f"== pipeline: {args.events} events of ~{avg:.0f} B, {args.partitions} partitions, median of {args.runs} "
          f"throughput runs; events from {EVENT_SOURCE}; brokers on the same {os.cpu_count()}-core host")
    tuned = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("commit_interval_ms", "batch_size")
             if getattr(args, k) is not None] + [f"--client {kv}" for kv in args.client]
    print("settings: " + (", ".join(tuned) + " (both variants)" if tuned else "the router's defaults (both variants)"))
    pct = f"{args.latency_load * 100:.0f}%"
    fixed = f"@{args.latency_rate:,.0f}/s p50/p99/max ms"
    lat_head = f"{fixed:>25} {'@' + pct + ' p50/p99/max ms':>25}"
    header = f"{'variant':<12} {'events/s':>9} {'(min-max)':>15} {'CPU us/ev':>9} {'RSS MB':>6} {lat_head}  note"
    print(header)
    print("-" * len(header))
    for v in variants:
        s = summary[v.name]
        if not s["available"]:
            print(f"{v.name:<12} {'unavailable':>9}  ({s['reason']})")
            continue
        cells, notes = [], []
        for load in LOADS:
            lat = (s.get("latency") or {}).get(load)
            if lat is None:
                cells.append("-")
            elif "error" in lat:
                cells.append("failed")
                notes.append(f"{load} latency run failed")
            else:
                cells.append(f"{fmt(lat['p50_ms'], '.0f')}/{fmt(lat['p99_ms'], '.0f')}/{fmt(lat['max_ms'], '.0f')}")
                if load == "70%":
                    notes.append(f"70% = {lat['rate']:,.0f}/s")
                if lat["missing"]:
                    notes.append(f"{lat['missing']} never visible at {load}")
                if (lat["producer_lag_p99_ms"] or 0) > 5:
                    notes.append(f"producer late p99 {lat['producer_lag_p99_ms']:.0f} ms at {load}")
        if v.instances == 2 and summary[v.name.split()[0]].get("available"):
            notes.insert(0, f"scaling x{s['events_per_s'] / summary[v.name.split()[0]]['events_per_s']:.2f}")
        rng = f"({s['events_per_s_min']:,.0f}-{s['events_per_s_max']:,.0f})"
        print(f"{v.name:<12} {s['events_per_s']:>9,.0f} {rng:>15} {s['cpu_s_per_1k'] * 1000:>9.0f} "
              f"{s['peak_rss_mb']:>6.0f} {cells[0]:>25} {cells[1]:>25}  {'; '.join(notes)}")
    total = args.latency_warmup_s + args.latency_seconds
    print(f"latency = read_committed visibility of an input's last output - its scheduled send time; first "
          f"{args.latency_warmup_s:g} s of each {total:g} s paced run not counted")
    print(floor_text(floor))
    print(harness_check(summary, floor, args.latency_rate))
    print("goals (not assertions): router/baseline >= 0.5, router CPU <= 3x baseline, "
          "router p99 <= 150 ms at 1,000/s and at 70 %")


def harness_check(summary: dict[str, dict[str, Any]], floor: dict[str, float], rate: float) -> str:
    lat = (summary["baseline"].get("latency") or {}).get("1k")
    if not lat or "error" in lat:
        return "harness check: not run (no baseline latency at the fixed load)"
    ceiling = harness_ceiling(floor)
    p99 = lat["p99_ms"]
    if p99 == p99 and p99 <= ceiling and not lat["missing"]:
        return (f"harness check: ok: baseline p99 {p99:.0f} ms at {rate:,.0f}/s is near its commit interval "
                f"({floor['commit_interval_ms']:.0f} ms; ceiling {ceiling:.0f} ms)")
    return (f"harness check: THE HARNESS IS THE BOTTLENECK: baseline p99 {p99:.0f} ms at {rate:,.0f}/s exceeds "
            f"{ceiling:.0f} ms (commit interval {floor['commit_interval_ms']:.0f} ms + consume timeout + lingers + "
            f"{COMMIT_ALLOWANCE_MS:.0f} ms for the commit){' and outputs went missing' if lat['missing'] else ''}; "
            f"the latency figures are upper bounds set by this host and harness, not the pipeline's alone. "
            f"Diagnosis: paced producer late p99 {lat['producer_lag_p99_ms']:.1f} ms (its own delay), one "
            f"transaction every {lat.get('txn_cycle_ms', float('nan')):.0f} ms against a "
            f"{floor['commit_interval_ms']:.0f} ms interval (the excess is the commit round trip and CPU contention)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events pre-loaded per throughput run")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per variant (median reported)")
    ap.add_argument("--partitions", type=int, default=6, help="ingress partitions")
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument("--max-idle-s", type=float, default=15.0, help="workers exit after this long without input")
    ap.add_argument("--no-x2", action="store_true", help="skip the two-instance variants")
    ap.add_argument("--latency-seconds", type=float, default=10.0, help="measured part of a paced run (0: none)")
    ap.add_argument("--latency-warmup-s", type=float, default=2.0, help="paced, not counted, before the measured part")
    ap.add_argument("--latency-rate", type=float, default=1000.0, help="the fixed paced load, events/s")
    ap.add_argument("--latency-load", type=float, default=0.7, help="the second load: fraction of median events/s")
    ap.add_argument("--commit-interval-ms", type=int, help="override pipeline.commit_interval_ms (both variants)")
    ap.add_argument("--batch-size", type=int, help="override pipeline.batch_size (both variants)")
    ap.add_argument("--client", action="append", default=[], metavar="K=V",
                    help="librdkafka property for both variants' clients (the router's clusters.default.client)")
    ap.add_argument("--profile", action="store_true", help="one extra cProfile'd run of the router path")
    ap.add_argument("--no-core", action="store_true", help="skip bench_core.py's per-stage table")
    ap.add_argument("--core-args", default="", help="arguments for bench_core.py (e.g. '--n 2000 --runs 3')")
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "router.yaml")
    ap.add_argument("--json", metavar="FILE", help="write all results as JSON ('-': stdout, before the table)")
    args = ap.parse_args()

    core_text = None if args.no_core else run_core(args)
    try:
        return measure(args, core_text)
    except BaseException:
        if core_text:  # the per-stage table needs no broker: keep it when the pipeline part fails
            print("== per-stage cost of the router's pure path (bench/bench_core.py)")
            print(core_text, flush=True)
        raise


def measure(args: argparse.Namespace, core_text: str | None) -> int:
    """The pipeline part: cluster, throughput runs, latency runs, profile, report."""
    log(f"events from {EVENT_SOURCE}")
    events = generate(args.events, seed=7)
    avg = sum(len(e[1]) for e in events) / len(events)
    log(f"{len(events)} events, mean value {avg:.0f} B")
    from router.config.loader import load_config  # noqa: PLC0415

    pipe_cfg = load_config(args.config).pipeline
    commit_interval = args.commit_interval_ms or (pipe_cfg.commit_interval_ms if pipe_cfg else 100)
    floor = engine_floor(commit_interval)

    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp, cluster() as bootstrap:
        logdir = Path(tmp)
        topics = Topics(bootstrap, args.partitions, args.replication_factor, ingress_brokers(bootstrap, args.config))
        try:
            global PARTITIONS  # noqa: PLW0603 - one setting read by router_setup
            PARTITIONS = args.partitions
            router = router_setup(bootstrap, args.config, logdir, topics)
            if args.commit_interval_ms is not None:
                router.overrides["commit_interval_ms"] = args.commit_interval_ms
            if args.batch_size is not None:
                router.overrides["batch_size"] = args.batch_size
            router.client = dict(kv.split("=", 1) for kv in args.client)
            if not router.available:
                log(f"router variant unavailable: {router.reason}")
            ctx = Ctx(bootstrap, args, topics, router, logdir)
            variants = [Variant("baseline", "baseline", 1), Variant("router", "router", 1)]
            if not args.no_x2:
                variants += [Variant("baseline x2", "baseline", 2), Variant("router x2", "router", 2)]
            runnable = [v for v in variants if v.kind == "baseline" or router.available]
            results: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
            for run in range(1, args.runs + 1):  # alternate variants so that drift hits all alike
                for v in runnable:
                    log(f"run {run}/{args.runs}: {v.name}")
                    try:
                        r = run_throughput(ctx, v, run, events)
                        log(f"  {r['events_per_s']:,.0f} ev/s, {r['cpu_s_per_1k'] * 1000:.0f} CPU us/event, "
                            f"{r['peak_rss_mb']:.0f} MB, consumed {r['consumed']}")
                    except (RuntimeError, KafkaException) as err:
                        r = {"variant": v.name, "run": run, "error": str(err)[-2000:]}
                        log(f"  failed: {str(err)[-800:]}")
                    results[v.name].append(r)

            summary: dict[str, dict[str, Any]] = {}
            for v in variants:
                ok = [r for r in results[v.name] if "error" not in r]
                if not ok:
                    why = router.reason if v.kind == "router" and not router.available else "all runs failed"
                    summary[v.name] = {"available": False, "reason": why}
                    continue
                summary[v.name] = {
                    "available": True, "runs": len(ok),
                    "events_per_s": statistics.median(r["events_per_s"] for r in ok),
                    "events_per_s_min": min(r["events_per_s"] for r in ok),
                    "events_per_s_max": max(r["events_per_s"] for r in ok),
                    "cpu_s_per_1k": statistics.median(r["cpu_s_per_1k"] for r in ok),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                }
            if args.runs == 0:  # latency only (development): no maximum, so no 70 % load
                summary = {v.name: {"available": v in runnable, "reason": router.reason, "events_per_s": float("nan"),
                                    "events_per_s_min": float("nan"), "events_per_s_max": float("nan"),
                                    "cpu_s_per_1k": float("nan"), "peak_rss_mb": float("nan")} for v in variants}

            if args.latency_seconds > 0:
                for load in LOADS:  # the fixed load first: its baseline run is the harness check
                    for v in variants:
                        s = summary[v.name]
                        if not s["available"]:
                            continue
                        rate = args.latency_rate if load == "1k" else s["events_per_s"] * args.latency_load
                        if rate != rate:
                            continue
                        log(f"latency {load}: {v.name} paced at {rate:,.0f} ev/s for "
                            f"{args.latency_warmup_s:g}+{args.latency_seconds:g} s")
                        lat = s.setdefault("latency", {})
                        try:
                            lat[load] = run_latency(ctx, v, rate, load, events[0])
                            r = lat[load]
                            log(f"  p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
                                f"{r['measured']} measured, {r['missing']} missing; producer late p99 "
                                f"{r['producer_lag_p99_ms']:.1f} ms; worker {r['worker_cpu_us_per_event']:.0f} "
                                f"CPU us/event, a transaction every {r['txn_cycle_ms']:.0f} ms; ready after "
                                f"{r['primed_s']:.1f} s")
                        except (RuntimeError, KafkaException, subprocess.SubprocessError, OSError,
                                ValueError) as err:
                            lat[load] = {"error": str(err)[-2000:]}
                            log(f"  latency run failed: {str(err)[-800:]}")

            profile_text = None
            if args.profile:
                if router.available:
                    log("profiling the router path")
                    try:
                        profile_text = run_profile(ctx, Variant("router", "router", 1), events)
                    except (RuntimeError, KafkaException) as err:
                        profile_text = f"profile run failed: {err}"
                else:
                    profile_text = f"router profile unavailable: {router.reason}"
        finally:
            topics.close()

    base, rout = summary["baseline"], summary["router"]
    ratio = rout["events_per_s"] / base["events_per_s"] if base.get("available") and rout.get("available") else None
    doc = {
        "events": args.events, "runs": args.runs, "partitions": args.partitions, "event_source": EVENT_SOURCE,
        "event_bytes_mean": avg, "summary": summary, "runs_detail": results, "floor": floor,
        "router_over_baseline": ratio, "profile": profile_text, "core": core_text,
    }
    if args.json == "-":
        print(json.dumps(doc, indent=1, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    if profile_text:
        print("== cProfile, router path (worker main thread)")
        print(profile_text)
    print_report(args, variants, summary, floor, avg, core_text)
    print(f"router/baseline = {ratio:.2f}" if ratio is not None else "router/baseline = n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
