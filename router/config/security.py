"""How a Kafka client authenticates and encrypts: ``clusters.<name>.security``.

The model is checked when the config loads (choices, combinations, no inline secret); credentials
are read when a command builds its clients (:func:`security_properties`, called by
:meth:`router.config.base.ClusterConfig.client_properties`, the one place every client's
properties come from). Files are checked then (exists, readable, private files not readable by
group or others) and environment variables must be set; every error names the setting and never
carries a secret.

- ``protocol``: ``SASL_SSL``, ``SSL`` or ``PLAINTEXT``. ``PLAINTEXT`` (also what an absent
  ``security`` means) is refused unless the cluster says ``allow_plaintext: true``, and then a
  WARNING naming the cluster is logged once per process.
- TLS: ``ca_file`` (the CA that signed the brokers' certificates; absent: librdkafka's default
  trust store), ``cert_file`` + ``key_file`` (+ ``key_password``) for a client certificate. Host
  names are verified (``ssl.endpoint.identification.algorithm=https``) unless
  ``dev_disable_hostname_verification: true``, which logs a WARNING once per process.
- ``sasl``: ``SCRAM-SHA-256`` / ``SCRAM-SHA-512`` (``username``, ``password``) or ``OAUTHBEARER``
  with exactly one token source: ``openbao`` (identity tokens of an OIDC role, fetched after an
  AppRole login), ``token_file`` (a JWT another agent keeps fresh), or the OIDC client-credentials
  flow librdkafka runs itself (``token_endpoint_url``, ``client_id``, ``client_secret``, ``scope``).
  The first two set ``oauth_cb`` to the process's one :class:`router.auth.tokens.TokenSource` for
  those credentials (:func:`token_source` finds a cluster's), so the properties hold a callable:
  they are never printed, logged or serialised.
- A secret is ``{env: VARIABLE}`` or ``{file: path}``; a plain string is refused. Relative file
  paths are resolved against the config file's directory when the config loads.

:func:`explain_client_error` turns librdkafka's authentication and TLS errors into one line naming
the setting to fix (for a token source, its own failure first: :func:`token_outage` tells the
engine whether to wait for it); :class:`ClientErrorReporter` is an ``error_cb`` that keeps (and logs) those lines,
and :func:`reported_error` fetches one on a failure path. :func:`router.kafka_read.check_connection`
uses them so that every command fails fast with that line (docs/security.md, "When the connection
fails").
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router.auth.tokens import FileTokens, OpenBaoIdentityTokens, TokenSource, TokenUnavailable, for_cluster, shared
from router.config.files import read_config_file
from router.config.openbao import AppRoleConfig, require_https
from router.errors import ConfigError

log = logging.getLogger(__name__)

Protocol = Literal["SASL_SSL", "SSL", "PLAINTEXT"]
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_INLINE_REFUSED = (
    "an inline secret is not accepted in the config: pass it as {env: VARIABLE} (an environment "
    "variable) or {file: /path/to/file} (a file only its owner can read)"
)


class _Strict(BaseModel):
    # The same contract as router.config.base.StrictModel (which imports this module).
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A relative path is relative to the config file's directory (``config_dir`` in the
    validation context, set by the loader); without one it stays relative to the working directory."""
    path = value.expanduser()
    config_dir = (info.context or {}).get("config_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and config_dir is not None:
        path = Path(config_dir) / path
    return path


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A file named in the config: relative paths resolve against the config file's directory."""


class SecretRef(_Strict):
    """Where a secret is read from at client-build time: an environment variable or a file."""

    env: str | None = Field(default=None, pattern=_ENV_NAME, description="environment variable holding the secret")
    file: ConfigPath | None = Field(default=None, description="file holding the secret (mode 600 or stricter)")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (an environment variable) or 'file' (a path)")
        return self

    def reveal(self, where: str, *, private: bool = True) -> SecretStr:
        """The value, read now. ``where`` is the setting's dotted path, for errors."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"{where}: environment variable {self.env} is not set or empty")
            return SecretStr(value)
        assert self.file is not None
        raw = read_config_file(self.file, where, private=private)
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: file {self.file} is not UTF-8 text") from None
        if not text:
            raise ConfigError(f"{where}: file {self.file} is empty")
        return SecretStr(text)


def _no_inline_secret(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(_INLINE_REFUSED)  # noqa: TRY004 - pydantic reports ValueError, a TypeError escapes
    return value


Secret = Annotated[SecretRef, BeforeValidator(_no_inline_secret)]
"""A secret setting: ``{env: VARIABLE}`` or ``{file: path}``, never a plain string."""


class ScramConfig(_Strict):
    """SASL/SCRAM: a username and a password the brokers know."""

    mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: str | SecretRef = Field(description="the SCRAM user (a string, or {env}/{file})")
    password: Secret

    @field_validator("username")
    @classmethod
    def _username_not_empty(cls, v: str | SecretRef) -> str | SecretRef:
        if isinstance(v, str) and not v:
            raise ValueError("must not be empty")
        return v


def _url_https(v: str) -> str:
    parts = urlsplit(v)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ValueError("must be an https:// URL (http:// only for a loopback host)")
    return v


class OpenBaoTokenConfig(_Strict):
    """``sasl.openbao``: identity tokens of one OIDC role, read from OpenBao after an AppRole login.

    The TLS rules are the key providers' (:mod:`router.config.openbao`): ``https://`` only, verified
    against ``ca_file`` (absent: the system CAs), ``http://`` only with ``allow_insecure_dev: true``
    (logged as a warning). ``principal_claim`` names the claim the client reports as its principal
    (the brokers take theirs from ``sasl.oauthbearer.sub.claim.name``)."""

    address: str = Field(pattern=r"^https?://[^\s]+$", description="OpenBao's URL, e.g. https://bao.eu.internal:8200")
    ca_file: ConfigPath | None = Field(default=None, description="PEM CA bundle OpenBao's certificate must chain to")
    role: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="the identity OIDC role to read")
    approle: AppRoleConfig
    principal_claim: str = Field(default="sub", min_length=1)
    allow_insecure_dev: bool = Field(default=False, description="development only: permit http:// (logged)")

    @model_validator(mode="after")
    def _https_only(self) -> OpenBaoTokenConfig:
        try:
            require_https(self.address, allow_insecure_dev=self.allow_insecure_dev)
        except ValueError as err:
            raise ValueError(f"address {err}") from None
        return self

    @field_validator("approle")
    @classmethod
    def _approle_files_relative_to_config(cls, v: AppRoleConfig, info: ValidationInfo) -> AppRoleConfig:
        # AppRoleConfig is shared with keys.providers (plain paths); here, like every file of security,
        # a relative path is relative to the config file's directory.
        return v.model_copy(update={"role_id_file": _resolve_path(v.role_id_file, info),
                                    "secret_id_file": _resolve_path(v.secret_id_file, info)})


_OIDC_FIELDS = ("token_endpoint_url", "client_id", "client_secret")


class OAuthBearerConfig(_Strict):
    """SASL/OAUTHBEARER from exactly one token source:

    - ``openbao``: the router fetches identity tokens from OpenBao itself (``oauth_cb``);
    - ``token_file``: a JWT another agent keeps fresh in a private file (read at every refresh);
    - ``token_endpoint_url`` + ``client_id`` + ``client_secret`` (+ ``scope``): the OIDC
      client-credentials flow librdkafka runs itself.
    """

    mechanism: Literal["OAUTHBEARER"]
    token_endpoint_url: str | None = Field(
        default=None, min_length=1, description="the identity provider's token endpoint (https)")
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: Secret | None = None
    scope: str | None = Field(default=None, min_length=1)
    openbao: OpenBaoTokenConfig | None = None
    token_file: ConfigPath | None = Field(default=None, description="a JWT kept fresh by another agent (mode 600)")

    @field_validator("token_endpoint_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        return None if v is None else _url_https(v)

    @model_validator(mode="after")
    def _one_source(self) -> OAuthBearerConfig:
        oidc = [f for f in (*_OIDC_FIELDS, "scope") if getattr(self, f) is not None]
        forms = [name for name, given in (("openbao", self.openbao is not None),
                                          ("token_file", self.token_file is not None),
                                          ("token_endpoint_url/client_id/client_secret", bool(oidc))) if given]
        if not forms:
            raise ValueError(
                "mechanism OAUTHBEARER needs one token source: 'openbao' (identity tokens from OpenBao), "
                "'token_file' (a JWT kept fresh by another agent) or token_endpoint_url, client_id and "
                "client_secret (librdkafka's OIDC client-credentials flow)"
            )
        if len(forms) > 1:
            raise ValueError(f"give only one OAUTHBEARER token source; given: {', '.join(forms)}")
        missing = [f for f in _OIDC_FIELDS if getattr(self, f) is None]
        if oidc and missing:
            raise ValueError(
                f"the OIDC client-credentials flow needs token_endpoint_url, client_id and client_secret "
                f"(missing: {', '.join(missing)})"
            )
        return self

    @property
    def form(self) -> Literal["openbao", "token_file", "oidc"]:
        """Which token source this is."""
        if self.openbao is not None:
            return "openbao"
        return "token_file" if self.token_file is not None else "oidc"


SaslConfig = Annotated[ScramConfig | OAuthBearerConfig, Field(discriminator="mechanism")]


class SecurityConfig(_Strict):
    """``clusters.<name>.security``: transport encryption and client authentication."""

    protocol: Protocol
    ca_file: ConfigPath | None = Field(default=None, description="PEM CA bundle that signed the brokers' certificates")
    cert_file: ConfigPath | None = Field(default=None, description="PEM client certificate (mutual TLS)")
    key_file: ConfigPath | None = Field(default=None, description="PEM private key of cert_file (mode 600)")
    key_password: Secret | None = None
    dev_disable_hostname_verification: bool = Field(
        default=False, description="development only: accept a broker certificate issued for another host name"
    )
    sasl: SaslConfig | None = None

    @model_validator(mode="after")
    def _combinations(self) -> SecurityConfig:
        tls = self.protocol in ("SSL", "SASL_SSL")
        if self.protocol == "SASL_SSL" and self.sasl is None:
            raise ValueError("protocol SASL_SSL needs 'sasl' (mechanism and credentials)")
        if self.protocol != "SASL_SSL" and self.sasl is not None:
            raise ValueError(f"'sasl' needs protocol SASL_SSL (protocol is {self.protocol})")
        if not tls:
            given = [k for k in ("ca_file", "cert_file", "key_file", "key_password") if getattr(self, k) is not None]
            if self.dev_disable_hostname_verification:
                given.append("dev_disable_hostname_verification")
            if given:
                raise ValueError(f"{', '.join(given)} need protocol SSL or SASL_SSL (protocol is PLAINTEXT)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the client certificate and its private key)")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("key_password needs key_file")
        return self


# -- client properties ---------------------------------------------------------------------------

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(kind: str, cluster: str, message: str) -> None:
    with _warned_lock:
        if (kind, cluster) in _warned:
            return
        _warned.add((kind, cluster))
    log.warning(message)


def _check_file(path: Path, where: str, *, private: bool = False) -> str:
    read_config_file(path, where, private=private)
    return str(path)


def _credential(value: str | SecretRef, where: str) -> str:
    return value if isinstance(value, str) else value.reveal(where, private=False).get_secret_value()


def security_properties(cluster: str, security: SecurityConfig | None, *, allow_plaintext: bool) -> dict[str, Any]:
    """The librdkafka security properties of ``clusters.<cluster>``, credentials read now.

    Raises :class:`ConfigError` naming the setting when the connection would be PLAINTEXT without
    ``allow_plaintext``, or a file or variable cannot be used. Secrets appear only in the returned
    properties (for the Kafka client), never in an error or a log line.
    """
    at = f"clusters.{cluster}"
    if security is None or security.protocol == "PLAINTEXT":
        if not allow_plaintext:
            raise ConfigError(
                f"{at}.security.protocol: the connection would be PLAINTEXT (neither encrypted nor authenticated)"
                f"{' because security is not set' if security is None else ''}: configure {at}.security with "
                f"protocol SASL_SSL or SSL (docs/security.md), or for a development cluster set "
                f"{at}.allow_plaintext: true"
            )
        _warn_once(
            "plaintext", cluster,
            f"cluster {cluster!r}: connecting in PLAINTEXT ({at}.allow_plaintext: true): traffic is neither "
            "encrypted nor authenticated; use it for development clusters only",
        )
        return {"security.protocol": "PLAINTEXT"}

    at = f"{at}.security"
    props: dict[str, Any] = {"security.protocol": security.protocol, "ssl.endpoint.identification.algorithm": "https"}
    if security.dev_disable_hostname_verification:
        props["ssl.endpoint.identification.algorithm"] = "none"
        _warn_once(
            "hostname", cluster,
            f"cluster {cluster!r}: broker host names are not verified ({at}.dev_disable_hostname_verification: "
            "true): any certificate the CA signed is accepted for any broker; use it for development clusters only",
        )
    if security.ca_file is not None:
        props["ssl.ca.location"] = _check_file(security.ca_file, f"{at}.ca_file")
    if security.cert_file is not None and security.key_file is not None:
        props["ssl.certificate.location"] = _check_file(security.cert_file, f"{at}.cert_file")
        props["ssl.key.location"] = _check_file(security.key_file, f"{at}.key_file", private=True)
    if security.key_password is not None:
        props["ssl.key.password"] = security.key_password.reveal(f"{at}.key_password").get_secret_value()
    sasl = security.sasl
    if isinstance(sasl, ScramConfig):
        props["sasl.mechanism"] = sasl.mechanism
        props["sasl.username"] = _credential(sasl.username, f"{at}.sasl.username")
        props["sasl.password"] = sasl.password.reveal(f"{at}.sasl.password").get_secret_value()
    elif isinstance(sasl, OAuthBearerConfig):
        props["sasl.mechanism"] = "OAUTHBEARER"
        if sasl.form == "oidc":
            # OAuthBearerConfig: the three go together
            assert sasl.token_endpoint_url is not None
            assert sasl.client_id is not None
            assert sasl.client_secret is not None
            props["sasl.oauthbearer.method"] = "oidc"
            props["sasl.oauthbearer.token.endpoint.url"] = sasl.token_endpoint_url
            props["sasl.oauthbearer.client.id"] = sasl.client_id
            props["sasl.oauthbearer.client.secret"] = sasl.client_secret.reveal(
                f"{at}.sasl.client_secret").get_secret_value()
            if sasl.scope is not None:
                props["sasl.oauthbearer.scope"] = sasl.scope
        else:
            props["oauth_cb"] = _token_source(cluster, f"{at}.sasl", sasl)
    return props


# -- OAUTHBEARER token sources (oauth_cb) --------------------------------------------------------

def _token_source(cluster: str, at: str, sasl: OAuthBearerConfig) -> TokenSource:
    """The process's one token source for these credentials (:func:`router.auth.tokens.shared`),
    its files checked now; remembered as ``cluster``'s source (:func:`token_source`)."""
    source: TokenSource
    if sasl.openbao is not None:
        cfg, where = sasl.openbao, f"{at}.openbao"
        if cfg.ca_file is not None:
            _check_file(cfg.ca_file, f"{where}.ca_file")
        _check_file(cfg.approle.role_id_file, f"{where}.approle.role_id_file")
        _check_file(cfg.approle.secret_id_file, f"{where}.approle.secret_id_file", private=True)
        key = ("openbao", cfg.address, cfg.ca_file, cfg.role, cfg.principal_claim, cfg.approle.role_id_file,
               cfg.approle.secret_id_file, cfg.approle.secret_id_wrapped, cfg.approle.mount)

        def make() -> TokenSource:
            from router.keys.approle import AppRoleLogin  # noqa: PLC0415 - hvac only for OpenBao tokens
            from router.keys.openbao import OpenBaoSession  # noqa: PLC0415

            if not cfg.address.lower().startswith("https://"):
                _warn_once(
                    "openbao-http", cluster,
                    f"cluster {cluster!r}: OAUTHBEARER tokens are fetched from OpenBao over plain http "
                    f"({where}.allow_insecure_dev: true): the AppRole secret id and the tokens cross the network "
                    "unencrypted; use it for development only",
                )
            a = cfg.approle
            session = OpenBaoSession(
                cfg.address, AppRoleLogin(a.role_id_file, a.secret_id_file, a.secret_id_wrapped, a.mount),
                verify=str(cfg.ca_file) if cfg.ca_file is not None else True,
            )
            return OpenBaoIdentityTokens(session, cfg.role, setting=where, principal_claim=cfg.principal_claim)

        source = shared(key, make, cluster=cluster)
    else:
        path = sasl.token_file
        assert path is not None  # OAuthBearerConfig: one token source
        where = f"{at}.token_file"
        _check_file(path, where, private=True)
        source = shared(("token_file", path), lambda: FileTokens(path, setting=where), cluster=cluster)
    return source


def token_source(cluster: str = "default") -> TokenSource | None:
    """The OAUTHBEARER token source whose ``oauth_cb`` the clients of ``clusters.<cluster>`` use, once
    their properties were built (None for SCRAM, certificates, librdkafka's own OIDC flow)."""
    return for_cluster(cluster)


def token_outage(cluster: str = "default") -> TokenUnavailable | None:
    """The failure of ``cluster``'s token source when it is retriable (OpenBao unreachable, the token
    file not yet renewed): clients stall and resume by themselves once a token is obtained again."""
    source = token_source(cluster)
    failure = source.current_failure() if source is not None else None
    return failure if failure is not None and failure.retriable else None


# -- the free client map -------------------------------------------------------------------------

_REPLACEMENTS = {
    "security.protocol": "security.protocol",
    "ssl.ca.location": "security.ca_file",
    "ssl.certificate.location": "security.cert_file",
    "ssl.key.location": "security.key_file",
    "ssl.key.password": "security.key_password",
    "ssl.endpoint.identification.algorithm": "security.dev_disable_hostname_verification",
    "sasl.mechanism": "security.sasl.mechanism",
    "sasl.mechanisms": "security.sasl.mechanism",
    "sasl.username": "security.sasl.username",
    "sasl.password": "security.sasl.password",
    "sasl.oauthbearer.token.endpoint.url": "security.sasl.token_endpoint_url",
    "sasl.oauthbearer.client.id": "security.sasl.client_id",
    "sasl.oauthbearer.client.secret": "security.sasl.client_secret",
    "sasl.oauthbearer.scope": "security.sasl.scope",
}


def security_client_key(key: str) -> str | None:
    """Why a ``client:`` property may not be set there (it belongs under ``security``), or None."""
    if key not in _REPLACEMENTS and key != "security.protocol" and not key.startswith(("ssl.", "sasl.")):
        return None
    where = _REPLACEMENTS.get(key, "security")
    secret = " ({env: VARIABLE} or {file: path})" if key.endswith(("password", "secret")) else ""
    return (
        f"client property {key!r} belongs under clusters.<name>.{where}{secret}, not under 'client' "
        "(docs/security.md)"
    )


# -- librdkafka errors -> the setting to fix -----------------------------------------------------

_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), setting, advice)
    for pattern, setting, advice in (
        (r"connecting to a SSL listener\?", "protocol",
         "the broker closed a PLAINTEXT connection, as a TLS listener does: set it to SSL or SASL_SSL "
         "(or check the bootstrap port)"),
        # librdkafka 2.x: a PLAINTEXT client's first request (ApiVersion) answered by a TLS listener's
        # close (the broker name carries no ssl:// or sasl_ssl:// prefix for a PLAINTEXT client). Only
        # in librdkafka's log lines: no error_cb is raised for it.
        (r"(?:^|\s)[^\s:/\[\]]+:\d+/\S+: Disconnected\b[^()]*\(after \d+ms in state APIVERSION_QUERY", "protocol",
         "the broker closed a PLAINTEXT connection before answering its first request, as a TLS listener "
         "does: set it to SSL or SASL_SSL (or check the bootstrap port)"),
        (r"connecting to a PLAINTEXT broker listener\?|wrong version number|packet length too long", "protocol",
         "the client speaks TLS to a listener that does not: check it against the listener (and the bootstrap port)"),
        (r"hostname mismatch|IP address mismatch", "ca_file",
         "the broker's certificate does not name the host the client connected to: use host names the "
         "certificate names in bootstrap (dev_disable_hostname_verification is for development only)"),
        (r"certificate verify failed|could not be verified|unable to get local issuer|self.signed certificate",
         "ca_file",
         "the broker's TLS certificate could not be verified: name the PEM file of the CA that signed the "
         "brokers' certificates, and use bootstrap host names the certificates name"),
        (r"ssl\.ca\.location failed", "ca_file", "the CA file could not be loaded (PEM certificates expected)"),
        (r"ssl\.key\.location failed", "key_file",
         "the client's private key could not be loaded: check key_file (PEM) and, for an encrypted key, key_password"),
        (r"ssl\.certificate\.location failed", "cert_file",
         "the client certificate could not be loaded (PEM expected)"),
        (r"alert (certificate required|bad certificate|unknown ca|certificate unknown|certificate revoked"
         r"|certificate expired|access denied)", "cert_file",
         "the broker refused the client's certificate: give cert_file and key_file signed by a CA the brokers trust"),
        (r"unsupported SASL mechanism", "sasl.mechanism", "the broker does not offer this SASL mechanism"),
        (r"SASL OAUTHBEARER authentication failed|invalid_token|mechanism OAUTHBEARER", "sasl",
         "the broker refused the OAUTHBEARER token (expired, not signed by a key of the brokers' JWKS, or an "
         "issuer, audience or principal claim the brokers do not expect): check the token source and the brokers' "
         "sasl.oauthbearer.* settings; the broker's reason follows"),
        (r"OIDC|token endpoint|oauthbearer|OAuth token", "sasl.client_secret",
         "the OAUTHBEARER token could not be obtained: check sasl.token_endpoint_url, sasl.client_id and "
         "sasl.client_secret"),
        (r"SASL authentication (error|failed)|Authentication failed|invalid credentials", "sasl.password",
         "the broker refused the SASL credentials: check sasl.username and sasl.password (and sasl.mechanism)"),
        (r"SSL handshake failed", "ca_file",
         "the TLS handshake with the broker failed: check ca_file, cert_file/key_file and protocol"),
    )
)
_AUTH_CODES = {"_SSL", "_AUTHENTICATION"}
_SASL_STATE = re.compile(r"Request not valid in current SASL state|ILLEGAL_SASL_STATE", re.I)
"""A broker answering a SASL handshake with ILLEGAL_SASL_STATE. On a first connection: the listener
takes no SASL (a SASL_SSL client on an SSL port). On a connection that authenticated before: a
re-authentication (KIP-368) the broker does not accept now (Kafka refuses one less than a second after
the previous one, which short token lifetimes and the connections of one client sharing a token make
happen); librdkafka drops that connection and authenticates a new one, so it is not a refusal of the
credentials (:func:`is_sasl_state_refusal`; the engine ignores it once it has connected)."""
_DROPPED = re.compile(
    r"(?:handshake failed|authentication (?:error|failed)): Local: (?:Broker transport failure|Timed out)", re.I)
"""A SASL handshake or authentication that failed because the connection dropped or timed out (a
broker closing the connection, as Kafka does after refusing a re-authentication): librdkafka's
``_AUTHENTICATION`` code with a local cause. No broker refused anything; librdkafka reconnects, so it
is not explained as a refusal (a broker that stays unreachable is reported as down)."""
_THREAD_PREFIX = re.compile(r"^\[thrd:[^\]]*\]:\s*")


def _error_text(error: object) -> tuple[str, str]:
    """(code name, message) of a KafkaError, a KafkaException holding one, or a plain string."""
    args = getattr(error, "args", None)
    if args and hasattr(args[0], "str") and hasattr(args[0], "name"):
        error = args[0]
    if hasattr(error, "str") and hasattr(error, "name"):
        return str(error.name()), str(error.str())
    return "", str(error)


def explain_client_error(error: object, cluster: str = "default") -> ConfigError | None:
    """A one-line :class:`ConfigError` naming the ``clusters.<cluster>.security`` setting to fix for a
    librdkafka TLS or authentication error, or None when the error is not one of those (a handshake
    that failed because its connection dropped is not: ``_DROPPED``).

    ``error`` is what an ``error_cb`` receives (a ``KafkaError``), a ``KafkaException`` or a
    librdkafka log line. The librdkafka text is kept at the end (it names the broker, never a secret).
    """
    code, text = _error_text(error)
    line = " ".join(text.split())
    if _DROPPED.search(line):
        return None
    if _SASL_STATE.search(line):
        return ConfigError(
            f"clusters.{cluster}.security.protocol: the broker answered the SASL handshake with ILLEGAL_SASL_STATE: "
            "its listener takes no SASL (use the protocol the port serves: SSL or PLAINTEXT, or a SASL port), or it "
            f"refused a re-authentication that came too soon, which passes (librdkafka: {line})")
    token = _explain_token_error(code, line, cluster)
    if token is not None:
        return token
    for pattern, setting, advice in _RULES:
        if pattern.search(line):
            return ConfigError(f"clusters.{cluster}.security.{setting}: {advice} (librdkafka: {line})")
    if code in _AUTH_CODES:
        setting = "sasl.password" if code == "_AUTHENTICATION" else "ca_file"
        return ConfigError(
            f"clusters.{cluster}.security.{setting}: the broker connection failed to authenticate (librdkafka: {line})"
        )
    return None


def is_sasl_state_refusal(error: object) -> bool:
    """Whether ``error`` is a broker's ILLEGAL_SASL_STATE answer to a SASL handshake: a listener without
    SASL on a first connection, a re-authentication refused for now on a connection that authenticated
    before (``_SASL_STATE``)."""
    return _SASL_STATE.search(" ".join(_error_text(error)[1].split())) is not None


_TOKEN_NOT_SET = re.compile(
    r"OAuth token not set|OAUTHBEARER cannot log in|Failed to acquire SASL OAUTHBEARER token|OAuth callback", re.I)
_TOKEN_REFUSED = re.compile(
    r"OAUTHBEARER authentication failed|invalid_token|SASL authentication (error|failed)|Authentication failed", re.I)


def _explain_token_error(code: str, line: str, cluster: str) -> ConfigError | None:
    """For a cluster whose clients take tokens from a token source (``oauth_cb``): the source's own
    failure when it has one (it names ``...sasl.openbao`` or ``...sasl.token_file`` and why), which
    says more than librdkafka's "OAuth token not set" or "SASL authentication error"; else a broker
    refusing the token it was given, naming ``security.sasl`` and the broker's reason. None for other
    errors and other clusters."""
    source = token_source(cluster)
    if source is None:
        return None
    not_set = _TOKEN_NOT_SET.search(line) is not None
    if not (not_set or _TOKEN_REFUSED.search(line) or code in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED")):
        return None
    failure = source.current_failure()
    if failure is not None:
        return ConfigError(str(failure))
    at = f"clusters.{cluster}.security.sasl"
    if not_set:
        return ConfigError(f"{at}: the client got no OAUTHBEARER token from {source!r} in time (librdkafka: {line})")
    return ConfigError(
        f"{at}: the broker refused the OAUTHBEARER token of {source!r}, which the source obtained without error: "
        "it is expired, not signed by a key of the brokers' JWKS, or its issuer, audience or principal claim is not "
        "what the brokers expect (sasl.oauthbearer.expected.issuer, expected.audience, sub.claim.name), or the role "
        f"is not this client's; the broker's reason is in librdkafka's text (librdkafka: {line})"
    )


class ClientErrorReporter:
    """An ``error_cb`` for a Kafka client: each TLS or authentication error becomes one line naming
    the setting to fix (:func:`explain_client_error`), logged at ERROR once per setting (librdkafka
    repeats it on every reconnect); other errors are logged at WARNING. ``log=False`` logs nothing
    (a command that raises the line itself).

    The first explained error is kept in :attr:`first`; :meth:`take` returns the first one since the
    last :meth:`take` and forgets it (for a long-lived client, whose old errors are no longer news);
    :attr:`brokers_down` is set once librdkafka reports every broker down (``_ALL_BROKERS_DOWN``).

    Callbacks are served by the client's ``poll()``/``consume()``; an ``AdminClient`` serves them only
    when its ``poll()`` is called, so attach this only to a client that is polled
    (:func:`reported_error` polls one on a failure path).
    """

    def __init__(self, cluster: str = "default", *, log: bool = True) -> None:
        self.cluster = cluster
        self.first: ConfigError | None = None
        self.brokers_down = False
        self._log = log
        self._pending: ConfigError | None = None
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, error: Any) -> None:
        explained = explain_client_error(error, self.cluster)
        if explained is None:
            code, text = _error_text(error)
            if code == "_ALL_BROKERS_DOWN":
                self.brokers_down = True
            if self._log:
                log.warning("kafka client error cluster=%s code=%s error=%s", self.cluster, code, text)
            return
        key = str(explained).split(":", 1)[0]
        with self._lock:
            if self.first is None:
                self.first = explained
            if self._pending is None:
                self._pending = explained
            if key in self._seen:
                return
            self._seen.add(key)
        if self._log:
            log.error("%s", explained)

    def log_handler(self) -> logging.Handler:
        """A logging handler for a client's ``logger`` property: librdkafka reports some failures only
        in its log lines (a PLAINTEXT client closed on by a TLS listener); each line that
        :func:`explain_client_error` explains counts as a reported error, the others are dropped."""
        reporter = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                # confluent-kafka logs ("%s [%s] %s", facility, client name, "[thrd:...]: text")
                args = record.args
                text = str(args[-1]) if isinstance(args, tuple) and len(args) == 3 else record.getMessage()
                text = _THREAD_PREFIX.sub("", text)
                if explain_client_error(text, reporter.cluster) is not None:
                    reporter(text)

        return _Handler()

    def take(self) -> ConfigError | None:
        """The first explained error reported since the last call (None if none), forgotten now."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending


CLIENT_ERRORS_ATTR = "router_client_errors"
"""The attribute under which :func:`attach_reporter` keeps a client's :class:`ClientErrorReporter`."""


def attach_reporter(client: Any, reporter: ClientErrorReporter) -> Any:
    """``client`` (built with ``error_cb=reporter``), remembering its reporter for
    :func:`reported_error`. Returns the client."""
    setattr(client, CLIENT_ERRORS_ATTR, reporter)
    return client


def reported_error(client: Any) -> ConfigError | None:
    """On a failure path: serve ``client``'s pending callbacks (``poll(0)``, which an AdminClient
    needs for its ``error_cb`` to run) and return the TLS or authentication error its reporter
    explained since the last look, or None (no reporter attached, or no such error)."""
    reporter = getattr(client, CLIENT_ERRORS_ATTR, None)
    if not isinstance(reporter, ClientErrorReporter):
        return None
    with contextlib.suppress(Exception):  # a closed or failing client: what was reported still counts
        client.poll(0)
    return reporter.take()
