"""`consume` verifies with the trust bundle alone: a router whose KEKs and signing key live in OpenBao
(transit ed25519 signer, no keyring file anywhere), `keys export-trust`, then `consume --trust`;
after the signer version is revoked and the bundle re-exported, the same records are rejected."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.integration.conftest_openbao import OpenBaoEndpoint
from tests.integration.router_env import make_env, router_cmd
from tests.kafka_util import produce_all, read_topic

pytestmark = pytest.mark.integration

N_EVENTS = 20
TOKEN_ENV = "RR_TEST_BAO_TOKEN"


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def _event(i: int) -> bytes:
    header = {"entityName": "Contact", "changeType": "CREATE", "recordIds": [f"003TRUST{i:07d}"],
              "changedFields": ["FirstName", "MailingCountry"], "commitTimestamp": 1_700_000_000_000 + i}
    return json.dumps({"ChangeEventHeader": header, "FirstName": f"Ada{i}", "MailingCountry": "DE"}).encode()


def test_consume_verifies_with_the_bundle_alone_and_refuses_a_revoked_signer(
    kafka_cluster: Any, kafka_admin: Any, openbao: OpenBaoEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = openbao
    admin = hvac.Client(url=url, token=token, timeout=5, verify=openbao.ca_file)
    sfx = uuid.uuid4().hex[:8]
    signer, keks = f"rr-sign-{sfx}", {j: f"rr-{j}-{sfx}" for j in ("eu", "us")}
    admin.secrets.transit.create_key(signer, key_type="ed25519")
    for name in keks.values():
        admin.secrets.transit.create_key(name)
    monkeypatch.setenv(TOKEN_ENV, token)  # the router and CLI subprocesses inherit it
    keys = {
        "providers": {"bao": {"type": "openbao", "url": url, "ca_file": openbao.ca_file, "token_env": TOKEN_ENV}},
        "jurisdictions": {j: {"provider": "bao", "key": k} for j, k in keks.items()},
        "signer": {"provider": "bao", "key": signer},
    }
    env = make_env(kafka_cluster, kafka_admin, tmp_path, ingress_partitions=1, extra={"keys": keys})
    for leftover in tmp_path.glob("*keyring*"):
        leftover.unlink()  # make_env writes a dev keyring; nothing here may use one

    produce_all(env.bootstrap, env.ingress, ((f"k{i}".encode(), _event(i)) for i in range(N_EVENTS)))
    run = subprocess.run(router_cmd(env, "a", 6.0), capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    topic = f"crm.eu.contact.{env.suffix}"
    assert len([m for m in read_topic(env.bootstrap, topic) if m.value() is not None]) == N_EVENTS

    bundle = tmp_path / "trust.json"
    export = _cli("keys", "export-trust", "--config", str(env.config_path), "--out", str(bundle))
    assert export.returncode == 0, export.stderr
    assert not list(tmp_path.glob("*keyring*"))

    def consume() -> tuple[int, list[dict[str, Any]], str]:
        proc = _cli("consume", "--config", str(env.config_path), "--jurisdiction", "eu", "--topic", topic,
                    "--trust", str(bundle), "--json", "--idle-timeout", "5")  # fmt: skip
        return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()], proc.stderr

    code, items, err = consume()
    assert code == 0, err
    assert len(items) == N_EVENTS and all(i["verified"] for i in items)
    assert sorted(i["payload"]["FirstName"] for i in items) == sorted(f"Ada{i}" for i in range(N_EVENTS))

    # The operator rotates the signing key and revokes version 1; readers get the new bundle.
    admin.secrets.transit.rotate_key(signer)
    admin.secrets.transit.update_key_configuration(signer, min_decryption_version=2)
    export = _cli("keys", "export-trust", "--config", str(env.config_path), "--out", str(bundle))
    assert export.returncode == 0, export.stderr
    assert [(s["version"], s["status"]) for s in json.loads(bundle.read_text())["signers"]] == [
        (1, "revoked"), (2, "active"),
    ]  # fmt: skip

    code, items, err = consume()
    assert code == 1
    assert len(items) == N_EVENTS
    assert all(not i["verified"] and i["error"] == "UntrustedSigner" and "revoked" in i["detail"] for i in items)
    assert "Ada" not in err and all("Ada" not in i["detail"] for i in items)
