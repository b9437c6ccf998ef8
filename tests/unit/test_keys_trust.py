"""The trust bundle: readers accept a signer version only while the bundle says it is valid, and a
bad bundle file is an error naming the entry's field."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from router.cli.main import main
from router.envelope import EnvelopeError, Opener, SealContext, Sealer, UnknownKey
from router.errors import ConfigError
from router.keys.config import KeysConfig
from router.keys.dek import CachingDekManager, JurisdictionKeys
from router.keys.errors import UntrustedSigner
from router.keys.factory import build_trust_bundle
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalSigner
from router.keys.protocol import KeyRef
from router.keys.trust import SignerStatus, TrustBundle, TrustedSigner, derive_signers, parse_time

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0  # a fixed "now" for the bundle's clock
DAY = 86400.0
CTX = SealContext("evt-1", "crm.ingress", 0, 9, "crm.eu.contact", 2, "eu", "restricted", ("pii.name",), "Contact",
                  "create", 3)  # fmt: skip


def _public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _entry(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key_id": "router-signing",
        "version": 1,
        "algorithm": "ed25519",
        "public_key": _public(bytes(32)).hex(),
        "status": "active",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": None,
    }
    doc.update(over)
    return doc


def _doc(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"format": "residency-router-trust-bundle", "format_version": 1, "signers": list(entries or [_entry()])}


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    ring = LocalKeyring.create(tmp_path / "keyring.json", ["eu"])
    ring.rotate_signing()
    ring.save()
    return ring


def _sealed_by(ring: LocalKeyring, version: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
    rec = Sealer(CachingDekManager(keys), LocalSigner(ring, version=version)).seal(b"payload", CTX)
    return rec.value, rec.headers


def _open(ring: LocalKeyring, bundle: TrustBundle, version: int) -> bytes:
    value, headers = _sealed_by(ring, version)
    opener = Opener(JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")}), bundle)
    return opener.open(value, headers, topic=CTX.dest_topic, partition=CTX.dest_partition,
                       expected_jurisdiction="eu").plaintext  # fmt: skip


def _ring_bundle(ring: LocalKeyring, **kw: Any) -> TrustBundle:
    publics = ring.signing_public_keys("router-signing")
    versions = {v: (publics[v], T0 - (3 - v) * DAY) for v in publics}  # v1 created 2 days ago, v2 1 day ago
    signers = derive_signers("router-signing", versions, current=2, **kw)
    return TrustBundle(signers, clock=lambda: T0)


def test_records_of_every_accepted_version_open_with_the_bundle(ring: LocalKeyring) -> None:
    bundle = _ring_bundle(ring, retired_valid_s=7 * DAY)
    assert [s.status for s in bundle.signers] == [SignerStatus.RETIRED, SignerStatus.ACTIVE]
    assert _open(ring, bundle, 1) == b"payload"
    assert _open(ring, bundle, 2) == b"payload"


def test_a_record_by_a_revoked_version_is_refused_as_an_envelope_error_naming_the_reason(ring: LocalKeyring) -> None:
    bundle = _ring_bundle(ring, revoked=[1])
    with pytest.raises(UntrustedSigner, match="revoked") as err:
        _open(ring, bundle, 1)
    assert isinstance(err.value, EnvelopeError)
    assert err.value.topic == CTX.dest_topic  # an envelope error with its position: the SDK's Rejected
    assert _open(ring, bundle, 2) == b"payload"


def test_a_retired_version_expires_its_successors_creation_plus_the_grace(ring: LocalKeyring) -> None:
    # v2 was created one day before T0: a 12-hour grace ended 12 hours ago
    with pytest.raises(UntrustedSigner, match="expired at"):
        _open(ring, _ring_bundle(ring, retired_valid_s=DAY / 2), 1)
    assert _open(ring, _ring_bundle(ring, retired_valid_s=2 * DAY), 1) == b"payload"


def test_a_retired_version_without_a_grace_never_expires(ring: LocalKeyring) -> None:
    bundle = _ring_bundle(ring, retired_valid_s=None)
    assert bundle.signers[0].valid_to is None
    assert _open(ring, bundle, 1) == b"payload"


def test_validity_is_judged_by_the_readers_clock_with_a_skew_tolerance() -> None:
    seed = bytes(range(32))
    entry = TrustedSigner(KeyRef("s", 1), _public(seed), SignerStatus.ACTIVE, valid_from=T0, valid_to=T0 + DAY)
    ref = KeyRef("s", 1)
    for now, ok in ((T0 - 301, False), (T0 - 299, True), (T0 + DAY + 299, True), (T0 + DAY + 301, False)):
        bundle = TrustBundle([entry], clock=lambda now=now: now, clock_skew_s=300)  # type: ignore[misc]
        if ok:
            assert bundle.public_key(ref).public_bytes(Encoding.Raw, PublicFormat.Raw) == _public(seed)
        else:
            with pytest.raises(UntrustedSigner):
                bundle.public_key(ref)


def test_a_version_missing_from_the_bundle_is_unknown_not_untrusted() -> None:
    bundle = TrustBundle.from_json(_doc())
    with pytest.raises(UnknownKey) as err:
        bundle.public_key(KeyRef("router-signing", 2))
    assert not isinstance(err.value, UntrustedSigner)


def test_status_follows_min_version_revocation_list_and_the_current_version() -> None:
    versions = {v: (_public(bytes([v]) * 32), T0 + v * DAY) for v in (1, 2, 3, 4)}
    signers = derive_signers("k", versions, current=3, min_version=2, revoked=[2], retired_valid_s=DAY)
    assert [(s.key.version, s.status) for s in signers] == [
        (1, SignerStatus.REVOKED), (2, SignerStatus.REVOKED), (3, SignerStatus.ACTIVE),
    ]  # fmt: skip - v4 is newer than the version that signs: not published
    retired = derive_signers("k", versions, current=4, min_version=1, retired_valid_s=DAY)
    assert [(s.key.version, s.status, s.valid_to) for s in retired[:3]] == [
        (1, SignerStatus.RETIRED, T0 + 3 * DAY),
        (2, SignerStatus.RETIRED, T0 + 4 * DAY),
        (3, SignerStatus.RETIRED, T0 + 5 * DAY),
    ]
    assert retired[3].status is SignerStatus.ACTIVE and retired[3].valid_to is None


def test_revoking_the_active_version_is_refused_until_the_key_is_rotated() -> None:
    versions = {1: (_public(bytes(32)), None)}
    with pytest.raises(ConfigError, match="rotate the key first"):
        derive_signers("k", versions, current=1, revoked=[1])


def test_a_bundle_survives_its_file_round_trip(tmp_path: Path, ring: LocalKeyring) -> None:
    bundle = _ring_bundle(ring, retired_valid_s=2 * DAY, revoked=())
    path = tmp_path / "trust.json"
    bundle.save(path)
    loaded = TrustBundle.load(path, clock=lambda: T0)
    assert [(s.key, s.status, s.public_key) for s in loaded.signers] == [
        (s.key, s.status, s.public_key) for s in bundle.signers
    ]
    assert _open(ring, loaded, 1) == b"payload"
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (_entry(status="trusted"), "signers[0].status"),
        (_entry(public_key="zz" * 32), "signers[0].public_key"),
        (_entry(public_key="ab" * 31), "signers[0].public_key"),
        (_entry(version=0), "signers[0].version"),
        (_entry(version="1"), "signers[0].version"),
        (_entry(algorithm="rsa"), "signers[0].algorithm"),
        (_entry(valid_from="yesterday"), "signers[0].valid_from"),
        (_entry(valid_to="2026-01-01T00:00:00"), "signers[0].valid_to"),  # no zone
        (_entry(valid_to="2025-01-01T00:00:00Z"), "signers[0].valid_to must be after valid_from"),
        (_entry(key_id=""), "signers[0].key_id"),
        ({**_entry(), "private_key": "x"}, "signers[0]: unknown field"),
    ],
)
def test_a_bad_entry_is_a_config_error_naming_its_field(entry: dict[str, Any], field: str, tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(_doc(entry)))
    with pytest.raises(ConfigError) as err:
        TrustBundle.load(path)
    assert field in str(err.value)
    assert str(path) in str(err.value)
    assert "zz" * 32 not in str(err.value) and "yesterday" not in str(err.value)


def test_a_duplicate_version_is_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        TrustBundle.from_json(_doc(_entry(), _entry()))


@pytest.mark.parametrize(
    "doc",
    [[], {"format": "something-else"}, {**_doc(), "format_version": 2}, {**_doc(), "signers": []}],
)
def test_a_file_that_is_not_a_bundle_is_refused(doc: Any) -> None:
    with pytest.raises(ConfigError):
        TrustBundle.from_json(doc)


def test_a_missing_bundle_names_the_command_that_writes_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys export-trust"):
        TrustBundle.load(tmp_path / "nope.json")


def test_openbao_creation_times_with_nanoseconds_parse() -> None:
    assert parse_time("2026-11-29T07:23:08.123456789Z") == parse_time("2026-11-29T07:23:08.123456Z")
    assert parse_time("2026-11-29T08:23:08+01:00") == parse_time("2026-11-29T07:23:08Z")


def test_the_dev_keyrings_min_decryption_version_revokes_older_signing_versions(ring: LocalKeyring) -> None:
    ring.signing["router-signing"].min_decryption_version = 2
    ring.save()
    assert ring.path is not None
    cfg = KeysConfig.model_validate(
        {"providers": {"dev": {"type": "local", "keyring": str(ring.path)}},
         "jurisdictions": {"eu": {"provider": "dev"}}, "signer": {"provider": "dev"}}
    )
    bundle = build_trust_bundle(cfg)
    assert [(s.key.version, s.status) for s in bundle.signers] == [(1, SignerStatus.REVOKED), (2, SignerStatus.ACTIVE)]
    with pytest.raises(UntrustedSigner, match="revoked"):
        _open(ring, bundle, 1)


def test_export_trust_writes_public_keys_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyring = tmp_path / "keyring.json"
    ring = LocalKeyring.create(keyring, ["eu", "uk", "us", "ch"])
    doc = yaml.safe_load((REPO / "examples" / "router.yaml").read_text())
    doc["keys"]["providers"]["dev"]["keyring"] = str(keyring)
    doc["keys"]["signer"] = {"keyring": str(keyring)}
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "trust.json"

    assert main(["keys", "export-trust", "--config", str(config), "--out", str(out)]) == 0

    text = out.read_text()
    seed = ring.signing["router-signing"].versions[1]
    assert seed.hex() not in text and seed.hex().upper() not in text
    assert base64.b64encode(seed).decode() not in text
    loaded = TrustBundle.load(out)
    assert [(s.key, s.public_key) for s in loaded.signers] == [
        (KeyRef("router-signing", 1), ring.signing_public_keys("router-signing")[1])
    ]
    assert "router-signing@v1 active" in capsys.readouterr().out
