"""The development keyring file and its CLI: created 0600, labelled, rotated, shown without secrets."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from router.cli import main
from router.envelope import UnknownKey
from router.errors import ConfigError
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyProvider, LocalKeyring
from router.keys.protocol import KeyRef

pytestmark = pytest.mark.unit


def test_keys_init_creates_a_0600_keyring_that_says_it_is_for_development(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dev" / "keyring.json"
    assert main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu,uk,us"]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert "DEVELOPMENT ONLY" in doc["warning"]
    assert sorted(doc["keks"]) == ["eu", "uk", "us"]
    assert "development" in capsys.readouterr().err.lower()


def test_keys_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyring.json"
    assert main(["keys", "init", "--keyring", str(path)]) == 0
    before = path.read_bytes()
    assert main(["keys", "init", "--keyring", str(path)]) == 2
    assert path.read_bytes() == before
    assert "already exists" in capsys.readouterr().err


def test_keys_rotate_adds_a_version_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu"])
    old = LocalKeyProvider(LocalKeyring.load(path)).new_data_key("eu")
    assert main(["keys", "rotate", "--keyring", str(path), "--jurisdiction", "eu"]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    provider = LocalKeyProvider(LocalKeyring.load(path))
    assert provider.new_data_key("eu").kek == KeyRef("eu", 2)
    assert provider.unwrap(old.kek, old.wrapped) == old.plaintext


def test_keys_rotate_of_an_unknown_jurisdiction_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keyring.json"
    main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu"])
    assert main(["keys", "rotate", "--keyring", str(path), "--jurisdiction", "fr"]) == 2
    assert "known: eu" in capsys.readouterr().err


def test_keys_show_prints_ids_versions_and_public_keys_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyring.json"
    main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu,us"])
    main(["keys", "rotate", "--keyring", str(path), "--signing"])
    capsys.readouterr()
    assert main(["keys", "show", "--keyring", str(path)]) == 0
    out = capsys.readouterr()
    shown = json.loads(out.out)
    assert shown["keks"]["eu"]["versions"] == [1]
    assert sorted(shown["signing"]["router-signing"]["public_keys"]) == ["1", "2"]
    ring = LocalKeyring.load(path)
    for entry in [*ring.keks.values(), *ring.signing.values()]:
        for secret in entry.versions.values():
            assert secret.hex() not in out.out
            assert json.dumps(secret.hex()) not in out.out
    raw = json.loads(path.read_text())
    for entry in [*raw["keks"].values(), *raw["signing"].values()]:
        for b64 in entry["versions"].values():
            assert b64 not in out.out
    assert "development" in out.err.lower()


def test_a_missing_keyring_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys init"):
        LocalKeyring.load(tmp_path / "none.json")


def test_a_file_that_is_not_a_keyring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not a residency-router dev keyring"):
        LocalKeyring.load(path)


def test_unknown_kek_and_version_raise_unknown_key(tmp_path: Path) -> None:
    provider = LocalKeyProvider(LocalKeyring.create(tmp_path / "k.json", ["eu"]))
    dk = provider.new_data_key("eu")
    with pytest.raises(UnknownKey):
        provider.new_data_key("us")
    with pytest.raises(UnknownKey):
        provider.unwrap(KeyRef("eu", 5), dk.wrapped)


def test_a_wrapped_dek_is_bound_to_its_key_id_and_version(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "k.json", ["eu", "us"])
    ring.keks["us"].versions[1] = ring.keks["eu"].versions[1]  # same key bytes, other id
    provider = LocalKeyProvider(ring)
    dk = provider.new_data_key("eu")
    with pytest.raises(UnknownKey):
        provider.unwrap(KeyRef("us", 1), dk.wrapped)


def test_a_version_below_min_decryption_version_is_unavailable_and_not_retriable(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "k.json", ["eu"])
    old = LocalKeyProvider(ring).new_data_key("eu")
    ring.rotate_kek("eu")
    ring.keks["eu"].min_decryption_version = 2
    with pytest.raises(KeyUnavailable) as err:
        LocalKeyProvider(ring).unwrap(old.kek, old.wrapped)
    assert err.value.retriable is False


def test_readers_verify_with_the_public_keys_that_keys_show_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from router.envelope import Opener, SealContext, Sealer
    from router.keys.dek import CachingDekManager, JurisdictionKeys
    from router.keys.local import LocalSigner
    from router.keys.protocol import StaticPublicKeys

    path = tmp_path / "keyring.json"
    main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu"])
    capsys.readouterr()
    main(["keys", "show", "--keyring", str(path)])
    public = StaticPublicKeys.from_show_json(json.loads(capsys.readouterr().out))
    ring = LocalKeyring.load(path)
    keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
    ctx = SealContext("e", "in", 0, 0, "crm.eu.a", 0, "eu", "internal", (), "Account", "create")
    rec = Sealer(CachingDekManager(keys), LocalSigner(ring)).seal(b"p", ctx)
    opened = Opener(keys, public).open(
        rec.value, rec.headers, topic="crm.eu.a", partition=0, expected_jurisdiction="eu"
    )
    assert opened.plaintext == b"p"


def test_a_running_reader_picks_up_a_kek_version_added_by_keys_rotate(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    main(["keys", "init", "--keyring", str(path), "--jurisdictions", "eu"])
    reader = LocalKeyProvider(LocalKeyring.load(path))  # loaded before the rotation
    main(["keys", "rotate", "--keyring", str(path), "--jurisdiction", "eu"])
    dk = LocalKeyProvider(LocalKeyring.load(path)).new_data_key("eu")
    assert dk.kek.version == 2
    assert reader.unwrap(dk.kek, dk.wrapped) == dk.plaintext
