"""A dev cluster start-up that loses a freely picked port to another process is tried again on
other ports; fixed ports (``port_base``) are not; other start-up failures are not retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.devtools.devcluster import launcher
from router.devtools.devcluster.errors import DevClusterError
from router.devtools.devcluster.launcher import PORT_ATTEMPTS, DevCluster, PortTakenError, _port_taken

pytestmark = pytest.mark.unit


class Flaky:
    """Stands in for one start-up attempt: raises the given errors in turn, then succeeds."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: list[dict[str, Any]] = []

    def __call__(self, racks: Any, **kw: Any) -> str:
        self.calls.append(kw)
        if self.errors:
            raise self.errors.pop(0)
        return "started"


def _cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors: list[Exception]) -> tuple[DevCluster, Flaky]:
    dc = DevCluster(tmp_path)
    flaky = Flaky(errors)
    monkeypatch.setattr(dc, "_up_once", flaky)
    return dc, flaky


def test_a_taken_port_is_retried_on_other_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dc, flaky = _cluster(tmp_path, monkeypatch, [PortTakenError("m", "port 1 taken")] * (PORT_ATTEMPTS - 1))
    assert dc.up(["eu-a"]) == "started"
    assert len(flaky.calls) == PORT_ATTEMPTS


def test_it_gives_up_after_the_last_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dc, flaky = _cluster(tmp_path, monkeypatch, [PortTakenError("m", "port 1 taken")] * PORT_ATTEMPTS)
    with pytest.raises(PortTakenError):
        dc.up(["eu-a"])
    assert len(flaky.calls) == PORT_ATTEMPTS


def test_fixed_ports_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dc, flaky = _cluster(tmp_path, monkeypatch, [PortTakenError("m", "port 1 taken")])
    with pytest.raises(PortTakenError):
        dc.up(["eu-a"], port_base=30000)
    assert len(flaky.calls) == 1


def test_other_start_up_failures_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dc, flaky = _cluster(tmp_path, monkeypatch, [DevClusterError("broker 1 exited: out of memory")])
    with pytest.raises(DevClusterError, match="out of memory"):
        dc.up(["eu-a"])
    assert len(flaky.calls) == 1


def test_a_bind_failure_anywhere_in_a_log_is_found(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # the cause sits far above the config dump Kafka prints last
    log.write_bytes(b"java.net.BindException: Address already in use\n" + b"\tsome.setting = x\n" * 5000)
    clean = tmp_path / "clean.log"
    clean.write_bytes(b"\tsome.setting = x\n" * 10)
    assert _port_taken(tmp_path / "missing.log", log)
    assert not _port_taken(clean, tmp_path / "missing.log")
    assert issubclass(launcher.PortTakenError, DevClusterError)


def test_the_errors_a_node_logged_are_found_above_its_config_dump(tmp_path: Path) -> None:
    from router.devtools.devcluster.launcher import _errors

    log = tmp_path / "server.log"
    log.write_text("[2026] INFO starting\n[2026] ERROR Exiting Kafka due to fatal exception\n"
                   "java.lang.OutOfMemoryError: Java heap space\n" + "\tsome.setting = x\n" * 500)
    found = _errors(log, tmp_path / "missing.log")
    assert "ERROR Exiting Kafka" in found and "OutOfMemoryError" in found and "some.setting" not in found


def test_a_node_killed_without_a_word_is_tried_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from router.devtools.devcluster.launcher import SilentExitError

    dc, flaky = _cluster(tmp_path, monkeypatch, [SilentExitError("m", "broker 3 died (killed by signal 9, SIGKILL)")])
    assert dc.up(["eu-a"]) == "started"
    assert len(flaky.calls) == 2
