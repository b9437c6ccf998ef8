"""``acls apply`` and ``acls check`` on a secured cluster (TLS, SCRAM, StandardAuthorizer).

The module starts its own secured 3-node dev cluster (``DevCluster(...).up(racks, secure=True)``)
with the principals of examples/router.yaml's ``access`` section, applies the plan of that config
as the super user, and checks what each principal can really do: an EU consumer reads ``crm.eu.*``,
a US consumer is refused, a connector cannot write ``crm.eu.*``. A stray READ for the US consumer on
an EU topic makes ``acls check`` exit 1 naming it, and removing it makes it exit 0 again. Then a
whole router deployment (tests/integration/router_env.py) runs as ``User:router`` with nothing but
its plan: ``run``'s start-up check refuses while the stray grant exists, and once it is gone the
router routes a batch, the auditor verifies the trail and an SRE lists its quarantine, each under
its own principal. ACL changes reach every broker through the metadata log, so each expectation is
waited for with a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from router.access.kafka import apply
from router.cli import main
from router.config.base import ClusterConfig
from router.devtools.devcluster.launcher import ClusterInfo
from router.devtools.samples import generate
from router.errors import RouterError
from router.pipeline.app import RouterApp
from tests.integration.router_env import RouterEnv, make_env
from tests.integration.secure_cluster import quiet_librdkafka, read_first, secured_cluster

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
RACKS = ("eu-west-1a", "eu-central-1a", "us-east-1a")
DEADLINE_S = 60.0

_quiet = quiet_librdkafka("tests.acls.librdkafka")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secured_cluster(tmp_path_factory, "devcluster-acls", RACKS) as info:
        yield info


def _cluster_section(info: ClusterInfo, principal: str) -> dict[str, Any]:
    """``clusters.default`` authenticating as ``principal`` over SCRAM, in the shape this tree's
    ClusterConfig takes (a ``security`` section, or client properties with ``secrets``)."""
    conf = dict(info.client_config(principal, via="scram"))
    if "security" in ClusterConfig.model_fields:
        assert info.security is not None
        cred = info.security.principal(principal)
        return {"bootstrap": conf["bootstrap.servers"], "security": {
            "protocol": "SASL_SSL", "ca_file": conf["ssl.ca.location"],
            "sasl": {"mechanism": conf["sasl.mechanism"], "username": cred.name,
                     "password": {"file": cred.password_file}}}}
    password = conf.pop("sasl.password")
    return {"bootstrap": conf.pop("bootstrap.servers"), "client": conf, "secrets": {"sasl.password": password}}


@pytest.fixture(scope="module")
def config_path(secured: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/router.yaml on the secured cluster, as the operator (the super user) runs ``acls``."""
    tmp = tmp_path_factory.mktemp("acls-config")
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["clusters"] = {"default": _cluster_section(secured, "admin")}
    path = tmp / "router.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def _client_conf(info: ClusterInfo, principal: str) -> dict[str, Any]:
    return {**info.client_config(principal, via="scram"), "logger": _quiet}


@pytest.fixture(scope="module")
def admin(secured: ClusterInfo) -> Any:
    return AdminClient(_client_conf(secured, "admin"))


def _eventually(what: str, attempt: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not attempt():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S}s")


@pytest.fixture(scope="module")
def applied(config_path: Path, admin: Any) -> dict[str, str]:
    """The plan applied (as the super user) and the example's crm.eu.contact and crm.ingress topics
    created on the EU brokers. Returns the value the router's principal writes in the first test."""
    assert main(["acls", "apply", "--config", str(config_path)]) == 0
    for name in ("crm.eu.contact", "crm.ingress"):
        futures = admin.create_topics([NewTopic(name, num_partitions=1, replica_assignment=[[1, 2]])],
                                      request_timeout=15)
        try:
            futures[name].result()
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return {"value": f"record-{uuid.uuid4().hex}"}


def _produce(conf: dict[str, Any], topic: str, value: str) -> KafkaError | None:
    """Produce one record; the delivery error (None when it was written)."""
    outcome: list[KafkaError | None] = []
    producer = Producer({**conf, "message.timeout.ms": 15000, "enable.idempotence": False})
    try:
        producer.produce(topic, value.encode(), on_delivery=lambda err, _msg: outcome.append(err))
    except KafkaException as err:
        return err.args[0]  # type: ignore[no-any-return]  # KafkaException carries its KafkaError
    producer.flush(30)
    assert outcome, f"no delivery report for {topic} within 30 s"
    return outcome[0]


def test_principals_can_do_what_the_plan_says_and_nothing_more(secured: ClusterInfo, applied: dict[str, str]) -> None:
    value = applied["value"]
    # the router writes regional topics (ACLs reach each broker through the metadata log: retry)
    _eventually("the router writes crm.eu.contact",
                lambda: _produce(_client_conf(secured, "router"), "crm.eu.contact", value) is None)
    # a connector writes its ingress topic ...
    _eventually("the connector writes crm.ingress",
                lambda: _produce(_client_conf(secured, "connector"), "crm.ingress", "raw") is None)
    # ... and cannot write a regional topic
    refused = _produce(_client_conf(secured, "connector"), "crm.eu.contact", "forged")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # an EU consumer reads crm.eu.* with a group under its own prefix
    values, errors = read_first(_client_conf(secured, "consumer-eu"), "crm.eu.contact",
                                f"consumer-eu.{uuid.uuid4().hex}", deadline_s=DEADLINE_S)
    assert value.encode() in values, errors

    # a US consumer is refused, with a group of its own prefix (so the topic is what is refused)
    values, errors = read_first(_client_conf(secured, "consumer-us"), "crm.eu.contact",
                                f"consumer-us.{uuid.uuid4().hex}", deadline_s=DEADLINE_S)
    assert values == []
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in errors


def _stray() -> AclBinding:
    return AclBinding(ResourceType.TOPIC, "crm.eu.contact", ResourcePatternType.LITERAL, "User:consumer-us", "*",
                      AclOperation.READ, AclPermissionType.ALLOW)


def test_apply_twice_creates_nothing_new(config_path: Path, applied: dict[str, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["acls", "apply", "--config", str(config_path)]) == 0
    assert "\n0 created," in capsys.readouterr().out


def test_check_flags_a_stray_read_on_an_eu_topic_and_passes_after_removal(
    config_path: Path, admin: Any, applied: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    def check_exits(code: int) -> bool:
        capsys.readouterr()
        return main(["acls", "check", "--config", str(config_path)]) == code

    _eventually("acls check passes on the applied plan", lambda: check_exits(0))
    admin.create_acls([_stray()], request_timeout=15)[_stray()].result()
    try:
        capsys.readouterr()
        _eventually("acls check sees the stray grant", lambda: check_exits(1))
        out = capsys.readouterr().out
    finally:
        f = AclBindingFilter(ResourceType.TOPIC, "crm.eu.contact", ResourcePatternType.LITERAL, "User:consumer-us",
                             "*", AclOperation.READ, AclPermissionType.ALLOW)
        admin.delete_acls([f], request_timeout=15)[f].result()
    assert "EXCESS ALLOW READ on TOPIC LITERAL 'crm.eu.contact' for User:consumer-us" in out
    assert "reaches the topics of eu" in out
    _eventually("acls check passes after the stray grant is removed", lambda: check_exits(0))



class _SecuredCluster:
    """What ``make_env`` asks of a cluster: its bootstrap and its brokers by rack prefix."""

    def __init__(self, info: ClusterInfo) -> None:
        self.bootstrap = info.bootstrap
        self.nodes = info.nodes

    def brokers_in(self, prefix: str) -> list[int]:
        return [n.node_id for n in self.nodes if n.rack.startswith(prefix)]


ACCESS = {
    "router": "User:router",
    "consumers": {"eu": ["User:consumer-eu"], "us": ["User:consumer-us"]},
    "sre": {"eu": ["User:sre-eu"], "us": ["User:sre-us"]},
    "auditors": ["User:auditor"],
}


@pytest.fixture
def deployment(secured: ClusterInfo, admin: Any, tmp_path: Path) -> RouterEnv:
    """A deployment whose clients authenticate as User:router, topics created and its plan applied
    by the super user."""
    env = make_env(_SecuredCluster(secured), admin, tmp_path, ingress_partitions=1,
                   extra={"clusters": {"default": _cluster_section(secured, "router")}, "access": ACCESS})
    apply(env.config, admin, timeout=15)
    return env


def _as(env: RouterEnv, secured: ClusterInfo, principal: str) -> Path:
    """The deployment's config file with clients authenticating as ``principal``."""
    doc = yaml.safe_load(env.config_path.read_text(encoding="utf-8"))
    doc["clusters"] = {"default": _cluster_section(secured, principal)}
    path = env.config_path.with_name(f"router-{principal}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def _stop(app: RouterApp) -> None:
    if app.watch is not None:
        app.watch.stop(5)
    telemetry = getattr(app, "telemetry", None)
    if telemetry is not None:
        telemetry.stop()


def test_run_refuses_a_stray_grant_then_the_plan_alone_runs_the_deployment(
    secured: ClusterInfo, admin: Any, deployment: RouterEnv,
) -> None:
    env = deployment
    eu_topic = f"crm.eu.contact.{env.suffix}"
    stray = AclBinding(ResourceType.TOPIC, eu_topic, ResourcePatternType.LITERAL, "User:consumer-us", "*",
                       AclOperation.READ, AclPermissionType.ALLOW)
    admin.create_acls([stray], request_timeout=15)[stray].result()
    expected = f"User:consumer-us may READ {eu_topic} (jurisdiction eu)"
    seen: list[str] = []

    def refused() -> bool:
        app = RouterApp(env.config, instance_id="acl-a")
        try:
            app.build()
        except RouterError as err:  # ConfigError once the grant is seen; others while ACLs propagate
            seen.append(str(err))
            return expected in str(err)
        finally:
            _stop(app)
        return False

    try:
        _eventually(f"run refuses naming {expected!r} (last errors: {seen[-2:]})", refused)
    finally:
        f = AclBindingFilter(ResourceType.TOPIC, eu_topic, ResourcePatternType.LITERAL, "User:consumer-us", "*",
                             AclOperation.READ, AclPermissionType.ALLOW)
        admin.delete_acls([f], request_timeout=15)[f].result()

    records = list(generate(400, seed=5))
    producer = Producer(_client_conf(secured, "admin"))
    for rec in records:
        producer.produce(env.ingress, rec.value, rec.key, headers=list(rec.headers.items()))
    assert producer.flush(30) == 0

    engine: Any = None
    app = RouterApp(env.config, instance_id="acl-a")

    def starts() -> bool:
        nonlocal engine, app
        try:
            engine = app.build()
        except RouterError as err:  # the deletion still on its way to the broker asked
            seen.append(str(err))
            _stop(app)
            app = RouterApp(env.config, instance_id="acl-a")
            return False
        return True

    _eventually(f"run starts once the stray grant is gone (last errors: {seen[-2:]})", starts)
    try:
        stats = engine.run(max_idle_s=10, until=lambda st: st.consumed >= len(records))
    finally:
        _stop(app)
    assert stats.consumed == len(records)
    assert stats.aborts == 0 and stats.commits >= 1
    # the end-to-end check: each input once by source position, one audit record each, chains
    # verified, every output opening under its topic's jurisdiction only (read as the super user)
    from tests.integration.test_router_resilience import _exactly_once

    _exactly_once(env, len(records), client=_client_conf(secured, "admin"))

    # the auditor verifies the trail the router wrote, with its own grants only
    assert main(["audit", "verify", "--config", str(_as(env, secured, "auditor")), "--timeout", "60"]) == 0
    # an SRE of eu lists its quarantine; the US SRE cannot read it
    sre_eu = str(_as(env, secured, "sre-eu"))
    assert main(["quarantine", "stats", "--config", sre_eu, "--jurisdiction", "eu", "--timeout", "60"]) == 0
    sre_us = str(_as(env, secured, "sre-us"))
    assert main(["quarantine", "stats", "--config", sre_us, "--jurisdiction", "eu", "--timeout", "30"]) != 0
