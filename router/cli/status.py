"""``residency-router status``: the SRE's one screen, read from Kafka and the config.

Per jurisdiction: routed and quarantined offsets per second and in total, quarantine counts by
reason, the router group's ingress lag, the placement verdict of every topic, each key provider's
health, and the router instances in the consumer group (:mod:`router.ops`). ``--watch`` redraws
every ``--interval`` seconds until Ctrl-C (exit 0); ``--json`` prints one JSON document (one per
line with ``--watch``). Without ``--watch`` the exit code is 0 when everything is healthy, 1 when
a topic is out of place, a key provider fails or a section could not be read, and 2 when the
cluster cannot be reached, refuses the client's TLS or authentication (the error names the
``clusters.default.security`` setting, with or without ``--watch``), or the config or an option is
wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from typing import Any

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _seconds(minimum: float) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g} seconds")
        return value
    return parse


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="one screen: rates, quarantine reasons, lag, placement, key providers, router instances",
        description="Read the deployment's state from Kafka and the config (no running router needed): per "
                    "jurisdiction the routed and quarantined offsets per second (high-watermark deltas, which "
                    "count transaction markers: approximate), quarantine counts by reason (read_committed), "
                    "the router group's lag on the ingress topics, the placement verdict of every topic, a timed "
                    "digest_key call per key provider, and the group's members. Exit 0 healthy, 1 not healthy, "
                    "2 on errors (docs/operations.md, 'Status').",
    )
    p.add_argument("--config", required=True, help="router YAML config")
    p.add_argument("--bootstrap", metavar="HOST:PORT,...", help="override clusters.default.bootstrap")
    p.add_argument("--json", action="store_true", help="one JSON document (one per line with --watch)")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C (clears the screen and redraws)")
    p.add_argument("--interval", type=_seconds(0.5), default=5.0, metavar="S",
                   help="seconds between refreshes with --watch (default: %(default)s)")
    p.add_argument("--sample", type=_seconds(0.0), default=2.0, metavar="S",
                   help="seconds between the two offset samples of the first status, from which its rates come "
                        "(default: %(default)s; 0: totals only, no rates)")
    p.add_argument("--since", metavar="TIME",
                   help="count quarantined records from TIME on (ISO 8601, a duration back from now such as 15m "
                        "or 2h, or epoch milliseconds; fixed when the command starts); default: every retained "
                        "record")
    p.add_argument("--timeout", type=_seconds(0.1), default=10.0, metavar="S",
                   help="timeout of each cluster request (default: %(default)s)")
    p.set_defaults(handler=_status)


def _quiet_client_logger() -> logging.Logger:
    """The logger the Kafka clients log to: dropped, since every failure shows in its section's cell
    (librdkafka's own lines on stderr would break the redrawn screen)."""
    logger = logging.getLogger("router.ops.kafka_client")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _status(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415 (keep --help fast)
    from router.kafka_read import CHECK_TIMEOUT_S, check_connection  # noqa: PLC0415
    from router.ops.status import ClusterUnreachableError, StatusCollector, cluster_properties  # noqa: PLC0415
    from router.quarantine.reader import parse_since  # noqa: PLC0415

    since_ms = parse_since(args.since, now_ms=int(time.time() * 1000)) if args.since else None
    config = load_config(args.config)
    # a cluster refusing the client's TLS or authentication: exit 2 naming the setting (also with --watch:
    # that does not heal by itself)
    check_connection(cluster_properties(config, args.bootstrap), timeout=min(args.timeout, CHECK_TIMEOUT_S))
    collector = StatusCollector.from_config(
        config, bootstrap=args.bootstrap, timeout=args.timeout, since_ms=since_ms,
        read_budget_s=max(1.0, min(args.interval, 10.0)) if args.watch else 120.0,
        client_logger=_quiet_client_logger())
    try:
        if args.watch:
            return _watch(args, collector)
        if args.sample > 0:
            collector.sample()  # an unreachable cluster: ClusterUnreachableError, exit 2
            time.sleep(args.sample)
        status = collector.collect()
        if status.error is not None:
            raise ClusterUnreachableError(status.error)
        _emit(status, args.json, clear=False)
        return 0 if status.healthy else 1
    finally:
        collector.close()


def _watch(args: argparse.Namespace, collector: Any) -> int:
    from router.ops.status import ClusterUnreachableError  # noqa: PLC0415

    clear = not args.json and sys.stdout.isatty()
    try:
        if args.sample > 0:
            # an unreachable cluster: the first refresh shows the error in place of the Kafka sections
            with contextlib.suppress(ClusterUnreachableError):
                collector.sample()
            time.sleep(args.sample)
        while True:
            started = time.monotonic()
            _emit(collector.collect(), args.json, clear=clear)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how --watch ends


def _emit(status: Any, as_json: bool, *, clear: bool) -> None:
    from router.ops.render import render_text, status_json  # noqa: PLC0415

    if as_json:
        print(json.dumps(status_json(status)), flush=True)
    else:
        sys.stdout.write((CLEAR_SCREEN if clear else "") + render_text(status) + ("" if clear else "\n"))
        sys.stdout.flush()
