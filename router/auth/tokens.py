"""OAUTHBEARER token sources: what librdkafka's ``oauth_cb`` calls for a fresh token.

librdkafka asks for a token when a client starts and again at about 80 % of the current token's
lifetime; the brokers (``connections.max.reauth.ms``) make every connection re-authenticate before
its token expires. A source returns ``(token, expiry in epoch seconds, principal)``; a source that
cannot produce a token raises :class:`TokenUnavailable`, which librdkafka records as a token
failure and retries about every ten seconds. The failure is also kept (:attr:`TokenSource.last_error`)
and logged once per outage, naming the setting, so a stalled client says why.

- :class:`OpenBaoIdentityTokens`: logs in to OpenBao with AppRole (role id and secret id from
  files; a response-wrapped secret id is unwrapped once) and reads an identity token of one
  OIDC role (``identity/oidc/token/<role>``). OpenBao signs it with the role's key; the brokers
  verify it against OpenBao's JWKS (``/v1/identity/oidc/.well-known/keys``). The OpenBao token is
  renewed, or the login repeated, by :class:`router.keys.approle.TokenKeeper`.
- :class:`FileTokens`: a token some other agent keeps fresh in a file (an OpenBao Agent template,
  a projected service-account token); the file is read at every refresh.

One source serves every client of a process that uses the same credentials (:func:`shared`), so
a token is fetched once per refresh, not once per client, and a wrapped secret id is spent once.
Tokens never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from router.errors import RouterError

log = logging.getLogger(__name__)

REUSE_FRACTION = 0.5
"""A cached token is handed out again while more than this fraction of its lifetime is left."""

MIN_LIFETIME_S = 1.0
"""A token that expires sooner than this is treated as expired (clock skew, slow calls)."""


class TokenUnavailable(RouterError):
    """No OAUTHBEARER token can be had now; the message names the setting to check."""

    def __init__(self, message: str, *, setting: str, retriable: bool) -> None:
        super().__init__(message)
        self.setting = setting
        self.retriable = retriable


def _b64json(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - callers treat every malformed token alike
    return value


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified (the brokers verify; the client needs ``exp``).

    Raises ValueError when ``token`` is not three dot-separated base64url parts with a JSON payload.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("a JWT has three dot-separated parts")
    try:
        return _b64json(parts[1])
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"the JWT payload is not base64url JSON ({type(err).__name__})") from None


class TokenSource:
    """The common part: caching, the ``oauth_cb`` protocol, remembering and logging failures."""

    setting = "security.sasl"

    def __init__(self, *, principal_claim: str = "sub", clock: Callable[[], float] = time.time) -> None:
        self._principal_claim = principal_claim
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float, str, float] | None = None  # token, exp, principal, issued at
        self.last_error: TokenUnavailable | None = None
        self.fetched = 0
        """How many tokens were obtained (not served from the cache)."""

    def _fetch(self) -> str:
        raise NotImplementedError

    def token(self) -> tuple[str, float, str]:
        """A token with more than half its lifetime left: ``(token, exp epoch s, principal)``."""
        with self._lock:
            now = self._clock()
            if self._cached is not None:
                token, exp, principal, issued = self._cached
                if exp - now > max(MIN_LIFETIME_S, (exp - issued) * REUSE_FRACTION):
                    return token, exp, principal
            try:
                token = self._fetch()
                claims = jwt_claims(token)
                exp = float(claims["exp"])
            except TokenUnavailable as err:
                self._failed(err)
                raise
            except (ValueError, KeyError, TypeError) as err:
                failure = TokenUnavailable(
                    f"the token obtained for {self.setting} is not a JWT with an 'exp' claim ({type(err).__name__})",
                    setting=self.setting, retriable=False,
                )
                self._failed(failure)
                raise failure from None
            if exp - now < MIN_LIFETIME_S:
                failure = TokenUnavailable(
                    f"the token obtained for {self.setting} has expired (exp {exp:.0f}, now {now:.0f}); "
                    "whatever writes or issues it must renew it",
                    setting=self.setting, retriable=True,
                )
                self._failed(failure)
                raise failure
            principal = str(claims.get(self._principal_claim) or claims.get("sub") or "unknown")
            self._cached = (token, exp, principal, now)
            self.fetched += 1
            if self.last_error is not None:
                log.warning("OAUTHBEARER token for %s obtained again after a failure; clients resume", self.setting)
            self.last_error = None
            return token, exp, principal

    def _failed(self, err: TokenUnavailable) -> None:
        if self.last_error is None or str(self.last_error) != str(err):
            log.error("no OAUTHBEARER token: %s", err)
        self.last_error = err

    def __call__(self, _oauthbearer_config: str | None = None) -> tuple[str, float, str]:
        """librdkafka's ``oauth_cb``: ``(token, expiry in epoch seconds, principal)``."""
        return self.token()


class OpenBaoIdentityTokens(TokenSource):
    """Identity tokens of OIDC role ``role`` from OpenBao, logged in with AppRole.

    ``session`` is a :class:`router.keys.openbao.OpenBaoSession` (TLS verification, AppRole login,
    token renewal). ``setting`` is the config path named in errors.
    """

    def __init__(
        self,
        session: Any,
        role: str,
        *,
        setting: str = "security.sasl.openbao",
        principal_claim: str = "sub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(principal_claim=principal_claim, clock=clock)
        self._session = session
        self.role = role
        self.setting = setting

    def __repr__(self) -> str:
        return f"OpenBaoIdentityTokens(url={self._session.url!r}, role={self.role!r})"

    def _fetch(self) -> str:
        from router.keys.errors import KeyUnavailable  # noqa: PLC0415 - keys imports config

        path = f"identity/oidc/token/{self.role}"
        try:
            resp = self._session.call(lambda c: c.read(path), path, None)
        except KeyUnavailable as err:
            hint = (
                f"check {self.setting}.approle (role id and secret id files) and that the AppRole's policy "
                f"may read {path}" if not err.retriable
                else f"the token is fetched again when OpenBao answers; check {self.setting}.address and ca_file"
            )
            raise TokenUnavailable(
                f"OpenBao could not issue a token of OIDC role {self.role!r}: {err}; {hint}",
                setting=self.setting, retriable=err.retriable,
            ) from None
        try:
            token = resp["data"]["token"]
        except (KeyError, TypeError):
            raise TokenUnavailable(
                f"OpenBao's answer for {path} holds no token (is {self.role!r} an identity OIDC role?)",
                setting=self.setting, retriable=False,
            ) from None
        if not isinstance(token, str) or not token:
            raise TokenUnavailable(f"OpenBao's answer for {path} holds no token", setting=self.setting,
                                   retriable=False)
        return token


class FileTokens(TokenSource):
    """A token read from ``path`` at every refresh (kept fresh by another agent)."""

    def __init__(
        self, path: Path, *, setting: str = "security.sasl.token_file", principal_claim: str = "sub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(principal_claim=principal_claim, clock=clock)
        self.path = path
        self.setting = setting

    def __repr__(self) -> str:
        return f"FileTokens(path={str(self.path)!r})"

    def token(self) -> tuple[str, float, str]:
        with self._lock:
            self._cached = None  # the agent may have replaced the file: always read it
        return super().token()

    def _fetch(self) -> str:
        from router.config.security import read_config_file  # noqa: PLC0415 - config imports this module

        try:
            raw = read_config_file(self.path, self.setting, private=True)
        except RouterError as err:
            raise TokenUnavailable(str(err), setting=self.setting, retriable=True) from None
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise TokenUnavailable(f"{self.setting}: {self.path} is not a JWT (not ASCII)", setting=self.setting,
                                   retriable=False) from None
        if not text:
            raise TokenUnavailable(f"{self.setting}: {self.path} is empty", setting=self.setting, retriable=True)
        return text


_shared: dict[Hashable, TokenSource] = {}
_shared_lock = threading.Lock()


def shared(key: Hashable, make: Callable[[], TokenSource]) -> TokenSource:
    """The process's one source for ``key`` (e.g. OpenBao address, role and AppRole files)."""
    with _shared_lock:
        source = _shared.get(key)
        if source is None:
            source = _shared[key] = make()
        return source


def failures() -> list[TokenUnavailable]:
    """The current failure of every shared source that has one (for readiness and start-up errors)."""
    with _shared_lock:
        return [s.last_error for s in _shared.values() if s.last_error is not None]
