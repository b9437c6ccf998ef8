"""``residency-router demo`` on the secured dev cluster it starts itself, with its token issuer
(``--oauth``: a dev OpenBao whose tokens the brokers verify), in a state directory of its own,
stopped at the end.

The demo's narration is checked against what the cluster itself says afterwards, under each
principal's own tokens (``ClusterInfo.client_config(principal, via="oauth")``; the super user over
its client certificate): User:consumer-us is refused crm.eu.contact by the broker, User:consumer-eu
reads it, the connector's grants are in the cluster's ACLs. Every config the demo wrote (read from
its directories under the cluster state) names OAUTHBEARER and the principal's AppRole files, and
neither a password file nor a ``password`` setting. A second run on the same cluster, with every
principal's SCRAM password file moved away meanwhile, still routes and is refused nothing (so no
client it builds reads a password) and counts only its own events; ``--insecure`` refuses the
running secured cluster with the command that stops it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from router.cli import main
from router.devtools.devcluster.launcher import ClusterInfo, DevCluster
from tests.integration.secure_cluster import quiet_librdkafka, read_first
from tests.unit.test_demo_config import _keys

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
DEADLINE_S = 60.0

_quiet = quiet_librdkafka("tests.demo.librdkafka")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("devcluster-demo")
    try:
        yield state
    finally:
        DevCluster(state).down()


def _run_demo(state: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["demo", "--config", str(EXAMPLE), "--state-dir", str(state), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _one(pattern: str, text: str) -> re.Match[str]:
    found = list(re.finditer(pattern, text, re.MULTILINE))
    assert len(found) == 1, f"{pattern!r} matched {len(found)} times in:\n{text}"
    return found[0]


def _read(conf: dict[str, Any], topic: str, group: str) -> tuple[int, set[int]]:
    """Records a consumer of ``group`` reads from the start of ``topic`` until its first record or
    authorization error (within the deadline), and the error codes it saw."""
    values, errors = read_first({**conf, "logger": _quiet}, topic, group, deadline_s=DEADLINE_S)
    return len(values), errors


def _password_files(info: ClusterInfo) -> list[Path]:
    assert info.security is not None
    return [Path(p.password_file) for p in info.security.principals]


def _totals(out: str) -> tuple[int, int, int, int]:
    m = _one(r"^  total: (\d+) routed, (\d+) quarantined, (\d+) audited only \(bare tombstones\), (\d+) audit records$",
             out)
    return int(m[1]), int(m[2]), int(m[3]), int(m[4])


def test_the_demo_runs_secured_and_the_broker_refuses_the_us_consumer(
    state_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run_demo(state_dir, capsys, "--events", "300")
    assert code == 0, f"demo exited {code}\n{out}\n{err}"

    info = DevCluster(state_dir).load()
    assert info is not None and info.security is not None and info.all_running  # the demo left it running, secured
    assert info.oauth is not None and info.oauth_bootstrap is not None  # with its token issuer
    _one(r"^  every client authenticates with an OAUTHBEARER token .*, no password:$", out)
    _one(rf"^    issued by the dev OpenBao at {re.escape(info.oauth.address)} ", out)
    _one(rf"^    each lives {info.oauth.token_ttl_s} s; ", out)
    _one(r"^    verified by the brokers: signature against OpenBao's keys ", out)
    assert "SCRAM" not in out

    created = _one(r"^== 4\. .*\(acls apply\): (\d+) bindings created, (\d+) already present$", out)
    assert int(created[1]) > 0 and int(created[2]) == 0  # a fresh cluster: the whole plan is new
    _one(r"^  acls check: ok, every grant on the configured topics is in the plan", out)
    _one(r"^  consumed 300 events in ", out)
    routed, quarantined, tombstones, audited = _totals(out)
    assert audited == 300 and routed + quarantined + tombstones == 300 and routed > 0
    _one(r"^  crm\.eu\.contact with the EU key: 20 verified and decrypted, 0 rejected$", out)
    _one(r"^  crm\.eu\.contact with the US key: 0 verified and decrypted, 20 rejected \(WrongJurisdiction\)$", out)
    _one(r"^== 9\. the broker refuses User:consumer-us on crm\.eu\.contact: TOPIC_AUTHORIZATION_FAILED$", out)

    # the cluster agrees, under each principal's own tokens
    topic = "crm.eu.contact"
    us_records, us_errors = _read(info.client_config("consumer-us", via="oauth"), topic,
                                  f"consumer-us.{uuid.uuid4().hex}")
    assert us_records == 0 and KafkaError.TOPIC_AUTHORIZATION_FAILED in us_errors
    eu_records, eu_errors = _read(info.client_config("consumer-eu", via="oauth"), topic,
                                  f"consumer-eu.{uuid.uuid4().hex}")
    assert eu_records == 1, eu_errors

    ingress = _one(r"^== 5\. producing 300 generated CRM change events to (\S+) as User:connector$", out)[1]
    admin_conf: dict[str, Any] = {**info.client_config("admin", via="mtls"), "logger": _quiet}
    admin = AdminClient(admin_conf)
    any_: Any = None
    connector = admin.describe_acls(AclBindingFilter(ResourceType.ANY, any_, ResourcePatternType.ANY,
                                                     "User:connector", any_, AclOperation.ANY,
                                                     AclPermissionType.ANY), request_timeout=15).result()
    assert {(a.restype.name, a.name, a.operation.name) for a in connector} == {("TOPIC", ingress, "WRITE")}

    # every config the demo wrote (in its directory under the cluster state) authenticates with tokens only
    written = sorted(Path(info.state_dir).glob("demo-*/*.yaml"))
    config_path = Path(_one(r"^== 2\. .* and config (\S+router\.yaml)$", out)[1])
    assert {p.name for p in written} == {"router.yaml", "operator.yaml"} and config_path in written
    passwords = _password_files(info)
    for path in written:
        text = path.read_text(encoding="utf-8")
        for password_file in passwords:
            named = f"{password_file.parent.name}/{password_file.name}"  # e.g. router/password, however rooted
            assert str(password_file) not in text and named not in text, path
            assert password_file.read_text(encoding="utf-8").strip() not in text, path
        doc = yaml.safe_load(text)
        assert "password" not in set(_keys(doc)), path
        principal = "router" if path.name == "router.yaml" else "admin"
        cluster = doc["clusters"]["default"]
        assert cluster["bootstrap"] == info.oauth_bootstrap
        assert cluster["security"]["sasl"]["mechanism"] == "OAUTHBEARER"
        role_id, secret_id = info.approle_files(principal)
        bao = cluster["security"]["sasl"]["openbao"]
        assert (bao["role"], bao["address"]) == (principal, info.oauth.address)
        assert bao["approle"] == {"role_id_file": str(role_id), "secret_id_file": str(secret_id)}
    for password_file in passwords:
        assert password_file.read_text(encoding="utf-8").strip() not in out + err


def test_a_second_run_counts_only_its_own_events_and_insecure_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    before = DevCluster(state_dir).load()
    assert before is not None and before.all_running, "the first test leaves the demo's cluster running"
    # no client of the demo may need a password: with every SCRAM password file moved away, it runs as before
    aside = {p: p.with_name(p.name + ".aside") for p in _password_files(before)}
    for p, q in aside.items():
        p.rename(q)
    try:
        code, out, err = _run_demo(state_dir, capsys, "--events", "100")
    finally:
        for p, q in aside.items():
            q.rename(p)
    assert code == 0, f"demo exited {code}\n{out}\n{err}"
    _one(r"^  consumed 100 events in ", out)
    routed, quarantined, tombstones, audited = _totals(out)
    assert audited == 100 and routed + quarantined + tombstones == 100
    # the EU reader starts at this run's records: everything it reads verifies with this run's keys
    assert _one(r"^  crm\.eu\.contact with the EU key: (\d+) verified and decrypted, 0 rejected$", out)[1] != "0"
    _one(r"^== 9\. the broker refuses User:consumer-us on crm\.eu\.contact: TOPIC_AUTHORIZATION_FAILED$", out)

    code, out, err = _run_demo(state_dir, capsys, "--insecure")
    assert code == 2
    assert f"`residency-router devcluster --state-dir {state_dir.resolve()} down`" in err
    after = DevCluster(state_dir).load()
    assert after is not None and after.cluster_id == before.cluster_id and after.all_running
