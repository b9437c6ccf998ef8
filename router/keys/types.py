"""The values keys are named and handed around by: :class:`KeyRef`, :class:`DataKey`, ``DEK_BYTES``.

A leaf: :mod:`router.keys.errors` names a :class:`KeyRef` and :mod:`router.keys.protocol` raises
those errors, so both import their types from here. :mod:`router.keys.protocol` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEK_BYTES = 32
"""Data keys are AES-256 keys."""


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A key id and version. Safe to log."""

    key_id: str
    version: int

    def __str__(self) -> str:
        return f"{self.key_id}@v{self.version}"


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key: its plaintext (never logged; hidden from repr) and its wrapped form."""

    kek: KeyRef
    wrapped: bytes
    plaintext: bytes = field(repr=False)
