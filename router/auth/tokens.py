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

from router.config.files import read_config_file
from router.errors import RouterError

log = logging.getLogger(__name__)

REUSE_FRACTION = 0.5
"""A cached token is handed out again while more than this fraction of its lifetime is left."""

RECOVERY_GRACE_S = 30.0
"""After tokens come back, how long a broker refusing a client's old, expired token still counts as
the outage: librdkafka retries a failed refresh only about every 10 s, and each client on its own."""

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
    always_fetch = False
    """True for a source whose every call must fetch (a file another agent rewrites)."""

    def __init__(self, *, principal_claim: str = "sub", clock: Callable[[], float] = time.time) -> None:
        self._principal_claim = principal_claim
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float, str, float] | None = None  # token, exp, principal, issued at
        self.last_error: TokenUnavailable | None = None
        self.fetched = 0
        self._fetching = False
        self._recovered_at: float | None = None
        """How many tokens were obtained (not served from the cache)."""

    def _fetch(self) -> str:
        raise NotImplementedError

    def token(self) -> tuple[str, float, str]:
        """A token with more than half its lifetime left: ``(token, exp epoch s, principal)``.

        When a new token cannot be had but the current one is still valid, the current one is
        returned (a client created during an outage connects); the failure is kept in
        :attr:`last_error` either way, until a token is obtained again."""
        with self._lock:
            now = self._clock()
            if self._cached is not None and not self.always_fetch:
                token, exp, principal, issued = self._cached
                if exp - now > max(MIN_LIFETIME_S, (exp - issued) * REUSE_FRACTION):
                    return token, exp, principal
            self._fetching = True
            try:
                token, exp, claims = self._obtain(now)
            except TokenUnavailable as err:
                self._failed(err)
                if self._cached is not None and self._cached[1] - now > MIN_LIFETIME_S:
                    return self._cached[0], self._cached[1], self._cached[2]
                raise
            finally:
                self._fetching = False
            principal = str(claims.get(self._principal_claim) or claims.get("sub") or "unknown")
            self._cached = (token, exp, principal, now)
            self.fetched += 1
            if self.last_error is not None:
                log.warning("OAUTHBEARER token for %s obtained again after a failure; clients resume", self.setting)
                self._recovered_at = now
            self.last_error = None
            return token, exp, principal

    @property
    def principal(self) -> str | None:
        """The principal named by the last token obtained (its principal claim), None before one."""
        cached = self._cached
        return cached[2] if cached is not None else None

    def current_failure(self) -> TokenUnavailable | None:
        """Why clients may have no valid token now: :attr:`last_error`, or, while a new token is
        being fetched or when the last one handed out has expired, a retriable failure saying so
        (a slow or frozen issuer: the broker refuses the expired token before the fetch fails)."""
        failure = self.last_error
        if failure is not None:
            return failure
        cached = self._cached
        expired = cached is not None and cached[1] - self._clock() <= MIN_LIFETIME_S
        if self._fetching or expired:
            return TokenUnavailable(
                f"{self.setting}: the current OAUTHBEARER token "
                + ("expired" if expired else "is being replaced")
                + " and no new token has been obtained yet (the issuer is slow or unreachable); clients resume "
                "once one is", setting=self.setting, retriable=True)
        if self._recovered_at is not None and self._clock() - self._recovered_at < RECOVERY_GRACE_S:
            return TokenUnavailable(
                f"{self.setting}: tokens could not be had until just now; a client still holding an expired one "
                "gets the new one at its next refresh (librdkafka retries about every 10 s)",
                setting=self.setting, retriable=True)
        return None

    def _obtain(self, now: float) -> tuple[str, float, dict[str, Any]]:
        """A new token, its expiry and its claims; TokenUnavailable when it cannot be had or is unusable."""
        token = self._fetch()
        try:
            claims = jwt_claims(token)
            exp = float(claims["exp"])
        except (ValueError, KeyError, TypeError) as err:
            raise TokenUnavailable(
                f"{self.setting}: the token obtained is not a JWT with an 'exp' claim ({type(err).__name__})",
                setting=self.setting, retriable=False,
            ) from None
        if exp - now < MIN_LIFETIME_S:
            raise TokenUnavailable(
                f"{self.setting}: the token obtained has expired (exp {exp:.0f}, now {now:.0f}); whatever "
                "writes or issues it must renew it",
                setting=self.setting, retriable=True,
            )
        return token, exp, claims

    def _failed(self, err: TokenUnavailable) -> None:
        if self.last_error is None or str(self.last_error) != str(err):
            kind = "retried about every 10 s" if err.retriable else "not retriable"
            log.error("no OAUTHBEARER token (%s): %s", kind, err)
        self.last_error = err

    def __call__(self, _oauthbearer_config: str | None = None) -> tuple[str, float, str]:
        """librdkafka's ``oauth_cb``: ``(token, expiry in epoch seconds, principal)``."""
        return self.token()


def _retriable_http() -> tuple[type[Exception], ...]:
    """OpenBao answers that may succeed when asked again (5xx, sealed, rate-limited)."""
    import hvac.exceptions  # noqa: PLC0415

    e = hvac.exceptions
    return (e.InternalServerError, e.VaultDown, e.BadGateway, e.RateLimitExceeded, e.VaultNotInitialized)


def _rehome(text: str, setting: str) -> str:
    """An AppRole error of :mod:`router.keys.approle` (written for ``keys.providers``) naming ``setting``."""
    return text.replace("keys.providers.<name>.", f"{setting}.")


class OpenBaoIdentityTokens(TokenSource):
    """Identity tokens of OIDC role ``role`` from OpenBao, logged in with AppRole.

    ``session`` is a :class:`router.keys.openbao.OpenBaoSession` (TLS verification, AppRole login,
    token renewal by its :class:`~router.keys.approle.TokenKeeper`); its errors are mapped here, so
    messages name ``setting`` (the config path, e.g. ``clusters.default.security.sasl.openbao``) and
    never a key provider. Retriable: OpenBao unreachable, slow, sealed or failing (5xx). Not
    retriable: the AppRole login refused or its files unusable, the policy refusing the role, no such
    role, a malformed answer.
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
        self.session = session
        """The OpenBao connection (its token renewed or replaced by its keeper)."""
        self.role = role
        self.setting = setting

    def __repr__(self) -> str:
        return f"OpenBaoIdentityTokens(url={self.session.url!r}, role={self.role!r})"

    def _unavailable(self, what: str, *, retriable: bool) -> TokenUnavailable:
        then = (
            "librdkafka asks again about every 10 s and the clients resume once OpenBao answers"
            if retriable else "asking again does not help: fix it, then start again"
        )
        return TokenUnavailable(f"{self.setting}: {what}; {then}", setting=self.setting, retriable=retriable)

    def _fetch(self) -> str:
        import hvac.exceptions  # noqa: PLC0415 - only for a cluster that uses OpenBao tokens
        import requests  # noqa: PLC0415

        session, path, url = self.session, f"identity/oidc/token/{self.role}", self.session.url
        try:
            session.keeper.ensure()
            try:
                resp = session.client.read(path)
            except hvac.exceptions.Forbidden:
                if not session.keeper.relogin():
                    raise
                resp = session.client.read(path)
        except (requests.Timeout, requests.ConnectionError) as err:
            raise self._unavailable(
                f"OpenBao at {url} is unreachable, slow or failed TLS verification ({type(err).__name__}); check "
                f"{self.setting}.address and {self.setting}.ca_file if it persists", retriable=True,
            ) from None
        except _retriable_http() as err:
            raise self._unavailable(f"OpenBao at {url} failed ({type(err).__name__})", retriable=True) from None
        except hvac.exceptions.Forbidden:
            raise self._unavailable(
                f"OpenBao at {url} refused to issue a token of OIDC role {self.role!r} (permission denied): the "
                f"policy of the AppRole in {self.setting}.approle must allow read on {path}, and {self.setting}.role "
                "must be this client's role", retriable=False,
            ) from None
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as err:
            raise self._unavailable(
                f"OpenBao at {url} has no identity OIDC role {self.role!r} or refused the request "
                f"({type(err).__name__}): check {self.setting}.role", retriable=False,
            ) from None
        except hvac.exceptions.VaultError as err:
            raise self._unavailable(f"OpenBao at {url} refused the request ({type(err).__name__})",
                                    retriable=False) from None
        except requests.RequestException as err:
            raise self._unavailable(f"the request to OpenBao at {url} failed ({type(err).__name__})",
                                    retriable=True) from None
        except RouterError as err:  # AppRole: files unusable, login refused, wrapped secret id spent
            raise self._unavailable(
                f"the AppRole login to OpenBao at {url} failed: {_rehome(str(err), self.setting)}", retriable=False,
            ) from None
        except OSError as err:  # e.g. the CA file is gone
            raise self._unavailable(
                f"the connection to OpenBao at {url} could not be set up ({type(err).__name__}): check "
                f"{self.setting}.ca_file", retriable=False,
            ) from None
        try:
            token = resp["data"]["token"]
        except (KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise self._unavailable(
                f"OpenBao's answer for {path} holds no token (is {self.role!r} an identity OIDC role?)",
                retriable=False,
            )
        return token


class FileTokens(TokenSource):
    """A token read from ``path`` at every refresh (kept fresh by another agent).

    The file must be private (mode 600 or stricter). A missing, empty or expired token is retriable
    (the agent may write a fresh one); a file that is not a JWT, or readable by others, is not.
    """

    def __init__(
        self, path: Path, *, setting: str = "security.sasl.token_file", principal_claim: str = "sub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(principal_claim=principal_claim, clock=clock)
        self.path = path
        self.setting = setting

    always_fetch = True  # the agent may have replaced the file: always read it

    def __repr__(self) -> str:
        return f"FileTokens(path={str(self.path)!r})"

    def _fetch(self) -> str:
        try:
            raw = read_config_file(self.path, self.setting, private=True)
        except RouterError as err:
            exists = self.path.is_file()
            raise TokenUnavailable(str(err), setting=self.setting, retriable=not exists) from None
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise TokenUnavailable(f"{self.setting}: {self.path} is not a JWT (not ASCII)", setting=self.setting,
                                   retriable=False) from None
        if not text:
            raise TokenUnavailable(f"{self.setting}: {self.path} is empty", setting=self.setting, retriable=True)
        return text

_shared: dict[Hashable, TokenSource] = {}
_by_cluster: dict[str, TokenSource] = {}
_shared_lock = threading.Lock()


def shared(key: Hashable, make: Callable[[], TokenSource], *, cluster: str | None = None) -> TokenSource:
    """The process's one source for ``key`` (e.g. OpenBao address, role and AppRole files), made by
    ``make`` the first time; remembered as the source of ``clusters.<cluster>`` (:func:`for_cluster`)."""
    with _shared_lock:
        source = _shared.get(key)
        if source is None:
            source = _shared[key] = make()
        if cluster is not None:
            _by_cluster[cluster] = source
        return source


def for_cluster(cluster: str) -> TokenSource | None:
    """The source the clients of ``clusters.<cluster>`` use, once their properties were built."""
    with _shared_lock:
        return _by_cluster.get(cluster)


def failures() -> list[TokenUnavailable]:
    """The current failure of every shared source that has one (for readiness and start-up errors)."""
    with _shared_lock:
        return [s.last_error for s in _shared.values() if s.last_error is not None]


def reset() -> None:
    """Forget every shared source (for tests: a process keeps its sources for its lifetime)."""
    with _shared_lock:
        _shared.clear()
        _by_cluster.clear()
