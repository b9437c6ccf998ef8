"""Resolve the Apache Kafka broker jars from Maven Central into a per-user cache.

The pinned version lives in ``pom.xml`` beside this module. The first resolution runs Maven; later
ones find a complete manifest in the cache and run nothing, so a second start downloads nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from router.devtools.devcluster.errors import DevClusterError

POM = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
MIN_JAVA = 17


def kafka_version() -> str:
    """The exact Kafka version pinned in the shipped pom."""
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text(encoding="utf-8"))
    if not m:  # pragma: no cover - the pom ships with the package
        raise DevClusterError(f"{POM} does not pin <kafka.version>")
    return m.group(1).strip()


def cache_root() -> Path:
    """``$ROUTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/residency-router``, else ``~/.cache/...``."""
    if env := os.environ.get("ROUTER_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "residency-router"


@dataclass(frozen=True)
class KafkaArtifacts:
    version: str
    libs: Path
    classpath: str
    from_cache: bool
    """True when the jars were already in the cache and Maven was not run."""


def java_binary() -> str:
    """The ``java`` to run brokers with: ``$JAVA_HOME/bin/java`` if set, else the one on PATH."""
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
        raise DevClusterError(
            f"JAVA_HOME is set to {home} but {candidate} does not exist; "
            f"point JAVA_HOME at a Java {MIN_JAVA}+ installation or unset it"
        )
    found = shutil.which("java")
    if not found:
        raise DevClusterError(
            f"no 'java' on PATH: install a Java {MIN_JAVA}+ runtime "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return found


def check_java(java: str) -> int:
    """Return the Java feature version, or raise if it is too old to run Kafka 4."""
    try:
        out = subprocess.run(  # noqa: S603 - fixed argument list, binary found above
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DevClusterError(f"could not run {java} -version: {err}") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise DevClusterError(f"could not read the Java version from `{java} -version`")
    major = int(m.group(1))
    if major == 1 and m.group(2):  # "1.8.0" style
        major = int(m.group(2))
    if major < MIN_JAVA:
        raise DevClusterError(
            f"{java} is Java {major}; Kafka {kafka_version()} brokers need Java {MIN_JAVA} or newer. "
            "Install openjdk-17 (or newer) and put it first on PATH or in JAVA_HOME"
        )
    return major


def _manifest(libs: Path) -> Path:
    return libs / "MANIFEST.json"


def _cached(libs: Path, version: str) -> list[Path] | None:
    manifest = _manifest(libs)
    if not manifest.exists():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("kafka_version") != version or data.get("pom") != POM.read_text(encoding="utf-8"):
        return None
    jars = [libs / name for name in data.get("jars", [])]
    if not jars or not all(j.exists() for j in jars):
        return None
    return jars


def resolve(*, offline: bool = False) -> KafkaArtifacts:
    """Return the broker classpath, running Maven only when the cache lacks a complete copy."""
    version = kafka_version()
    libs = cache_root() / "kafka" / version / "libs"
    jars = _cached(libs, version)
    if jars is not None:
        return KafkaArtifacts(version, libs, os.pathsep.join(map(str, jars)), from_cache=True)
    if offline:
        raise DevClusterError(f"Kafka {version} is not in the cache at {libs} and --offline was given")
    mvn = shutil.which("mvn")
    if not mvn:
        raise DevClusterError(
            "no 'mvn' on PATH: the dev cluster fetches Apache Kafka from Maven Central with Maven; "
            "install it (e.g. apt-get install maven) and try again"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise DevClusterError(
            "Maven did not finish resolving Kafka within 30 minutes; check network access to Maven Central"
        ) from None
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DevClusterError(
            f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} from {POM}. "
            "Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) and the "
            f"version exists. Maven said:\n{tail}"
        )
    found = sorted(p.name for p in staging.glob("*.jar"))
    if not any(name.startswith(f"kafka_2.13-{version}") for name in found):
        shutil.rmtree(staging, ignore_errors=True)
        raise DevClusterError(f"Maven finished but kafka_2.13-{version}.jar is not among the resolved jars")
    manifest = {"kafka_version": version, "pom": POM.read_text(encoding="utf-8"), "jars": found}
    (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)
    jars = [libs / name for name in found]
    return KafkaArtifacts(version, libs, os.pathsep.join(map(str, jars)), from_cache=False)
