"""Files the config names, read with their checks: a leaf module (it imports only :mod:`router.errors`).

:mod:`router.config.security` (TLS files, secrets) and :mod:`router.auth.tokens` (a token file)
read files the same way; keeping the function here lets the token sources use it while the client
security config builds them, without an import circle.
"""

from __future__ import annotations

import stat
from pathlib import Path

from router.errors import ConfigError


def read_config_file(path: Path, where: str, *, private: bool) -> bytes:
    """The bytes of a file the config names, checked: it exists, is a regular file this process can
    read and, when ``private`` (keys, passwords, tokens), gives no permission to group or others.

    Raises :class:`ConfigError` naming ``where`` (the setting's dotted path) and the path, never the
    file's content."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{where}: file {path} does not exist") from None
    except OSError as err:
        raise ConfigError(f"{where}: file {path} cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where}: {path} is not a regular file")
    if private and st.st_mode & 0o077:
        raise ConfigError(
            f"{where}: file {path} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"it holds a secret: restrict it to its owner (chmod 600 {path})"
        )
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{where}: file {path} cannot be read ({err.strerror})") from None
