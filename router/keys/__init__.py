"""Key providers (development keyring, OpenBao/Vault transit) behind one Protocol, with
retrying, instrumented and caching wrappers. See :mod:`router.keys.protocol`."""
