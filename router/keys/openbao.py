"""KEKs in OpenBao (or Vault) transit: one transit key per jurisdiction.

DEKs come from ``transit/datakey/plaintext/<key>`` (the server generates the DEK and returns it
with its wrapped form ``vault:vN:...``) and are unwrapped by ``transit/decrypt/<key>``. Rotating
the transit key makes new DEKs use version N+1 at once (the sealing side replaces DEKs by count
and age, so a running router picks the rotation up without a restart); records sealed under
older versions still open until ``min_decryption_version`` passes them.

Every failure is a :class:`KeyUnavailable`: connection errors, timeouts, 5xx, sealed or
rate-limited server are retriable; unknown or deleted keys, versions too old, permission denied
and malformed responses are not. The HTTP timeout is short (2 s by default) so that an outage
shows as a stall quickly. The token is held in the hvac client only; ``repr`` shows the URL.

:class:`OpenBaoSession` is one authenticated connection (TLS settings, token kept fresh by
:class:`router.keys.approle.TokenKeeper`, error mapping); the transit provider, the transit signer
(:mod:`router.keys.signer`) and the trust-bundle export (:mod:`router.keys.trust`) share it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import TypeVar

import hvac
import hvac.exceptions
import requests

from router.errors import ConfigError
from router.keys.approle import AppRoleLogin, TokenKeeper
from router.keys.errors import KeyUnavailable, UnknownKey
from router.keys.protocol import DIGEST_KEY_LABEL, DataKey, KeyRef

T = TypeVar("T")

_VERSION_PREFIX = re.compile(rb"^vault:v([0-9]{1,9}):")
_NOT_FOUND = ("not found", "no existing key", "unable to find", "does not exist")
_BAD_VERSION = ("invalid key version", "requested version", "too old", "disallowed by policy", "version")

_RETRIABLE_HTTP = (
    hvac.exceptions.InternalServerError,
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.VaultNotInitialized,
)


def _unknown(detail: str, key: KeyRef | None = None, key_id: str | None = None) -> Exception:
    return UnknownKey(detail, key=key, key_id=key_id)


def version_of(wrapped: bytes) -> int:
    """The transit key version named by a ``vault:vN:`` ciphertext (0 if it names none)."""
    m = _VERSION_PREFIX.match(wrapped)
    return int(m.group(1)) if m else 0


class OpenBaoSession:
    """One OpenBao server as the router talks to it: URL, TLS verification, authentication.

    ``auth`` is a static token (development) or :class:`AppRoleLogin` credentials. ``verify`` is
    requests' ``verify``: ``True`` (system CAs), a CA bundle path, or ``False`` (refused by the
    config unless ``allow_insecure_dev``). :meth:`call` runs one request with a fresh token and maps
    every failure to :class:`KeyUnavailable`.
    """

    def __init__(
        self,
        url: str,
        auth: str | AppRoleLogin,
        *,
        namespace: str | None = None,
        timeout_s: float = 2.0,
        verify: bool | str = True,
    ) -> None:
        self.url = url
        self._namespace = namespace
        self._timeout = timeout_s
        self._verify = verify
        self._client = self.new_client("")  # "" rather than None: hvac would read ~/.vault-token
        if isinstance(auth, AppRoleLogin):
            self.keeper = TokenKeeper(self._client, approle=auth, new_client=self.new_client)
        else:
            self.keeper = TokenKeeper(self._client, token=auth, new_client=self.new_client)

    def __repr__(self) -> str:
        return f"OpenBaoSession(url={self.url!r}, {self.keeper!r})"

    @property
    def client(self) -> hvac.Client:
        """The hvac client (for admin tasks in tests and tooling); its token may change on re-login."""
        return self._client

    def new_client(self, token: str | None) -> hvac.Client:
        """A client to the same server with the same TLS settings, authenticated by ``token``."""
        return hvac.Client(
            url=self.url, token=token, namespace=self._namespace, timeout=self._timeout, verify=self._verify
        )

    def call(self, fn: Callable[[hvac.Client], T], key_id: str, version: int | None) -> T:
        """``fn(client)`` with a usable token; a 403 logs in again (AppRole) and retries once."""
        ref = KeyRef(key_id, version) if version is not None else None
        try:
            self.keeper.ensure()
            try:
                return fn(self._client)
            except hvac.exceptions.Forbidden:
                if not self.keeper.relogin():
                    raise
                return fn(self._client)
        except (requests.Timeout, requests.ConnectionError) as err:
            raise KeyUnavailable(
                f"OpenBao at {self.url} is unreachable, slow or failed TLS verification ({type(err).__name__})",
                retriable=True,
                key_id=key_id,
                version=version,
            ) from None
        except _RETRIABLE_HTTP as err:
            raise KeyUnavailable(
                f"OpenBao at {self.url} failed ({type(err).__name__})", retriable=True, key_id=key_id, version=version
            ) from None
        except hvac.exceptions.Forbidden:
            raise KeyUnavailable(
                "permission denied: check the token or AppRole (keys.providers.<name>.token / token_env / approle) "
                "and its policy",
                retriable=False,
                key_id=key_id,
                version=version,
            ) from None
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as err:
            # Server messages name keys and versions, never key material; keep them short anyway.
            text = " ".join(str(e) for e in getattr(err, "errors", None) or [str(err)]).lower()
            if isinstance(err, hvac.exceptions.InvalidPath) or any(s in text for s in _NOT_FOUND):
                raise _unknown(
                    f"transit key {key_id!r} does not exist (deleted or never created)", ref, key_id
                ) from None
            if version is not None and any(s in text for s in _BAD_VERSION):
                raise _unknown("transit key version is unknown or below min_decryption_version", ref, key_id) from None
            raise KeyUnavailable(
                "OpenBao rejected the request (bad ciphertext or key type)",
                retriable=False,
                key_id=key_id,
                version=version,
            ) from None
        except hvac.exceptions.VaultError as err:
            raise KeyUnavailable(
                f"OpenBao error ({type(err).__name__})", retriable=False, key_id=key_id, version=version
            ) from None
        except requests.RequestException as err:
            raise KeyUnavailable(
                f"OpenBao request failed ({type(err).__name__})", retriable=True, key_id=key_id, version=version
            ) from None
        except ConfigError as err:  # AppRole credential files: the operator fixes them, a retry does not
            raise KeyUnavailable(str(err), retriable=False, key_id=key_id, version=version) from None
        except OSError as err:  # e.g. the CA file is gone
            raise KeyUnavailable(
                f"OpenBao connection setup failed ({type(err).__name__})",
                retriable=False,
                key_id=key_id,
                version=version,
            ) from None


class OpenBaoTransitProvider:
    """:class:`~router.keys.protocol.KeyProvider` over OpenBao/Vault transit."""

    name = "openbao"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        mount: str = "transit",
        namespace: str | None = None,
        timeout_s: float = 2.0,
        verify: bool | str = True,
        session: OpenBaoSession | None = None,
    ) -> None:
        if session is None:
            if token is None:
                raise ValueError("OpenBaoTransitProvider needs a token or a session")
            session = OpenBaoSession(url, token, namespace=namespace, timeout_s=timeout_s, verify=verify)
        self._session = session
        self._url = session.url
        self._mount = mount

    @classmethod
    def over(cls, session: OpenBaoSession, *, mount: str = "transit") -> OpenBaoTransitProvider:
        """A provider on an existing session (shared with the signer)."""
        return cls(session.url, session=session, mount=mount)

    def __repr__(self) -> str:
        return f"OpenBaoTransitProvider(url={self._url!r}, mount={self._mount!r})"

    @property
    def client(self) -> hvac.Client:
        """The hvac client (for admin tasks in tests and tooling)."""
        return self._session.client

    def new_data_key(self, key_id: str) -> DataKey:
        resp = self._call(
            lambda: self.client.secrets.transit.generate_data_key(
                name=key_id, key_type="plaintext", bits=256, mount_point=self._mount
            ),
            key_id,
            None,
        )
        try:
            data = resp["data"]
            wrapped = str(data["ciphertext"]).encode("ascii")
            dek = base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KeyUnavailable("transit datakey response is malformed", retriable=False, key_id=key_id) from None
        version = version_of(wrapped)
        if version < 1:
            raise KeyUnavailable("transit datakey ciphertext has no vault:vN: prefix", retriable=False, key_id=key_id)
        return DataKey(KeyRef(key_id, version), wrapped, dek)

    def digest_key(self, key_id: str) -> bytes:
        """Transit HMAC (key version 1, SHA-256) of the fixed label: the key never leaves OpenBao,
        and the result is stable across rotations of the transit key."""
        resp = self._call(
            lambda: self.client.secrets.transit.generate_hmac(
                name=key_id,
                hash_input=base64.b64encode(DIGEST_KEY_LABEL).decode("ascii"),
                key_version=1,
                algorithm="sha2-256",
                mount_point=self._mount,
            ),
            key_id,
            1,
        )
        try:
            prefix, _, b64 = str(resp["data"]["hmac"]).rpartition(":")
            key = base64.b64decode(b64, validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            key = b""
            prefix = ""
        if not prefix.startswith("vault:v") or len(key) != 32:
            raise KeyUnavailable("transit hmac response is malformed", retriable=False, key_id=key_id)
        return key

    def unwrap(self, kek: KeyRef, wrapped: bytes) -> bytes:
        if version_of(wrapped) != kek.version:
            raise _unknown("wrapped DEK's vault:vN: prefix does not match the envelope's KEK version", key=kek)
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise _unknown("wrapped DEK is not a transit ciphertext", key=kek) from None
        resp = self._call(
            lambda: self.client.secrets.transit.decrypt_data(
                name=kek.key_id, ciphertext=ciphertext, mount_point=self._mount
            ),
            kek.key_id,
            kek.version,
        )
        try:
            return base64.b64decode(resp["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KeyUnavailable(
                "transit decrypt response is malformed", retriable=False, key_id=kek.key_id, version=kek.version
            ) from None

    def _call(self, fn: Callable[[], T], key_id: str, version: int | None) -> T:
        return self._session.call(lambda _client: fn(), key_id, version)
