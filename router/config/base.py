"""The leaf of the config package: what every section model builds on.

Section models live with their concept (``router/keys/config.py``, ``router/pipeline/config.py``,
...) and import from here; :mod:`router.config.models` imports the sections to assemble
:class:`~router.config.models.RouterConfig`. This module imports no other ``router`` module, so
that direction has no circle.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
# librdkafka property names: dotted lower-case words.
_CLIENT_KEY = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")
_SECRET_CLIENT_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret")


class StrictModel(BaseModel):
    """Base for every config model: unknown keys rejected, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


JurisdictionName = Annotated[str, Field(pattern=_NAME)]


class ClusterConfig(StrictModel):
    """How to reach one Kafka cluster."""

    bootstrap: str = Field(min_length=1, description="host:port[,host:port...]")
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties applied to every client (security, timeouts).",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="librdkafka properties that hold secrets (sasl.password, ...).",
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
            if key in _SECRET_CLIENT_KEYS:
                raise ValueError(f"client property {key!r} holds a secret: put it under 'secrets'")
        return v

    def client_properties(self) -> dict[str, str]:
        """All librdkafka properties for this cluster, secrets revealed (for the client only)."""
        props = {"bootstrap.servers": self.bootstrap, **self.client}
        props.update({k: s.get_secret_value() for k, s in self.secrets.items()})
        return props
