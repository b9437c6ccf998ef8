"""``residency-router demo``: the main job on a local secured cluster, end to end.

1. starts (or reuses) the secured dev cluster with its token issuer (``devcluster up --secure
   --oauth``: TLS on every listener, the ``StandardAuthorizer`` with ``User:admin`` the only super
   user, a dev OpenBao issuing short-lived OAUTHBEARER tokens that the brokers verify): racks in
   the EU, the UK, the US and Switzerland, one principal per role;
2. creates a development keyring and a config derived from the example config: its clients
   authenticate as ``User:router`` with OAUTHBEARER tokens (SASL_SSL to the ``OAUTH`` listener;
   identity tokens of the OIDC role ``router``, fetched after an AppRole login with the role-id
   and secret-id files of the cluster's state directory), and an ``access`` section names the
   principal of every role;
3. creates the configured topics (replicas only in their jurisdiction) plus one deliberately
   misplaced topic, as ``User:admin``, and shows the placement report that flags it;
4. applies the ACL plan of the ``access`` section as ``User:admin`` (the code of ``acls apply``)
   and prints the verdict of ``acls check``: who can read or write each jurisdiction's topics;
5. produces generated CRM change events (Salesforce CDC JSON and Avro, Debezium) to the ingress
   topic as ``User:connector``;
6. runs the router as ``User:router`` until the ingress topic is drained (its start-up checks
   include the ACL check: nobody outside the plan may reach a jurisdiction's topics);
7. prints where everything went: routed per jurisdiction and topic, quarantined per reason;
8. reads an EU topic as ``User:consumer-eu`` with the consumer SDK: the EU key verifies and
   decrypts; the US key does not;
9. a consumer authenticated as ``User:consumer-us`` subscribes to that EU topic and the broker
   itself refuses it (``TOPIC_AUTHORIZATION_FAILED``).

Every principal the demo uses (the operator ``admin`` too) authenticates with tokens: no config it
writes and no client it builds names a SCRAM password (SCRAM stays available on the cluster's
``SASL_SSL`` listener, docs/security.md). ``--insecure`` runs the former PLAINTEXT path instead
(no authentication, no authorizer: steps 4 and 9 are skipped). A cluster already running in the
state directory with the other security, or secured without ``--oauth``, is not reused: the demo
says how to stop it.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from router.errors import RouterError

if TYPE_CHECKING:
    from router.access.check import AclReport
    from router.config.models import RouterConfig
    from router.devtools.devcluster.launcher import ClusterInfo
    from router.devtools.devcluster.openbao import IssuerInfo

# Frankfurt and Ireland (eu), Virginia (us), London (uk), Zurich (ch): AWS-style zone names, so the
# rack -> jurisdiction mapping in the config is what decides, not the name.
DEMO_RACKS = ("eu-west-1a", "eu-central-1a", "us-east-1a", "eu-west-2a", "eu-central-2a")
DEMO_METRICS = "127.0.0.1:9464"
DEADLINE_S = 30.0
"""How long the demo waits for the cluster to show an effect (ACLs reaching the brokers, a refusal)."""

ROUTER, CONNECTOR, OPERATOR, AUDITOR = "router", "connector", "admin", "auditor"
T = TypeVar("T")

_quiet = logging.getLogger("router.demo.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the router demo on a local secured dev cluster",
        description="Start (or reuse) the secured dev cluster with its token issuer, apply the config's ACL "
                    "plan, route generated CRM events as User:router (OAUTHBEARER tokens, no password) and show "
                    "the broker refusing a US principal an EU topic.",
    )
    p.add_argument("--config", required=True, help="router YAML config to start from (e.g. examples/router.yaml)")
    p.add_argument("--state-dir", help="dev cluster state directory (default as for `devcluster`)")
    p.add_argument("--events", type=int, default=3000, help="generated events to route (default: %(default)s)")
    p.add_argument("--insecure", action="store_true",
                   help="use a PLAINTEXT cluster without authentication or ACLs (the former demo); "
                        "no ACL plan, no refused principal")
    p.set_defaults(handler=_demo)


# -- the demo's config (pure: tested without a cluster) ------------------------------------------

def demo_principals(jurisdictions: Iterable[str]) -> tuple[str, ...]:
    """The dev cluster principals the demo's ``access`` section names (``admin`` is the operator)."""
    js = list(jurisdictions)
    return (OPERATOR, ROUTER, CONNECTOR, *(f"consumer-{j}" for j in js), *(f"sre-{j}" for j in js), AUDITOR)


def access_section(jurisdictions: Iterable[str], ingress: str) -> dict[str, Any]:
    """The demo's ``access``: the router, the connector writing the demo's ingress topic, one
    consumer and one SRE per jurisdiction, the auditor; any excess grant refuses ``run``."""
    js = list(jurisdictions)
    return {
        "router": f"User:{ROUTER}",
        "connectors": {f"User:{CONNECTOR}": [ingress]},
        "consumers": {j: [f"User:consumer-{j}"] for j in js},
        "sre": {j: [f"User:sre-{j}"] for j in js},
        "auditors": [f"User:{AUDITOR}"],
        "on_excess_grant": "refuse",
    }


def cluster_section(info: ClusterInfo, principal: str) -> dict[str, Any]:
    """``clusters.default`` for ``principal``: on a secured cluster, SASL_SSL to its ``OAUTH``
    listeners with OAUTHBEARER tokens (``sasl.openbao``: identity tokens of the OIDC role
    ``principal`` at the cluster's dev OpenBao, after an AppRole login with the principal's role-id
    and secret-id FILES; paths only, and no password anywhere); PLAINTEXT with ``allow_plaintext``
    on a cluster without security (every client is anonymous there). A secured cluster started
    without ``--oauth`` issues no tokens: :class:`DevClusterError` naming its state directory."""
    if info.security is None:
        return {"bootstrap": info.bootstrap, "security": {"protocol": "PLAINTEXT"}, "allow_plaintext": True}
    role_id, secret_id = info.approle_files(principal)  # the error of a cluster without --oauth
    issuer = info.oauth
    assert issuer is not None  # approle_files: the cluster was started with --oauth
    return {
        "bootstrap": info.oauth_bootstrap,  # the OAUTH listeners: OAUTHBEARER only
        "security": {
            "protocol": "SASL_SSL",
            "ca_file": info.security.ca,
            "sasl": {
                "mechanism": "OAUTHBEARER",
                "openbao": {
                    "address": issuer.address,
                    "ca_file": issuer.ca_file,
                    "role": principal,
                    "principal_claim": issuer.principal_claim,
                    "approle": {"role_id_file": str(role_id), "secret_id_file": str(secret_id)},
                },
            },
        },
    }


def demo_document(base: Mapping[str, Any], *, run_id: str, keyring: Path, secure: bool) -> dict[str, Any]:
    """The demo's config document from ``base`` (e.g. examples/router.yaml), without ``clusters``:
    the dev keyring, a per-run ingress topic, group and transactional id prefix, telemetry on
    :data:`DEMO_METRICS`, and (``secure``) the demo's ``access`` section; without ``secure`` no
    ``access`` (a cluster without an authorizer would make ``run`` refuse to start)."""
    doc = {k: v for k, v in base.items() if k not in ("clusters", "access")}
    jurisdictions = list(base["jurisdictions"])
    doc["keys"] = {
        "providers": {"dev": {"type": "local", "keyring": str(keyring)}},
        "jurisdictions": {j: {"provider": "dev"} for j in jurisdictions},
        "signer": {"keyring": str(keyring)},
    }
    ingress = f"crm.ingress.demo-{run_id}"
    doc["pipeline"] = {
        **base.get("pipeline", {}),
        "ingress": [{"topic": ingress, "jurisdiction": "eu", "decoder": "auto"}],
        "group_id": f"residency-router-demo-{run_id}",
        "transactional_id_prefix": f"residency-router-demo-{run_id}",
    }
    # The ingress topic holds raw CDC of every jurisdiction: it is placed in eu like any eu topic.
    doc["topics"] = [*base.get("topics", []),
                     {"name": ingress, "jurisdiction": "eu", "partitions": 3, "replication_factor": 2}]
    doc["telemetry"] = {"metrics_address": DEMO_METRICS}  # a busy port: a warning, the demo goes on
    if secure:
        doc["access"] = access_section(jurisdictions, ingress)
    return doc


def as_principal(doc: Mapping[str, Any], info: ClusterInfo, principal: str) -> dict[str, Any]:
    """``doc`` with its clients authenticating as ``principal``."""
    rest = {k: v for k, v in doc.items() if k != "clusters"}
    return {"clusters": {"default": cluster_section(info, principal)}, **rest}


def down_hint(state_dir: str | Path, *, default_state_dir: bool) -> str:
    """The command that stops the demo's cluster: ``make demo-down`` for the default state directory."""
    if default_state_dir:
        return "`make demo-down`"
    return f"`residency-router devcluster --state-dir {shlex.quote(str(state_dir))} down`"


def other_cluster_problem(
    existing: ClusterInfo | None, *, secure: bool, principals: Iterable[str], default_state_dir: bool,
) -> str | None:
    """Why a cluster running in the state directory cannot serve this demo (None if it can, or if
    none runs): it runs with the other security, is secured without the token issuer the secure
    demo authenticates with (``--oauth``), or (secured) lacks one of ``principals``, which exist
    only from a cluster's start. The message says how to stop it."""
    if existing is None or not any(existing.running.values()):
        return None  # nothing runs: the launcher clears a stopped cluster's state and starts afresh
    down = down_hint(existing.state_dir, default_state_dir=default_state_dir)
    if (existing.security is not None) != secure:
        how = ("without --secure (PLAINTEXT, no authorizer)" if existing.security is None
               else "with --secure --oauth (TLS, OAUTHBEARER tokens, ACLs)" if existing.oauth is not None
               else "with --secure (TLS, SCRAM, ACLs)")
        other = "with --insecure" if existing.security is None else "without --insecure"
        return (f"the dev cluster recorded in {existing.state_dir} runs {how}, and the demo does not reuse a "
                f"cluster started differently: stop it with {down} and run the demo again (or run the demo {other})")
    if existing.security is not None and existing.oauth is None:
        return (f"the secured dev cluster recorded in {existing.state_dir} runs without --oauth (no token issuer; "
                "its clients authenticate with SCRAM passwords), and the demo authenticates every principal with "
                f"OAUTHBEARER tokens from the cluster's dev OpenBao: stop it with {down} and run the demo again")
    if existing.security is not None:
        have = {p.name for p in existing.security.principals}
        if missing := [p for p in principals if p not in have]:
            return (f"the secured dev cluster recorded in {existing.state_dir} has no principal {', '.join(missing)} "
                    f"(principals are created when a cluster starts): stop it with {down} and run the demo again")
    return None


# -- the narrated script -----------------------------------------------------------------------

def _bar(done: int, total: int, width: int = 40) -> str:
    filled = int(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _until(what: str, attempt: Callable[[], T | None], timeout: float = DEADLINE_S) -> T:
    """``attempt()`` until it returns something other than None, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        out = attempt()
        if out is not None:
            return out
        if time.monotonic() > deadline:
            raise RouterError(f"demo: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)  # between two requests to the cluster, which each wait for an answer


def _demo(args: argparse.Namespace) -> int:  # noqa: PLR0915 - a narrated script, step by step
    import uuid  # noqa: PLC0415

    import yaml  # noqa: PLC0415
    from confluent_kafka.admin import NewTopic  # noqa: PLC0415

    from router.config.loader import parse_config  # noqa: PLC0415
    from router.devtools.devcluster.errors import DevClusterError  # noqa: PLC0415
    from router.devtools.devcluster.launcher import DevCluster, default_state_dir  # noqa: PLC0415
    from router.keys.factory import build_trust_bundle  # noqa: PLC0415
    from router.keys.local import LocalKeyring  # noqa: PLC0415
    from router.pipeline.app import RouterApp  # noqa: PLC0415
    from router.placement.kafka import admin_for, create_topics, snapshot, wait_for_topics  # noqa: PLC0415
    from router.placement.model import requirements_of, verify  # noqa: PLC0415

    secure = not args.insecure
    base = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    jurisdictions = list(base["jurisdictions"])

    print("== 1. the local Apache Kafka cluster"
          + (", secured: TLS, OAUTHBEARER tokens from a dev OpenBao, ACLs" if secure else ", PLAINTEXT (--insecure)")
          + " (the first run fetches Kafka with Maven)", flush=True)
    cluster = DevCluster(args.state_dir)
    principals = demo_principals(jurisdictions) if secure else None
    is_default = cluster.state_dir.resolve() == default_state_dir().resolve()
    problem = other_cluster_problem(cluster.load(), secure=secure, principals=principals or (),
                                    default_state_dir=is_default)
    if problem is not None:
        raise DevClusterError(problem)
    info = cluster.up(DEMO_RACKS, heap_mb=384, secure=secure, principals=principals, oauth=secure)
    config0 = parse_config({"clusters": {"default": cluster_section(info, OPERATOR)},
                            "jurisdictions": base["jurisdictions"]}, args.config)
    print(
        f"bootstrap {info.oauth_bootstrap or info.bootstrap}  (Kafka {info.kafka_version}; "
        f"{'cache used' if info.artifacts_from_cache else 'fetched from Maven Central'})"
    )
    if info.security is not None and info.oauth is not None:
        _print_token_auth(info.oauth, ca=info.security.ca, super_user=info.security.super_user)
    print(f"{'broker':>6}  {'rack':<14} jurisdiction")
    for n in info.nodes:
        print(f"{n.node_id:>6}  {n.rack:<14} {config0.jurisdiction_of_rack(n.rack) or '(none)'}")

    run_id = uuid.uuid4().hex[:6]
    work = Path(info.state_dir) / f"demo-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    keyring = work / "dev-keyring.json"
    LocalKeyring.create(keyring, jurisdictions)
    doc = demo_document(base, run_id=run_id, keyring=keyring, secure=secure)
    ingress = doc["pipeline"]["ingress"][0]["topic"]

    def config_of(principal: str) -> RouterConfig:
        return parse_config(as_principal(doc, info, principal), args.config)

    config = config_of(ROUTER)
    operator = config_of(OPERATOR) if secure else config
    config_path = work / "router.yaml"
    config_path.write_text(yaml.safe_dump(as_principal(doc, info, ROUTER), sort_keys=False), encoding="utf-8")
    print(f"\n== 2. development keyring {keyring} (for development only) and config {config_path}")
    if secure:
        operator_path = work / "operator.yaml"
        operator_path.write_text(yaml.safe_dump(as_principal(doc, info, OPERATOR), sort_keys=False), encoding="utf-8")
        role_id, _ = info.approle_files(ROUTER)
        print(f"   its clients are User:{ROUTER}: OAUTHBEARER tokens of the OpenBao role {ROUTER}, fetched with its "
              f"AppRole files in {role_id.parent} (files named, no secret and no password in the config); "
              f"{operator_path.name} is the same as User:{OPERATOR}, for `acls` and `topics`")
    trust = work / "trust.json"
    assert config.keys is not None
    build_trust_bundle(config.keys).save(trust)  # what readers get: public keys only, no keyring
    print(f"   trust bundle for readers {trust} (keys export-trust: the signer's public keys)")

    print("\n== 3. topics: every replica inside its jurisdiction, plus one deliberately misplaced"
          + (f" (created as User:{OPERATOR})" if secure else ""))
    admin = admin_for(operator)
    for o in create_topics(operator, admin):
        print(f"  {o.action:<8} {o.topic:<24} jurisdiction {o.jurisdiction:<3} replicas per partition {o.assignment}")
    brokers = {n.rack: n.node_id for n in info.nodes}
    misplaced = f"crm.eu.misplaced.demo-{run_id}"
    admin.create_topics(
        [NewTopic(misplaced, num_partitions=1, replica_assignment=[[brokers["eu-west-1a"], brokers["us-east-1a"]]])],
        request_timeout=30,
    )[misplaced].result()
    names = [t.name for t in config.topics] + [misplaced]
    wait_for_topics(admin, names, timeout=30)
    reqs = {**requirements_of(config), misplaced: "eu"}
    report = verify(snapshot(admin, list(reqs)), reqs, config.jurisdiction_of_rack)
    for t in sorted(report.topics.values(), key=lambda t: t.topic):
        mark = "ok  " if t.ok else "FAIL"
        print(f"  {mark} {t.topic:<40} needs {t.required:<3} replicas in {sorted(j or '-' for j in t.jurisdictions)}")
    print(f"  -> the router refuses to start with {misplaced} as a destination; the demo leaves it out.")

    if secure:
        _acl_step(operator, admin)
    else:
        print("\n== 4. (--insecure: no authorizer, so no ACL plan; every client may read and write every topic)")

    print(f"\n== 5. producing {args.events} generated CRM change events to {ingress}"
          + (f" as User:{CONNECTOR}" if secure else ""))
    _produce(_props(config_of(CONNECTOR) if secure else config), ingress, args.events)

    as_router = f" as User:{ROUTER}" if secure else ""
    reader = _props(operator)
    outputs = [t.name for t in config.topics if t.name != ingress]
    start = _ends(reader, outputs)  # the cluster may hold earlier runs' records: this run's start after them
    print(f"\n== 6. running the router{as_router} until the ingress topic is drained")
    started = time.monotonic()
    print(f"  metrics and health while it runs: http://{DEMO_METRICS}/metrics, /healthz, /readyz")
    app = RouterApp(config, instance_id=f"demo-{run_id}", config_dir=Path(args.config).resolve().parent,
                    metrics_required=False)
    stats = app.run(max_idle_s=5)
    took = time.monotonic() - started
    if secure:
        print("  start-up checks passed: placement, and the ACL check (no grant beyond the plan)")
    print(f"  consumed {stats.consumed} events in {took:.1f}s ({stats.commits} transactions, {stats.aborts} aborted)")

    print("\n== 7. where everything went (read back with read_committed" + (f" as User:{OPERATOR})" if secure else ")"))
    _summary(config, reader, start)

    eu_topic = _eu_topic(config, reader, start)
    print("\n== 8. a regional LLM consumer reads an EU topic" + (" as User:consumer-eu" if secure else ""))
    eu_reader = config_of("consumer-eu") if secure else config
    _consumer_demo(eu_reader, eu_topic, start[eu_topic], trust, group_prefix="consumer-eu." if secure else "")

    if secure:
        refused = _refusal(config_of("consumer-us"), eu_topic, f"consumer-us.demo-{run_id}")
        print(f"\n== 9. the broker refuses User:consumer-us on {eu_topic}: {refused}")
        print("  (authenticated with a valid token of its own and in a group of its own prefix: the plan grants it "
              f"{_us_topics(operator)} only, so the topic is what the broker refuses)")
    print(f"\nThe cluster keeps running; stop it with {down_hint(info.state_dir, default_state_dir=is_default)}.")
    if secure:
        print(f"Explore it as the operator: residency-router acls check --config {work / 'operator.yaml'}")
    return 0


def _print_token_auth(issuer: IssuerInfo, *, ca: str, super_user: str) -> None:
    """Step 1's lines on how clients authenticate: who issues the tokens, for how long, who verifies them."""
    print(f"  every client authenticates with an OAUTHBEARER token (SASL_SSL to the OAUTH listeners; CA {ca}), "
          "no password:")
    print(f"    issued by the dev OpenBao at {issuer.address} (identity tokens, a JWT per principal after an "
          "AppRole login with its role-id and secret-id files)")
    print(f"    each lives {issuer.token_ttl_s} s; clients fetch a new one before it expires and the brokers make "
          "every connection re-authenticate within a lifetime")
    print(f"    verified by the brokers: signature against OpenBao's keys ({issuer.jwks_url}), issuer, audience "
          f"{issuer.audience!r}, expiry; the principal is the token's {issuer.principal_claim} claim")
    print(f"  the authorizer denies what no ACL allows; super user User:{super_user} only")


def _props(config: RouterConfig) -> dict[str, Any]:
    return {**config.clusters["default"].client_properties(), "logger": _quiet}


def _acl_step(operator: RouterConfig, admin: Any) -> None:
    """Step 4: ``acls apply`` and ``acls check`` as the operator, waiting (with a deadline) until
    the cluster answers with every planned binding."""
    from router.access.kafka import apply, check_cluster  # noqa: PLC0415

    done = apply(operator, admin, timeout=15)
    print(f"\n== 4. the ACL plan of the access section, applied as User:{OPERATOR} (acls apply): "
          f"{len(done.changes.create)} bindings created, {len(done.changes.present)} already present")

    def complete() -> AclReport | None:
        report = check_cluster(operator, admin, timeout=15)
        return None if report.missing else report

    report = _until("every planned ACL binding showing in the cluster's ACLs", complete)
    if not report.ok:
        for e in report.excess:
            print(f"  EXCESS {e.message()}")
        raise RouterError("acls check: grants beyond the plan (above); the router would refuse to start. "
                          "Remove them (`acls apply --prune`) or stop the demo's cluster and run the demo again")
    print("  acls check: ok, every grant on the configured topics is in the plan; who can reach each "
          "jurisdiction's topics:")
    for j, accesses in report.accesses.items():
        by_op: dict[str, set[str]] = {}
        for a in accesses:
            by_op.setdefault(a.operation.value, set()).add(a.principal)
        print(f"    {j:<3} " + "; ".join(f"{op} {', '.join(sorted(ps))}" for op, ps in sorted(by_op.items())))


def _us_topics(operator: RouterConfig) -> str:
    from router.access.plan import PatternType, ResourceType, plan  # noqa: PLC0415

    names = sorted(f"{b.name}*" if b.pattern_type == PatternType.PREFIXED else b.name
                   for b in plan(operator)
                   if b.principal == "User:consumer-us" and b.resource_type == ResourceType.TOPIC)
    return ", ".join(names) or "no topic"


def _produce(props: Mapping[str, Any], topic: str, events: int) -> None:
    """Produce the generated events once the producer's principal sees ``topic`` (its WRITE ACL
    has reached the broker it asks); fail naming the error codes of any undelivered record."""
    from confluent_kafka import Producer  # noqa: PLC0415

    from router.devtools.samples import generate  # noqa: PLC0415

    producer = Producer({**props, "enable.idempotence": True, "linger.ms": 5})

    def visible() -> bool | None:
        md = producer.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        return True if t is not None and t.error is None else None

    _until(f"{topic} visible to the producer's principal", visible)
    failed: Counter[str] = Counter()

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed[err.name()] += 1

    formats: Counter[str] = Counter()
    for i, rec in enumerate(generate(events, seed=42)):
        producer.produce(topic, rec.value, rec.key, headers=list(rec.headers.items()), on_delivery=delivered)
        formats[rec.format] += 1
        if i % 200 == 0 or i == events - 1:
            producer.poll(0)
            print(f"\r  {_bar(i + 1, events)}", end="", file=sys.stderr, flush=True)
    left = producer.flush(60)
    print(file=sys.stderr)
    if left or failed:
        raise RouterError(f"demo: {left} events undelivered after 60 s, {sum(failed.values())} refused "
                          f"({', '.join(f'{k} {v}' for k, v in sorted(failed.items())) or 'no error code'})")
    print("  formats: " + ", ".join(f"{f} {c}" for f, c in sorted(formats.items())))


def _ends(props: Mapping[str, Any], topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """topic -> partition -> its end offset now (where the records written from now on start)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer({**props, "group.id": "demo-reader", "enable.auto.commit": False})
    try:
        out: dict[str, dict[int, int]] = {}
        for topic in topics:
            parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
            out[topic] = {p: int(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]) for p in parts}
        return out
    finally:
        c.close()


def _count(props: Mapping[str, Any], topic: str, start: Mapping[int, int]) -> list[Any]:
    """The committed records of ``topic`` from ``start`` (partition -> offset) to its end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: PLC0415

    c = Consumer(
        {
            **props,
            "group.id": "demo-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in parts])
        done: set[int] = set()
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while len(done) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                if (err := m.error()) is not None:
                    if err.code() == KafkaError._PARTITION_EOF and (eof_partition := m.partition()) is not None:
                        done.add(eof_partition)
                    continue
                out.append(m)
        return out
    finally:
        c.close()


def _summary(config: RouterConfig, props: Mapping[str, Any], start: Mapping[str, Mapping[int, int]]) -> None:
    from router.quarantine.record import decode_quarantine  # noqa: PLC0415

    print(f"  {'routed to':<44} {'jurisdiction':<13} events")
    total_routed = 0
    audit_count = 0
    reasons: Counter[tuple[str, str]] = Counter()
    ingress = {i.topic for i in config.pipeline.ingress} if config.pipeline is not None else set()
    for t in config.topics:
        if t.name in ingress:
            continue  # raw input, placed in its jurisdiction; not an output
        msgs = _count(props, t.name, start.get(t.name, {}))
        if t.name.startswith("quarantine."):
            for m in msgs:
                reasons[(t.jurisdiction, decode_quarantine(m.value()).reason)] += 1
        elif config.audit is not None and t.name == config.audit.topic:
            from router.audit.record import is_placement_record  # noqa: PLC0415

            audit_count = sum(not is_placement_record(m.value() or b"") for m in msgs)  # decisions, one per event
        elif msgs:
            total_routed += len(msgs)
            print(f"  {t.name:<44} {t.jurisdiction:<13} {len(msgs)}")
    print(f"  {'quarantined (jurisdiction, reason)':<44} {'':<13} events")
    for (j, reason), n in sorted(reasons.items()):
        print(f"  {'quarantine.' + j + '  ' + reason:<58} {n}")
    quarantined = sum(reasons.values())
    print(f"  total: {total_routed} routed, {quarantined} quarantined, "
          f"{audit_count - total_routed - quarantined} audited only (bare tombstones), {audit_count} audit records")


def _eu_topic(config: RouterConfig, props: Mapping[str, Any], start: Mapping[str, Mapping[int, int]]) -> str:
    """An EU regional topic the router wrote to in this run: ``*.contact`` when it has records."""
    assert config.pipeline is not None
    ingress = {i.topic for i in config.pipeline.ingress}
    candidates = [t.name for t in config.topics
                  if t.jurisdiction == "eu" and t.name.startswith("crm.") and t.name not in ingress]
    candidates.sort(key=lambda name: not name.endswith(".contact"))
    for name in candidates:
        if _count(props, name, start.get(name, {})):
            return name
    raise RouterError("demo: the router wrote no record to an EU topic (see the summary above)")


def _consumer_demo(
    config: RouterConfig, eu_topic: str, start: Mapping[int, int], trust: Path, *, group_prefix: str,
) -> None:
    """Read ``eu_topic`` from ``start`` (this run's records) with the EU key, then with the US key."""
    import uuid  # noqa: PLC0415

    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    from router.consumer import RegionalConsumer, Verified  # noqa: PLC0415
    from router.keys.trust import TrustBundle  # noqa: PLC0415

    public = TrustBundle.load(trust)  # the bundle alone: the reader never opens the signer's keyring
    for j in ("eu", "us"):
        group = f"{group_prefix}demo-{uuid.uuid4().hex}"
        # the group starts at this run's records: commit their start, as the reader's own principal
        seed = Consumer({**_props(config), "group.id": group, "enable.auto.commit": False})
        try:
            seed.commit(offsets=[TopicPartition(eu_topic, p, o) for p, o in sorted(start.items())],
                        asynchronous=False)
        finally:
            seed.close()
        with RegionalConsumer.from_config(
            config,
            jurisdiction=j,
            topics=[eu_topic],
            group_id=group,
            trust=public,
        ) as c:
            items = list(c.records(max_records=20, idle_timeout_s=5))
        ok = [i for i in items if isinstance(i, Verified)]
        bad = [i for i in items if not isinstance(i, Verified)]
        print(
            f"  {eu_topic} with the {j.upper()} key: {len(ok)} verified and decrypted, {len(bad)} rejected"
            + (f" ({type(bad[0].error).__name__})" if bad else "")
        )
        if ok:
            print(
                f"    e.g. {ok[0].ctx.entity} {ok[0].ctx.operation} {ok[0].ctx.event_id}: "
                f"{len(ok[0].plaintext)} bytes of plaintext, classification {ok[0].ctx.classification_level}"
            )


def _refusal(config: RouterConfig, topic: str, group: str) -> str:
    """Subscribe to ``topic`` as the principal of ``config`` and return the name of the
    authorization error the broker answers with (waiting up to :data:`DEADLINE_S`). Reading a
    record, or no answer in time, is an error: the ACL plan is then not what the broker enforces."""
    from confluent_kafka import Consumer, KafkaError  # noqa: PLC0415

    refusals = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
    c = Consumer({**_props(config), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            err = m.error()
            if err is None:
                raise RouterError(f"demo: a principal outside the plan read a record of {topic}: the broker does "
                                  "not enforce the ACL plan")
            if err.code() in refusals:
                return str(err.name())
        raise RouterError(f"demo: the broker did not refuse the subscription to {topic} within {DEADLINE_S:.0f} s")
    finally:
        c.close()
