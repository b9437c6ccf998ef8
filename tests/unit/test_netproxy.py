"""The loopback fault proxy against a local TCP server: pass, delay, blackhole, drop, triggers, control.

Data being *held* is shown by a bounded wait that must expire (the proxy cannot forward before the
mode changes), then by the same data arriving once the mode is switched back; no test sleeps to
synchronise or asserts how long something took.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router.devtools.netproxy import Mode, NetProxyError, ProxyControl, ProxySet, _FrameScanner
from tests.unit.devcluster_util import devcluster_cli, read_props, stand_in_java

pytestmark = pytest.mark.unit

HELD = 0.3
"""Seconds of a wait that must expire: what is held must not arrive within it."""
ARRIVES = 30.0
"""Upper bound of a wait for something that must happen (only reached on failure)."""


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Upstream:
    """A TCP server on 127.0.0.1 that records every byte it receives and optionally echoes it.

    With ``frames``, it answers like a Kafka broker instead: once per complete request frame, with
    a frame holding that request's API key.
    """

    def __init__(self, *, echo: bool = True, frames: bool = False) -> None:
        self.received = bytearray()
        self.connections = 0
        self.cond = threading.Condition()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer.cond:
                    outer.connections += 1
                    outer.cond.notify_all()
                sock: socket.socket = self.request
                pending = bytearray()
                try:
                    while data := sock.recv(65536):
                        with outer.cond:
                            outer.received += data
                            outer.cond.notify_all()
                        if frames:
                            pending += data
                            while len(pending) >= 6 and len(pending) >= 4 + struct.unpack(">i", pending[:4])[0]:
                                size, api_key = struct.unpack(">ih", pending[:6])
                                del pending[: 4 + size]
                                sock.sendall(answer(api_key))
                        elif echo:
                            sock.sendall(data)
                except OSError:
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def proxies(echo: Upstream) -> Iterator[ProxySet]:
    with ProxySet({1: ("127.0.0.1", echo.port)}, control_port=0) as ps:
        yield ps


def connect(ps: ProxySet, key: int = 1) -> socket.socket:
    return socket.create_connection(("127.0.0.1", ps.ports[key]), timeout=ARRIVES)


def recv_exactly(s: socket.socket, n: int, timeout: float = ARRIVES) -> bytes:
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def eventually(pred: Callable[[], bool], timeout: float = ARRIVES) -> bool:
    """Poll a condition (every 10 ms) until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def new_connection_is_reset(ps: ProxySet) -> bool:
    """Connect and read: True if the connection is reset (the RST may already hit the connect)."""
    try:
        with connect(ps) as s:
            s.settimeout(ARRIVES)
            s.recv(1)
    except ConnectionResetError:
        return True
    return False


def assert_nothing_arrives(s: socket.socket) -> None:
    s.settimeout(HELD)
    try:
        got = s.recv(1)
    except TimeoutError:
        return
    pytest.fail(f"{len(got)} byte(s) arrived while held" if got else "the connection was closed while held")


def test_pass_forwards_both_ways_and_counts(proxies: ProxySet, echo: Upstream) -> None:
    payload = bytes(range(256)) * 1000
    with connect(proxies) as s:
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
    assert echo.wait(lambda: bytes(echo.received) == payload, ARRIVES)
    st = proxies.status()["proxies"][0]
    assert st["forwarded_bytes"] == {"upstream": len(payload), "downstream": len(payload)}
    assert st["mode"] == {"upstream": "pass", "downstream": "pass"}


def test_blackhole_holds_both_ways_then_delivers_everything_in_order(proxies: ProxySet, echo: Upstream) -> None:
    with connect(proxies) as s:
        s.sendall(b"before")
        assert recv_exactly(s, 6) == b"before"
        proxies.set_mode("blackhole")
        s.sendall(b"during-1")
        s.sendall(b"during-2")
        # Nothing reaches the server, nothing comes back: a bounded wait that must expire.
        assert not echo.wait(lambda: len(echo.received) > 6, HELD)
        assert_nothing_arrives(s)
        # A new connection is accepted but hangs too.
        with connect(proxies) as s2:
            s2.sendall(b"new")
            assert_nothing_arrives(s2)
            assert not echo.wait(lambda: len(echo.received) > 6, HELD)
            # Read by the proxy and held there (not in kernel buffers):
            assert eventually(lambda: proxies.status()["proxies"][0]["held_bytes"] == len(b"during-1during-2new"))
            proxies.set_mode("pass")
            assert recv_exactly(s2, 3) == b"new"
        assert recv_exactly(s, 16) == b"during-1during-2"
    assert echo.wait(lambda: len(echo.received) == 6 + 16 + 3, ARRIVES)


def test_downstream_blackhole_lets_requests_through_and_holds_answers(proxies: ProxySet, echo: Upstream) -> None:
    proxies.set_mode("blackhole", direction="downstream")
    with connect(proxies) as s:
        s.sendall(b"request")
        assert echo.wait(lambda: bytes(echo.received) == b"request", ARRIVES)
        assert_nothing_arrives(s)
        proxies.set_mode("pass")
        assert recv_exactly(s, 7) == b"request"


def test_delay_holds_each_chunk_and_keeps_order(proxies: ProxySet, echo: Upstream) -> None:
    # A delay far longer than any wait here: data that arrives can only have been released by
    # the switch back to pass, so the test does not depend on the machine's speed.
    proxies.set_mode("delay", delay_ms=600_000)
    chunks = [f"chunk-{i:03d};".encode() for i in range(50)]
    with connect(proxies) as s:
        for c in chunks:
            s.sendall(c)
        assert not echo.wait(lambda: len(echo.received) > 0, HELD)
        proxies.set_mode("pass")
        want = b"".join(chunks)
        assert recv_exactly(s, len(want)) == want
    assert bytes(echo.received) == want


def test_short_delay_forwards_everything_in_order(proxies: ProxySet, echo: Upstream) -> None:
    proxies.set_mode("delay 20")
    assert proxies.status()["proxies"][0]["mode"]["upstream"] == "delay 20"
    want = b"".join(f"{i};".encode() for i in range(2000))
    with connect(proxies) as s:
        sender = threading.Thread(target=lambda: [s.sendall(want[i : i + 100]) for i in range(0, len(want), 100)])
        sender.start()
        assert recv_exactly(s, len(want)) == want
        sender.join()


def test_drop_resets_current_connections_and_refuses_new_ones_until_pass(proxies: ProxySet, echo: Upstream) -> None:
    with connect(proxies) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        proxies.set_mode("drop")
        s.settimeout(ARRIVES)
        with pytest.raises(ConnectionResetError):
            s.recv(1)
    assert new_connection_is_reset(proxies)
    proxies.set_mode("pass")
    with connect(proxies) as s3:
        s3.sendall(b"back")
        assert recv_exactly(s3, 4) == b"back"


def test_modes_apply_to_the_named_brokers_only(echo: Upstream) -> None:
    with ProxySet({1: ("127.0.0.1", echo.port), 2: ("127.0.0.1", echo.port)}) as ps:
        ps.set_mode("blackhole", brokers=[2])
        with connect(ps, 1) as a, connect(ps, 2) as b:
            b.sendall(b"held")
            a.sendall(b"flows")
            assert recv_exactly(a, 5) == b"flows"
            assert_nothing_arrives(b)
            ps.set_mode("pass", brokers=[2])
            assert recv_exactly(b, 4) == b"held"


def test_blackhole_buffers_are_bounded_and_the_sender_is_held_by_flow_control() -> None:
    sink = Upstream(echo=False)
    limit = 8192
    try:
        with ProxySet({1: ("127.0.0.1", sink.port)}, max_held=limit) as ps:
            ps.set_mode("blackhole")
            block = b"z" * 65536
            sent = 0
            with connect(ps) as s:
                s.setblocking(False)
                while True:
                    # Writable within HELD seconds, or the proxy and the kernel buffers are full.
                    _, writable, _ = select.select([], [s], [], HELD)
                    if not writable:
                        break
                    try:
                        sent += s.send(block)
                    except BlockingIOError:
                        continue
                    assert sent < 512 * 1024 * 1024, "the sender was never held back: the proxy buffers without bound"
                held = ps.status()["proxies"][0]["held_bytes"]
                assert held <= limit + 65536
                assert sent > held  # the rest waits in kernel buffers: flow control, not loss
                assert len(sink.received) == 0
                ps.set_mode("pass")
                assert sink.wait(lambda: len(sink.received) == sent, ARRIVES)
    finally:
        sink.close()


def test_upstream_down_resets_the_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # bound but not listening: connections are refused
        with ProxySet({1: ("127.0.0.1", dead)}) as ps:
            assert new_connection_is_reset(ps)


def test_invalid_settings_name_the_field(proxies: ProxySet) -> None:
    with pytest.raises(NetProxyError, match="mode must be one of"):
        proxies.set_mode("partition")
    with pytest.raises(NetProxyError, match="needs delay_ms"):
        proxies.set_mode("delay")
    with pytest.raises(NetProxyError, match="delay_ms must be between"):
        proxies.set_mode("delay", delay_ms=-1)
    with pytest.raises(NetProxyError, match="direction must be 'both'"):
        proxies.set_mode("drop", direction="upstream")
    with pytest.raises(NetProxyError, match="direction must be one of"):
        proxies.set_mode("pass", direction="sideways")
    with pytest.raises(NetProxyError, match="brokers names 7"):
        proxies.set_mode("pass", brokers=[7])
    with pytest.raises(NetProxyError, match="api_key"):
        proxies.arm(-1, "blackhole")
    assert Mode.make("delay 5") == Mode("delay", 5.0)
    assert proxies.status()["proxies"][0]["mode"] == {"upstream": "pass", "downstream": "pass"}


def frame(api_key: int, body: bytes = b"") -> bytes:
    """A Kafka-shaped request: int32 size, int16 api_key, int16 version, int32 correlation id, body."""
    rest = struct.pack(">hhi", api_key, 0, 1) + body
    return struct.pack(">i", len(rest)) + rest


def test_frame_scanner_finds_api_keys_across_chunk_boundaries() -> None:
    frames = [frame(3, b"m" * 40), frame(0, b"p" * 1000), frame(26, b"e" * 7)]
    stream = b"".join(frames)
    ends = [len(b"".join(frames[: i + 1])) for i in range(3)]
    for cut in (1, 2, 5, 7, 100, len(stream)):
        sc = _FrameScanner()
        keys: list[tuple[int, int]] = []
        for i in range(0, len(stream), cut):
            keys += sc.feed(stream[i : i + cut])
        assert keys == list(zip([3, 0, 26], ends, strict=True)), cut
    bad = _FrameScanner()
    assert bad.feed(b"\xff\xff\xff\xff\x00\x1a") == []
    assert bad.broken


def answer(api_key: int) -> bytes:
    return struct.pack(">ih", 2, api_key)


def test_trigger_on_api_key_forwards_the_request_and_holds_its_answer() -> None:
    broker = Upstream(frames=True)
    try:
        with ProxySet({1: ("127.0.0.1", broker.port)}) as ps:
            ps.arm(26, "blackhole", direction="downstream")
            other, end_txn = frame(3, b"metadata"), frame(26, b"commit")
            with connect(ps) as s:
                s.sendall(other)
                assert recv_exactly(s, 6) == answer(3)
                assert not ps.wait_fired(0)
                s.sendall(end_txn[:3])  # the size prefix split over two writes
                s.sendall(end_txn[3:])
                assert ps.wait_fired(ARRIVES)
                # The broker got the request; its answer is held.
                assert broker.wait(lambda: bytes(broker.received) == other + end_txn, ARRIVES)
                assert_nothing_arrives(s)
                status = ps.status()
                assert status["trigger"]["fired"] is True
                assert status["proxies"][0]["mode"] == {"upstream": "pass", "downstream": "blackhole"}
                ps.set_mode("pass")
                assert recv_exactly(s, 6) == answer(26)
    finally:
        broker.close()


def test_trigger_with_a_full_blackhole_still_delivers_the_request_but_nothing_after_it() -> None:
    broker = Upstream(frames=True)
    try:
        with ProxySet({1: ("127.0.0.1", broker.port)}) as ps:
            ps.arm(26, "blackhole")
            before, end_txn, after = frame(3, b"metadata"), frame(26, b"commit"), frame(0, b"next produce")
            with connect(ps) as s:
                s.sendall(before + end_txn + after)  # one write: the proxy splits it after EndTxn
                assert ps.wait_fired(ARRIVES)
                assert broker.wait(lambda: bytes(broker.received) == before + end_txn, ARRIVES)
                assert not broker.wait(lambda: len(broker.received) > len(before + end_txn), HELD)
                # The answer to the request before EndTxn may have come back before the trigger
                # fired; EndTxn's answer cannot.
                got = bytearray()
                with contextlib.suppress(TimeoutError):
                    s.settimeout(HELD)
                    while chunk := s.recv(100):
                        got += chunk
                assert bytes(got) in (b"", answer(3))
                ps.set_mode("pass")
                rest = answer(3) + answer(26) + answer(0)
                assert bytes(got) + recv_exactly(s, len(rest) - len(got)) == rest
            assert bytes(broker.received) == before + end_txn + after
    finally:
        broker.close()


def run_ctl(control: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "router.devtools.netproxy", "ctl", control, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def test_control_channel_from_another_process(proxies: ProxySet, echo: Upstream) -> None:
    control = proxies.control_address
    assert control is not None
    answer = run_ctl(control, "set", "blackhole")
    assert answer["proxies"][0]["mode"] == {"upstream": "blackhole", "downstream": "blackhole"}
    with connect(proxies) as s:
        s.sendall(b"ping")
        assert_nothing_arrives(s)
        run_ctl(control, "set", "pass", "--brokers", "1")
        assert recv_exactly(s, 4) == b"ping"
    bad = subprocess.run(
        [sys.executable, "-m", "router.devtools.netproxy", "ctl", control, "set", "delay"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "needs delay_ms" in bad.stderr


def test_control_channel_answers_bad_input_with_an_error_and_stays_up(proxies: ProxySet) -> None:
    control = proxies.control_address
    assert control is not None
    host, port = control.split(":")
    with socket.create_connection((host, int(port)), timeout=ARRIVES) as s:
        f = s.makefile("rwb")
        for line in (b"not json\n", b"[1]\n", b'{"cmd": "explode"}\n', b'{"cmd": "set", "mode": 5}\n'):
            f.write(line)
            f.flush()
            answer = json.loads(f.readline())
            assert answer["ok"] is False
            assert "not json" not in answer["error"]
        f.write(b'{"cmd": "status"}\n')
        f.flush()
        assert json.loads(f.readline())["ok"] is True


def test_serve_process_is_controlled_over_its_port_and_stops_on_sigterm(echo: Upstream) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router.devtools.netproxy",
            "serve",
            "--route",
            f"1,0,127.0.0.1:{echo.port}",
            "--control-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        ctl = ProxyControl(ready["control"])
        port = int(ready["proxies"][0]["listen"].rsplit(":", 1)[1])
        ctl.set_mode("blackhole")
        with socket.create_connection(("127.0.0.1", port), timeout=ARRIVES) as s:
            s.sendall(b"via-process")
            assert_nothing_arrives(s)
            assert eventually(lambda: ctl.status()["proxies"][0]["held_bytes"] == len(b"via-process"))
            ctl.set_mode("pass")
            assert recv_exactly(s, 11) == b"via-process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=ARRIVES) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_close_resets_open_connections_and_frees_the_port(echo: Upstream) -> None:
    ps = ProxySet({1: ("127.0.0.1", echo.port)}).start()
    port = ps.ports[1]
    s = connect(ps)
    s.sendall(b"a")
    assert recv_exactly(s, 1) == b"a"
    ps.close()
    s.settimeout(ARRIVES)
    with pytest.raises(ConnectionResetError):
        s.recv(1)
    s.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=ARRIVES)
    ps.close()  # idempotent


# -- the dev cluster launcher with --proxy (no JVM: a stand-in `java`) ----------------------------
def test_launcher_with_proxy_advertises_the_proxy_keeps_replication_direct_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from router.devtools.devcluster.errors import DevClusterError
    from router.devtools.devcluster.launcher import DevCluster

    stand_in_java(tmp_path, monkeypatch)
    state = tmp_path / "state"
    with pytest.raises(DevClusterError, match="broker 1 .* exited during start-up"):
        DevCluster(state).up(["eu-west-1a", "us-east-1a"], timeout=20, proxy=True)
    recorded = json.loads((state / "state.json").read_text())
    proxy = recorded["proxy"]
    nodes = recorded["nodes"]
    ports = [n["port"] for n in nodes] + [n["proxy_port"] for n in nodes] + [n["internal_port"] for n in nodes]
    ports += [n["controller_port"] for n in nodes] + [int(proxy["control"].rsplit(":", 1)[1])]
    assert len(set(ports)) == len(ports) == 9
    for n in nodes:
        props = read_props(state / f"node-{n['node_id']}" / "server.properties")
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{n['port']},INTERNAL://127.0.0.1:{n['internal_port']},"
            f"CONTROLLER://127.0.0.1:{n['controller_port']}"
        )
        assert props["advertised.listeners"] == (
            f"PLAINTEXT://127.0.0.1:{n['proxy_port']},INTERNAL://127.0.0.1:{n['internal_port']}"
        )
        assert props["inter.broker.listener.name"] == "INTERNAL"
        assert props["controller.listener.names"] == "CONTROLLER"
    assert recorded["bootstrap"] == ",".join(f"127.0.0.1:{n['proxy_port']}" for n in nodes)
    # The proxy process ran with one route per broker, to the broker's own listener, and was stopped.
    log = (state / "proxy.log").read_text()
    assert "serving" in log
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", nodes[0]["proxy_port"]), timeout=ARRIVES)
    info = DevCluster(state).load()
    assert info is not None and info.proxy is not None
    assert not info.proxy_running
    assert not info.all_running
    doc = info.to_json()
    assert doc["proxy"]["control"] == proxy["control"]
    assert doc["direct_bootstrap"] == ",".join(f"127.0.0.1:{n['internal_port']}" for n in nodes)
    assert [b["proxy"] for b in doc["brokers"]] == [f"127.0.0.1:{n['proxy_port']}" for n in nodes]
    assert [b["advertised_listener"] for b in doc["brokers"]] == [
        f"PLAINTEXT://127.0.0.1:{n['proxy_port']}" for n in nodes
    ]


def test_launcher_without_proxy_keeps_its_listeners(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from router.devtools.devcluster.errors import DevClusterError
    from router.devtools.devcluster.launcher import DevCluster

    stand_in_java(tmp_path, monkeypatch)
    state = tmp_path / "state"
    with pytest.raises(DevClusterError, match="exited during start-up"):
        DevCluster(state).up(["eu-west-1a"], timeout=20)
    recorded = json.loads((state / "state.json").read_text())
    n = recorded["nodes"][0]
    props = read_props(state / "node-1" / "server.properties")
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{n['port']},CONTROLLER://127.0.0.1:{n['controller_port']}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{n['port']}"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert recorded["proxy"] is None
    assert not (state / "proxy.log").exists()
    info = DevCluster(state).load()
    assert info is not None
    assert info.to_json()["proxy"] is None
    assert info.direct_bootstrap == info.bootstrap == f"127.0.0.1:{n['port']}"


def test_cli_status_json_shows_the_proxy_ports_and_control(tmp_path: Path) -> None:
    state = {
        "bootstrap": "127.0.0.1:40001",
        "kafka_version": "4.1.0",
        "state_dir": str(tmp_path),
        "nodes": [
            {
                "node_id": 1,
                "rack": "eu-west-1a",
                "port": 40011,
                "controller_port": 40021,
                "pid": 2**22 + 12345,
                "dir": str(tmp_path / "node-1"),
                "proxy_port": 40001,
                "internal_port": 40031,
            }
        ],
        "cluster_id": "x",
        "started_at": 0.0,
        "proxy": {"pid": 2**22 + 12346, "control": "127.0.0.1:40041", "log": str(tmp_path / "proxy.log")},
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    out = devcluster_cli(tmp_path, "status", "--json")
    assert out.returncode == 1  # nothing runs
    doc = json.loads(out.stdout)
    assert doc["proxy"] == {
        "control": "127.0.0.1:40041",
        "pid": 2**22 + 12346,
        "running": False,
        "log": str(tmp_path / "proxy.log"),
    }
    assert doc["brokers"][0]["proxy"] == "127.0.0.1:40001"
    assert doc["brokers"][0]["listener"] == "PLAINTEXT://127.0.0.1:40011"
    assert doc["brokers"][0]["internal_listener"] == "INTERNAL://127.0.0.1:40031"
    assert doc["direct_bootstrap"] == "127.0.0.1:40031"
    proxy_cmd = devcluster_cli(tmp_path, "proxy", "blackhole")
    assert proxy_cmd.returncode == 2
    assert "is not running" in proxy_cmd.stderr


def test_cli_proxy_verb_switches_the_recorded_proxy_process_and_down_stops_it(echo: Upstream, tmp_path: Path) -> None:
    from router.devtools.devcluster.launcher import DevCluster

    proxy = DevCluster._start_proxy(str(tmp_path), {1: (0, echo.port)}, 0)
    state = {
        "bootstrap": "unused",
        "kafka_version": "4.1.0",
        "state_dir": str(tmp_path),
        "nodes": [
            {
                "node_id": 1,
                "rack": "eu-west-1a",
                "port": echo.port,
                "controller_port": 1,
                "pid": 2**22 + 12345,
                "dir": str(tmp_path / "node-1"),
                "proxy_port": 0,
                "internal_port": 2,
            }
        ],
        "cluster_id": "x",
        "started_at": 0.0,
        "proxy": {"pid": proxy.pid, "control": proxy.control, "log": proxy.log},
    }
    (tmp_path / "state.json").write_text(json.dumps(state))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return devcluster_cli(tmp_path, *args)

    try:
        out = cli("proxy", "blackhole", "--broker", "1", "--direction", "downstream", "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["proxies"][0]["mode"] == {"upstream": "pass", "downstream": "blackhole"}
        port = int(doc["proxies"][0]["listen"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=ARRIVES) as s:
            s.sendall(b"through the recorded proxy")
            assert echo.wait(lambda: bytes(echo.received) == b"through the recorded proxy", ARRIVES)
            assert_nothing_arrives(s)
            out = cli("proxy", "pass")
            assert out.returncode == 0, out.stderr
            assert "broker 1:" in out.stdout
            assert recv_exactly(s, 26) == b"through the recorded proxy"
        bad = cli("proxy", "delay")
        assert bad.returncode == 2
        assert "needs delay_ms" in bad.stderr
    finally:
        down = cli("down", "--json")
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "state.json").exists()
    with pytest.raises(NetProxyError, match="does not answer"):
        ProxyControl(proxy.control).request({"cmd": "status"})
