"""The trust bundle: the router's signing public keys as readers get them, with status and validity.

Readers (``residency-router consume --trust``, :class:`router.consumer.RegionalConsumer`) verify
records with a :class:`TrustBundle` loaded from a JSON file and never see private key material.
``residency-router keys export-trust`` writes the file from the signer's source: the OpenBao
transit key (its versions' Ed25519 public keys) or the development keyring.

Format (``format: residency-router-trust-bundle``, ``format_version: 1``)::

    {"format": "residency-router-trust-bundle", "format_version": 1,
     "generated_at": "2026-11-29T07:30:00Z", "source": "openbao:transit/router-signing",
     "signers": [{"key_id": "router-signing", "version": 1, "algorithm": "ed25519",
                  "public_key": "<64 hex digits>", "status": "retired",
                  "valid_from": "2026-11-01T00:00:00Z", "valid_to": "2026-12-08T00:00:00Z"}, ...]}

Status, as :func:`derive_signers` assigns it: the version the router signs with now is
``active``; an older one is ``retired`` (it still verifies the records it signed, until
``valid_to``: its successor's creation plus ``keys.signer.retired_valid_s``); a version below the
key's ``min_decryption_version`` or listed in ``keys.signer.revoked_versions`` is ``revoked``.
OpenBao no longer describes versions below ``min_decryption_version``; ``export-trust`` keeps the
ones the bundle it replaces listed, as ``revoked``. A version missing from the bundle is refused too
(``UnknownKey``), only with a less specific reason.

A reader refuses a record whose signer version is revoked, not yet valid (``valid_from`` in the
future) or expired (``valid_to`` passed), judged by the reader's clock with ``clock_skew_s`` of
tolerance, as :class:`~router.keys.errors.UntrustedSigner` (an ``UnknownKey``, hence an envelope
error: the SDK returns it as a ``Rejected`` record). The envelope carries no seal time, so
``valid_to`` is when readers stop accepting a version at all: set ``retired_valid_s`` to at least
the topics' retention. The bundle is not itself signed: distribute it like a CA bundle (config
management, a read-only mount), never from the data path.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from router.errors import ConfigError
from router.keys.errors import UnknownKey, UntrustedSigner
from router.keys.types import KeyRef

FORMAT = "residency-router-trust-bundle"
FORMAT_VERSION = 1
ALGORITHM = "ed25519"
DEFAULT_CLOCK_SKEW_S = 300.0
_FRACTION = re.compile(r"(\.\d{6})\d+")  # RFC 3339 nanoseconds (OpenBao) -> microseconds


class SignerStatus(StrEnum):
    """Whether readers accept records signed by a signing key version."""

    ACTIVE = "active"
    """The version the router signs with now."""
    RETIRED = "retired"
    """An older version: records it signed verify until its ``valid_to``."""
    REVOKED = "revoked"
    """Never accepted (compromised or withdrawn)."""


@dataclass(frozen=True, slots=True)
class TrustedSigner:
    """One signing key version in the bundle."""

    key: KeyRef
    public_key: bytes
    status: SignerStatus
    valid_from: float | None = None
    """Unix seconds; None: no lower bound."""
    valid_to: float | None = None
    """Unix seconds; None: no end."""

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key.key_id,
            "version": self.key.version,
            "algorithm": ALGORITHM,
            "public_key": self.public_key.hex(),
            "status": self.status.value,
            "valid_from": format_time(self.valid_from),
            "valid_to": format_time(self.valid_to),
        }


def format_time(t: float | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, whole seconds (None stays None)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """An ISO 8601 / RFC 3339 time with a zone (``Z`` or an offset) as unix seconds."""
    parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    if parsed.tzinfo is None:
        raise ValueError("time without a zone")
    return parsed.timestamp()


class TrustBundle:
    """:class:`~router.keys.protocol.PublicKeys` from a trust bundle, with status and validity checks.

    ``clock`` returns unix seconds (a test hook); ``clock_skew_s`` tolerates a reader clock that is
    that far off the signer's.
    """

    def __init__(
        self,
        signers: Iterable[TrustedSigner],
        *,
        generated_at: float | None = None,
        source: str = "",
        clock: Callable[[], float] = time.time,
        clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    ) -> None:
        self._signers: dict[KeyRef, TrustedSigner] = {}
        self._public: dict[KeyRef, Ed25519PublicKey] = {}
        for s in signers:
            if s.key in self._signers:
                raise ConfigError(f"trust bundle lists signing key {s.key} twice")
            self._signers[s.key] = s
            self._public[s.key] = Ed25519PublicKey.from_public_bytes(s.public_key)
        self.generated_at = generated_at
        self.source = source
        self._clock = clock
        self._skew = clock_skew_s

    def __repr__(self) -> str:
        return f"TrustBundle({sorted(f'{k}:{s.status.value}' for k, s in self._signers.items())})"

    @property
    def signers(self) -> list[TrustedSigner]:
        return [self._signers[k] for k in sorted(self._signers, key=lambda k: (k.key_id, k.version))]

    def public_key(self, key: KeyRef) -> Ed25519PublicKey:
        """The public key of ``key`` if readers may accept it now; else ``UnknownKey`` (not in the
        bundle) or ``UntrustedSigner`` (revoked, not yet valid, expired)."""
        entry = self._signers.get(key)
        if entry is None:
            raise UnknownKey("signing key version is not in the trust bundle (never published, or dropped)", key=key)
        if entry.status is SignerStatus.REVOKED:
            raise UntrustedSigner("signing key version is revoked in the trust bundle", key=key)
        now = self._clock()
        if entry.valid_from is not None and now + self._skew < entry.valid_from:
            raise UntrustedSigner(
                f"signing key version is not valid before {format_time(entry.valid_from)} (trust bundle)", key=key
            )
        if entry.valid_to is not None and now - self._skew >= entry.valid_to:
            raise UntrustedSigner(
                f"signing key version expired at {format_time(entry.valid_to)} (trust bundle)", key=key
            )
        return self._public[key]

    # -- file ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "generated_at": format_time(self.generated_at),
            "source": self.source,
            "signers": [s.to_json() for s in self.signers],
        }

    def save(self, path: Path) -> None:
        """Write atomically (mode 0644: the bundle holds public keys only)."""
        data = json.dumps(self.to_json(), indent=2).encode() + b"\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trust-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, *, clock: Callable[[], float] = time.time) -> TrustBundle:
        """Read and validate a bundle file; every problem is a ``ConfigError`` naming the file and
        the entry's field (never its value)."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"trust bundle {path} does not exist; write one with "
                "'residency-router keys export-trust --config C --out FILE'"
            ) from None
        except (OSError, ValueError) as err:
            raise ConfigError(f"trust bundle {path} is unreadable ({type(err).__name__})") from None
        return cls.from_json(doc, str(path), clock=clock)

    @classmethod
    def from_json(cls, doc: Any, source: str = "<memory>", *, clock: Callable[[], float] = time.time) -> TrustBundle:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f"{source} is not a residency-router trust bundle (format {FORMAT})")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{source}: format_version must be {FORMAT_VERSION}")
        entries = doc.get("signers")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{source}: signers must be a non-empty list")
        signers = [_signer_from_json(e, f"{source}: signers[{i}]") for i, e in enumerate(entries)]
        generated = doc.get("generated_at")
        try:
            generated_at = parse_time(generated) if isinstance(generated, str) else None
        except ValueError:
            raise ConfigError(f"{source}: generated_at is not an ISO 8601 time with a zone") from None
        return cls(signers, generated_at=generated_at, source=str(doc.get("source") or ""), clock=clock)


def _public_key(text: Any) -> bytes:
    """Raw Ed25519 public key from 64 hex digits; ValueError otherwise."""
    public = bytes.fromhex(str(text))
    if len(public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    Ed25519PublicKey.from_public_bytes(public)
    return public


def _optional_time(raw: Any) -> float | None:
    """None, or an ISO 8601 time with a zone as unix seconds; ValueError otherwise."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("not a string")  # noqa: TRY004 - the caller reports one error for any bad value
    return parse_time(raw)


def _signer_from_json(obj: Any, where: str) -> TrustedSigner:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} must be an object")
    unknown = set(obj) - {"key_id", "version", "algorithm", "public_key", "status", "valid_from", "valid_to"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    key_id, version = obj.get("key_id"), obj.get("version")
    if not isinstance(key_id, str) or not key_id or len(key_id) > 255:
        raise ConfigError(f"{where}.key_id must be a non-empty string")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**32:
        raise ConfigError(f"{where}.version must be an integer from 1")
    if obj.get("algorithm") != ALGORITHM:
        raise ConfigError(f"{where}.algorithm must be {ALGORITHM!r}")
    try:
        public = _public_key(obj.get("public_key"))
    except ValueError:
        raise ConfigError(f"{where}.public_key must be 64 hex digits (a raw Ed25519 public key)") from None
    try:
        status = SignerStatus(str(obj.get("status")))
    except ValueError:
        allowed = ", ".join(s.value for s in SignerStatus)
        raise ConfigError(f"{where}.status must be one of {allowed}") from None
    window: list[float | None] = []
    for name in ("valid_from", "valid_to"):
        try:
            window.append(_optional_time(obj.get(name)))
        except ValueError:
            raise ConfigError(f"{where}.{name} must be null or an ISO 8601 time with a zone") from None
    start, end = window
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"{where}.valid_to must be after valid_from")
    return TrustedSigner(KeyRef(key_id, version), public, status, start, end)


def derive_signers(
    key_id: str,
    versions: Mapping[int, tuple[bytes, float | None]],
    *,
    current: int,
    min_version: int = 1,
    revoked: Iterable[int] = (),
    retired_valid_s: float | None = None,
) -> list[TrustedSigner]:
    """Status and window of each version of signing key ``key_id``.

    ``versions`` maps a version to (raw public key, creation time or None); ``current`` is the
    version the router signs with; versions below ``min_version`` (the key's
    ``min_decryption_version``) and those in ``revoked`` are revoked. A retired version's window
    ends ``retired_valid_s`` after its successor was created (no end if either is unknown).
    """
    revoked_set = set(revoked)
    if current not in versions:
        raise ConfigError(f"signing key {key_id!r} has no version {current} to publish")
    if current in revoked_set or current < min_version:
        raise ConfigError(
            f"the active version {current} of signing key {key_id!r} is revoked "
            "(keys.signer.revoked_versions or min_decryption_version): rotate the key first"
        )
    ordered = sorted(versions)
    out: list[TrustedSigner] = []
    for i, v in enumerate(ordered):
        public, created = versions[v]
        ref = KeyRef(key_id, v)
        if v < min_version or v in revoked_set:
            out.append(TrustedSigner(ref, public, SignerStatus.REVOKED, created, None))
        elif v == current:
            out.append(TrustedSigner(ref, public, SignerStatus.ACTIVE, created, None))
        elif v < current:
            successor = versions[ordered[i + 1]][1]
            end = successor + retired_valid_s if successor is not None and retired_valid_s is not None else None
            out.append(TrustedSigner(ref, public, SignerStatus.RETIRED, created, end))
        # a version above the current one is not published: nothing signs with it yet
    return out


def transit_versions(key_id: str, data: Mapping[str, Any]) -> tuple[dict[int, tuple[bytes, float | None]], int, int]:
    """The versions (public key, creation time), latest version and ``min_decryption_version`` from
    a transit ``keys/<name>`` read; ``ConfigError`` when it is not an ``ed25519`` key."""
    if data.get("type") != ALGORITHM:
        raise ConfigError(f"transit key {key_id!r} is not of type ed25519 (keys.signer.key): it cannot sign envelopes")
    versions: dict[int, tuple[bytes, float | None]] = {}
    try:
        for v, entry in dict(data["keys"]).items():
            public = _public_key(base64.b64decode(entry["public_key"], validate=True).hex())
            created = entry.get("creation_time")
            versions[int(v)] = (public, parse_time(created) if isinstance(created, str) else None)
        latest = int(data["latest_version"])
        min_decryption = int(data.get("min_decryption_version") or 1)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        raise ConfigError(f"transit key {key_id!r}: OpenBao's key description is malformed") from None
    return versions, latest, min_decryption
