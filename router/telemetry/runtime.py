"""The telemetry of one running router (:class:`router.pipeline.app.RouterApp`): providers,
health, gauges and the HTTP endpoints, started before the start-up checks and stopped at exit.

Off unless the config has a ``telemetry:`` section. With one: :meth:`start` installs the
OpenTelemetry providers (:func:`router.telemetry.setup.install`), registers the router's gauges
and, when ``metrics_address`` is set, serves ``/metrics``, ``/healthz`` and ``/readyz`` from the
start-up checks on (``/readyz`` answers 503 "the engine has not started" until the engine runs).
"""

from __future__ import annotations

import logging
from typing import Any

from router.errors import ConfigError
from router.telemetry.config import TelemetryConfig
from router.telemetry.health import ConsumerLag, EngineSource, PlacementSource, RouterHealth, activate, deactivate
from router.telemetry.keys import ProviderStatus
from router.telemetry.server import MetricsServer
from router.telemetry.setup import Telemetry, install

log = logging.getLogger("router.telemetry")


class RouterTelemetry:
    """``required=False`` (the demo) turns a metrics address that cannot be bound into a warning
    naming it, and the router runs without the endpoints; otherwise it is a ConfigError."""

    def __init__(self, cfg: TelemetryConfig | None, *, instance_id: str | None = None, required: bool = True) -> None:
        self.cfg = cfg
        self.instance_id = instance_id
        self.required = required
        self.keys = ProviderStatus()
        self.lag = ConsumerLag()
        self.health = RouterHealth(keys=self.keys, lag=self.lag)
        self.providers: Telemetry | None = None
        self.server: MetricsServer | None = None
        self._started = False

    @property
    def enabled(self) -> bool:
        return self.cfg is not None

    def consumer_overrides(self) -> dict[str, Any]:
        """librdkafka statistics for the consumer-lag gauge (only when telemetry is on)."""
        if self.cfg is None:
            return {}
        return {"statistics.interval.ms": int(self.cfg.lag_interval_s * 1000), "stats_cb": self.lag.on_stats}

    def start(self) -> None:
        if self.cfg is None or self._started:
            return
        self._started = True
        self.providers = install(self.cfg, instance_id=self.instance_id)
        activate(self.health)
        if self.cfg.metrics_address is not None:
            server = MetricsServer(self.cfg.metrics_address, self.health, self.providers.render)
            try:
                self.server = server.start()
            except ConfigError as err:
                if self.required:
                    self.stop()
                    raise
                log.warning("%s; running without /metrics, /healthz and /readyz", err)

    def attach(self, *, engine: EngineSource | None = None, placement: PlacementSource | None = None) -> None:
        """Give the health checks and gauges the engine and the placement watch once they exist."""
        if engine is not None:
            self.health.engine = engine
        if placement is not None:
            self.health.placement = placement

    def stop(self) -> None:
        """Stop serving, unregister the gauges, flush the exporters."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        deactivate(self.health)
        if self.providers is not None and self.providers.installed:
            self.providers.shutdown()
        self.providers = None
