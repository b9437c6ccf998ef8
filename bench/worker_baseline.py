"""Baseline benchmark worker: a transactional consume → produce pipe that copies bytes.

It is the router's own :class:`TransactionalEngine` with :class:`CopyProcessor`, so it uses exactly
the router's client settings, batch size and commit interval, and does no decoding,
classification or crypto. It consumes ``--ingress`` in group ``--group`` until it has been idle
for ``--max-idle-s`` (or got SIGTERM), then prints its stats as one JSON line on stdout, the same
contract as ``python -m router.cli run ... --stats-json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ingress", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--instance-id", required=True)
    ap.add_argument("--max-idle-s", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=EngineSettings.batch_size)
    ap.add_argument("--commit-interval-ms", type=int, default=EngineSettings.commit_interval_ms)
    ap.add_argument("--client", action="append", default=[], metavar="K=V",
                    help="librdkafka property for consumer and producer (as the router's clusters.default.client)")
    args = ap.parse_args()

    settings = EngineSettings(
        bootstrap_config={"bootstrap.servers": args.bootstrap, **dict(kv.split("=", 1) for kv in args.client)},
        ingress_topics=[args.ingress],
        group_id=args.group,
        transactional_id=f"{args.group}-{args.instance_id}",
        batch_size=args.batch_size,
        commit_interval_ms=args.commit_interval_ms,
    )
    engine = TransactionalEngine(settings, CopyProcessor(args.output))
    engine.install_signal_handlers()
    started = time.monotonic()
    stats = engine.run(max_idle_s=args.max_idle_s)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "consumed": stats.consumed,
        "produced": stats.produced,
        "commits": stats.commits,
        "aborts": stats.aborts,
        "producer_restarts": stats.producer_restarts,
        "elapsed_s": round(time.monotonic() - started, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "maxrss_kb": ru.ru_maxrss,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
