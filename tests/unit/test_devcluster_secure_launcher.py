"""``devcluster up --secure`` without a JVM: principals, credential files, broker settings, storage
format arguments, client settings and what ``status`` shows (never a password).

A stand-in ``java`` records the storage tool's arguments and lets every broker exit at once, so the
launcher writes everything a real start writes and then reports the failed start.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from router.devtools.devcluster import secure
from router.devtools.devcluster.errors import DevClusterError
from router.devtools.devcluster.launcher import ClusterInfo, DevCluster
from tests.unit.devcluster_util import devcluster_cli, read_props, stand_in_java

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _stand_in_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, format_fails: bool = False) -> Path:
    """A ``java`` whose storage tool appends its arguments to the returned file (and exits 0, or
    echoes them and exits 1 with ``format_fails``) and whose broker exits at once."""
    record = tmp_path / "format-args"
    storage = (
        'echo "formatting failed for $*"; exit 1' if format_fails else f"printf '%s\\n' \"$@\" >> {record}; exit 0"
    )
    stand_in_java(tmp_path, monkeypatch, storage=storage)
    return record


@pytest.fixture
def failed_secure_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """State dir and recorded format arguments of a 2-node secured start whose brokers exit."""
    record = _stand_in_java(tmp_path, monkeypatch)
    state = tmp_path / "state"
    with pytest.raises(DevClusterError, match="exited during start-up"):
        DevCluster(state).up(["eu-west-1a", "us-east-1a"], timeout=20, secure=True, principals=["router", "sre-eu"])
    return state, record


def _passwords(state: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text().strip() for p in (state / "principals").glob("*/password")}


# -- principals --------------------------------------------------------------------------------


def test_default_principals_cover_every_jurisdiction_of_the_example_config() -> None:
    example = yaml.safe_load((REPO / "examples" / "router.yaml").read_text())
    names = secure.principal_names(None)
    assert names[0] == "admin"
    for j in example["jurisdictions"]:
        assert f"consumer-{j}" in names
        assert f"sre-{j}" in names
    assert {"router", "connector", "auditor"} <= set(names)
    assert len(names) == len(set(names))


def test_admin_is_always_created_first_and_duplicates_once() -> None:
    assert secure.principal_names(["router", "admin", "router"]) == ("admin", "router")


@pytest.mark.parametrize("bad", ["", "Router", "a,b", "x=y", "with space", "-lead", "a" * 65])
def test_unusable_principal_name_is_refused_naming_the_option(bad: str) -> None:
    with pytest.raises(DevClusterError, match="--principal"):
        secure.principal_names([bad])


def test_principal_without_secure_and_secure_with_proxy_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DevClusterError, match="--principal needs --secure"):
        DevCluster(tmp_path / "a").up(["eu-west-1a"], principals=["router"])
    with pytest.raises(DevClusterError, match="--secure and --proxy cannot be combined"):
        DevCluster(tmp_path / "b").up(["eu-west-1a"], secure=True, proxy=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- files ---------------------------------------------------------------------------------------


def test_every_credential_file_is_0600_and_every_password_differs(failed_secure_start: tuple[Path, Path]) -> None:
    state, _ = failed_secure_start
    files = [
        state / "tls" / "ca.crt",
        state / "tls" / "ca.key",
        state / "node-1" / "tls" / "broker.pem",
        state / "node-2" / "tls" / "broker.pem",
    ]
    for name in ("admin", "router", "sre-eu"):
        files += [state / "principals" / name / f for f in ("password", "client.crt", "client.key")]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for d in (state / "tls", state / "principals" / "router", state / "node-1" / "tls"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    passwords = _passwords(state)
    assert set(passwords) == {"admin", "router", "sre-eu"}
    assert len(set(passwords.values())) == 3
    assert all(len(p) >= 24 for p in passwords.values())


def test_broker_key_store_holds_key_certificate_and_ca(failed_secure_start: tuple[Path, Path]) -> None:
    from cryptography import x509

    state, _ = failed_secure_start
    pem = (state / "node-1" / "tls" / "broker.pem").read_bytes()
    assert pem.count(b"-----BEGIN " + b"PRIVATE KEY-----") == 1
    chain = x509.load_pem_x509_certificates(pem)
    ca = x509.load_pem_x509_certificate((state / "tls" / "ca.crt").read_bytes())
    assert chain[1] == ca
    chain[0].verify_directly_issued_by(ca)
    assert chain[0].subject.rfc4514_string() == "CN=kafka-node-1,OU=brokers"


# -- broker settings and storage format ----------------------------------------------------------


def test_secure_server_properties(failed_secure_start: tuple[Path, Path]) -> None:
    state, _ = failed_secure_start
    recorded = json.loads((state / "state.json").read_text())
    for n in recorded["nodes"]:
        node_dir = state / f"node-{n['node_id']}"
        props = read_props(node_dir / "server.properties")
        sasl, mtls, ctrl = n["port"], n["mtls_port"], n["controller_port"]
        assert len({sasl, mtls, ctrl}) == 3
        assert props["listeners"] == (
            f"SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls},CONTROLLER://127.0.0.1:{ctrl}"
        )
        assert props["advertised.listeners"] == f"SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls}"
        assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL"
        assert "PLAINTEXT" not in props["listeners"] + props["listener.security.protocol.map"]
        assert props["inter.broker.listener.name"] == "SSL"
        assert props["listener.name.ssl.ssl.client.auth"] == "required"
        assert props["listener.name.controller.ssl.client.auth"] == "required"
        assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
        assert Path(props["ssl.keystore.location"]) == node_dir / "tls" / "broker.pem"
        assert Path(props["ssl.truststore.location"]) == state / "tls" / "ca.crt"
        assert props["ssl.endpoint.identification.algorithm"] == "https"
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
        assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert props["super.users"] == "User:admin"
        text = (node_dir / "server.properties").read_text()
        assert not any(p in text for p in _passwords(state).values())


def test_storage_format_creates_a_scram_credential_per_principal(failed_secure_start: tuple[Path, Path]) -> None:
    state, record = failed_secure_start
    args = record.read_text().splitlines()
    passwords = _passwords(state)
    expected = [f"SCRAM-SHA-512=[name={name},password={pw}]" for name, pw in passwords.items()]
    per_node = [args[i + 1] for i, a in enumerate(args) if a == "--add-scram"]
    assert sorted(per_node) == sorted(expected * 2)  # both nodes, every principal


def test_failed_format_does_not_echo_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in_java(tmp_path, monkeypatch, format_fails=True)
    state = tmp_path / "state"
    with pytest.raises(DevClusterError, match="formatting the storage of node-1 failed") as caught:
        DevCluster(state).up(["eu-west-1a"], timeout=20, secure=True, principals=["router"])
    message = str(caught.value)
    assert "name=router,password=***" in message
    assert not any(p in message for p in _passwords(state).values())


# -- state, status and client settings -----------------------------------------------------------


def _loaded(state: Path) -> ClusterInfo:
    info = DevCluster(state).load()
    assert info is not None
    return info


def test_status_json_lists_listeners_ca_and_credential_paths_not_secrets(
    failed_secure_start: tuple[Path, Path],
) -> None:
    state, _ = failed_secure_start
    out = devcluster_cli(state, "status", "--json")
    assert out.returncode == 1  # the stand-in brokers exited
    doc = json.loads(out.stdout)
    info = _loaded(state)
    assert doc["security_protocol"] == "SASL_SSL"
    assert doc["mtls_bootstrap"] == ",".join(f"127.0.0.1:{n.mtls_port}" for n in info.nodes)
    assert doc["security"]["ca"] == str(state / "tls" / "ca.crt")
    assert doc["security"]["super_users"] == ["User:admin"]
    listeners = doc["brokers"][0]["listeners"]
    n1 = info.nodes[0]
    assert [(x["protocol"], x["address"]) for x in listeners] == [
        ("SASL_SSL", f"127.0.0.1:{n1.port}"),
        ("SSL", f"127.0.0.1:{n1.mtls_port}"),
        ("SSL", f"127.0.0.1:{n1.controller_port}"),
    ]
    by_name = {p["name"]: p for p in doc["security"]["principals"]}
    assert by_name["router"] == {
        "principal": "User:router",
        "name": "router",
        "password_file": str(state / "principals" / "router" / "password"),
        "certificate": str(state / "principals" / "router" / "client.crt"),
        "key": str(state / "principals" / "router" / "client.key"),
    }
    text = devcluster_cli(state, "status")
    assert "principals: admin, router, sre-eu" in text.stdout
    state_json = (state / "state.json").read_text()
    for pw in _passwords(state).values():
        assert pw not in out.stdout and pw not in text.stdout and pw not in state_json


def test_client_config_for_scram_and_mtls(failed_secure_start: tuple[Path, Path]) -> None:
    state, _ = failed_secure_start
    info = _loaded(state)
    scram = info.client_config("router", via="scram")
    assert scram == {
        "bootstrap.servers": info.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "router",
        "sasl.password": (state / "principals" / "router" / "password").read_text().strip(),
        "ssl.ca.location": str(state / "tls" / "ca.crt"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert info.bootstrap == ",".join(f"127.0.0.1:{n.port}" for n in info.nodes)
    mtls = info.client_config("sre-eu", via="mtls")
    assert mtls == {
        "bootstrap.servers": ",".join(f"127.0.0.1:{n.mtls_port}" for n in info.nodes),
        "security.protocol": "SSL",
        "ssl.certificate.location": str(state / "principals" / "sre-eu" / "client.crt"),
        "ssl.key.location": str(state / "principals" / "sre-eu" / "client.key"),
        "ssl.ca.location": str(state / "tls" / "ca.crt"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert info.admin_config()["sasl.username"] == "admin"


def test_client_config_errors_name_the_principal_or_the_mode(failed_secure_start: tuple[Path, Path]) -> None:
    info = _loaded(failed_secure_start[0])
    with pytest.raises(DevClusterError, match="no principal 'consumer-us'.*created: admin, router, sre-eu"):
        info.client_config("consumer-us")
    with pytest.raises(DevClusterError, match="via='kerberos'"):
        info.client_config("router", via="kerberos")  # type: ignore[arg-type]


def test_client_config_of_a_plain_cluster_says_it_has_no_principals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_in_java(tmp_path, monkeypatch)
    state = tmp_path / "plain"
    with pytest.raises(DevClusterError, match="exited during start-up"):
        DevCluster(state).up(["eu-west-1a"], timeout=20)
    info = _loaded(state)
    assert info.security is None and info.mtls_bootstrap is None
    assert info.to_json()["security"] is None
    assert info.admin_config() == {"bootstrap.servers": info.bootstrap}
    with pytest.raises(DevClusterError, match="without --secure"):
        info.client_config("router")
    assert not (state / "principals").exists()
