"""Keyed digests: stable per jurisdiction and across KEK rotation, unrelated across jurisdictions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from router.keys.dek import JurisdictionKeys
from router.keys.digest import DigestKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyProvider, LocalKeyring

pytestmark = pytest.mark.unit


def _keys(tmp_path: Path) -> tuple[LocalKeyring, DigestKeys]:
    ring = LocalKeyring.create(tmp_path / "ring.json", ["eu", "us"])
    provider = LocalKeyProvider(ring)
    return ring, DigestKeys(JurisdictionKeys({"eu": (provider, "eu"), "us": (provider, "us")}))


def test_record_keys_are_stable_per_jurisdiction_and_differ_across_jurisdictions(tmp_path: Path) -> None:
    _, digests = _keys(tmp_path)
    key = b'{"id": "anna@example.de"}'
    eu = digests.record_key("eu", key)
    assert eu == digests.record_key("eu", key)
    assert eu != digests.record_key("us", key)
    assert eu != digests.record_key("eu", key + b" ")
    assert len(eu) == 64 and eu.isascii()
    assert b"anna" not in eu and hashlib.sha256(key).hexdigest().encode() != eu


def test_a_kek_rotation_keeps_the_digest_key(tmp_path: Path) -> None:
    ring, digests = _keys(tmp_path)
    before = digests.payload_digest("eu", b"payload")
    ring.rotate_kek("eu")
    fresh = DigestKeys(JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")}))
    assert fresh.payload_digest("eu", b"payload") == before
    assert before.startswith("hmac-sha256:eu:")


def test_a_jurisdiction_without_a_key_is_a_key_error(tmp_path: Path) -> None:
    _, digests = _keys(tmp_path)
    with pytest.raises(KeyUnavailable):
        digests.record_key("ch", b"k")
