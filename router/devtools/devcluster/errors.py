"""Errors of the local cluster launcher."""

from router.errors import RouterError


class DevClusterError(RouterError):
    """The dev cluster could not be started, inspected or stopped; the message says how to fix it."""
