"""``residency-router demo`` on the secured dev cluster it starts itself (a state directory of its
own, stopped at the end).

The demo's narration is checked against what the cluster itself says afterwards, under each
principal's own credentials (``ClusterInfo.client_config``): User:consumer-us is refused
crm.eu.contact by the broker, User:consumer-eu reads it, the connector's and the router's grants
are in the cluster's ACLs, and the config the demo wrote names the router's password file, not the
password. A second run on the same cluster counts only its own events, and ``--insecure`` refuses
the running secured cluster with the command that stops it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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
from router.config.loader import load_config
from router.devtools.devcluster.launcher import DevCluster
from tests.integration.secure_cluster import quiet_librdkafka, read_first

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

    created = _one(r"^== 4\. .*\(acls apply\): (\d+) bindings created, (\d+) already present$", out)
    assert int(created[1]) > 0 and int(created[2]) == 0  # a fresh cluster: the whole plan is new
    _one(r"^  acls check: ok, every grant on the configured topics is in the plan", out)
    _one(r"^  consumed 300 events in ", out)
    routed, quarantined, tombstones, audited = _totals(out)
    assert audited == 300 and routed + quarantined + tombstones == 300 and routed > 0
    _one(r"^  crm\.eu\.contact with the EU key: 20 verified and decrypted, 0 rejected$", out)
    _one(r"^  crm\.eu\.contact with the US key: 0 verified and decrypted, 20 rejected \(WrongJurisdiction\)$", out)
    _one(r"^== 9\. the broker refuses User:consumer-us on crm\.eu\.contact: TOPIC_AUTHORIZATION_FAILED$", out)

    # the cluster agrees, under each principal's own credentials
    topic = "crm.eu.contact"
    us_records, us_errors = _read(info.client_config("consumer-us"), topic, f"consumer-us.{uuid.uuid4().hex}")
    assert us_records == 0 and KafkaError.TOPIC_AUTHORIZATION_FAILED in us_errors
    eu_records, eu_errors = _read(info.client_config("consumer-eu"), topic, f"consumer-eu.{uuid.uuid4().hex}")
    assert eu_records == 1, eu_errors

    ingress = _one(r"^== 5\. producing 300 generated CRM change events to (\S+) as User:connector$", out)[1]
    admin_conf: dict[str, Any] = {**info.admin_config(), "logger": _quiet}
    admin = AdminClient(admin_conf)
    any_: Any = None
    connector = admin.describe_acls(AclBindingFilter(ResourceType.ANY, any_, ResourcePatternType.ANY,
                                                     "User:connector", any_, AclOperation.ANY,
                                                     AclPermissionType.ANY), request_timeout=15).result()
    assert {(a.restype.name, a.name, a.operation.name) for a in connector} == {("TOPIC", ingress, "WRITE")}

    # the config the demo wrote authenticates as User:router with the password FILE of the cluster state
    config_path = Path(_one(r"^== 2\. .* and config (\S+router\.yaml)$", out)[1])
    text = config_path.read_text(encoding="utf-8")
    password_file = info.security.principal("router").password_file
    assert Path(password_file).read_text(encoding="utf-8").strip() not in text
    props = load_config(config_path).clusters["default"].client_properties()
    assert props == info.client_config("router", via="scram")
    assert Path(password_file).read_text(encoding="utf-8").strip() not in out + err


def test_a_second_run_counts_only_its_own_events_and_insecure_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    before = DevCluster(state_dir).load()
    assert before is not None and before.all_running, "the first test leaves the demo's cluster running"
    code, out, err = _run_demo(state_dir, capsys, "--events", "100")
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
