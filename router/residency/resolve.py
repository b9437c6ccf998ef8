"""Jurisdiction resolution (public module name); the implementation lives in :mod:`router.residency.resolver`."""

from router.residency.resolver import Evidence, Resolution, Resolver, Source

__all__ = ["Evidence", "Resolution", "Resolver", "Source"]
