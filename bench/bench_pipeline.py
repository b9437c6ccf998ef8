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

Latency: a paced producer schedules records on a fixed timeline at ``--latency-load`` of the
variant's median events/s; a separate read_committed consumer process records when each output
becomes visible; latency = visibility time - scheduled time (see ``worker_paced.py``).

Without ``ROUTER_BENCH_BOOTSTRAP`` a dev cluster is started in a temporary state directory and
stopped at the end. The last line printed is ``router/baseline = X.XX`` (or ``n/a``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import pstats
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

from router.demo import DEMO_RACKS
from router.devcluster.launcher import DevCluster
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
    nodes = AdminClient({"bootstrap.servers": bootstrap}).describe_cluster(request_timeout=30).result().nodes
    return sorted(n.id for n in nodes if cfg.jurisdiction_of_rack(n.rack) == want)


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
            new = NewTopic(name, replica_assignment=plan)
        else:
            new = NewTopic(name, self.partitions, self.rf)
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
    workdir: Path = Path()

    def config_for(self, bootstrap: str, ingress: str, group: str) -> Path:
        data = json.loads(json.dumps(self.template))
        for c in (data.get("clusters") or {}).values():
            c["bootstrap"] = bootstrap
        pipeline = data.setdefault("pipeline", {})
        if isinstance(pipeline.get("ingress"), list):  # the router's shape: [{topic, decoder, options}]
            pipeline["ingress"] = [{**(pipeline["ingress"][0] if pipeline["ingress"] else {}), "topic": ingress}]
        else:
            _set_ingress(data, ingress)
        pipeline["group_id"] = group
        pipeline["transactional_id_prefix"] = group
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


def router_setup(bootstrap: str, config: Path, workdir: Path) -> RouterSetup:
    if not _cli_has("run"):
        return RouterSetup(reason="`python -m router.cli run` does not exist yet")
    if not config.exists():
        return RouterSetup(reason=f"{config} does not exist yet")
    template = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
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
    setup = RouterSetup(available=True, template=template, workdir=workdir)
    setup.output_topics = [t["name"] for t in template.get("topics") or [] if "audit" not in t["name"]]
    if _cli_has("topics", "create"):
        cfg = setup.config_for(bootstrap, f"bench-probe-{uuid.uuid4().hex[:8]}", "bench-setup")
        r = subprocess.run([PY, "-m", "router.cli", "topics", "create", "--config", str(cfg), "--bootstrap", bootstrap],
                           cwd=ROOT, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            log(f"router topics create failed (continuing): {r.stderr.strip()[-500:]}")
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
        return [PY, str(BENCH / "worker_baseline.py"), "--bootstrap", ctx.bootstrap, "--ingress", ingress,
                "--output", output, "--group", group, "--instance-id", str(idx), "--max-idle-s", idle]
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
        for w in workers:
            w.reap(a.max_idle_s + 20)
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
def run_latency(ctx: Ctx, v: Variant, rate: float) -> dict[str, Any]:
    a = ctx.args
    count = max(1, int(rate * a.latency_seconds))
    ingress = ctx.topics.create("bench-lat-in")
    output = ctx.topics.create("bench-lat-out") if v.kind == "baseline" else None
    outputs = [output] if output else ctx.router.output_topics
    group = f"bench-lat-{v.kind}-{uuid.uuid4().hex[:12]}"
    tag = f"lat-{v.name.replace(' ', '')}"
    vis_file = ctx.logdir / f"{tag}.visible.json"
    workers: list[Worker] = []
    vis = Worker([PY, str(BENCH / "worker_visibility.py"), "--bootstrap", ctx.bootstrap, "--topics", ",".join(outputs),
                  "--expect", str(count), "--out", str(vis_file)], ctx.logdir, f"{tag}-visibility")
    try:
        deadline = time.monotonic() + 60
        while "ready" not in vis.out_path.read_text(encoding="utf-8"):
            if not vis.alive() or time.monotonic() > deadline:
                raise RuntimeError("visibility consumer did not start:\n" + vis.err_tail())
            time.sleep(0.05)
        workers = start_workers(ctx, v, ingress, output, group, tag)
        prod = subprocess.run([PY, str(BENCH / "worker_paced.py"), "--bootstrap", ctx.bootstrap, "--topic", ingress,
                               "--rate", f"{rate:.1f}", "--count", str(count)],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        paced = json.loads(prod.stdout.strip().splitlines()[-1])
        vis.reap(60 + a.latency_seconds)
        for w in workers:
            w.reap(a.max_idle_s + 20)
    finally:
        vis.reap(0)
        for w in workers:
            w.reap(0)
        ctx.topics.delete([t for t in (ingress, output) if t])
    visible = json.loads(vis_file.read_text(encoding="utf-8"))["visible"]
    t0, interval = paced["t0"], 1.0 / paced["rate"]
    exact = [(seq, t) for seq, t in visible if seq >= 0]
    if len(exact) == len(visible):
        pairs, method = exact, "exact (bench-seq header)"
    else:  # the pipeline dropped the header: match the k-th visible output to the k-th scheduled input
        pairs, method = list(enumerate(sorted(t for _, t in visible))), "fifo (k-th visible <-> k-th sent)"
    warm = int(count * 0.1)
    lat = sorted((t - (t0 + seq * interval)) * 1000 for seq, t in pairs if seq >= warm)
    pct = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]) if lat else (lambda q: float("nan"))
    return {
        "variant": v.name, "rate": rate, "sent": paced["sent"], "visible": len(visible), "method": method,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] if lat else float("nan"),
        "producer_lag_p99_ms": paced["lag_p99_ms"],
    }


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
def fmt(x: Any, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events pre-loaded per throughput run")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per variant (median reported)")
    ap.add_argument("--partitions", type=int, default=6, help="ingress partitions")
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument("--max-idle-s", type=float, default=15.0, help="workers exit after this long without input")
    ap.add_argument("--no-x2", action="store_true", help="skip the two-instance variants")
    ap.add_argument("--latency-seconds", type=float, default=5.0, help="paced run length (0: no latency runs)")
    ap.add_argument("--latency-load", type=float, default=0.7, help="paced rate as a fraction of median events/s")
    ap.add_argument("--profile", action="store_true", help="one extra cProfile'd run of the router path")
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "router.yaml")
    ap.add_argument("--json", metavar="FILE", help="write all results as JSON ('-': stdout, before the table)")
    args = ap.parse_args()

    log(f"events from {EVENT_SOURCE}")
    events = generate(args.events, seed=7)
    avg = sum(len(e[1]) for e in events) / len(events)
    log(f"{len(events)} events, mean value {avg:.0f} B")

    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp, cluster() as bootstrap:
        logdir = Path(tmp)
        topics = Topics(bootstrap, args.partitions, args.replication_factor, ingress_brokers(bootstrap, args.config))
        try:
            global PARTITIONS  # noqa: PLW0603 - one setting read by router_setup
            PARTITIONS = args.partitions
            router = router_setup(bootstrap, args.config, logdir)
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
                        log(f"  {r['events_per_s']:,.0f} ev/s, {r['cpu_s_per_1k']:.3f} CPU s/1k, "
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

            if args.latency_seconds > 0:
                for v in variants:
                    s = summary[v.name]
                    if v.instances != 1 or not s["available"]:
                        continue
                    rate = s["events_per_s"] * args.latency_load
                    log(f"latency: {v.name} paced at {rate:,.0f} ev/s for {args.latency_seconds:.0f} s")
                    try:
                        s["latency"] = run_latency(ctx, v, rate)
                        log(f"  p50 {s['latency']['p50_ms']:.1f} ms, p99 {s['latency']['p99_ms']:.1f} ms")
                    except (RuntimeError, KafkaException, subprocess.CalledProcessError) as err:
                        s["latency"] = {"error": str(err)[-2000:]}
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
        "event_bytes_mean": avg, "summary": summary, "runs_detail": results,
        "router_over_baseline": ratio, "profile": profile_text,
    }
    if args.json == "-":
        print(json.dumps(doc, indent=1, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    if profile_text:
        print("== cProfile, router path (worker main thread)")
        print(profile_text)

    print(f"\npipeline benchmark: {args.events} events of ~{avg:.0f} B, {args.partitions} partitions, "
          f"median of {args.runs} runs; events from {EVENT_SOURCE}")
    header = (f"{'variant':<12} {'events/s':>9} {'(min-max)':>15} {'CPU s/1k':>9} {'RSS MB':>7} "
              f"{'p50 ms':>7} {'p99 ms':>7}  note")
    print(header)
    print("-" * len(header))
    for v in variants:
        s = summary[v.name]
        if not s["available"]:
            print(f"{v.name:<12} {'unavailable':>9}  ({s['reason']})")
            continue
        lat = s.get("latency") or {}
        note = ""
        if v.instances == 2 and summary[v.name.split()[0]].get("available"):
            note = f"scaling x{s['events_per_s'] / summary[v.name.split()[0]]['events_per_s']:.2f}"
        if "error" in lat:
            note += " latency run failed"
        elif lat:
            note += f"latency at {lat['rate']:,.0f} ev/s, {lat['method'].split()[0]}"
        rng = f"({s['events_per_s_min']:,.0f}-{s['events_per_s_max']:,.0f})"
        print(f"{v.name:<12} {s['events_per_s']:>9,.0f} {rng:>15} {s['cpu_s_per_1k']:>9.3f} {s['peak_rss_mb']:>7.0f} "
              f"{fmt(lat.get('p50_ms'), '7.1f'):>7} {fmt(lat.get('p99_ms'), '7.1f'):>7}  {note}")
    print("goals (not assertions): router/baseline >= 0.5, router >= 30,000 ev/s, p99 <= 150 ms at 70 %, x2 >= 1.8")
    print(f"router/baseline = {ratio:.2f}" if ratio is not None else "router/baseline = n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
