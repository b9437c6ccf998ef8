"""Build the key stack from :class:`KeysConfig`: providers wrapped as instrumented -> retrying,
the jurisdiction map, the DEK manager and the signer. Runs once at start-up."""

from __future__ import annotations

from router.keys.config import KeysConfig, LocalProviderConfig, OpenBaoProviderConfig
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.openbao import OpenBaoTransitProvider
from router.keys.protocol import KeyProvider
from router.keys.wrappers import InstrumentedProvider, RetryingProvider


def build_provider(cfg: LocalProviderConfig | OpenBaoProviderConfig, keys: KeysConfig) -> KeyProvider:
    inner: KeyProvider
    if isinstance(cfg, LocalProviderConfig):
        inner = LocalKeyProvider(LocalKeyring.load(cfg.keyring))
    else:
        inner = OpenBaoTransitProvider(
            cfg.url,
            cfg.resolve_token(),
            mount=cfg.mount,
            namespace=cfg.namespace,
            timeout_s=cfg.timeout_s,
            verify=cfg.verify_tls,
        )
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
    providers = {name: build_provider(p, cfg) for name, p in cfg.providers.items()}
    return JurisdictionKeys({j: (providers[k.provider], cfg.key_id(j)) for j, k in cfg.jurisdictions.items()})


def build_dek_manager(cfg: KeysConfig, keys: JurisdictionKeys | None = None) -> CachingDekManager:
    policy = DekPolicy(cfg.data_keys.max_records, cfg.data_keys.max_age_s)
    return CachingDekManager(keys or build_jurisdiction_keys(cfg), policy)


def build_signer(cfg: KeysConfig) -> LocalSigner:
    return LocalSigner(LocalKeyring.load(cfg.signer.keyring), cfg.signer.key_id)


def build_public_keys(cfg: KeysConfig) -> LocalPublicKeys:
    return LocalPublicKeys(LocalKeyring.load(cfg.signer.keyring))
