"""The ``keys:`` section of the router config: providers, which KEK serves each jurisdiction,
the signing key, DEK reuse bounds and retries.

Example::

    keys:
      providers:
        bao:
          type: openbao
          url: "https://bao.eu.internal:8200"
          ca_file: /etc/residency-router/bao-ca.pem
          approle: {role_id_file: /run/secrets/role-id, secret_id_file: /run/secrets/secret-id}
        dev: {type: local, keyring: ./dev-keyring.json}
      jurisdictions:
        eu: {provider: bao, key: rr-eu}
        us: {provider: dev}            # key defaults to the jurisdiction name
      signer: {provider: bao, key: router-signing}   # transit ed25519 key; or {keyring: ./dev-keyring.json}
      data_keys: {max_records: 1048576, max_age_s: 300}

OpenBao is reached over TLS with certificate verification only; ``http://`` and
``verify_tls: false`` are refused unless ``allow_insecure_dev: true`` says this is a development
setup (the router then logs a warning at start-up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator

from router.config.base import JurisdictionName, StrictModel
from router.config.openbao import AppRoleConfig, require_https  # shared with clusters.*.security.sasl.openbao
from router.errors import ConfigError
from router.keys.dek import DEFAULT_MAX_AGE_S, DEFAULT_MAX_RECORDS, HARD_MAX_RECORDS

_KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class LocalProviderConfig(StrictModel):
    """The development keyring file (``residency-router keys init``). Not for production."""

    type: Literal["local"]
    keyring: Path


class OpenBaoProviderConfig(StrictModel):
    """OpenBao/Vault transit over TLS.

    Authentication: ``approle`` (production: role id and secret id from files, token renewed and
    logged in again as needed) or a static token from ``token`` / the env var ``token_env``
    (development). TLS: the server certificate is verified against ``ca_file`` (or the system CA
    store); ``http://`` URLs and ``verify_tls: false`` need ``allow_insecure_dev: true``.
    """

    type: Literal["openbao"]
    allow_insecure_dev: bool = Field(
        default=False, description="development only: permit http:// and verify_tls: false (logged as a warning)"
    )
    url: str = Field(pattern=r"^https?://[^\s]+$")
    token: SecretStr | None = None
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    approle: AppRoleConfig | None = None
    mount: str = Field(default="transit", pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]*$")
    namespace: str | None = None
    timeout_s: float = Field(default=2.0, gt=0, le=10, description="HTTP timeout; short so an outage is seen")
    ca_file: Path | None = Field(default=None, description="PEM CA bundle the server certificate must chain to")
    verify_tls: bool = True

    @model_validator(mode="after")
    def _one_token_source(self) -> OpenBaoProviderConfig:
        if sum(x is not None for x in (self.token, self.token_env, self.approle)) != 1:
            raise ValueError(
                "set exactly one of 'token' and 'token_env' (a static token, for development) "
                "or 'approle' (role_id_file and secret_id_file)"
            )
        return self

    @field_validator("url")
    @classmethod
    def _https_only(cls, v: str, info: ValidationInfo) -> str:
        return require_https(v, allow_insecure_dev=bool(info.data.get("allow_insecure_dev")))

    @field_validator("verify_tls")
    @classmethod
    def _verified_only(cls, v: bool, info: ValidationInfo) -> bool:
        if not v and not info.data.get("allow_insecure_dev"):
            raise ValueError(
                "false turns off certificate verification: give the server's CA as ca_file instead "
                "(or set allow_insecure_dev: true, for development only)"
            )
        return v

    @property
    def insecure(self) -> bool:
        """True when the connection is plaintext or unverified (only with ``allow_insecure_dev``)."""
        return not self.url.lower().startswith("https://") or not self.verify_tls

    def verify(self) -> bool | str:
        """What the HTTP client verifies the server certificate with (requests' ``verify``)."""
        if not self.verify_tls:
            return False
        return str(self.ca_file) if self.ca_file is not None else True

    def resolve_token(self) -> str:
        """The static token, read from the environment when ``token_env`` is set (at start-up)."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_env is None:
            raise ConfigError("this OpenBao provider logs in with AppRole (keys.providers.*.approle), not a token")
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError(f"environment variable {self.token_env} (keys.providers.*.token_env) is not set")
        return value


ProviderConfig = Annotated[LocalProviderConfig | OpenBaoProviderConfig, Field(discriminator="type")]


class JurisdictionKeyConfig(StrictModel):
    """The KEK of one jurisdiction: a provider name and the key's name inside it."""

    provider: str
    key: str | None = Field(default=None, pattern=_KEY_NAME, description="defaults to the jurisdiction name")


class SignerConfig(StrictModel):
    """The router's Ed25519 signing key (docs/envelope.md, "Signers and the trust bundle").

    ``provider`` names an entry of ``keys.providers``: an ``openbao`` provider signs with the
    transit ``ed25519`` key ``key`` (the private key never leaves OpenBao), a ``local`` one with the
    signing key ``key`` of its development keyring. The older form ``{keyring: PATH}`` (optionally
    ``type: local``, ``key_id``) names a development keyring directly.

    What ``keys export-trust`` publishes for readers: the current version is ``active``; older
    versions are ``retired`` (valid for ``retired_valid_s`` seconds after the next version was
    created, null: no end); versions below the key's ``min_decryption_version`` and those listed in
    ``revoked_versions`` are ``revoked``.
    """

    type: Literal["local"] | None = Field(default=None, description="older form: only 'local'")
    provider: str | None = None
    keyring: Path | None = None
    key: str = Field(
        default="router-signing", pattern=_KEY_NAME, validation_alias=AliasChoices("key", "key_id")
    )
    retired_valid_s: float | None = Field(default=7 * 86400, gt=0)
    revoked_versions: tuple[int, ...] = Field(default=(), description="signing key versions readers must refuse")

    @model_validator(mode="after")
    def _one_source(self) -> SignerConfig:
        if (self.provider is None) == (self.keyring is None):
            raise ValueError("set exactly one of 'provider' (a keys.providers entry) and 'keyring' (a dev keyring)")
        if self.type is not None and self.provider is not None:
            raise ValueError("'type' belongs to the older {type: local, keyring: ...} form; drop it with 'provider'")
        if any(v < 1 for v in self.revoked_versions):
            raise ValueError("revoked_versions are key versions, 1 or more")
        return self

    @property
    def key_id(self) -> str:
        """The signing key's id (its transit key name or keyring entry)."""
        return self.key


class DataKeyConfig(StrictModel):
    """DEK reuse bounds: a DEK is replaced after either bound."""

    max_records: int = Field(default=DEFAULT_MAX_RECORDS, ge=1, le=HARD_MAX_RECORDS)
    max_age_s: float = Field(default=DEFAULT_MAX_AGE_S, gt=0, le=86400)


class RetryConfig(StrictModel):
    attempts: int = Field(default=3, ge=1, le=20)
    initial_backoff_s: float = Field(default=0.05, gt=0, le=10)
    max_backoff_s: float = Field(default=1.0, gt=0, le=60)
    deadline_s: float = Field(default=5.0, gt=0, le=300)


class KeysConfig(StrictModel):
    """Key providers, the KEK of each jurisdiction, the signer. A key that cannot be used stalls the
    router (offsets do not advance); there is no setting for it (``keys.on_unavailable`` is gone)."""

    providers: dict[str, ProviderConfig] = Field(min_length=1)
    jurisdictions: dict[JurisdictionName, JurisdictionKeyConfig] = Field(min_length=1)
    signer: SignerConfig
    data_keys: DataKeyConfig = DataKeyConfig()
    retry: RetryConfig = RetryConfig()

    @model_validator(mode="after")
    def _providers_exist(self) -> KeysConfig:
        for name, j in self.jurisdictions.items():
            if j.provider not in self.providers:
                known = ", ".join(sorted(self.providers))
                raise ValueError(
                    f"keys.jurisdictions.{name}.provider names {j.provider!r}, "
                    f"which is not under keys.providers (known: {known})"
                )
        if self.signer.provider is not None and self.signer.provider not in self.providers:
            known = ", ".join(sorted(self.providers))
            raise ValueError(
                f"keys.signer.provider names {self.signer.provider!r}, "
                f"which is not under keys.providers (known: {known})"
            )
        return self

    def key_id(self, jurisdiction: str) -> str:
        return self.jurisdictions[jurisdiction].key or jurisdiction
