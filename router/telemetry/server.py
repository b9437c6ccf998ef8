"""The router's HTTP endpoints: ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` (JSON).

A stdlib :class:`http.server.ThreadingHTTPServer` on a daemon thread: a scrape never blocks the
engine, and the process exits without waiting for it. GET only; any other path is 404.

- ``/healthz``: 200 while the process serves requests (liveness: restart the process if this fails).
- ``/readyz``: 200 when :meth:`RouterHealth.readiness` is ready, else 503; the body says why
  (``reasons``) and what each check saw (partitions, lag, stall, placement, keys).
- ``/metrics``: the Prometheus text exposition of the router's OpenTelemetry metrics.

Bodies hold names, counts and value-free sentences only, like every log line of the router.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from router.errors import ConfigError
from router.telemetry.config import split_address
from router.telemetry.health import RouterHealth

log = logging.getLogger("router.telemetry")

Render = Callable[[], tuple[bytes, str]]


class MetricsServer:
    """Serves the endpoints on ``address`` (``host:port``; port 0 picks a free one)."""

    def __init__(
        self, address: str, health: RouterHealth, render: Render, *, setting: str = "telemetry.metrics_address"
    ) -> None:
        self.requested = address
        self.health = health
        self.render = render
        self.setting = setting
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        assert self._httpd is not None, "not started"
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        """Bind and serve on a daemon thread. A bind failure (address in use, no such interface,
        a privileged port) is a :class:`ConfigError` naming the setting and the address."""
        try:
            host, port = split_address(self.requested)
        except ValueError as err:
            raise ConfigError(f"{self.setting} {self.requested!r} {err}") from None
        handler = _handler(self)
        try:
            httpd = _Server((host, port), handler)
        except OSError as err:
            raise ConfigError(
                f"{self.setting} {self.requested!r}: cannot listen there ({err.strerror or type(err).__name__}); "
                "choose a free port or another address"
            ) from None
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="router-metrics", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = self.address
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d", bound_host, bound_port)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "residency-router"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body, ctype = server.render()
                    self._send(200, body, ctype)
                elif path == "/healthz":
                    self._json(200, {"status": "alive", "uptime_s": round(server.health.uptime_s(), 3)})
                elif path == "/readyz":
                    ready = server.health.readiness()
                    self._json(200 if ready.ready else 503, ready.to_json())
                else:
                    self._json(404, {"error": "not found; the paths are /metrics, /healthz, /readyz"})
            except Exception as err:
                log.warning("%s failed: %s", path, type(err).__name__)
                self._json(500, {"error": f"{type(err).__name__} while answering {path}"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body, sort_keys=True).encode() + b"\n", "application/json")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s", format % args)

    return Handler
