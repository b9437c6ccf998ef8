"""``residency-router run``: load the config, build the router (start-up checks) and run it.

:class:`router.pipeline.app.RouterApp` does the wiring and the fail-fast checks; this is the
command around it: logging, telemetry, signal handling and the exit summary.

With a ``telemetry:`` section the app serves ``/metrics``, ``/healthz`` and ``/readyz`` and exports
over OTLP (:mod:`router.telemetry.runtime`); without one the OpenTelemetry SDK is still installed
so that batch spans have real trace ids (``traceparent`` headers, audit records).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("router.app")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("run", help="run the router (one instance of the consumer group)")
    p.add_argument("--config", required=True, help="router YAML config")
    p.add_argument("--bootstrap", help="override clusters.default.bootstrap")
    p.add_argument(
        "--instance-id",
        help="this instance's id (default: $ROUTER_INSTANCE_ID or the host name); "
        "its transactional.id is '<pipeline.transactional_id_prefix>-<id>'",
    )
    p.add_argument("--max-idle-s", type=float, default=None, help="stop after this many seconds without input")
    p.add_argument("--stats-json", action="store_true", help="print one JSON line of counters at exit")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default: %(default)s)")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="log lines as key=value text (default) or one JSON object per line; also a global option",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 (keep --help fast)
    from router.pipeline.app import RouterApp  # noqa: PLC0415
    from router.telemetry.logs import configure_logging  # noqa: PLC0415

    configure_logging(args.log_level, getattr(args, "log_format", "text"))
    config = load_config(args.config)
    if config.telemetry is None:
        from router import telemetry  # noqa: PLC0415

        telemetry.configure()
    app = RouterApp(
        config, bootstrap=args.bootstrap, instance_id=args.instance_id, config_dir=Path(args.config).resolve().parent
    )
    engine = app.build()
    engine.install_signal_handlers()
    log.info("instance=%s started", app.instance_id)
    stats = app.run(max_idle_s=args.max_idle_s)
    log.info(
        "instance=%s stopped consumed=%d produced=%d commits=%d aborts=%d",
        app.instance_id,
        stats.consumed,
        stats.produced,
        stats.commits,
        stats.aborts,
    )
    if args.stats_json:
        print(json.dumps({"instance_id": app.instance_id, **vars(stats)}), flush=True)
    return 0
