"""How the router authenticates to OpenBao and keeps its token alive.

Two ways in:

- :class:`AppRoleLogin`, the non-development way: role id and secret id read from files (mounted
  secrets, never the config). A secret-id file may hold a response-wrapping token instead of the
  secret id; it is unwrapped once (a wrapping token works once) and the secret id kept in memory.
- a static token (``token`` / ``token_env`` in the config), for development.

:class:`TokenKeeper` holds the hvac client's token fresh *lazily*: before each OpenBao call it
renews the token (``auth/token/renew-self``) once two thirds of its lease have passed, and when the
renewal fails, or the token comes back with less than ``min_lease_s`` left (its max TTL), it logs in
again with AppRole. A call refused with 403 (the token was revoked or expired while idle) logs in
again once and is retried. No background thread: an idle router renews at its next call, and a
token that expired meanwhile is replaced by a fresh login. A static token is renewed while it is
renewable and cannot be replaced; a root token (no TTL) needs nothing.

Tokens, secret ids and wrapping tokens never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions

from router.errors import ConfigError

log = logging.getLogger(__name__)

RENEW_FRACTION = 2 / 3
"""Renew once this fraction of the lease has passed."""


@dataclass(frozen=True, slots=True)
class AppRoleLogin:
    """Where the AppRole credentials are: files read at each login (a rotated secret id is used)."""

    role_id_file: Path
    secret_id_file: Path
    secret_id_wrapped: bool = False
    mount: str = "approle"

    def read_role_id(self) -> str:
        return _read_secret_file(self.role_id_file, "approle.role_id_file")

    def read_secret_file(self) -> str:
        return _read_secret_file(self.secret_id_file, "approle.secret_id_file")


def _read_secret_file(path: Path, setting: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{setting}: {path} does not exist (keys.providers.<name>.{setting})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{setting}: {path} is unreadable ({type(err).__name__})") from None
    if not value:
        raise ConfigError(f"{setting}: {path} is empty (keys.providers.<name>.{setting})")
    return value


class TokenKeeper:
    """Keeps ``client``'s token usable; see the module docstring for when it renews or logs in.

    Call :meth:`ensure` before each request and :meth:`relogin` after a 403. Thread-safe. Errors
    from OpenBao (``requests`` and ``hvac`` exceptions) propagate to the caller, which maps them to
    :class:`router.keys.errors.KeyUnavailable`.
    """

    def __init__(
        self,
        client: hvac.Client,
        *,
        token: str | None = None,
        approle: AppRoleLogin | None = None,
        new_client: Callable[[str], hvac.Client] | None = None,
        min_lease_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (token is None) == (approle is None):
            raise ValueError("TokenKeeper needs exactly one of a static token and AppRole credentials")
        self._client = client
        self._new_client = new_client
        self._approle = approle
        self._min_lease = min_lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._renew_at: float | None = None  # None: no renewal needed (no TTL, or not renewable)
        self._known = False  # the current token's lease is known
        self._unwrapped: tuple[str, str] | None = None  # (wrapping token, secret id) already unwrapped
        if token is not None:
            client.token = token

    def __repr__(self) -> str:
        how = "approle" if self._approle is not None else "static token"
        return f"TokenKeeper({how})"

    @property
    def can_login(self) -> bool:
        return self._approle is not None

    def ensure(self) -> None:
        """Log in if there is no token yet; renew it if its lease is two-thirds through."""
        with self._lock:
            if not self._known:
                if self._approle is not None:
                    self._login()
                else:
                    self._learn_static_lease()
                return
            if self._renew_at is None or self._clock() < self._renew_at:
                return
            self._renew()

    def relogin(self) -> bool:
        """After a 403: log in again with AppRole. False (nothing done) for a static token."""
        if self._approle is None:
            return False
        with self._lock:
            log.warning("OpenBao answered 403 (the router's token expired or was revoked, or its policy does not "
                        "allow this request); logging in again with AppRole")
            self._login()
        return True

    # -- internals (called with the lock held) --------------------------------------------
    def _set_lease(self, auth: dict[str, Any] | None, now: float) -> float:
        lease = float((auth or {}).get("lease_duration") or 0)
        renewable = bool((auth or {}).get("renewable"))
        self._renew_at = now + lease * RENEW_FRACTION if lease > 0 and (renewable or self._approle) else None
        self._known = True
        return lease

    def _learn_static_lease(self) -> None:
        now = self._clock()
        try:
            data = self._client.auth.token.lookup_self()["data"]
        except (hvac.exceptions.Forbidden, KeyError, TypeError):
            # A token without lookup-self (or a bad one): no renewal; the calls themselves decide.
            self._set_lease(None, now)
            return
        ttl = float(data.get("ttl") or 0)
        self._set_lease({"lease_duration": ttl, "renewable": data.get("renewable")}, now)

    def _renew(self) -> None:
        now = self._clock()
        try:
            auth = self._client.auth.token.renew_self()["auth"]
        except (hvac.exceptions.VaultError, KeyError, TypeError) as err:
            if self._approle is None:
                # A static token cannot be replaced: keep using it until OpenBao refuses it.
                log.warning("OpenBao token renewal failed (%s); the static token cannot be replaced",
                            type(err).__name__)
                self._renew_at = None
                return
            log.warning("OpenBao token renewal failed (%s); logging in again with AppRole", type(err).__name__)
            self._login()
            return
        lease = self._set_lease(auth, now)
        if lease < self._min_lease and self._approle is not None:
            # The token reached its max TTL: renewal cannot extend it further.
            log.info("OpenBao token is near its max TTL; logging in again with AppRole")
            self._login()

    def _secret_id(self, approle: AppRoleLogin) -> str:
        value = approle.read_secret_file()
        if not approle.secret_id_wrapped:
            return value
        if self._unwrapped is not None and self._unwrapped[0] == value:
            return self._unwrapped[1]  # a wrapping token works once: reuse what it held
        if self._new_client is None:
            raise ConfigError("a wrapped secret id needs a client to unwrap it with (TokenKeeper new_client)")
        unwrapper = self._new_client(value)  # the wrapping token authenticates its own unwrap
        try:
            data = unwrapper.sys.unwrap()["data"]
            secret_id = str(data["secret_id"])
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, KeyError, TypeError) as err:
            # A spent wrapping token fails here: someone else may have unwrapped it first.
            raise ConfigError(
                f"the response-wrapped secret id could not be unwrapped ({type(err).__name__}: spent, expired or not "
                "a wrapping token); put a fresh one in keys.providers.<name>.approle.secret_id_file"
            ) from None
        self._unwrapped = (value, secret_id)
        return secret_id

    def _login(self) -> None:
        approle = self._approle
        assert approle is not None
        now = self._clock()
        try:
            resp = self._client.auth.approle.login(
                role_id=approle.read_role_id(), secret_id=self._secret_id(approle), mount_point=approle.mount
            )
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath) as err:
            raise ConfigError(
                f"AppRole login at auth/{approle.mount} was refused ({type(err).__name__}): check the role id, the "
                "secret id and the mount (keys.providers.<name>.approle)"
            ) from None
        self._set_lease(resp.get("auth") if isinstance(resp, dict) else None, now)
