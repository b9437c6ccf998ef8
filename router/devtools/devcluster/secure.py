"""The secured dev cluster (``devcluster up --secure``): principals, their credentials, the brokers'
security settings and the client settings that authenticate as a principal.

Layout of every node:

- ``SASL_SSL`` (the bootstrap listener): TLS, clients authenticate with SCRAM-SHA-512;
- ``SSL``: TLS with ``ssl.client.auth=required``; a client certificate ``CN=<name>,OU=clients``
  is ``User:<name>``. Brokers replicate over this listener too;
- ``CONTROLLER``: TLS with ``ssl.client.auth=required``, loopback only.

Brokers present their own certificate (``CN=kafka-node-<id>,OU=brokers``) on ``SSL`` and
``CONTROLLER``; ``ssl.principal.mapping.rules`` map that subject to ``User:admin``, so the KRaft
``StandardAuthorizer`` can keep ``allow.everyone.if.no.acl.found=false`` with a single super user
(``super.users=User:admin``) and no ANONYMOUS listener: every connection to a node authenticates.

Credentials live under the state directory, every file 0600: the CA (``tls/ca.crt``,
``tls/ca.key``), each broker's PEM key store (``node-<id>/tls/broker.pem``: key, certificate,
CA), and per principal ``principals/<name>/password`` (SCRAM), ``client.crt`` and ``client.key``
(mTLS). Passwords are random per cluster (:mod:`secrets`) and never printed; the only place they
leave their files is the storage format command line (``--add-scram``) and a client's settings.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from router.devtools.devcluster.errors import DevClusterError

SCRAM_MECHANISM = "SCRAM-SHA-512"
SUPER_USER = "admin"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SASL_LISTENER = "SASL_SSL"
MTLS_LISTENER = "SSL"
CONTROLLER_LISTENER = "CONTROLLER"
OAUTH_LISTENER = "OAUTH"
"""With ``--oauth``: a SASL_SSL listener that accepts only OAUTHBEARER tokens of the dev issuer."""
EXAMPLE_JURISDICTIONS: tuple[str, ...] = ("eu", "uk", "us", "ch")
"""The jurisdictions of ``examples/router.yaml``; one consumer and one SRE principal each."""
DEFAULT_PRINCIPALS: tuple[str, ...] = (
    SUPER_USER,
    "router",
    "connector",
    *(f"consumer-{j}" for j in EXAMPLE_JURISDICTIONS),
    *(f"sre-{j}" for j in EXAMPLE_JURISDICTIONS),
    "auditor",
)
PRINCIPAL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""Lower-case names that fit a certificate CN and need no quoting in SCRAM or a distinguished name."""
PRINCIPAL_MAPPING_RULES = rf"RULE:^CN=[^,]+,OU=brokers$/{SUPER_USER}/,RULE:^CN=([^,]+),OU=clients$/$1/,DEFAULT"
"""Broker certificates (``OU=brokers``, :data:`tls.BROKER_OU`) are ``User:admin``; a client
certificate (``OU=clients``) is its CN; any other subject (this CA signs none) stays its full
distinguished name, which no ACL names."""

Via = Literal["scram", "mtls", "oauth"]


@dataclass(frozen=True)
class PrincipalCredentials:
    """Where one principal's credentials are (paths only, never the secrets)."""

    name: str
    password_file: str
    certificate: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {
            "principal": f"User:{self.name}",
            "name": self.name,
            "password_file": self.password_file,
            "certificate": self.certificate,
            "key": self.key,
        }


@dataclass(frozen=True)
class SecurityInfo:
    """How a secured cluster authenticates and authorises; part of ``state.json``."""

    ca: str
    """The CA certificate (PEM) that signed every broker and client certificate."""
    principals: tuple[PrincipalCredentials, ...]
    super_user: str = SUPER_USER

    def principal(self, name: str) -> PrincipalCredentials:
        for p in self.principals:
            if p.name == name:
                return p
        raise DevClusterError(
            f"no principal {name!r} was created for this cluster (created: "
            + ", ".join(p.name for p in self.principals)
            + "); start it with `devcluster up --secure --principal NAME ...`"
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "ca": self.ca,
            "super_user": self.super_user,
            "principals": [
                {"name": p.name, "password_file": p.password_file, "certificate": p.certificate, "key": p.key}
                for p in self.principals
            ],
        }

    @staticmethod
    def from_state(data: dict[str, Any]) -> SecurityInfo:
        return SecurityInfo(
            ca=data["ca"],
            principals=tuple(PrincipalCredentials(**p) for p in data["principals"]),
            super_user=data.get("super_user", SUPER_USER),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "security_protocol": SASL_LISTENER,
            "sasl_mechanism": SCRAM_MECHANISM,
            "mtls_security_protocol": MTLS_LISTENER,
            "ca": self.ca,
            "authorizer": AUTHORIZER,
            "allow_everyone_if_no_acl_found": False,
            "super_users": [f"User:{self.super_user}"],
            "principals": [p.to_json() for p in self.principals],
        }


def principal_names(requested: Sequence[str] | None) -> tuple[str, ...]:
    """The principals to create: ``requested`` (or :data:`DEFAULT_PRINCIPALS`), always with the super
    user first (the launcher's own readiness check authenticates as it), without duplicates."""
    names = list(DEFAULT_PRINCIPALS if requested is None else requested)
    for name in names:
        if not PRINCIPAL_NAME.fullmatch(name):
            raise DevClusterError(
                f"--principal {name!r} is not a usable principal name: use 1-64 characters of "
                "a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
            )
    ordered = [SUPER_USER, *(n for n in names if n != SUPER_USER)]
    return tuple(dict.fromkeys(ordered))


def ca_path(state_dir: Path) -> Path:
    return state_dir / "tls" / "ca.crt"


def broker_keystore(node_dir: Path) -> Path:
    return node_dir / "tls" / "broker.pem"


def provision(state_dir: Path, names: Sequence[str], node_dirs: Sequence[Path], cluster_id: str) -> SecurityInfo:
    """Make the cluster's CA, each node's key store and each principal's password and client
    certificate under ``state_dir`` (all files 0600, directories 0700)."""
    from router.devtools.devcluster import tls  # noqa: PLC0415 - cryptography only when securing

    ca = tls.new_ca(f"residency-router devcluster CA {cluster_id}")
    tls.write_private(ca_path(state_dir), tls.cert_pem(ca.cert))
    tls.write_private(state_dir / "tls" / "ca.key", tls.key_pem(ca.key))
    for i, node_dir in enumerate(node_dirs, start=1):
        key, cert = tls.broker_certificate(ca, f"kafka-node-{i}")
        tls.write_private(broker_keystore(node_dir), tls.key_pem(key) + tls.cert_pem(cert) + tls.cert_pem(ca.cert))
    creds = []
    for name in names:
        home = state_dir / "principals" / name
        password_file, certificate, key_file = home / "password", home / "client.crt", home / "client.key"
        tls.write_private(password_file, secrets.token_urlsafe(24).encode())
        key, cert = tls.client_certificate(ca, name)
        tls.write_private(certificate, tls.cert_pem(cert))
        tls.write_private(key_file, tls.key_pem(key))
        creds.append(PrincipalCredentials(name, str(password_file), str(certificate), str(key_file)))
    return SecurityInfo(ca=str(ca_path(state_dir)), principals=tuple(creds))


def read_password(cred: PrincipalCredentials) -> str:
    try:
        return Path(cred.password_file).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise DevClusterError(
            f"the password file of principal {cred.name!r} ({cred.password_file}) is unreadable "
            f"({err.strerror}); run `devcluster down` and `up --secure` again"
        ) from None


def scram_format_args(security: SecurityInfo) -> list[str]:
    """``kafka-storage format`` arguments that create every principal's SCRAM-SHA-512 credential
    in the cluster's bootstrap metadata."""
    args: list[str] = []
    for p in security.principals:
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={p.name},password={read_password(p)}]"]
    return args


def redact(text: str, security: SecurityInfo) -> str:
    """``text`` (e.g. a tool's output) with every principal's password replaced by ``***``."""
    for p in security.principals:
        try:
            password = Path(p.password_file).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if password:
            text = text.replace(password, "***")
    return text


def broker_props(
    sasl_port: int, mtls_port: int, ctrl_port: int, keystore: Path, ca: Path, *, oauth_port: int | None = None
) -> dict[str, str]:
    """The listener, TLS, SASL and authorizer settings of one secured node (module docstring).
    With ``oauth_port``, an :data:`OAUTH_LISTENER` (SASL_SSL) listens there too; the token
    validator settings come from :func:`router.devtools.devcluster.openbao.broker_props`."""
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    oauth = f",{OAUTH_LISTENER}://127.0.0.1:{oauth_port}" if oauth_port is not None else ""
    return {
        "listeners": f"{SASL_LISTENER}://127.0.0.1:{sasl_port},{MTLS_LISTENER}://127.0.0.1:{mtls_port}{oauth},"
        f"{CONTROLLER_LISTENER}://127.0.0.1:{ctrl_port}",
        "advertised.listeners": f"{SASL_LISTENER}://127.0.0.1:{sasl_port},{MTLS_LISTENER}://127.0.0.1:{mtls_port}"
        + oauth,
        "controller.listener.names": CONTROLLER_LISTENER,
        "inter.broker.listener.name": MTLS_LISTENER,
        "listener.security.protocol.map": f"{SASL_LISTENER}:SASL_SSL,{MTLS_LISTENER}:SSL,{CONTROLLER_LISTENER}:SSL"
        + (f",{OAUTH_LISTENER}:SASL_SSL" if oauth_port is not None else ""),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
        "ssl.endpoint.identification.algorithm": "https",
        f"listener.name.{MTLS_LISTENER.lower()}.ssl.client.auth": "required",
        f"listener.name.{CONTROLLER_LISTENER.lower()}.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": PRINCIPAL_MAPPING_RULES,
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.{SASL_LISTENER.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{SUPER_USER}",
    }


def client_config(
    security: SecurityInfo, principal: str, via: Via, *, sasl_bootstrap: str, mtls_bootstrap: str
) -> dict[str, Any]:
    """librdkafka settings that authenticate as ``principal``: SCRAM-SHA-512 over ``SASL_SSL``
    (``via="scram"``) or its client certificate over ``SSL`` (``via="mtls"``); both verify the
    brokers' certificates against the cluster's CA, hostname included. Holds the password for
    ``scram``: pass it to a client, never print it."""
    cred = security.principal(principal)
    common = {"ssl.ca.location": security.ca, "ssl.endpoint.identification.algorithm": "https"}
    if via == "scram":
        return {
            "bootstrap.servers": sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": cred.name,
            "sasl.password": read_password(cred),
            **common,
        }
    if via == "mtls":
        return {
            "bootstrap.servers": mtls_bootstrap,
            "security.protocol": "SSL",
            "ssl.certificate.location": cred.certificate,
            "ssl.key.location": cred.key,
            **common,
        }
    raise DevClusterError(f"via={via!r} is not a way to authenticate: use 'scram', 'mtls' or 'oauth'")
