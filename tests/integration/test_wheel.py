"""A wheel built from the repository works installed elsewhere: ``simulate``, the consumer SDK and
the audit and quarantine readers run from a clean virtualenv, away from the checkout.

No Kafka is needed; the test builds the wheel, creates a virtualenv and installs the wheel's
dependencies from the package index (about a minute). It is marked ``integration`` because it
installs packages, not because it needs a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from router.ingest.samples import generate, write_jsonl

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "router.yaml"

RECORDS_SCRIPT = """
import sys
from pathlib import Path

import router
import router.consumer
from router.audit.record import ZERO_HASH, AuditFields, decode_audit, encode_audit
from router.quarantine import QuarantineRecord, decode_quarantine, encode_quarantine, payload_sha256

# The installed package, not the checkout's source tree (the venv itself may sit under the
# checkout, e.g. in CI's temporary directory).
assert Path(sys.argv[1]) / "router" not in Path(router.__file__).resolve().parents, router.__file__
assert "site-packages" in Path(router.__file__).resolve().parts, router.__file__
assert callable(router.consumer.RegionalConsumer)

from router.devtools.devcluster import artifacts
assert artifacts.POM.is_file() and artifacts.LOG4J_CONFIG.is_file(), "the dev cluster's pom.xml is package data"

fields = AuditFields(
    decision="route", reason="ROUTED", classification_level="confidential", categories=("PII",),
    field_names=("Email", "MailingCountry"), jurisdictions=("eu",), destination_topic="crm.eu.contact",
    destination_partition=1, placement_verdict="ok@1764000000000", payload_sha256="ab" * 32,
    sealed_sha256="cd" * 32, source_topic="crm.ingress", source_partition=0, source_offset=1000,
    source_timestamp_ms=1_764_000_000_000, event_id="sf:evt-1", policy_version="policy-7",
    router_version=router.__version__, instance_id="router-a", processed_at_ms=1_764_000_000_500,
)
data, digest = encode_audit(0, ZERO_HASH, fields)
audit = decode_audit(data)
assert audit.fields == fields and audit.hash == digest, audit

original = b'{"Email":"alice@example.com"}'
rec = QuarantineRecord(
    reason="CONFLICTING_JURISDICTION", detail="BillingCountry and MailingCountry resolve to eu and us",
    classification_level="confidential", categories=("PII",), field_names=("Email",), jurisdictions=("eu", "us"),
    source_topic="crm.ingress", source_partition=2, source_offset=7, source_timestamp_ms=None, event_id=None,
    payload_sha256=payload_sha256(original), router_version=router.__version__, policy_version="policy-7",
    trace_id=None, quarantined_at_ms=1_764_000_000_123, sealed_payload=b"sealed",
)
assert decode_quarantine(encode_quarantine(rec)) == rec
print("records ok", router.__file__)
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env() -> dict[str, str]:
    """The environment without anything that would point Python back at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def test_a_wheel_installed_elsewhere_runs_simulate_the_sdk_and_the_record_readers(tmp_path: Path) -> None:
    env = _clean_env()
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources, and the
    # checkout is shared. Symlinks stay links (router/schemas -> ../schemas), as in a clone.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".state", ".ci-tmp"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", ".", "-w", str(dist)], source, env)
    (wheel,) = dist.glob("residency_router-*.whl")

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    bin_dir = target / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path, env)

    # A working directory outside the checkout, a config and an events file of its own.
    work = tmp_path / "work"
    work.mkdir()
    config = work / "router.yaml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    events = work / "events.jsonl"
    count = write_jsonl(events, generate(60, seed=11))  # Salesforce JSON and Avro (shipped schemas), Debezium

    installed = _run([str(bin_dir / "residency-router"), "simulate", "--config", str(config), "--events",
                      str(events), "--json"], work, env)
    rows = [json.loads(line) for line in installed.stdout.splitlines()]
    summary = rows.pop()["summary"]
    assert len(rows) == count
    assert summary["bad_lines"] == 0
    assert summary["route"] + summary["quarantine"] + summary["audit_only"] == count
    assert "UNKNOWN_SCHEMA" not in summary["by_reason"], summary

    # The installed package decides exactly as the checkout does.
    checkout = _run([sys.executable, "-m", "router.cli", "simulate", "--config", str(config), "--events",
                     str(events), "--json"], REPO, env)
    assert installed.stdout == checkout.stdout

    script = work / "records.py"
    script.write_text(RECORDS_SCRIPT, encoding="utf-8")
    result = _run([str(bin_dir / "python"), str(script), str(REPO)], work, env)
    assert result.stdout.startswith("records ok")
