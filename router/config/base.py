"""The leaf of the config package: what every section model builds on.

Section models live with their concept (``router/keys/config.py``, ``router/pipeline/config.py``,
...) and import from here; :mod:`router.config.models` imports the sections to assemble
:class:`~router.config.models.RouterConfig`. This module imports only :mod:`router.errors` and
:mod:`router.config.security` (client security, which imports no section), so that direction has
no circle.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.config.security import SecurityConfig, security_client_key, security_properties

_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
# librdkafka property names: dotted lower-case words.
_CLIENT_KEY = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")


class StrictModel(BaseModel):
    """Base for every config model: unknown keys rejected, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


JurisdictionName = Annotated[str, Field(pattern=_NAME)]


class ClusterConfig(StrictModel):
    """How to reach one Kafka cluster, and how its clients authenticate (``security``)."""

    bootstrap: str = Field(min_length=1, description="host:port[,host:port...]")
    security: SecurityConfig | None = Field(
        default=None, description="protocol, TLS files and SASL credentials (router/config/security.py)"
    )
    allow_plaintext: bool = Field(
        default=False, description="development only: accept protocol PLAINTEXT (also what an absent security means)"
    )
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for every client (timeouts, sizes); never security ones.",
    )

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, v: str) -> str:
        for part in v.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bootstrap entry {part!r} must be host:port")
        return v

    @field_validator("client")
    @classmethod
    def _client_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _CLIENT_KEY.match(key):
                raise ValueError(f"client property {key!r} is not a librdkafka property name")
            why = security_client_key(key)
            if why is not None:
                raise ValueError(why)
        return v

    @model_validator(mode="after")
    def _plaintext_opt_in_fits(self) -> ClusterConfig:
        if self.allow_plaintext and self.security is not None and self.security.protocol != "PLAINTEXT":
            raise ValueError(
                f"allow_plaintext: true contradicts security.protocol {self.security.protocol}: remove allow_plaintext"
            )
        return self

    def client_properties(self, name: str = "default") -> dict[str, Any]:
        """All librdkafka properties of every client of this cluster (``clusters.<name>``), credentials
        read now and revealed for the client only. Values are strings, except ``oauth_cb`` (an
        OAUTHBEARER token source, a callable shared by every client of the process): never print,
        log or serialise the properties.

        Every Kafka client the router builds takes its properties from here. Raises
        :class:`~router.errors.ConfigError` naming the setting when the connection would be
        PLAINTEXT without ``allow_plaintext`` or a credential cannot be read; logs a WARNING naming
        the cluster, once per process, when PLAINTEXT is allowed (router/config/security.py).
        """
        return {
            "bootstrap.servers": self.bootstrap,
            **self.client,
            **security_properties(name, self.security, allow_plaintext=self.allow_plaintext),
        }
