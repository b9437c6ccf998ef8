"""Launcher checks that need no JVM: preflight errors name their fix, the cache is honoured."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from router.devtools.devcluster import artifacts
from router.devtools.devcluster.errors import DevClusterError
from router.devtools.devcluster.launcher import DevCluster, _check_port
from tests.unit.devcluster_util import stand_in_java

pytestmark = pytest.mark.unit


def test_pinned_kafka_is_4_1_or_newer() -> None:
    major, minor, *_ = (int(x) for x in artifacts.kafka_version().split("."))
    assert (major, minor) >= (4, 1)


def _fake_java(tmp_path: Path, version_line: str) -> str:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return str(java)


def test_old_java_is_refused_with_the_fix(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')
    with pytest.raises(DevClusterError, match="Java 11.*need Java 17 or newer.*openjdk-17"):
        artifacts.check_java(java)


def test_java_8_style_version_is_read(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'java version "1.8.0_292"')
    with pytest.raises(DevClusterError, match="Java 8"):
        artifacts.check_java(java)


def test_java_17_is_accepted(tmp_path: Path) -> None:
    assert artifacts.check_java(_fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')) == 17


def test_missing_java_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DevClusterError, match="no 'java' on PATH.*JAVA_HOME"):
        artifacts.java_binary()


def test_bad_java_home_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(DevClusterError, match="JAVA_HOME is set to .* does not exist"):
        artifacts.java_binary()


def test_missing_maven_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DevClusterError, match="no 'mvn' on PATH.*apt-get install maven"):
        artifacts.resolve()


def test_complete_cache_is_used_without_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # Maven would fail: the cache must suffice
    version = artifacts.kafka_version()
    libs = tmp_path / "kafka" / version / "libs"
    libs.mkdir(parents=True)
    jars = [f"kafka_2.13-{version}.jar", "kafka-clients.jar"]
    for j in jars:
        (libs / j).write_bytes(b"")
    manifest = {"kafka_version": version, "pom": artifacts.POM.read_text(), "jars": jars}
    (libs / "MANIFEST.json").write_text(json.dumps(manifest))
    got = artifacts.resolve()
    assert got.from_cache
    assert got.classpath.split(os.pathsep) == [str(libs / j) for j in jars]


def test_incomplete_cache_is_not_trusted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    version = artifacts.kafka_version()
    libs = tmp_path / "kafka" / version / "libs"
    libs.mkdir(parents=True)
    manifest = {"kafka_version": version, "pom": artifacts.POM.read_text(), "jars": ["gone.jar"]}
    (libs / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(DevClusterError, match="not in the cache"):
        artifacts.resolve(offline=True)


def test_port_in_use_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DevClusterError, match=f"port {port} on 127.0.0.1 is in use"):
            _check_port(port)


def test_status_of_no_cluster_is_none(tmp_path: Path) -> None:
    assert DevCluster(tmp_path / "none").load() is None
    assert DevCluster(tmp_path / "none").down() is None


def test_unreadable_state_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(DevClusterError, match="state.json is unreadable"):
        DevCluster(tmp_path).load()


def test_broker_that_exits_during_start_up_is_reported_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stand-in `java` formats storage fine, then the 'broker' dies with a bind error."""
    stand_in_java(tmp_path, monkeypatch, broker_says="ERROR java.net.BindException: Address already in use")
    state = tmp_path / "state"
    with pytest.raises(
        DevClusterError,
        match=r"(?s)broker 1 \(rack eu-west-1a\) exited during start-up.*"
        r"was taken by another process.*BindException",
    ):
        DevCluster(state).up(["eu-west-1a"], timeout=20)


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # kafka-storage's argument parser takes "-t -abc..." for a missing value and a new option, so a
    # base64url id starting with "-" (a first byte of 0xf8-0xfb: 1 start in 64) failed the format
    # step; Kafka's own Uuid.randomUuid draws again in that case, and so must the launcher.
    import base64
    import uuid

    from router.devtools.devcluster import launcher

    second = uuid.UUID(bytes=b"\x01" * 16)
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), second])
    monkeypatch.setattr(launcher.uuid, "uuid4", lambda: next(draws))
    cluster_id = launcher._kafka_uuid()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
    assert base64.urlsafe_b64decode(cluster_id + "==") == second.bytes, "the second draw"
