"""Build the key stack from :class:`KeysConfig`: providers wrapped as instrumented -> retrying,
the jurisdiction map, the DEK manager, the signer and the trust bundle. Runs once at start-up."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from router.errors import ConfigError
from router.keys.approle import AppRoleLogin
from router.keys.config import KeysConfig, LocalProviderConfig, OpenBaoProviderConfig
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalSigner
from router.keys.openbao import OpenBaoSession, OpenBaoTransitProvider
from router.keys.protocol import KeyProvider, PublicKeys, Signer
from router.keys.signer import OpenBaoTransitSigner
from router.keys.trust import SignerStatus, TrustBundle, derive_signers, transit_versions
from router.keys.wrappers import InstrumentedProvider, RetryingProvider

log = logging.getLogger(__name__)


def build_session(cfg: OpenBaoProviderConfig) -> OpenBaoSession:
    """An authenticated OpenBao connection for one ``openbao`` provider entry."""
    if cfg.ca_file is not None and not cfg.ca_file.is_file():
        raise ConfigError(f"keys.providers.*.ca_file: {cfg.ca_file} does not exist (the OpenBao server's CA, PEM)")
    if cfg.insecure:
        log.warning(
            "OpenBao at %s is reached without TLS verification (allow_insecure_dev): "
            "tokens and data keys are exposed on the network; development only",
            cfg.url,
        )
    auth: str | AppRoleLogin
    if cfg.approle is not None:
        a = cfg.approle
        auth = AppRoleLogin(a.role_id_file, a.secret_id_file, a.secret_id_wrapped, a.mount)
    else:
        auth = cfg.resolve_token()
    return OpenBaoSession(cfg.url, auth, namespace=cfg.namespace, timeout_s=cfg.timeout_s, verify=cfg.verify())


def build_provider(cfg: LocalProviderConfig | OpenBaoProviderConfig, keys: KeysConfig) -> KeyProvider:
    """One provider, wrapped as instrumented -> retrying."""
    inner: KeyProvider
    if isinstance(cfg, LocalProviderConfig):
        inner = LocalKeyProvider(LocalKeyring.load(cfg.keyring))
    else:
        inner = OpenBaoTransitProvider.over(build_session(cfg), mount=cfg.mount)
    r = keys.retry
    return InstrumentedProvider(
        RetryingProvider(
            inner,
            attempts=r.attempts,
            initial_backoff_s=r.initial_backoff_s,
            max_backoff_s=r.max_backoff_s,
            deadline_s=r.deadline_s,
        )
    )


def build_jurisdiction_keys(cfg: KeysConfig) -> JurisdictionKeys:
    """Every provider of ``keys.providers``, and which (provider, key id) serves each jurisdiction."""
    providers = {name: build_provider(p, cfg) for name, p in cfg.providers.items()}
    return JurisdictionKeys({j: (providers[k.provider], cfg.key_id(j)) for j, k in cfg.jurisdictions.items()})


def build_dek_manager(cfg: KeysConfig, keys: JurisdictionKeys | None = None) -> CachingDekManager:
    policy = DekPolicy(cfg.data_keys.max_records, cfg.data_keys.max_age_s)
    return CachingDekManager(keys or build_jurisdiction_keys(cfg), policy)


def _signer_source(cfg: KeysConfig) -> Path | OpenBaoProviderConfig:
    """The development keyring or the OpenBao provider that holds the signing key."""
    s = cfg.signer
    if s.keyring is not None:
        return s.keyring
    assert s.provider is not None  # SignerConfig: exactly one of provider and keyring
    provider = cfg.providers[s.provider]
    return provider.keyring if isinstance(provider, LocalProviderConfig) else provider


def build_signer(cfg: KeysConfig) -> Signer:
    """The router's signer: transit ``ed25519`` in OpenBao, or the dev keyring's signing key."""
    source = _signer_source(cfg)
    if isinstance(source, Path):
        return LocalSigner(LocalKeyring.load(source), cfg.signer.key)
    return OpenBaoTransitSigner(build_session(source), cfg.signer.key, mount=source.mount)


def build_trust_bundle(
    cfg: KeysConfig, *, previous: TrustBundle | None = None, clock: Callable[[], float] = time.time
) -> TrustBundle:
    """The signer's public keys with status and validity (``keys export-trust``); see
    :mod:`router.keys.trust` for how status is derived. Reads OpenBao's key description or the dev
    keyring; the bundle holds public keys only.

    OpenBao stops describing versions below ``min_decryption_version``; a version of this key that
    ``previous`` (the bundle being replaced) lists and the source no longer describes stays in the
    new bundle as ``revoked``, so readers keep refusing it by name rather than as unknown."""
    s = cfg.signer
    source = _signer_source(cfg)
    if isinstance(source, Path):
        ring = LocalKeyring.load(source)
        entry = ring.signing.get(s.key)
        if entry is None:
            raise ConfigError(f"keys.signer.key: signing key {s.key!r} is not in keyring {source}")
        publics = ring.signing_public_keys(s.key)
        versions = {v: (publics[v], entry.created.get(v)) for v in entry.versions}
        current, min_version, origin = entry.current, entry.min_decryption_version, f"keyring:{source.name}/{s.key}"
    else:
        session = build_session(source)
        resp = session.call(
            lambda c: c.secrets.transit.read_key(name=s.key, mount_point=source.mount), s.key, None
        )
        try:
            data = resp["data"]
        except (KeyError, TypeError):
            raise ConfigError(f"transit key {s.key!r}: OpenBao's key description is malformed") from None
        versions, current, min_version = transit_versions(s.key, data)
        origin = f"openbao:{source.mount}/{s.key}"
    signers = derive_signers(
        s.key,
        versions,
        current=current,
        min_version=min_version,
        revoked=s.revoked_versions,
        retired_valid_s=s.retired_valid_s,
    )
    if previous is not None:
        signers += [
            dataclasses.replace(p, status=SignerStatus.REVOKED, valid_to=None)
            for p in previous.signers
            if p.key.key_id == s.key and p.key.version not in versions
        ]
    return TrustBundle(signers, generated_at=clock(), source=origin, clock=clock)


def build_public_keys(cfg: KeysConfig) -> PublicKeys:
    """The trust bundle built live from the signer's source, for tooling that holds the router's
    config (tests, quarantine tools). Readers load an exported bundle file instead
    (:meth:`TrustBundle.load`): with a dev keyring this reads the private keyring file."""
    return build_trust_bundle(cfg)
