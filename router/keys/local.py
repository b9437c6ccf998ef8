"""The development keyring: one JSON file of KEKs and signing keys, for development and tests.

**For development only.** The file holds secret keys in clear; anyone who can read it can read
every record sealed with it. It is written with mode 0600 and says so in its ``warning`` field.
Production uses a KMS (``router.keys.openbao``).

Format (``format: residency-router-dev-keyring``, ``format_version: 1``)::

    {"keks":    {"<key id>": {"current": 2, "min_decryption_version": 1,
                              "versions": {"1": "<base64 32 bytes>", "2": "..."}}},
     "signing": {"<key id>": {"current": 1, "min_decryption_version": 1,
                              "versions": {"1": "<base64 Ed25519 seed>"},
                              "created": {"1": 1795936990.0}}}}

``created`` (unix seconds per version, optional: older files have none) dates each version for the
trust bundle's validity windows; for a signing key, versions below ``min_decryption_version`` are
revoked in the bundle (``residency-router keys export-trust``).

A KEK wraps a DEK as ``nonce(12) || AES-256-GCM(kek, nonce, dek, aad)`` with
``aad = "residency-router/dek-wrap/v1" 0x00 key_id 0x00 version(u32 BE)``; the key id and version
are bound so a wrapped DEK cannot be presented under another key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from router.errors import ConfigError
from router.keys.errors import KeyUnavailable, UnknownKey
from router.keys.protocol import DEK_BYTES, DIGEST_KEY_LABEL, DataKey, KeyRef

FORMAT = "residency-router-dev-keyring"
FORMAT_VERSION = 1
WARNING = (
    "DEVELOPMENT ONLY: this file holds secret keys in clear. Never use it in production; "
    "configure an openbao key provider instead."
)
DEFAULT_SIGNING_KEY = "router-signing"
_WRAP_AAD = b"residency-router/dek-wrap/v1\x00"
_NONCE = 12

RandomBytes = Callable[[int], bytes]


def _unknown(detail: str, key: KeyRef | None = None, key_id: str | None = None) -> Exception:
    return UnknownKey(detail, key=key, key_id=key_id)


def wrap_aad(kek: KeyRef) -> bytes:
    """The associated data that binds a wrapped DEK to its KEK id and version."""
    return _WRAP_AAD + kek.key_id.encode() + b"\x00" + struct.pack(">I", kek.version)


@dataclass(slots=True)
class _Versions:
    current: int
    min_decryption_version: int
    versions: dict[int, bytes]
    created: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "current": self.current,
            "min_decryption_version": self.min_decryption_version,
            "versions": {str(v): base64.b64encode(k).decode() for v, k in sorted(self.versions.items())},
        }
        if self.created:
            out["created"] = {str(v): t for v, t in sorted(self.created.items())}
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], what: str) -> _Versions:
        try:
            versions = {int(v): base64.b64decode(k, validate=True) for v, k in obj["versions"].items()}
            created = {int(v): float(t) for v, t in (obj.get("created") or {}).items()}
            out = cls(int(obj["current"]), int(obj.get("min_decryption_version", 1)), versions, created)
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise ConfigError(f"keyring entry {what} is malformed ({type(err).__name__})") from None
        if out.current not in out.versions or any(len(k) != 32 for k in versions.values()):
            raise ConfigError(f"keyring entry {what} is malformed (current version or key length)")
        return out

    def __repr__(self) -> str:
        return f"_Versions(current={self.current}, versions={sorted(self.versions)})"


class LocalKeyring:
    """The parsed keyring file. Holds secrets: its ``repr`` shows ids and versions only."""

    def __init__(self, keks: dict[str, _Versions], signing: dict[str, _Versions], path: Path | None = None) -> None:
        self.keks = keks
        self.signing = signing
        self.path = path

    def __repr__(self) -> str:
        keks = {k: v.current for k, v in self.keks.items()}
        signing = {k: v.current for k, v in self.signing.items()}
        return f"LocalKeyring(path={self.path}, keks={keks}, signing={signing})"

    @classmethod
    def from_keys(cls, keks: dict[str, dict[int, bytes]], signing: dict[str, dict[int, bytes]]) -> LocalKeyring:
        """An in-memory keyring from raw 32-byte keys by id and version (tests, test vectors)."""
        return cls(
            {k: _Versions(max(v), 1, dict(v)) for k, v in keks.items()},
            {k: _Versions(max(v), 1, dict(v)) for k, v in signing.items()},
        )

    # -- file ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path,
        jurisdictions: Iterable[str],
        *,
        signing_key_id: str = DEFAULT_SIGNING_KEY,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> LocalKeyring:
        """Create a new keyring file (mode 0600); refuses to overwrite an existing one."""
        if path.exists():
            raise ConfigError(f"keyring {path} already exists; use 'keys rotate' to add key versions")
        now = time.time()
        keks = {j: _Versions(1, 1, {1: random_bytes(32)}, {1: now}) for j in jurisdictions}
        if not keks:
            raise ConfigError("keys init needs at least one jurisdiction (--jurisdictions eu,uk,us)")
        ring = cls(keks, {signing_key_id: _Versions(1, 1, {1: random_bytes(32)}, {1: now})}, path)
        ring.save(path, exclusive=True)
        return ring

    @classmethod
    def load(cls, path: Path) -> LocalKeyring:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"keyring {path} does not exist; create one with 'residency-router keys init --keyring {path}'"
            ) from None
        except (OSError, ValueError) as err:
            raise ConfigError(f"keyring {path} is unreadable ({type(err).__name__})") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{path} is not a residency-router dev keyring (format {FORMAT} v{FORMAT_VERSION})")
        keks = {k: _Versions.from_json(v, f"keks.{k}") for k, v in obj.get("keks", {}).items()}
        signing = {k: _Versions.from_json(v, f"signing.{k}") for k, v in obj.get("signing", {}).items()}
        return cls(keks, signing, path)

    def save(self, path: Path | None = None, *, exclusive: bool = False) -> None:
        """Write atomically with mode 0600."""
        target = path or self.path
        if target is None:
            raise ConfigError("keyring has no path to save to")
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "warning": WARNING,
            "keks": {k: v.to_json() for k, v in sorted(self.keks.items())},
            "signing": {k: v.to_json() for k, v in sorted(self.signing.items())},
        }
        data = json.dumps(doc, indent=2).encode() + b"\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".keyring-")  # mkstemp creates 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path = target

    # -- rotation --------------------------------------------------------------------------
    def rotate_kek(self, key_id: str, *, random_bytes: RandomBytes = secrets.token_bytes) -> int:
        """Add a new current version of KEK ``key_id`` (old versions stay for decryption)."""
        return self._rotate(self.keks, key_id, "KEK", random_bytes)

    def rotate_signing(
        self, key_id: str = DEFAULT_SIGNING_KEY, *, random_bytes: RandomBytes = secrets.token_bytes
    ) -> int:
        return self._rotate(self.signing, key_id, "signing key", random_bytes)

    @staticmethod
    def _rotate(table: dict[str, _Versions], key_id: str, what: str, random_bytes: RandomBytes) -> int:
        if key_id not in table:
            raise ConfigError(f"{what} {key_id!r} is not in the keyring (known: {', '.join(sorted(table))})")
        entry = table[key_id]
        new = max(entry.versions) + 1
        entry.versions[new] = random_bytes(32)
        entry.created[new] = time.time()
        entry.current = new
        return new

    # -- public view -----------------------------------------------------------------------
    def signing_public_keys(self, key_id: str) -> dict[int, bytes]:
        """The raw Ed25519 public key of every version of signing key ``key_id``."""
        entry = self.signing.get(key_id)
        if entry is None:
            raise ConfigError(f"signing key {key_id!r} is not in keyring {self.path}")
        return {
            ver: Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            for ver, seed in sorted(entry.versions.items())
        }

    def describe(self) -> dict[str, Any]:
        """Ids, versions and signing public keys: nothing secret."""
        return {
            "warning": WARNING,
            "keks": {
                k: {
                    "current": v.current,
                    "min_decryption_version": v.min_decryption_version,
                    "versions": sorted(v.versions),
                }
                for k, v in sorted(self.keks.items())
            },
            "signing": {
                k: {
                    "current": v.current,
                    "public_keys": {
                        ver: Ed25519PrivateKey.from_private_bytes(seed)
                        .public_key()
                        .public_bytes(Encoding.Raw, PublicFormat.Raw)
                        .hex()
                        for ver, seed in sorted(v.versions.items())
                    },
                }
                for k, v in sorted(self.signing.items())
            },
        }


class LocalKeyProvider:
    """:class:`~router.keys.protocol.KeyProvider` over a :class:`LocalKeyring` (development only).

    ``random_bytes`` is a test hook (deterministic DEKs and wrap nonces for test vectors); leave
    it at its default everywhere else.
    """

    name = "local"

    def __init__(self, keyring: LocalKeyring, *, random_bytes: RandomBytes = secrets.token_bytes) -> None:
        self._ring = keyring
        self._random = random_bytes
        self._aead: dict[KeyRef, AESGCM] = {}

    def __repr__(self) -> str:
        return f"LocalKeyProvider({self._ring!r})"

    def _kek(self, ref: KeyRef) -> AESGCM:
        aead = self._aead.get(ref)
        if aead is not None:
            return aead
        entry = self._ring.keks.get(ref.key_id)
        if (entry is None or ref.version not in entry.versions) and self._ring.path is not None:
            # A reader started before `keys rotate`: re-read the file once for the new version.
            self._ring = LocalKeyring.load(self._ring.path)
            entry = self._ring.keks.get(ref.key_id)
        if entry is None:
            raise _unknown(f"KEK {ref.key_id!r} is not in the local keyring", key=ref)
        if ref.version not in entry.versions:
            raise _unknown(f"KEK version {ref} is not in the local keyring", key=ref)
        if ref.version < entry.min_decryption_version:
            raise KeyUnavailable(
                f"version is below min_decryption_version {entry.min_decryption_version}",
                retriable=False,
                key_id=ref.key_id,
                version=ref.version,
            )
        aead = self._aead[ref] = AESGCM(entry.versions[ref.version])
        return aead

    def new_data_key(self, key_id: str) -> DataKey:
        entry = self._ring.keks.get(key_id)
        if entry is None:
            raise _unknown(f"KEK {key_id!r} is not in the local keyring; add it with 'keys init'", key_id=key_id)
        ref = KeyRef(key_id, entry.current)
        dek = self._random(DEK_BYTES)
        nonce = self._random(_NONCE)
        wrapped = nonce + self._kek(ref).encrypt(nonce, dek, wrap_aad(ref))
        return DataKey(ref, wrapped, dek)

    def digest_key(self, key_id: str) -> bytes:
        entry = self._ring.keks.get(key_id)
        if entry is None:
            raise _unknown(f"KEK {key_id!r} is not in the local keyring; add it with 'keys init'", key_id=key_id)
        first = entry.versions[min(entry.versions)]
        return hmac.new(first, DIGEST_KEY_LABEL, hashlib.sha256).digest()

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        aead = self._kek(kek)
        if len(wrapped) != _NONCE + DEK_BYTES + 16:
            raise _unknown(f"wrapped DEK for {kek} has the wrong length", key=kek)
        try:
            return aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], wrap_aad(kek))
        except InvalidTag:
            raise _unknown(f"wrapped DEK does not open under KEK {kek}", key=kek) from None


class LocalSigner:
    """Ed25519 signer from the keyring's signing key (current version unless one is named)."""

    def __init__(self, keyring: LocalKeyring, key_id: str = DEFAULT_SIGNING_KEY, version: int | None = None) -> None:
        entry = keyring.signing.get(key_id)
        if entry is None:
            raise ConfigError(f"signing key {key_id!r} is not in keyring {keyring.path}")
        v = entry.current if version is None else version
        if v not in entry.versions:
            raise ConfigError(f"signing key {key_id!r} has no version {v} in keyring {keyring.path}")
        self._key = KeyRef(key_id, v)
        self._private = Ed25519PrivateKey.from_private_bytes(entry.versions[v])

    @property
    def key(self) -> KeyRef:
        return self._key

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"LocalSigner({self._key})"


class LocalPublicKeys:
    """Every signing public key in a keyring, all versions, with no status or validity (tests and
    benchmarks). Readers use a :class:`router.keys.trust.TrustBundle` (``keys export-trust``),
    which honours revocation and never needs this private file."""

    def __init__(self, keyring: LocalKeyring) -> None:
        self._keys: dict[KeyRef, Ed25519PublicKey] = {
            KeyRef(k, ver): Ed25519PrivateKey.from_private_bytes(seed).public_key()
            for k, entry in keyring.signing.items()
            for ver, seed in entry.versions.items()
        }

    def public_key(self, key: KeyRef) -> Ed25519PublicKey:
        try:
            return self._keys[key]
        except KeyError:
            raise _unknown(f"signing key {key} is not in the local keyring", key=key) from None

    def __repr__(self) -> str:
        return f"LocalPublicKeys({sorted(str(k) for k in self._keys)})"
