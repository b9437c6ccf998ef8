"""For dev cluster launcher tests without a JVM: a stand-in ``java``, a reader of the
``server.properties`` the launcher writes, and the ``devcluster`` command run as a user runs it.

The stand-in answers ``-version`` as Java 17, runs ``storage`` (a shell snippet) for the storage
tool and makes every broker print ``broker_says`` and exit 1 at once, so the launcher writes all a
real start writes and then reports the failed start. A Kafka cache entry is written beside it so
that no Maven runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.devtools.devcluster import artifacts


def stand_in_java(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    storage: str = "exit 0",
    broker_says: str = "ERROR stand-in broker stops",
) -> None:
    """Put the stand-in ``java`` under ``tmp_path/bin`` (``JAVA_HOME``) and a cached Kafka under
    ``tmp_path/cache`` (``ROUTER_CACHE_DIR``)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    java = bindir / "java"
    java.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *-version*) echo 'openjdk version \"17.0.1\"' >&2; exit 0;;\n"
        f"  *StorageTool*) {storage};;\n"
        f"  *kafka.Kafka*) echo '{broker_says}'; exit 1;;\n"
        "esac\n"
    )
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path / "cache"))
    version = artifacts.kafka_version()
    libs = tmp_path / "cache" / "kafka" / version / "libs"
    libs.mkdir(parents=True)
    (libs / "k.jar").write_bytes(b"")
    (libs / "MANIFEST.json").write_text(
        json.dumps({"kafka_version": version, "pom": artifacts.POM.read_text(), "jars": ["k.jar"]})
    )


def read_props(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a properties file."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def devcluster_cli(state: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """``residency-router devcluster --state-dir STATE ARGS...`` in a subprocess (text output,
    60 s at the most, any exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "devcluster", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
