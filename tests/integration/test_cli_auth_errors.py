"""The real CLI against a real secured cluster: a refused TLS handshake or authentication ends every
command that talks to the cluster with exit 2 and one line naming the ``clusters.default.security``
setting to fix, instead of a time-out or "brokers are down".

The module starts its own secured one-node dev cluster (``DevCluster(...).up(racks, secure=True)``,
SASL_SSL bootstrap) and stops it at the end. Each case writes a router config (the example's, with
``clusters.default`` replaced) and runs ``python -m router.cli ...`` in a subprocess with a deadline:

- no credentials: ``protocol: PLAINTEXT`` (``allow_plaintext: true``) against the TLS listener → ``protocol``;
- a password file holding a wrong password → ``sasl.password``;
- a CA file of another CA → ``ca_file``;

and, as the control, the right settings pass the connection check (no security error). Nothing is
mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.devtools.devcluster.launcher import ClusterInfo
from tests.integration.secure_cluster import secured_cluster
from tests.unit.tls_util import write_ca

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "router.yaml"
RACKS = ("eu-west-1a",)
DEADLINE_S = 90.0
PRINCIPAL = "admin"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    with secured_cluster(tmp_path_factory, "devcluster-cli-auth", RACKS) as info:
        yield info


def _write_config(directory: Path, cluster: dict[str, Any]) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["clusters"] = {"default": cluster}
    path = directory / "router.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _sasl(info: ClusterInfo, *, password_file: str, ca: str) -> dict[str, Any]:
    assert info.security is not None
    return {"bootstrap": info.bootstrap, "security": {
        "protocol": "SASL_SSL", "ca_file": ca,
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": info.security.principal(PRINCIPAL).name,
                 "password": {"file": password_file}}}}


def _no_credentials(info: ClusterInfo, _tmp: Path) -> dict[str, Any]:
    return {"bootstrap": info.bootstrap, "security": {"protocol": "PLAINTEXT"}, "allow_plaintext": True}


def _wrong_password(info: ClusterInfo, tmp: Path) -> dict[str, Any]:
    assert info.security is not None
    wrong = tmp / "wrong-password"
    wrong.write_text("wrong-" + uuid.uuid4().hex, encoding="utf-8")
    wrong.chmod(0o600)
    return _sasl(info, password_file=str(wrong), ca=info.security.ca)


def _other_ca(info: ClusterInfo, tmp: Path) -> dict[str, Any]:
    assert info.security is not None
    other = write_ca(tmp / "other-ca")
    return _sasl(info, password_file=info.security.principal(PRINCIPAL).password_file, ca=str(other.cert))


CASES = {"protocol": _no_credentials, "sasl.password": _wrong_password, "ca_file": _other_ca}

COMMANDS: dict[str, tuple[list[str], list[str]]] = {  # (command words, options after --config)
    "placement": (["placement"], []),
    "topics create": (["topics", "create"], []),
    "acls check": (["acls", "check"], []),
    "audit verify": (["audit", "verify"], []),
    "quarantine list": (["quarantine", "list"], ["--jurisdiction", "eu"]),
    "status": (["status"], ["--sample", "0"]),
    "consume": (["consume"], ["--jurisdiction", "eu", "--topic", "crm.eu.contact", "--trust", "trust.json"]),
    "run": (["run"], ["--instance-id", "auth-test"]),
}


def _cli(config: Path, words: list[str], options: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "router.cli", *words, "--config", str(config), *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S, check=False, cwd=config.parent,
                          env=env)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("setting", list(CASES))
def test_a_refused_connection_exits_2_naming_the_setting(
    secured: ClusterInfo, tmp_path: Path, setting: str, command: str,
) -> None:
    config = _write_config(tmp_path, CASES[setting](secured, tmp_path))
    proc = _cli(config, *COMMANDS[command])  # raises TimeoutExpired past the deadline
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("residency-router: error:")]
    assert len(errors) == 1, proc.stderr
    assert f"clusters.default.security.{setting}: " in errors[0], errors[0]
    assert "Traceback" not in proc.stderr


def test_the_right_settings_pass_the_connection_check(secured: ClusterInfo, tmp_path: Path) -> None:
    assert secured.security is not None
    config = _write_config(tmp_path, _sasl(secured, password_file=secured.security.principal(PRINCIPAL).password_file,
                                           ca=secured.security.ca))
    proc = _cli(config, ["placement"], ["--json"])
    # the example's topics do not exist on this cluster: placement answers, and says so (exit 1)
    assert proc.returncode == 1, proc.stderr
    assert "clusters.default.security" not in proc.stderr
    assert '"ok": false' in proc.stdout
