"""The transit signer, the trust bundle, AppRole and token renewal against a real OpenBao
(``bao server -dev -dev-tls``, verified TLS). No Kafka."""

from __future__ import annotations

import base64
import json
import struct
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from router.cli.main import main
from router.envelope import Opener, SealContext, Sealer, UnknownKey, frame
from router.keys.approle import AppRoleLogin
from router.keys.config import KeysConfig
from router.keys.errors import KeyUnavailable, UntrustedSigner
from router.keys.factory import build_dek_manager, build_jurisdiction_keys, build_signer, build_trust_bundle
from router.keys.openbao import OpenBaoSession
from router.keys.protocol import KeyRef
from router.keys.signer import OpenBaoTransitSigner
from router.keys.trust import SignerStatus, TrustBundle
from tests.integration.conftest_openbao import OpenBaoEndpoint

pytestmark = pytest.mark.integration

PAYLOAD = b'{"FirstName":"Grace","Email":"grace@example.org"}'


def _ctx(i: int) -> SealContext:
    return SealContext(f"evt-{i}", "crm.ingress", 0, i, "crm.eu.contact", 0, "eu", "restricted", ("pii.email",),
                       "Contact", "update", None)  # fmt: skip


def _admin(openbao: OpenBaoEndpoint) -> hvac.Client:
    return hvac.Client(url=openbao[0], token=openbao[1], timeout=5, verify=openbao.ca_file)


@pytest.fixture
def names(openbao: OpenBaoEndpoint) -> dict[str, str]:
    """A fresh ed25519 signing key and an eu KEK (aes256-gcm96), uuid-named."""
    sfx = uuid.uuid4().hex[:8]
    out = {"signer": f"rr-sign-{sfx}", "eu": f"rr-eu-{sfx}"}
    admin = _admin(openbao)
    admin.secrets.transit.create_key(out["signer"], key_type="ed25519")
    admin.secrets.transit.create_key(out["eu"])
    return out


def _keys_config(openbao: OpenBaoEndpoint, names: dict[str, str], *, auth: dict[str, Any] | None = None,
                 **signer: Any) -> KeysConfig:  # fmt: skip
    bao = {"type": "openbao", "url": openbao[0], "ca_file": openbao.ca_file, **(auth or {"token": openbao[1]})}
    return KeysConfig.model_validate(
        {
            "providers": {"bao": bao},
            "jurisdictions": {"eu": {"provider": "bao", "key": names["eu"]}},
            "signer": {"provider": "bao", "key": names["signer"], **signer},
        }
    )


def _open_all(cfg: KeysConfig, bundle: TrustBundle, records: list[Any]) -> list[bytes]:
    opener = Opener(build_jurisdiction_keys(cfg), bundle)
    return [
        opener.open(r.value, r.headers, topic="crm.eu.contact", partition=0, expected_jurisdiction="eu").plaintext
        for r in records
    ]


def test_a_batch_signed_by_transit_verifies_with_the_exported_bundle(
    openbao: OpenBaoEndpoint, names: dict[str, str]
) -> None:
    cfg = _keys_config(openbao, names)
    signer = build_signer(cfg)
    assert isinstance(signer, OpenBaoTransitSigner)
    records = Sealer(build_dek_manager(cfg), signer).seal_batch([(PAYLOAD + bytes([i]), _ctx(i)) for i in range(5)])
    f = frame.decode(records[0].value)
    assert f.signing_key == KeyRef(names["signer"], 1)

    bundle = build_trust_bundle(cfg)
    assert [(s.key, s.status) for s in bundle.signers] == [(KeyRef(names["signer"], 1), SignerStatus.ACTIVE)]
    # the bundle's key is the one OpenBao publishes for the transit key
    published = _admin(openbao).secrets.transit.read_key(names["signer"])["data"]["keys"]["1"]["public_key"]
    raw = bundle.public_key(KeyRef(names["signer"], 1)).public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw == base64.b64decode(published)
    assert _open_all(cfg, bundle, records) == [PAYLOAD + bytes([i]) for i in range(5)]


def test_the_envelope_signature_is_what_transit_itself_verifies(
    openbao: OpenBaoEndpoint, names: dict[str, str]
) -> None:
    cfg = _keys_config(openbao, names)
    records = Sealer(build_dek_manager(cfg), build_signer(cfg)).seal_batch([(PAYLOAD, _ctx(0)), (PAYLOAD, _ctx(1))])
    f = frame.decode(records[0].value)
    from router.envelope import merkle

    root = merkle.root_from_proof(f.leaf_index, f.leaf_count, merkle.leaf_hash(f.body), f.proof)
    assert root is not None
    message = frame.MANIFEST_DOMAIN + root + struct.pack(">I", f.leaf_count)
    verdict = _admin(openbao).secrets.transit.verify_signed_data(
        names["signer"],
        hash_input=base64.b64encode(message).decode(),
        signature=f"vault:v1:{base64.b64encode(f.signature).decode()}",
    )
    assert verdict["data"]["valid"] is True


def test_rotation_is_picked_up_and_a_revoked_version_is_refused_by_readers(
    openbao: OpenBaoEndpoint, names: dict[str, str]
) -> None:
    cfg = _keys_config(openbao, names)
    session = OpenBaoSession(openbao[0], openbao[1], verify=openbao.ca_file)
    now = [0.0]
    signer = OpenBaoTransitSigner(session, names["signer"], refresh_s=30, clock=lambda: now[0])
    sealer = Sealer(build_dek_manager(cfg), signer)
    old = sealer.seal_batch([(PAYLOAD, _ctx(0))])
    admin = _admin(openbao)
    admin.secrets.transit.rotate_key(names["signer"])
    now[0] += 31  # the signer re-reads the key's latest version
    new = sealer.seal_batch([(PAYLOAD, _ctx(1))])
    assert [frame.decode(r.value).signing_key.version for r in old + new] == [1, 2]

    bundle = build_trust_bundle(cfg)
    assert [s.status for s in bundle.signers] == [SignerStatus.RETIRED, SignerStatus.ACTIVE]
    assert _open_all(cfg, bundle, old + new) == [PAYLOAD, PAYLOAD]

    # the operator revokes version 1 in OpenBao; readers get a new bundle
    admin.secrets.transit.update_key_configuration(names["signer"], min_decryption_version=2)
    fresh = build_trust_bundle(cfg)  # OpenBao no longer describes version 1 at all
    assert [s.key.version for s in fresh.signers] == [2]
    with pytest.raises(UnknownKey):
        _open_all(cfg, fresh, old)
    revoked = build_trust_bundle(cfg, previous=bundle)  # replacing the bundle readers had
    assert [(s.key.version, s.status) for s in revoked.signers] == [(1, SignerStatus.REVOKED), (2, SignerStatus.ACTIVE)]
    with pytest.raises(UntrustedSigner, match="revoked"):
        _open_all(cfg, revoked, old)
    assert _open_all(cfg, revoked, new) == [PAYLOAD]


def test_a_version_listed_as_revoked_in_the_config_is_refused(openbao: OpenBaoEndpoint, names: dict[str, str]) -> None:
    cfg = _keys_config(openbao, names)
    old = Sealer(build_dek_manager(cfg), build_signer(cfg)).seal_batch([(PAYLOAD, _ctx(0))])
    _admin(openbao).secrets.transit.rotate_key(names["signer"])
    bundle = build_trust_bundle(_keys_config(openbao, names, revoked_versions=[1]))
    with pytest.raises(UntrustedSigner):
        _open_all(cfg, bundle, old)


def test_export_trust_from_openbao_writes_the_bundle(
    openbao: OpenBaoEndpoint, names: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RR_TEST_BAO_TOKEN", openbao[1])
    doc = {
        "clusters": {"default": {"bootstrap": "127.0.0.1:9092", "security": {"protocol": "PLAINTEXT"},
                                 "allow_plaintext": True}},
        "jurisdictions": {"eu": {"racks": ["eu-*"]}},
        "topics": [{"name": "crm.eu.contact", "jurisdiction": "eu"}],
        "keys": {
            "providers": {"bao": {"type": "openbao", "url": openbao[0], "ca_file": openbao.ca_file,
                                  "token_env": "RR_TEST_BAO_TOKEN"}},
            "jurisdictions": {"eu": {"provider": "bao", "key": names["eu"]}},
            "signer": {"provider": "bao", "key": names["signer"]},
        },
    }  # fmt: skip
    config = tmp_path / "router.yaml"
    config.write_text(json.dumps(doc))  # JSON is YAML
    out = tmp_path / "trust.json"
    assert main(["keys", "export-trust", "--config", str(config), "--out", str(out)]) == 0
    text = out.read_text()
    assert openbao[1] not in text
    loaded = TrustBundle.load(out)
    assert [(s.key, s.status) for s in loaded.signers] == [(KeyRef(names["signer"], 1), SignerStatus.ACTIVE)]
    assert json.loads(text)["source"] == f"openbao:transit/{names['signer']}"


def test_certificate_verification_is_on(openbao: OpenBaoEndpoint, names: dict[str, str]) -> None:
    """Without the dev server's CA the connection fails verification: nothing is signed."""
    unverified = OpenBaoSession(openbao[0], openbao[1], verify=True)  # system CAs only
    with pytest.raises(KeyUnavailable) as err:
        OpenBaoTransitSigner(unverified, names["signer"]).key  # noqa: B018 - the property calls OpenBao
    assert err.value.retriable
    assert openbao[1] not in str(err.value)


# -- AppRole and token renewal -------------------------------------------------------------
@pytest.fixture
def approle(openbao: OpenBaoEndpoint, names: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """An AppRole auth mount of its own, a role allowed exactly the router's transit calls, and its
    role id in a file."""
    admin = _admin(openbao)
    mount = f"approle-{uuid.uuid4().hex[:8]}"
    admin.sys.enable_auth_method("approle", path=mount)
    policy = f"rr-router-{mount}"
    admin.sys.create_or_update_policy(
        policy,
        f"""
        path "transit/sign/{names['signer']}" {{ capabilities = ["update"] }}
        path "transit/keys/{names['signer']}" {{ capabilities = ["read"] }}
        path "transit/datakey/plaintext/{names['eu']}" {{ capabilities = ["update"] }}
        path "transit/decrypt/{names['eu']}" {{ capabilities = ["update"] }}
        path "transit/hmac/{names['eu']}" {{ capabilities = ["update"] }}
        """,
    )
    admin.auth.approle.create_or_update_approle(
        "router", token_policies=[policy], token_ttl="60s", token_max_ttl="600s", mount_point=mount
    )
    role_id = admin.auth.approle.read_role_id("router", mount_point=mount)["data"]["role_id"]
    (tmp_path / "role-id").write_text(role_id)
    return {"mount": mount, "role_id_file": tmp_path / "role-id", "secret_id_file": tmp_path / "secret-id"}


def _secret_id(openbao: OpenBaoEndpoint, approle: dict[str, Any], *, wrapped: bool = False) -> None:
    admin = _admin(openbao)
    resp = admin.auth.approle.generate_secret_id("router", mount_point=approle["mount"],
                                                 wrap_ttl="120s" if wrapped else None)  # fmt: skip
    value = resp["wrap_info"]["token"] if wrapped else resp["data"]["secret_id"]
    approle["secret_id_file"].write_text(value + "\n")


def _approle_auth(approle: dict[str, Any], *, wrapped: bool = False) -> dict[str, Any]:
    return {"approle": {"role_id_file": str(approle["role_id_file"]), "secret_id_file": str(approle["secret_id_file"]),
                        "secret_id_wrapped": wrapped, "mount": approle["mount"]}}  # fmt: skip


def test_the_router_signs_and_seals_after_an_approle_login(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    _secret_id(openbao, approle)
    cfg = _keys_config(openbao, names, auth=_approle_auth(approle))
    signer = build_signer(cfg)
    records = Sealer(build_dek_manager(cfg), signer).seal_batch([(PAYLOAD, _ctx(0))])
    assert _open_all(cfg, build_trust_bundle(_keys_config(openbao, names)), records) == [PAYLOAD]
    assert isinstance(signer, OpenBaoTransitSigner)
    token = signer._session.client.token
    info = _admin(openbao).auth.token.lookup(token)["data"]
    assert info["path"].startswith(f"auth/{approle['mount']}/login")  # an AppRole token, not the root token


def test_a_response_wrapped_secret_id_is_unwrapped_once(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    _secret_id(openbao, approle, wrapped=True)
    wrapping_token = approle["secret_id_file"].read_text().strip()
    cfg = _keys_config(openbao, names, auth=_approle_auth(approle, wrapped=True))
    signer = build_signer(cfg)
    assert signer.key == KeyRef(names["signer"], 1)
    # the wrapping token is spent: OpenBao refuses a second unwrap
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=openbao[0], token=wrapping_token, verify=openbao.ca_file).sys.unwrap()
    # and a later login reuses the secret id it held
    assert isinstance(signer, OpenBaoTransitSigner)
    assert signer._session.keeper.relogin()
    assert len(signer.sign(b"m")) == 64


def _approle_session_on_a_clock(
    openbao: OpenBaoEndpoint, approle: dict[str, Any]
) -> tuple[OpenBaoSession, list[float]]:
    """A fresh secret id, an AppRole session that logs in with it, and the clock its token keeper
    reads (``now[0]`` seconds, moved by the test)."""
    _secret_id(openbao, approle)
    now = [0.0]
    session = OpenBaoSession(openbao[0], AppRoleLogin(approle["role_id_file"], approle["secret_id_file"],
                                                       mount=approle["mount"]), verify=openbao.ca_file)  # fmt: skip
    session.keeper._clock = lambda: now[0]
    return session, now


def test_the_token_is_renewed_after_two_thirds_of_its_lease(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    session, now = _approle_session_on_a_clock(openbao, approle)
    signer = OpenBaoTransitSigner(session, names["signer"])
    assert len(signer.sign(b"m")) == 64
    token = session.client.token
    admin = _admin(openbao)
    assert not admin.auth.token.lookup(token)["data"].get("last_renewal_time")

    now[0] += 41  # two thirds of the role's 60 s token_ttl
    assert len(signer.sign(b"m")) == 64
    assert session.client.token == token  # renewed, not replaced
    assert admin.auth.token.lookup(token)["data"].get("last_renewal_time")


def test_a_failed_renewal_logs_in_again(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    session, now = _approle_session_on_a_clock(openbao, approle)
    signer = OpenBaoTransitSigner(session, names["signer"])
    signer.sign(b"m")
    first = session.client.token
    _admin(openbao).auth.token.revoke(first)  # renewal of a revoked token fails

    now[0] += 41
    assert len(signer.sign(b"m")) == 64
    assert session.client.token != first


def test_a_token_revoked_between_renewals_is_replaced_at_the_next_call(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    _secret_id(openbao, approle)
    cfg = _keys_config(openbao, names, auth=_approle_auth(approle))
    signer = build_signer(cfg)
    signer.sign(b"m")
    assert isinstance(signer, OpenBaoTransitSigner)
    first = signer._session.client.token
    _admin(openbao).auth.token.revoke(first)
    assert len(signer.sign(b"m")) == 64  # 403, login, retried once
    assert signer._session.client.token != first


def test_a_static_token_that_is_refused_stays_refused_without_leaking(
    openbao: OpenBaoEndpoint, names: dict[str, str]
) -> None:
    session = OpenBaoSession(openbao[0], "not-a-real-token", verify=openbao.ca_file)
    with pytest.raises(KeyUnavailable, match="permission denied") as err:
        OpenBaoTransitSigner(session, names["signer"]).sign(b"m")
    assert not err.value.retriable
    assert "not-a-real-token" not in str(err.value)


def test_a_wrong_secret_id_is_a_clear_error_without_the_secret(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    approle["secret_id_file"].write_text("00000000-0000-0000-0000-000000000000-wrong\n")
    signer = build_signer(_keys_config(openbao, names, auth=_approle_auth(approle)))
    with pytest.raises(KeyUnavailable, match="AppRole login") as err:
        signer.sign(b"m")
    assert not err.value.retriable
    assert "-wrong" not in str(err.value)


def test_a_spent_wrapping_token_is_a_clear_error(
    openbao: OpenBaoEndpoint, names: dict[str, str], approle: dict[str, Any]
) -> None:
    _secret_id(openbao, approle, wrapped=True)
    wrapping_token = approle["secret_id_file"].read_text().strip()
    hvac.Client(url=openbao[0], token=wrapping_token, verify=openbao.ca_file).sys.unwrap()  # intercepted
    signer = build_signer(_keys_config(openbao, names, auth=_approle_auth(approle, wrapped=True)))
    with pytest.raises(KeyUnavailable, match="could not be unwrapped") as err:
        signer.sign(b"m")
    assert wrapping_token not in str(err.value)
