"""The demo's config without a cluster: who its clients are on the secured dev cluster (OAUTHBEARER
tokens of the cluster's dev OpenBao, no password), the ACL plan of its ``access`` section, what it
writes to disk, and which running cluster it refuses to reuse.

Expected values are written out by hand or come from the dev cluster's own settings
(``ClusterInfo.client_config``, ``ClusterInfo.approle_files``, ``secure.DEFAULT_PRINCIPALS``), never
from the demo's helpers. Building client properties creates token sources without contacting
OpenBao (tests/unit/test_config_security_oauth.py), so none is needed here.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.access.plan import plan
from router.auth import tokens
from router.auth.tokens import OpenBaoIdentityTokens
from router.cli import build_parser
from router.config.loader import parse_config
from router.devtools import demo
from router.devtools.devcluster import secure
from router.devtools.devcluster.errors import DevClusterError
from router.devtools.devcluster.launcher import ClusterInfo, NodeInfo
from router.devtools.devcluster.openbao import IssuerInfo
from router.devtools.devcluster.secure import PrincipalCredentials, SecurityInfo

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "router.yaml"
INGRESS = "crm.ingress.demo-abc123"


BAO = "https://127.0.0.1:18200"


@pytest.fixture(autouse=True)
def _fresh_sources() -> Iterator[None]:
    tokens.reset()
    yield
    tokens.reset()


def _base() -> dict[str, Any]:
    base: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return base


def _private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _secured(tmp_path: Path, names: tuple[str, ...], *, running: bool = True, oauth: bool = True) -> ClusterInfo:
    """A ClusterInfo of a secured cluster whose credential files this test wrote (0600): a SCRAM
    password per principal (as the dev cluster keeps one), and with ``oauth`` the dev OpenBao's CA
    and each principal's AppRole role-id and secret-id files where the dev cluster puts them."""
    ca = tmp_path / "tls" / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n")
    creds = []
    for name in names:
        home = tmp_path / "principals" / name
        home.mkdir(parents=True)
        password = home / "password"
        _private(password, f"pw-of-{name}-7f3a9c")
        if oauth:
            _private(home / "role-id", f"role-of-{name}")
            _private(home / "secret-id", f"secret-of-{name}")
        creds.append(PrincipalCredentials(name, str(password), str(home / "client.crt"), str(home / "client.key")))
    issuer = None
    if oauth:
        bao_ca = tmp_path / "openbao" / "vault-ca.pem"
        bao_ca.parent.mkdir(parents=True)
        bao_ca.write_text("-----BEGIN CERTIFICATE-----\nnot parsed either\n-----END CERTIFICATE-----\n")
        issuer = IssuerInfo(address=BAO, ca_file=str(bao_ca), pid=4343, log=str(tmp_path / "openbao" / "bao.log"),
                            root_token_file=str(tmp_path / "openbao" / "root-token"), token_ttl_s=300,
                            issuer=f"{BAO}/v1/identity/oidc",
                            jwks_url=f"{BAO}/v1/identity/oidc/.well-known/keys")
    return _info(tmp_path, SecurityInfo(ca=str(ca), principals=tuple(creds)), running=running, oauth=issuer)


def _info(state: Path, security: SecurityInfo | None, *, running: bool = True,
          oauth: IssuerInfo | None = None) -> ClusterInfo:
    secured = security is not None
    nodes = (NodeInfo(1, "eu-west-1a", 19092, 19093, 4242, str(state / "node-1"),
                      protocol="SASL_SSL" if secured else "PLAINTEXT", mtls_port=19094 if secured else None,
                      oauth_port=19095 if oauth is not None else None),)
    return ClusterInfo(bootstrap="127.0.0.1:19092", kafka_version="4.1.1", state_dir=str(state), nodes=nodes,
                       cluster_id="c1", started_at=0.0, running={1: running}, security=security, oauth=oauth)


def _keys(value: Any) -> Iterator[str]:
    """Every mapping key anywhere in ``value`` (a YAML document)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


def _doc(tmp_path: Path, *, secure_: bool = True) -> dict[str, Any]:
    return demo.demo_document(_base(), run_id="abc123", keyring=tmp_path / "dev-keyring.json", secure=secure_)


def test_the_demo_principals_are_the_secured_dev_clusters_default_ones() -> None:
    assert set(demo.demo_principals(["eu", "uk", "us", "ch"])) == set(secure.DEFAULT_PRINCIPALS)
    assert demo.demo_principals(["eu"]) == ("admin", "router", "connector", "consumer-eu", "sre-eu", "auditor")


def test_each_principal_connects_with_tokens_as_the_dev_cluster_says_it_does(tmp_path: Path) -> None:
    info = _secured(tmp_path, secure.DEFAULT_PRINCIPALS)
    doc = _doc(tmp_path)
    for principal in ("router", "connector", "admin", "consumer-eu", "consumer-us", "sre-uk", "auditor"):
        config = parse_config(demo.as_principal(doc, info, principal), str(EXAMPLE))
        props = config.clusters["default"].client_properties()
        dev = info.client_config(principal, via="oauth")
        # the same librdkafka settings as the dev cluster's own token clients, each with its token source
        assert {k: v for k, v in props.items() if k != "oauth_cb"} == {k: v for k, v in dev.items() if k != "oauth_cb"}
        source = props["oauth_cb"]
        assert isinstance(source, OpenBaoIdentityTokens)
        assert (source.role, source.session.url) == (principal, BAO)
        assert not any(k.startswith("sasl.username") or k.startswith("sasl.password") for k in props)
    props = parse_config(demo.as_principal(doc, info, "router"), str(EXAMPLE)).clusters["default"].client_properties()
    assert props["bootstrap.servers"] == "127.0.0.1:19095"  # the OAUTH listener, not SASL_SSL's 19092
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "OAUTHBEARER"
    assert props["ssl.ca.location"] == str(tmp_path / "tls" / "ca.crt")


def test_every_written_config_names_oauthbearer_and_the_approle_files_never_a_password(tmp_path: Path) -> None:
    info = _secured(tmp_path, secure.DEFAULT_PRINCIPALS)
    for principal in ("router", "admin", "connector"):
        text = yaml.safe_dump(demo.as_principal(_doc(tmp_path), info, principal), sort_keys=False)
        assert "pw-of-" not in text and "role-of-" not in text and "secret-of-" not in text
        assert "/password" not in text
        written = yaml.safe_load(text)
        assert "password" not in set(_keys(written))
        cluster = written["clusters"]["default"]
        assert "allow_plaintext" not in cluster
        assert cluster["security"]["sasl"] == {
            "mechanism": "OAUTHBEARER",
            "openbao": {
                "address": BAO,
                "ca_file": str(tmp_path / "openbao" / "vault-ca.pem"),
                "role": principal,
                "principal_claim": "kafka_principal",
                "approle": {"role_id_file": str(tmp_path / "principals" / principal / "role-id"),
                            "secret_id_file": str(tmp_path / "principals" / principal / "secret-id")},
            },
        }


def test_a_base_config_with_scram_credentials_leaves_none_in_the_demos_document(tmp_path: Path) -> None:
    base = _base()
    base["clusters"] = {"default": {"bootstrap": "kafka.example:9093", "security": {
        "protocol": "SASL_SSL", "sasl": {"mechanism": "SCRAM-SHA-512", "username": "router",
                                         "password": {"file": "/etc/kafka/router-password"}}}}}
    doc = demo.demo_document(base, run_id="abc123", keyring=tmp_path / "dev-keyring.json", secure=True)
    assert "clusters" not in doc and "password" not in set(_keys(doc))
    written = demo.as_principal(doc, _secured(tmp_path, secure.DEFAULT_PRINCIPALS), "router")
    assert "router-password" not in yaml.safe_dump(written)
    assert written["clusters"]["default"]["security"]["sasl"]["mechanism"] == "OAUTHBEARER"


def test_a_secured_cluster_without_a_token_issuer_gives_no_client_config(tmp_path: Path) -> None:
    info = _secured(tmp_path, secure.DEFAULT_PRINCIPALS, oauth=False)
    with pytest.raises(DevClusterError, match="without --oauth"):
        demo.cluster_section(info, "router")


def test_the_plan_lets_consumer_us_read_only_us_topics_and_the_connector_write_only_the_demo_ingress(
    tmp_path: Path,
) -> None:
    info = _secured(tmp_path, secure.DEFAULT_PRINCIPALS)
    config = parse_config(demo.as_principal(_doc(tmp_path), info, "router"), str(EXAMPLE))
    assert config.access is not None and config.access.router == "User:router"
    bindings = plan(config)

    def rows(principal: str) -> set[tuple[str, str, str, str]]:
        return {(b.operation.value, b.resource_type.value, b.pattern_type.value, b.name)
                for b in bindings if b.principal == principal}

    assert rows("User:consumer-us") == {("READ", "TOPIC", "PREFIXED", "crm.us."),
                                        ("READ", "GROUP", "PREFIXED", "consumer-us.")}
    assert rows("User:consumer-eu") == {("READ", "TOPIC", "PREFIXED", "crm.eu."),
                                        ("READ", "GROUP", "PREFIXED", "consumer-eu.")}
    assert rows("User:connector") == {("WRITE", "TOPIC", "LITERAL", INGRESS)}
    assert ("READ", "TOPIC", "LITERAL", INGRESS) in rows("User:router")
    assert ("READ", "GROUP", "LITERAL", "residency-router-demo-abc123") in rows("User:router")
    assert ("WRITE", "TRANSACTIONAL_ID", "PREFIXED", "residency-router-demo-abc123-") in rows("User:router")
    assert rows("User:auditor") >= {("READ", "TOPIC", "LITERAL", "audit")}
    for j in ("eu", "uk", "us", "ch"):
        assert ("READ", "TOPIC", "LITERAL", f"quarantine.{j}") in rows(f"User:sre-{j}")
    # every principal the plan names is one the secured dev cluster creates
    assert {b.principal.removeprefix("User:") for b in bindings} <= set(secure.DEFAULT_PRINCIPALS)


def test_insecure_keeps_the_plaintext_config_without_an_access_section(tmp_path: Path) -> None:
    info = _info(tmp_path, None)
    doc = demo.as_principal(_doc(tmp_path, secure_=False), info, "router")
    assert "access" not in doc
    config = parse_config(doc, str(EXAMPLE))
    assert config.access is None
    assert config.clusters["default"].client_properties() == {"bootstrap.servers": "127.0.0.1:19092",
                                                              "security.protocol": "PLAINTEXT"}


def _command_in(message: str) -> list[str]:
    """The ``residency-router ...`` command quoted in backticks in ``message``, as arguments."""
    quoted = [part for i, part in enumerate(message.split("`")) if i % 2 == 1 and "devcluster" in part]
    assert len(quoted) == 1, message
    words = shlex.split(quoted[0])
    assert words[0] == "residency-router"
    return words[1:]


def test_a_running_plaintext_cluster_is_refused_with_the_make_demo_down_hint(tmp_path: Path) -> None:
    plain = _info(tmp_path, None)
    problem = demo.other_cluster_problem(plain, secure=True, principals=secure.DEFAULT_PRINCIPALS,
                                         default_state_dir=True)
    assert problem is not None
    assert "without --secure" in problem and "`make demo-down`" in problem
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo-down:", 1)[1].split("\n")[1]
    assert recipe.strip().endswith("residency-router devcluster down")  # the default state directory's cluster

    elsewhere = demo.other_cluster_problem(plain, secure=True, principals=(), default_state_dir=False)
    assert elsewhere is not None and "make demo-down" not in elsewhere
    args = build_parser().parse_args(_command_in(elsewhere))
    assert (args.command, args.verb, args.state_dir) == ("devcluster", "down", str(tmp_path))


def test_a_secured_cluster_is_refused_by_the_insecure_demo_and_reused_by_the_secure_one(tmp_path: Path) -> None:
    info = _secured(tmp_path, secure.DEFAULT_PRINCIPALS)
    problem = demo.other_cluster_problem(info, secure=False, principals=(), default_state_dir=True)
    assert problem is not None and "with --secure --oauth" in problem and "`make demo-down`" in problem
    assert demo.other_cluster_problem(info, secure=True, principals=secure.DEFAULT_PRINCIPALS,
                                      default_state_dir=True) is None
    assert demo.other_cluster_problem(_info(tmp_path, None), secure=False, principals=(),
                                      default_state_dir=True) is None


def test_a_secured_cluster_without_the_token_issuer_is_refused_with_the_make_demo_down_hint(tmp_path: Path) -> None:
    scram_only = _secured(tmp_path, secure.DEFAULT_PRINCIPALS, oauth=False)
    problem = demo.other_cluster_problem(scram_only, secure=True, principals=secure.DEFAULT_PRINCIPALS,
                                         default_state_dir=True)
    assert problem is not None
    assert "without --oauth" in problem and "`make demo-down`" in problem
    elsewhere = demo.other_cluster_problem(scram_only, secure=True, principals=secure.DEFAULT_PRINCIPALS,
                                           default_state_dir=False)
    assert elsewhere is not None and "make demo-down" not in elsewhere
    args = build_parser().parse_args(_command_in(elsewhere))
    assert (args.command, args.verb, args.state_dir) == ("devcluster", "down", str(tmp_path))
    # the insecure demo refuses it as a secured cluster, naming how it runs
    insecure = demo.other_cluster_problem(scram_only, secure=False, principals=(), default_state_dir=True)
    assert insecure is not None and "with --secure (TLS, SCRAM, ACLs)" in insecure
    # stopped, it is not in the way: the demo starts its own with --oauth
    stopped = _info(tmp_path, scram_only.security, running=False)
    assert demo.other_cluster_problem(stopped, secure=True, principals=(), default_state_dir=True) is None


def test_a_secured_cluster_without_a_demo_principal_is_refused_naming_it(tmp_path: Path) -> None:
    info = _secured(tmp_path, ("admin", "router"))
    problem = demo.other_cluster_problem(info, secure=True, principals=("admin", "router", "consumer-eu"),
                                         default_state_dir=True)
    assert problem is not None and "no principal consumer-eu" in problem and "`make demo-down`" in problem


def test_a_stopped_cluster_is_not_in_the_way(tmp_path: Path) -> None:
    stopped = _info(tmp_path, None, running=False)
    assert demo.other_cluster_problem(stopped, secure=True, principals=(), default_state_dir=True) is None
    assert demo.other_cluster_problem(None, secure=True, principals=(), default_state_dir=True) is None


def test_the_demo_runs_secured_unless_asked_for_insecure() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--config", str(EXAMPLE)]).insecure is False
    assert parser.parse_args(["demo", "--config", str(EXAMPLE), "--insecure"]).insecure is True
