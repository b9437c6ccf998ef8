"""Short-lived OAuth tokens on a real secured cluster with its real OpenBao issuer.

The module starts its own secured 3-node dev cluster with ``oauth=True``
(:mod:`router.devtools.devcluster.openbao`): a dev OpenBao issues identity tokens that live
:data:`TOKEN_TTL_S` seconds, and the brokers' ``OAUTH`` listener verifies them against its JWKS
(issuer, audience, expiry; principal from ``kafka_principal``) and makes every connection
re-authenticate within a token's lifetime. The router, the connector and the readers authenticate
with nothing but their AppRole files; the plan's ACLs are applied by the super user.

- The router runs end to end with OAUTHBEARER only for several token lifetimes: every record once,
  one audit record each, the chains verified, no aborted transaction.
- What the broker refuses: a token for the US consumer cannot read ``crm.eu.*``; an expired token,
  a token signed by another key and a valid token for a principal no ACL names are refused; the
  CLI's error names the setting to fix.
- OpenBao stopped for longer than a token's lifetime: the router stalls with a clear reason and
  writes nothing; once OpenBao answers again it resumes on its own, exactly once.

Nothing is mocked; every wait is a condition with a deadline.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from router.access.kafka import apply
from router.audit.record import is_placement_record
from router.config.loader import parse_config
from router.devtools.devcluster import openbao as dev_openbao
from router.devtools.devcluster.launcher import ClusterInfo
from router.devtools.samples import generate
from tests.integration.router_env import RouterEnv, make_env
from tests.integration.secure_cluster import quiet_librdkafka, read_first, secured_cluster
from tests.integration.test_faults import RouterProcess
from tests.integration.test_router_resilience import _exactly_once
from tests.kafka_util import read_topic

pytestmark = pytest.mark.integration

RACKS = ("eu-west-1a", "eu-central-1a", "us-east-1a")
TOKEN_TTL_S = 12
"""Well under a minute, so that a test spans several lifetimes."""
DEADLINE_S = 90.0
ACCESS = {
    "router": "User:router",
    "consumers": {"eu": ["User:consumer-eu"], "us": ["User:consumer-us"]},
    "sre": {"eu": ["User:sre-eu"], "us": ["User:sre-us"]},
    "auditors": ["User:auditor"],
}
ROOT = Path(__file__).resolve().parents[2]

_quiet = quiet_librdkafka("tests.oauth.librdkafka")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secured_cluster(tmp_path_factory, "devcluster-oauth", RACKS, oauth=True, token_ttl_s=TOKEN_TTL_S) as info:
        assert info.oauth is not None and info.oauth_bootstrap
        yield info


@pytest.fixture(scope="module")
def admin(cluster: ClusterInfo) -> Any:
    """The super user over its client certificate (no token, no password)."""
    return AdminClient({**cluster.client_config("admin", via="mtls"), "logger": _quiet})


def _admin_conf(info: ClusterInfo) -> dict[str, Any]:
    return {**info.client_config("admin", via="mtls"), "logger": _quiet}


def _oauth_section(info: ClusterInfo, principal: str) -> dict[str, Any]:
    """``clusters.default`` authenticating as ``principal`` with OpenBao identity tokens only."""
    assert info.oauth is not None and info.security is not None
    role_id, secret_id = info.approle_files(principal)
    return {"bootstrap": info.oauth_bootstrap, "security": {
        "protocol": "SASL_SSL", "ca_file": info.security.ca,
        "sasl": {"mechanism": "OAUTHBEARER", "openbao": {
            "address": info.oauth.address, "ca_file": info.oauth.ca_file, "role": principal,
            "principal_claim": info.oauth.principal_claim,
            "approle": {"role_id_file": str(role_id), "secret_id_file": str(secret_id)}}}}}


class _OAuthCluster:
    """What ``make_env`` asks of a cluster: a bootstrap and brokers by rack prefix."""

    def __init__(self, info: ClusterInfo) -> None:
        assert info.oauth_bootstrap is not None
        self.bootstrap = info.oauth_bootstrap
        self.nodes = info.nodes

    def brokers_in(self, prefix: str) -> list[int]:
        return [n.node_id for n in self.nodes if n.rack.startswith(prefix)]


def _deploy(cluster: ClusterInfo, admin: Any, tmp_path: Path, cluster_section: dict[str, Any] | None) -> RouterEnv:
    """A deployment (make_env) whose ``access`` lets User:connector write its ingress topic, the
    plan's ACLs applied by the super user; its router authenticates with ``cluster_section``."""
    env = make_env(_OAuthCluster(cluster), admin, tmp_path, ingress_partitions=2, extra={"access": ACCESS})
    doc = yaml.safe_load(env.config_path.read_text(encoding="utf-8"))
    doc["access"] = {**ACCESS, "connectors": {"User:connector": [env.ingress]}}
    if cluster_section is not None:
        doc["clusters"] = {"default": cluster_section}
    env.config_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    env.config_path.chmod(0o600)
    env = dataclasses.replace(env, config=parse_config(doc, str(env.config_path)))
    apply(env.config, admin, timeout=15)
    return env


@pytest.fixture
def deployment(cluster: ClusterInfo, admin: Any, tmp_path: Path) -> RouterEnv:
    """A deployment whose router authenticates as User:router with tokens only."""
    return _deploy(cluster, admin, tmp_path, _oauth_section(cluster, "router"))


def _eventually(what: str, check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(0.5)


def _produce(info: ClusterInfo, topic: str, records: list[Any], principal: str = "connector") -> None:
    """Write ``records`` to ``topic`` as ``principal`` with a token (the connector's way in)."""
    producer = Producer({**info.client_config(principal, via="oauth"), "logger": _quiet})
    for rec in records:
        producer.produce(topic, rec.value, rec.key, headers=list(rec.headers.items()))
    assert producer.flush(60) == 0, f"{principal} could not write {topic}"


def _decisions(env: RouterEnv, info: ClusterInfo) -> int:
    """Committed decisions (one audit record per input; placement records not counted)."""
    audit = read_topic(env.bootstrap, env.audit_topic, timeout=30, client=_admin_conf(info))
    return sum(not is_placement_record(m.value()) for m in audit)


def _stop(router: RouterProcess) -> None:
    if router.proc.poll() is None:
        router.proc.send_signal(signal.SIGTERM)
    assert router.wait(timeout=90) == 0, router.stderr[-3000:]


# -- end to end over several token lifetimes -------------------------------------------------------


def test_the_router_runs_on_tokens_alone_through_several_lifetimes_exactly_once(
    cluster: ClusterInfo, deployment: RouterEnv,
) -> None:
    env = deployment
    router = RouterProcess(env, "oauth-a", idle=600, log_level="INFO")
    records = list(generate(1200, seed=41))
    chunks = [records[i::6] for i in range(6)]
    span = 3 * TOKEN_TTL_S + 6
    try:
        started = time.monotonic()
        sent = 0
        # The connector writes a chunk every span/5 seconds, so the run spans three token lifetimes:
        # the brokers close a connection whose token expired unless it re-authenticated with a new
        # one, so every chunk after the first lifetime travels on refreshed tokens.
        for i, chunk in enumerate(chunks):
            _eventually(f"chunk {i} is due", lambda i=i: time.monotonic() - started >= i * span / 5,
                        deadline_s=span)
            _produce(cluster, env.ingress, chunk)
            sent += len(chunk)
            _eventually(f"{sent} records routed", lambda s=sent: _decisions(env, cluster) >= s)
        assert time.monotonic() - started >= span - 1
    finally:
        _stop(router)
    stats = json.loads(router._stdout[-1]) if router._stdout else {}
    assert stats.get("aborts", 0) == 0, f"aborted transactions: {stats}"
    assert "no OAUTHBEARER token" not in router.stderr, router.stderr[-3000:]
    _exactly_once(env, len(records), client=_admin_conf(cluster))


# -- what the brokers refuse -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(claims: dict[str, Any], kid: str) -> str:
    """An RS256 JWT with ``claims``, signed by a key made here (not the issuer's)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    head = _b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(sig)}"


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _issue(info: ClusterInfo, name: str) -> str:
    """A real token of ``name``'s role, issued by the cluster's OpenBao after an AppRole login."""
    assert info.oauth is not None
    role_file, secret_file = info.oauth.approle_files(Path(info.state_dir), name)
    verify = info.oauth.ca_file
    login = requests.post(f"{info.oauth.address}/v1/auth/approle/login", timeout=10, verify=verify, json={
        "role_id": role_file.read_text().strip(), "secret_id": secret_file.read_text().strip()})
    login.raise_for_status()
    resp = requests.get(f"{info.oauth.address}/v1/identity/oidc/token/{name}", timeout=10, verify=verify,
                        headers={"X-Vault-Token": login.json()["auth"]["client_token"]})
    resp.raise_for_status()
    return str(resp.json()["data"]["token"])


def _with_token(info: ClusterInfo, token: str, errors: list[Any] | None = None) -> dict[str, Any]:
    """Client settings that present ``token`` as is (librdkafka is told it lives another minute,
    so that the broker, not the client, judges it); client-level errors go to ``errors``."""
    assert info.security is not None
    sink: list[Any] = errors if errors is not None else []
    return {"bootstrap.servers": info.oauth_bootstrap, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER", "ssl.ca.location": info.security.ca,
            "oauth_cb": lambda _conf: (token, time.time() + 60, "test"), "logger": _quiet,
            "error_cb": sink.append}


@pytest.fixture(scope="module")
def eu_topic(cluster: ClusterInfo, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A deployment's ``crm.eu.contact`` topic holding one record, the plan applied."""
    env = _deploy(cluster, admin, tmp_path_factory.mktemp("oauth-eu"), None)
    topic = f"crm.eu.contact.{env.suffix}"
    producer = Producer(_admin_conf(cluster))
    producer.produce(topic, b"sealed-elsewhere")
    assert producer.flush(30) == 0
    return topic


def test_a_us_consumer_token_cannot_read_an_eu_topic_and_an_eu_consumer_token_can(
    cluster: ClusterInfo, eu_topic: str,
) -> None:
    us = {**cluster.client_config("consumer-us", via="oauth"), "logger": _quiet}
    values, errors = read_first(us, eu_topic, f"consumer-us.{uuid.uuid4().hex}", deadline_s=60)
    assert not values
    assert errors & {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}, errors
    # the control: the EU consumer's token reads it (so the refusal above is the ACL, not the token)
    eu = {**cluster.client_config("consumer-eu", via="oauth"), "logger": _quiet}
    values, errors = read_first(eu, eu_topic, f"consumer-eu.{uuid.uuid4().hex}", deadline_s=60)
    assert values == [b"sealed-elsewhere"], errors


def _refused(info: ClusterInfo, token: str, topic: str) -> set[int]:
    """The error codes a consumer presenting ``token`` gets (from its reads and its error callback);
    it must read nothing."""
    client_errors: list[Any] = []
    values, errors = read_first(_with_token(info, token, client_errors), topic, f"consumer-eu.{uuid.uuid4().hex}",
                                deadline_s=20)
    assert not values, "a refused token read the topic"
    return errors | {e.code() for e in client_errors}


def test_an_expired_token_and_one_signed_by_another_key_are_refused_by_the_broker(
    cluster: ClusterInfo, eu_topic: str,
) -> None:
    token = _issue(cluster, "consumer-eu")
    claims = _claims(token)
    # the same token is accepted while it is valid (the control)...
    values, errors = read_first(_with_token(cluster, token), eu_topic, f"consumer-eu.{uuid.uuid4().hex}",
                                deadline_s=60)
    assert values == [b"sealed-elsewhere"], errors
    # ... a token with the same claims signed by another key is not ...
    forged = _forged({**claims, "exp": int(time.time()) + 600}, kid=str(uuid.uuid4()))
    assert KafkaError._AUTHENTICATION in _refused(cluster, forged, eu_topic)
    # ... nor the issuer's own token once it has expired (the brokers allow 2 s of clock skew)
    _eventually("the token expires", lambda: time.time() > float(claims["exp"]) + 3, deadline_s=TOKEN_TTL_S + 10)
    assert KafkaError._AUTHENTICATION in _refused(cluster, token, eu_topic)


def test_a_valid_token_of_a_principal_no_acl_names_reads_nothing(cluster: ClusterInfo, eu_topic: str) -> None:
    assert cluster.oauth is not None
    client = dev_openbao._client(cluster.oauth)
    accessor = client.sys.list_auth_methods()["approle/"]["accessor"]
    template = json.dumps({dev_openbao.PRINCIPAL_CLAIM: "@@"}).replace('"@@"', "{{identity.entity.name}}")
    name = f"stranger-{uuid.uuid4().hex[:6]}"
    dev_openbao.add_principal(client, cluster.oauth, Path(cluster.state_dir), name, accessor=accessor,
                              template=template)
    # the issuer signs it and the broker authenticates it, but User:<name> has no grant anywhere
    token = _issue(cluster, name)
    assert _claims(token)[dev_openbao.PRINCIPAL_CLAIM] == name
    errors = _refused(cluster, token, eu_topic)
    assert errors & {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}, errors


def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "router.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_the_cli_names_the_setting_when_the_broker_refuses_its_token(
    cluster: ClusterInfo, eu_topic: str, tmp_path: Path,
) -> None:
    token = _issue(cluster, "consumer-eu")
    forged = _forged({**_claims(token), "exp": int(time.time()) + 600}, kid=str(uuid.uuid4()))
    token_file = tmp_path / "token"
    token_file.write_text(forged, encoding="utf-8")
    token_file.chmod(0o600)
    assert cluster.security is not None
    doc = yaml.safe_load((ROOT / "examples" / "router.yaml").read_text(encoding="utf-8"))
    doc["clusters"] = {"default": {"bootstrap": cluster.oauth_bootstrap, "security": {
        "protocol": "SASL_SSL", "ca_file": cluster.security.ca,
        "sasl": {"mechanism": "OAUTHBEARER", "token_file": str(token_file)}}}}
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = _cli(["status", "--config", str(config), "--json"])
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "clusters.default.security.sasl" in result.stderr, result.stderr[-2000:]
    assert forged not in result.stderr + result.stdout


def _assert_no_commit_for(env: RouterEnv, cluster: ClusterInfo, router: RouterProcess, seconds: float) -> None:
    """For ``seconds``, a read_committed reader waiting at the end of the audit topic receives
    nothing (the router commits no decision) and the router keeps running."""
    reader = Consumer({**_admin_conf(cluster), "group.id": f"watch-{uuid.uuid4().hex}",
                       "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        parts = sorted(reader.list_topics(env.audit_topic, timeout=15).topics[env.audit_topic].partitions)
        ends = [reader.get_watermark_offsets(TopicPartition(env.audit_topic, p), timeout=15)[1] for p in parts]
        reader.assign([TopicPartition(env.audit_topic, p, end) for p, end in zip(parts, ends, strict=True)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = reader.poll(min(1.0, max(0.0, deadline - time.monotonic())))  # waits for a record
            assert msg is None or msg.error() is not None, "the router wrote while it had no valid token"
            assert router.proc.poll() is None, "the router ended instead of waiting for its token:\n" + \
                router.stderr[-3000:]
    finally:
        reader.close()


# -- OpenBao silent for longer than a token's lifetime -------------------------------------------------


def test_openbao_stopped_past_a_token_lifetime_stalls_the_router_which_resumes_on_its_own(
    cluster: ClusterInfo, deployment: RouterEnv,
) -> None:
    assert cluster.oauth is not None
    env = deployment
    records = list(generate(600, seed=43))
    first, second = records[:300], records[300:]
    router = RouterProcess(env, "oauth-b", idle=600, log_level="INFO")
    bao = cluster.oauth.pid
    stopped = False
    try:
        _produce(cluster, env.ingress, first)
        _eventually("the first half routed", lambda: _decisions(env, cluster) >= len(first))
        os.kill(bao, signal.SIGSTOP)
        stopped = True
        frozen_at = time.time()
        # the router's token runs out: it says why (naming the setting) ...
        router.wait_for_line(r"no OAUTHBEARER token.*clusters\.default\.security\.sasl\.openbao",
                             timeout=3 * TOKEN_TTL_S + 30)
        _eventually("every token issued before the stop has expired",
                    lambda: time.time() > frozen_at + TOKEN_TTL_S + 3, deadline_s=TOKEN_TTL_S + 10)
        # ... and routes nothing while it has none (the connector writes as the super user here:
        # its own tokens come from the stopped OpenBao too)
        producer = Producer(_admin_conf(cluster))
        for rec in second:
            producer.produce(env.ingress, rec.value, rec.key, headers=list(rec.headers.items()))
        assert producer.flush(30) == 0
        assert _decisions(env, cluster) == len(first), "the router wrote while it had no valid token"
        _assert_no_commit_for(env, cluster, router, 2 * TOKEN_TTL_S)
        os.kill(bao, signal.SIGCONT)
        stopped = False
        _eventually("the router resumes on its own", lambda: _decisions(env, cluster) >= len(records),
                    deadline_s=120)
    finally:
        if stopped:
            os.kill(bao, signal.SIGCONT)
        _stop(router)
    _exactly_once(env, len(records), client=_admin_conf(cluster))
