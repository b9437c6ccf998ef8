"""The edges every key backend implements: wrap/unwrap data keys, sign, publish public keys.

A *key id* names a key-encryption key (KEK) or signing key inside one provider; a *version* is
one generation of it. Records name both, so a rotated key keeps old versions for decryption.
Implementations raise :class:`router.keys.errors.KeyUnavailable` (or its subclass
:class:`router.keys.errors.UnknownKey`) and nothing else for key problems.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from router.keys.errors import UnknownKey
from router.keys.types import DEK_BYTES, DataKey, KeyRef

__all__ = [
    "DEK_BYTES",
    "DIGEST_KEY_LABEL",
    "DataKey",
    "KeyProvider",
    "KeyRef",
    "PublicKeys",
    "Signer",
    "StaticPublicKeys",
]

DIGEST_KEY_LABEL = b"residency-router/digest-key/v1"
"""What providers derive a jurisdiction's digest key from (HMAC of this label under the KEK)."""


@runtime_checkable
class KeyProvider(Protocol):
    """A KMS or keyring holding key-encryption keys (KEKs)."""

    @property
    def name(self) -> str:
        """A short label for logs and metrics (``local``, ``openbao``)."""
        ...

    def new_data_key(self, key_id: str) -> DataKey:
        """Generate a DEK and wrap it with the latest version of KEK ``key_id``."""
        ...

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        """Return the DEK that ``wrapped`` holds, unwrapped by KEK ``kek`` (that exact version)."""
        ...

    def digest_key(self, key_id: str) -> bytes:
        """A 32-byte secret derived from KEK ``key_id``, the same on every call and across KEK
        rotations (it derives from the key's first version): the key of the jurisdiction's keyed
        digests (output record keys, payload digests). Never leaves the process."""
        ...


@runtime_checkable
class Signer(Protocol):
    """The router's signing key (Ed25519)."""

    @property
    def key(self) -> KeyRef:
        """Id and version of the key :meth:`sign` uses."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        ...


@runtime_checkable
class PublicKeys(Protocol):
    """Where readers find the router's signing public keys, by id and version."""

    def public_key(self, key: KeyRef) -> Ed25519PublicKey:
        """The public key; raises ``UnknownKey`` when the id or version is not known."""
        ...


class StaticPublicKeys:
    """Public keys handed to a reader out of band (e.g. from ``residency-router keys show``), with
    no status or validity. :class:`router.keys.trust.TrustBundle` is what readers load: the same
    lookup plus revoked and expired versions refused.
    """

    def __init__(self, keys: dict[KeyRef, bytes]) -> None:
        self._keys = {ref: Ed25519PublicKey.from_public_bytes(raw) for ref, raw in keys.items()}

    @classmethod
    def from_show_json(cls, doc: dict[str, Any]) -> StaticPublicKeys:
        """From the JSON that ``residency-router keys show`` prints (its ``signing`` section)."""
        keys: dict[KeyRef, bytes] = {}
        for key_id, entry in doc["signing"].items():
            for version, hexkey in entry["public_keys"].items():
                keys[KeyRef(key_id, int(version))] = bytes.fromhex(hexkey)
        return cls(keys)

    def public_key(self, key: KeyRef) -> Ed25519PublicKey:
        try:
            return self._keys[key]
        except KeyError:
            raise UnknownKey(f"signing key {key} is not among the reader's public keys", key=key) from None

    def __repr__(self) -> str:
        return f"StaticPublicKeys({sorted(str(k) for k in self._keys)})"
