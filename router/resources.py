"""Files the router ships inside its package: the Avro schemas.

The repository keeps them in ``schemas/`` at its top level, where the design names them;
``router/schemas`` is a symlink to that directory, and a built wheel carries the files as package
data (``pyproject.toml``). Both are found here through :mod:`importlib.resources`, so ``run``,
``simulate`` and the audit and quarantine readers work from a checkout and from an installed wheel
alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from router.errors import ConfigError


def schema_dir() -> Path:
    """The directory of the shipped ``.avsc`` files and their ``registry.json``.

    Nothing is read here: a missing file is reported by whoever reads it, with this path.
    """
    root = files("router") / "schemas"
    if not isinstance(root, Path):
        raise ConfigError(
            f"the router's schemas are not installed as files ({root}): install the residency-router "
            "wheel into a virtualenv (not a zip archive), or set pipeline.schema_dir"
        )
    return root


def schema_file(name: str) -> Path:
    """One shipped schema file, e.g. ``audit.avsc``."""
    return schema_dir() / name
