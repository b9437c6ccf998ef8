"""How the router reaches OpenBao: the shapes and rules shared by the key providers
(``keys.providers.<name>``, :mod:`router.keys.config`) and the OAUTHBEARER token source
(``clusters.<name>.security.sasl.openbao``, :mod:`router.config.security`).

A leaf module (pydantic and the standard library only): the client security config is imported by
:mod:`router.config.base`, which every section model builds on, so it cannot import
:mod:`router.keys.config`; both import these instead.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

HTTPS_REQUIRED = (
    "must be https:// (tokens and data keys cross this connection); "
    "set allow_insecure_dev: true only for a local development server"
)


def require_https(url: str, *, allow_insecure_dev: bool) -> str:
    """``url`` when it is ``https://`` (or ``allow_insecure_dev`` permits ``http://``); else ValueError."""
    if not url.lower().startswith("https://") and not allow_insecure_dev:
        raise ValueError(HTTPS_REQUIRED)
    return url


class AppRoleConfig(BaseModel):
    """AppRole login: the role id and the secret id each read from a file (mounted secrets).

    With ``secret_id_wrapped: true`` the secret-id file holds a response-wrapping token (``bao write
    -wrap-ttl=... -f auth/approle/role/<r>/secret-id``) that the router unwraps once at its first
    login; the unwrapped secret id then stays in memory only.
    """

    # The contract of router.config.base.StrictModel (which this leaf cannot import).
    model_config = ConfigDict(extra="forbid", frozen=True)

    role_id_file: Path
    secret_id_file: Path
    secret_id_wrapped: bool = False
    mount: str = Field(default="approle", pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]*$")
