"""Run the transactional engine with the copy processor (a subprocess for crash tests)."""

from __future__ import annotations

import argparse
import logging

from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--txid", required=True)
    ap.add_argument("--idle", type=float, default=None)
    ap.add_argument("--commit-max-records", type=int, default=5000, help="records per transaction at most")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    engine = TransactionalEngine(
        EngineSettings(
            {"bootstrap.servers": args.bootstrap},
            [args.source],
            args.group,
            args.txid,
            batch_size=100,
            commit_interval_ms=50,
            session_timeout_ms=6000,
            commit_max_records=args.commit_max_records,
        ),
        CopyProcessor(args.dest),
    )
    engine.install_signal_handlers()
    stats = engine.run(max_idle_s=args.idle)
    print(f"consumed={stats.consumed} commits={stats.commits} aborts={stats.aborts}", flush=True)


if __name__ == "__main__":
    main()
