"""A loopback TCP fault proxy: one listener per broker, forwarding to that broker, with faults.

Each proxy listens on ``127.0.0.1:<port>`` and forwards every connection to one upstream
``host:port``. Its mode is switchable at runtime, for one proxy or for all, and per direction
(``upstream`` = client to broker, ``downstream`` = broker to client):

``pass``
    forward as read.
``delay <ms>``
    forward each chunk ``ms`` milliseconds after it was read, order kept (the delay in force when
    the chunk is due counts, so switching back to ``pass`` releases what is held at once).
``blackhole``
    keep every connection open and accept new ones, but forward nothing: the client sees a hang,
    as in a network partition. What was read is held (bounded, then the proxy stops reading and
    TCP flow control holds the sender) and flows when the mode changes back, as TCP retransmission
    would deliver it after a partition heals: a blackhole never corrupts a stream.
``drop``
    reset every current connection (``SO_LINGER`` 0, so the peer sees RST) and reset every new one
    at once, until the mode changes. Whole connections only: ``direction`` must be ``both``.

A one-shot *trigger* (:meth:`ProxySet.arm`) switches modes when a client sends a Kafka request with
a given API key (e.g. 26, ``EndTxn``): the request itself is forwarded, so the broker acts on it,
while e.g. a downstream blackhole set by the trigger holds the response. Frames are found by the
Kafka length prefix of the upstream stream; nothing of their content is kept or logged.

Control: in-process through :class:`ProxySet` (thread-safe; the proxies run on an asyncio loop in
their own thread), and from other processes through a control port on 127.0.0.1 taking one JSON
object per line and answering one JSON object per line (:class:`ProxyControl` is the client)::

    {"cmd": "status"}
    {"cmd": "set", "mode": "delay", "delay_ms": 200, "brokers": [1, 2], "direction": "both"}
    {"cmd": "arm", "api_key": 26, "mode": "blackhole", "direction": "downstream", "brokers": null}
    {"cmd": "disarm"}

``python -m router.devtools.netproxy serve`` runs a proxy set as a process (the dev cluster's
``--proxy`` does this); ``python -m router.devtools.netproxy ctl`` talks to a control port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from router.errors import RouterError

log = logging.getLogger("router.devtools.netproxy")

MODES: tuple[str, ...] = ("pass", "delay", "blackhole", "drop")
DIRECTIONS: tuple[str, ...] = ("upstream", "downstream")
CHUNK = 64 * 1024
DEFAULT_MAX_HELD = 1024 * 1024
"""Bytes one direction of one connection may hold before the proxy stops reading from its source."""
CONTROL_LINE_LIMIT = 64 * 1024
MAX_DELAY_MS = 600_000.0
LOOPBACK = "127.0.0.1"

T = TypeVar("T")
_DESCRIPTION = "A loopback TCP fault proxy: one listener per broker, forwarding to that broker, with faults."


class NetProxyError(RouterError):
    """A proxy could not be started or controlled; the message names the setting to fix."""


@dataclass(frozen=True)
class Mode:
    name: str
    delay_ms: float = 0.0

    def __str__(self) -> str:
        return f"delay {self.delay_ms:g}" if self.name == "delay" else self.name

    @staticmethod
    def make(mode: str, delay_ms: float | None = None) -> Mode:
        """Validate ``mode`` (``pass``, ``delay``, ``blackhole``, ``drop`` or ``"delay <ms>"``)."""
        if not isinstance(mode, str):
            raise NetProxyError(f"mode must be a string, one of {', '.join(MODES)}")
        name, _, rest = mode.strip().partition(" ")
        if name not in MODES:
            raise NetProxyError(f"mode must be one of {', '.join(MODES)}")
        if rest.strip():
            if name != "delay" or delay_ms is not None:
                raise NetProxyError("mode takes a number only as 'delay <ms>' (and then no separate delay_ms)")
            try:
                delay_ms = float(rest)
            except ValueError:
                raise NetProxyError("mode 'delay <ms>' needs a number of milliseconds") from None
        if name == "delay":
            if delay_ms is None:
                raise NetProxyError("mode 'delay' needs delay_ms")
            if isinstance(delay_ms, bool) or not isinstance(delay_ms, int | float):
                raise NetProxyError("delay_ms must be a number")
            if not 0 <= delay_ms <= MAX_DELAY_MS:
                raise NetProxyError(f"delay_ms must be between 0 and {MAX_DELAY_MS:g}")
            return Mode("delay", float(delay_ms))
        if delay_ms is not None:
            raise NetProxyError("delay_ms is only valid with mode 'delay'")
        return Mode(name)


PASS = Mode("pass")


def _directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return DIRECTIONS
    if direction in DIRECTIONS:
        return (direction,)
    raise NetProxyError("direction must be one of both, upstream, downstream")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close abruptly: SO_LINGER 0 makes the kernel send RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _FrameScanner:
    """Finds the API key of each Kafka request in a client-to-broker byte stream.

    A request is ``int32 size`` then ``size`` bytes starting with ``int16 api_key``. A stream that
    does not parse as frames (negative or tiny size) switches the scanner off for that connection.
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._skip = 0
        self._pos = 0
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """``(api_key, end)`` of each request whose header completes in ``data``; ``end`` is the
        stream offset just past that request."""
        keys: list[tuple[int, int]] = []
        start = self._pos
        self._pos += len(data)
        i, n = 0, len(data)
        while i < n and not self.broken:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            part = data[i : i + 6 - len(self._head)]
            self._head += part
            i += len(part)
            if len(self._head) == 6:
                size = int.from_bytes(self._head[:4], "big", signed=True)
                if size < 2:
                    self.broken = True
                    break
                keys.append((int.from_bytes(self._head[4:6], "big", signed=True), start + i + size - 2))
                self._skip = size - 2
                self._head.clear()
        return keys


@dataclass
class _Trigger:
    api_key: int
    mode: Mode
    directions: tuple[str, ...]
    keys: tuple[int, ...]
    fired: bool = False


class _Pipe:
    """One direction of one connection: read chunks from ``src``, hold them, write them to ``dst``."""

    def __init__(
        self,
        proxy: _Proxy,
        direction: str,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        max_held: int,
    ) -> None:
        self.proxy = proxy
        self.direction = direction
        self.src = src
        self.dst = dst
        self.max_held = max_held
        self.queue: deque[tuple[float, int, bytes]] = deque()
        """(read at, stream offset past the chunk, chunk)"""
        self.held = 0
        self.read_bytes = 0
        self.forced_until = 0
        """Bytes up to this stream offset pass a blackhole: those read before a trigger fired, and
        the rest of the request that fired it."""
        self.eof = False
        self.changed = asyncio.Event()
        self.scanner = _FrameScanner() if direction == "upstream" else None

    def _can_write(self) -> bool:
        if self.queue:
            return self.queue[0][1] <= self.forced_until or self.proxy.modes[self.direction].name != "blackhole"
        return self.eof and self.proxy.modes[self.direction].name != "blackhole"

    def _enqueue(self, read_at: float, data: bytes) -> None:
        start = self.read_bytes
        self.read_bytes += len(data)
        cut = self.forced_until - start
        if 0 < cut < len(data):  # the end of a forced request: queue it apart from what follows
            self.queue.append((read_at, self.forced_until, data[:cut]))
            data = data[cut:]
        self.queue.append((read_at, self.read_bytes, data))

    async def _wait(self, ready: Callable[[], bool]) -> None:
        # Single-threaded loop: nothing runs between the check and clear(), so no wake-up is lost.
        while not ready():
            self.changed.clear()
            await self.changed.wait()

    async def read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait(lambda: self.held < self.max_held)
            data = await self.src.read(CHUNK)
            if not data:
                self.eof = True
                self.changed.set()
                return
            if self.scanner is not None:
                for api_key, end in self.scanner.feed(data):
                    if self.proxy.owner.on_request(self.proxy.key, api_key):
                        self.forced_until = end
            self._enqueue(loop.time(), data)
            self.held += len(data)
            self.changed.set()

    async def write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait(self._can_write)
            if not self.queue:  # end of stream, everything forwarded: pass the half-close on
                if self.dst.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.dst.write_eof()
                return
            read_at, _, data = self.queue[0]
            mode = self.proxy.modes[self.direction]
            wait = read_at + mode.delay_ms / 1000.0 - loop.time() if mode.name == "delay" else 0.0
            if wait > 0:
                # Woken early by new data or a mode change; then everything is looked at again.
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), wait)
                continue
            self.queue.popleft()
            self.held -= len(data)
            self.changed.set()
            self.dst.write(data)
            self.proxy.forwarded[self.direction] += len(data)
            await self.dst.drain()


class _Conn:
    def __init__(
        self,
        proxy: _Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_writer = client[1]
        self.upstream_writer = upstream[1]
        self.pipes = (
            _Pipe(proxy, "upstream", client[0], upstream[1], proxy.max_held),
            _Pipe(proxy, "downstream", upstream[0], client[1], proxy.max_held),
        )
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        for p in self.pipes:
            p.changed.set()

    @property
    def held(self) -> int:
        return sum(p.held for p in self.pipes)

    def reset(self) -> None:
        _reset(self.client_writer)
        _reset(self.upstream_writer)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def run(self) -> None:
        self.task = asyncio.current_task()
        failed = False
        try:
            async with asyncio.TaskGroup() as tg:
                for p in self.pipes:
                    tg.create_task(p.read_loop())
                    tg.create_task(p.write_loop())
        except* OSError:
            failed = True
        if failed:
            # One side failed (e.g. was reset): the other side sees a reset too, as without a proxy.
            self.reset()
        else:
            for w in (self.client_writer, self.upstream_writer):
                w.close()


class _Proxy:
    def __init__(self, owner: ProxySet, key: int, upstream: tuple[str, int], max_held: int) -> None:
        self.owner = owner
        self.key = key
        self.upstream = upstream
        self.max_held = max_held
        self.modes: dict[str, Mode] = dict.fromkeys(DIRECTIONS, PASS)
        self.conns: set[_Conn] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.forwarded: dict[str, int] = dict.fromkeys(DIRECTIONS, 0)

    @property
    def dropping(self) -> bool:
        return any(m.name == "drop" for m in self.modes.values())

    def set_modes(self, mode: Mode, directions: Iterable[str]) -> None:
        for d in directions:
            self.modes[d] = mode
        if mode.name == "drop":
            for c in list(self.conns):
                c.reset()
            self.conns.clear()
        for c in self.conns:
            c.wake()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A reset (drop, shutdown) cancels this task; it then ends normally, since asyncio's
        # stream server (3.11) reports a cancelled client task as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await self._handle(reader, writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.dropping:
            _reset(writer)
            return
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)  # upstream refuses: so does the proxy
            return
        except asyncio.CancelledError:  # shutting down
            _reset(writer)
            raise
        if self.dropping:  # switched to drop while connecting
            _reset(writer)
            _reset(upstream[1])
            return
        conn = _Conn(self, (reader, writer), upstream)
        self.conns.add(conn)
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)

    def status(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "listen": f"{LOOPBACK}:{self.port}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "mode": {d: str(m) for d, m in self.modes.items()},
            "connections": len(self.conns),
            "accepted": self.accepted,
            "held_bytes": sum(c.held for c in self.conns),
            "forwarded_bytes": dict(self.forwarded),
        }


class ProxySet:
    """Proxies in front of several upstreams, keyed by an integer (the broker id).

    ``upstreams`` maps key to ``(host, port)``; ``listen_ports`` maps key to the local port to
    listen on (0 or absent: a free one). ``control_port`` (0: a free one; None: no control port)
    opens the JSON-lines control channel on 127.0.0.1. Every public method is thread-safe.
    """

    def __init__(
        self,
        upstreams: Mapping[int, tuple[str, int]],
        *,
        listen_ports: Mapping[int, int] | None = None,
        control_port: int | None = None,
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        if not upstreams:
            raise NetProxyError("a proxy set needs at least one upstream")
        if max_held < 1:
            raise NetProxyError("max_held must be at least 1 byte")
        self._listen_ports = dict(listen_ports or {})
        unknown = set(self._listen_ports) - set(upstreams)
        if unknown:
            raise NetProxyError(f"listen_ports names proxies without an upstream: {sorted(unknown)}")
        self._proxies = {k: _Proxy(self, k, (h, int(p)), max_held) for k, (h, p) in upstreams.items()}
        self._control_port = control_port
        self._control: asyncio.Server | None = None
        self._control_address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._trigger: _Trigger | None = None
        self._fired = threading.Event()
        self._lock = threading.Lock()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> ProxySet:
        """Bind every listener (and the control port) and serve in a background thread."""
        with self._lock:
            if self._thread is not None:
                raise NetProxyError("this proxy set is already started")
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="netproxy", daemon=True)
            self._thread.start()
            self._loop = loop
        try:
            self._call(self._bind())
        except BaseException:
            self.close()
            raise
        return self

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _bind(self) -> None:
        for key, proxy in self._proxies.items():
            port = self._listen_ports.get(key, 0)
            try:
                proxy.server = await asyncio.start_server(proxy.handle, LOOPBACK, port, reuse_address=True)
            except OSError as err:
                raise NetProxyError(
                    f"proxy {key} cannot listen on {LOOPBACK}:{port} ({err.strerror}); choose another port"
                ) from None
            proxy.port = int(proxy.server.sockets[0].getsockname()[1])
        if self._control_port is not None:
            try:
                self._control = await asyncio.start_server(
                    self._control_client, LOOPBACK, self._control_port, limit=CONTROL_LINE_LIMIT, reuse_address=True
                )
            except OSError as err:
                raise NetProxyError(
                    f"the control port {LOOPBACK}:{self._control_port} is unavailable ({err.strerror})"
                ) from None
            self._control_address = (LOOPBACK, int(self._control.sockets[0].getsockname()[1]))

    def close(self) -> None:
        """Reset every connection, close every listener and stop the loop thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = None
            self._thread = None
        if loop is None or thread is None:
            return
        if loop.is_running() or not loop.is_closed():
            with contextlib.suppress(RuntimeError, TimeoutError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(30)

    async def _shutdown(self) -> None:
        servers = [p.server for p in self._proxies.values() if p.server is not None]
        if self._control is not None:
            servers.append(self._control)
        for s in servers:
            s.close()
        for p in self._proxies.values():
            for c in list(p.conns):
                c.reset()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for s in servers:
            await s.wait_closed()

    def __enter__(self) -> ProxySet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise NetProxyError("the proxy set is not running; call start() first")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    # -- inspection -----------------------------------------------------------------------
    @property
    def ports(self) -> dict[int, int]:
        """Key -> the local port clients connect to (after :meth:`start`)."""
        return {k: p.port for k, p in self._proxies.items()}

    @property
    def control_address(self) -> str | None:
        """``127.0.0.1:<port>`` of the control channel, if one was asked for."""
        return f"{self._control_address[0]}:{self._control_address[1]}" if self._control_address else None

    def status(self) -> dict[str, Any]:
        return self._call(self._status())

    async def _status(self) -> dict[str, Any]:
        trig = self._trigger
        return {
            "control": self.control_address,
            "trigger": None
            if trig is None
            else {
                "api_key": trig.api_key,
                "mode": str(trig.mode),
                "directions": list(trig.directions),
                "brokers": list(trig.keys),
                "fired": trig.fired,
            },
            "proxies": [p.status() for p in self._proxies.values()],
        }

    # -- control --------------------------------------------------------------------------
    def _keys(self, brokers: Iterable[int] | None) -> tuple[int, ...]:
        if brokers is None:
            return tuple(self._proxies)
        if isinstance(brokers, str | bytes):
            raise NetProxyError("brokers must be a list of broker ids")
        keys = tuple(brokers)
        if not keys:
            raise NetProxyError("brokers is empty; omit it to mean every proxy")
        for k in keys:
            if isinstance(k, bool) or not isinstance(k, int):
                raise NetProxyError("brokers must be a list of integer broker ids")
            if k not in self._proxies:
                raise NetProxyError(f"brokers names {k}, which has no proxy; known: {sorted(self._proxies)}")
        return keys

    @staticmethod
    def _check(mode: Mode, direction: str) -> tuple[str, ...]:
        dirs = _directions(direction)
        if mode.name == "drop" and direction != "both":
            raise NetProxyError("mode 'drop' resets whole connections; direction must be 'both'")
        return dirs

    def set_mode(
        self,
        mode: str,
        *,
        delay_ms: float | None = None,
        brokers: Iterable[int] | None = None,
        direction: str = "both",
    ) -> None:
        """Switch the proxies of ``brokers`` (default: all) to ``mode``; in force when this returns.

        With ``drop``, every current connection has been reset when this returns.
        """
        m = Mode.make(mode, delay_ms)
        dirs = self._check(m, direction)
        keys = self._keys(brokers)
        self._call(self._set(m, dirs, keys))

    async def _set(self, mode: Mode, dirs: tuple[str, ...], keys: tuple[int, ...]) -> None:
        for k in keys:
            self._proxies[k].set_modes(mode, dirs)
        log.info("proxies %s: %s %s", list(keys), ",".join(dirs), mode)

    def arm(
        self,
        api_key: int,
        mode: str,
        *,
        delay_ms: float | None = None,
        brokers: Iterable[int] | None = None,
        direction: str = "both",
    ) -> None:
        """When a client next sends a request with ``api_key`` through any proxy, switch ``brokers``.

        One shot. On the connection that fires it, everything the client sent up to the end of that
        request is still forwarded upstream, even into an upstream blackhole (a ``drop`` resets
        the connection, request and all). :meth:`wait_fired` waits for the trigger.
        """
        m = Mode.make(mode, delay_ms)
        dirs = self._check(m, direction)
        keys = self._keys(brokers)
        self._call(self._arm(_Trigger(_api_key(api_key), m, dirs, keys)))

    async def _arm(self, trigger: _Trigger | None) -> None:
        self._trigger = trigger
        self._fired.clear()

    def disarm(self) -> None:
        self._call(self._arm(None))

    def wait_fired(self, timeout: float) -> bool:
        """True once the armed trigger has fired; False if ``timeout`` seconds pass first."""
        return self._fired.wait(timeout)

    def on_request(self, key: int, api_key: int) -> bool:
        """Called on the loop thread for every request a client sends; True if it fired the trigger."""
        trig = self._trigger
        if trig is None or trig.fired or api_key != trig.api_key:
            return False
        trig.fired = True
        for k in trig.keys:
            self._proxies[k].set_modes(trig.mode, trig.directions)
        log.info("trigger api_key %d seen at proxy %d: proxies %s now %s", api_key, key, list(trig.keys), trig.mode)
        self._fired.set()
        return True

    # -- control channel ------------------------------------------------------------------
    async def _control_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit
                    writer.write(b'{"ok": false, "error": "command line too long"}\n')
                    break
                if not line:
                    break
                answer = await self._command(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _command(self, line: bytes) -> dict[str, Any]:
        try:
            cmd = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "a command is one JSON object per line"}
        if not isinstance(cmd, dict):
            return {"ok": False, "error": "a command is one JSON object per line"}
        try:
            await self._dispatch(cmd)
        except NetProxyError as err:
            return {"ok": False, "error": str(err)}
        return {"ok": True, **(await self._status())}

    async def _dispatch(self, cmd: dict[str, Any]) -> None:
        verb = cmd.get("cmd")
        if verb == "status":
            return
        if verb == "disarm":
            await self._arm(None)
            return
        if verb not in ("set", "arm"):
            raise NetProxyError("cmd must be one of status, set, arm, disarm")
        mode_name, direction = cmd.get("mode"), cmd.get("direction", "both")
        if not isinstance(mode_name, str):
            raise NetProxyError(f"mode must be one of {', '.join(MODES)}")
        if not isinstance(direction, str):
            raise NetProxyError("direction must be one of both, upstream, downstream")
        mode = Mode.make(mode_name, cmd.get("delay_ms"))
        dirs = self._check(mode, direction)
        keys = self._keys(cmd.get("brokers"))
        if verb == "set":
            await self._set(mode, dirs, keys)
            return
        await self._arm(_Trigger(_api_key(cmd.get("api_key")), mode, dirs, keys))


def _api_key(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**15:
        raise NetProxyError("api_key must be a Kafka API key (an integer from 0 to 32767)")
    return value


class ProxyControl:
    """Client of a proxy set's control port (``127.0.0.1:<port>``), usable from any process."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise NetProxyError("the control address must be host:port")
        self.address = (host, int(port))
        self.timeout = timeout

    def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as s:
                s.sendall(json.dumps(dict(command)).encode() + b"\n")
                buf = bytearray()
                while not buf.endswith(b"\n"):
                    chunk = s.recv(CHUNK)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > 16 * 1024 * 1024:
                        raise NetProxyError("the control answer is implausibly long")
        except OSError as err:
            raise NetProxyError(
                f"the proxy control port {self.address[0]}:{self.address[1]} does not answer ({err})"
            ) from None
        try:
            answer = json.loads(buf)
        except ValueError:
            raise NetProxyError("the proxy control port sent no JSON answer") from None
        if not isinstance(answer, dict):
            raise NetProxyError("the proxy control port sent no JSON object")
        if not answer.get("ok"):
            raise NetProxyError(str(answer.get("error", "the proxy refused the command")))
        return answer

    def status(self) -> dict[str, Any]:
        return self.request({"cmd": "status"})

    def set_mode(
        self,
        mode: str,
        *,
        delay_ms: float | None = None,
        brokers: Iterable[int] | None = None,
        direction: str = "both",
    ) -> dict[str, Any]:
        cmd: dict[str, Any] = {"cmd": "set", "mode": mode, "direction": direction}
        if delay_ms is not None:
            cmd["delay_ms"] = delay_ms
        if brokers is not None:
            cmd["brokers"] = list(brokers)
        return self.request(cmd)

    def arm(
        self,
        api_key: int,
        mode: str,
        *,
        delay_ms: float | None = None,
        brokers: Iterable[int] | None = None,
        direction: str = "both",
    ) -> dict[str, Any]:
        cmd: dict[str, Any] = {"cmd": "arm", "api_key": api_key, "mode": mode, "direction": direction}
        if delay_ms is not None:
            cmd["delay_ms"] = delay_ms
        if brokers is not None:
            cmd["brokers"] = list(brokers)
        return self.request(cmd)

    def disarm(self) -> dict[str, Any]:
        return self.request({"cmd": "disarm"})


# -- process entry point --------------------------------------------------------------------
def _route(text: str) -> tuple[int, int, str, int]:
    """``ID,LISTEN_PORT,UPSTREAM_HOST:UPSTREAM_PORT`` -> its parts."""
    try:
        key, listen, upstream = text.split(",")
        host, _, port = upstream.rpartition(":")
        parts = (int(key), int(listen), host, int(port))
    except ValueError:
        raise argparse.ArgumentTypeError("a route is ID,LISTEN_PORT,UPSTREAM_HOST:UPSTREAM_PORT") from None
    if not host:
        raise argparse.ArgumentTypeError("a route is ID,LISTEN_PORT,UPSTREAM_HOST:UPSTREAM_PORT")
    return parts


def _serve(args: argparse.Namespace) -> int:
    routes: list[tuple[int, int, str, int]] = args.route
    keys = [r[0] for r in routes]
    if len(set(keys)) != len(keys):
        raise NetProxyError("every --route needs its own ID")
    # Block the stop signals before the loop thread starts (it inherits the mask), then wait for
    # them here: no handler runs inside the loop, and shutdown happens in one place.
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    proxies = ProxySet(
        {k: (h, p) for k, _, h, p in routes},
        listen_ports={k: lp for k, lp, _, _ in routes},
        control_port=args.control_port,
    )
    proxies.start()
    try:
        ready = {"pid": os.getpid(), **proxies.status()}
        log.info("serving %s", {p["id"]: p["listen"] for p in ready["proxies"]})
        if args.ready_file:
            path = Path(args.ready_file)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(ready), encoding="utf-8")
            tmp.replace(path)
        else:
            print(json.dumps(ready), flush=True)
        signal.sigwait(stop)
    finally:
        proxies.close()
    return 0


def _ctl(args: argparse.Namespace) -> int:
    ctl = ProxyControl(args.control)
    brokers = [int(b) for b in args.brokers.split(",")] if args.brokers else None
    if args.verb == "status":
        answer = ctl.status()
    elif args.verb == "disarm":
        answer = ctl.disarm()
    elif args.verb == "set":
        answer = ctl.set_mode(args.mode, delay_ms=args.delay_ms, brokers=brokers, direction=args.direction)
    else:
        answer = ctl.arm(args.api_key, args.mode, delay_ms=args.delay_ms, brokers=brokers, direction=args.direction)
    print(json.dumps(answer))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m router.devtools.netproxy", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run proxies until SIGTERM or SIGINT")
    serve.add_argument("--route", type=_route, action="append", required=True, help="ID,LISTEN_PORT,HOST:PORT")
    serve.add_argument("--control-port", type=int, default=0, help="control port on 127.0.0.1 (0: a free one)")
    serve.add_argument("--ready-file", help="write the ports here as JSON once listening (default: stdout)")
    serve.set_defaults(handler=_serve)
    ctl = sub.add_parser("ctl", help="send one command to a control port")
    ctl.add_argument("control", help="127.0.0.1:PORT")
    ctl.add_argument("verb", choices=("status", "set", "arm", "disarm"))
    ctl.add_argument("mode", nargs="?", default="pass", help="pass | delay | blackhole | drop")
    ctl.add_argument("--delay-ms", type=float)
    ctl.add_argument("--brokers", help="comma-separated ids (default: all)")
    ctl.add_argument("--direction", default="both", choices=("both", *DIRECTIONS))
    ctl.add_argument("--api-key", type=int, default=26, help="for arm: the Kafka API key (default 26, EndTxn)")
    ctl.set_defaults(handler=_ctl)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except NetProxyError as err:
        print(f"netproxy: error: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
