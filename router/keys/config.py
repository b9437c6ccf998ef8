"""The ``keys:`` section of the router config: providers, which KEK serves each jurisdiction,
the signing key, DEK reuse bounds and retries.

Example::

    keys:
      providers:
        bao: {type: openbao, url: "https://bao.eu.internal:8200", token_env: BAO_TOKEN}
        dev: {type: local, keyring: ./dev-keyring.json}
      jurisdictions:
        eu: {provider: bao, key: rr-eu}
        us: {provider: dev}            # key defaults to the jurisdiction name
      signer: {type: local, keyring: ./dev-keyring.json, key_id: router-signing}
      data_keys: {max_records: 1048576, max_age_s: 300}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from router.config.base import JurisdictionName, StrictModel
from router.errors import ConfigError
from router.keys.dek import DEFAULT_MAX_AGE_S, DEFAULT_MAX_RECORDS, HARD_MAX_RECORDS

_KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class LocalProviderConfig(StrictModel):
    """The development keyring file (``residency-router keys init``). Not for production."""

    type: Literal["local"]
    keyring: Path


class OpenBaoProviderConfig(StrictModel):
    """OpenBao/Vault transit. The token comes from ``token`` or from the env var ``token_env``."""

    type: Literal["openbao"]
    url: str = Field(pattern=r"^https?://[^\s]+$")
    token: SecretStr | None = None
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    mount: str = Field(default="transit", pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]*$")
    namespace: str | None = None
    timeout_s: float = Field(default=2.0, gt=0, le=10, description="HTTP timeout; short so an outage is seen")
    verify_tls: bool | str = True

    @model_validator(mode="after")
    def _one_token_source(self) -> OpenBaoProviderConfig:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("set exactly one of 'token' and 'token_env' (the env var holding the token)")
        return self

    def resolve_token(self) -> str:
        """The token, read from the environment when ``token_env`` is set (at start-up)."""
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_env is not None
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
    """The router's Ed25519 signing key, held in process (see docs/envelope.md, 'Signing')."""

    type: Literal["local"] = "local"
    keyring: Path
    key_id: str = Field(default="router-signing", pattern=_KEY_NAME)


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
        return self

    def key_id(self, jurisdiction: str) -> str:
        return self.jurisdictions[jurisdiction].key or jurisdiction
