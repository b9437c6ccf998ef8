"""Key providers (development keyring, OpenBao/Vault transit) behind one Protocol, with
retrying, instrumented and caching wrappers. See :mod:`router.keys.protocol`."""

# RouterConfig (router.config.models) attaches router.keys.config.KeysConfig, which subclasses
# router.config.models.StrictModel: load the models first so either import order works.
import router.config.models  # noqa: F401
