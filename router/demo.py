"""``residency-router demo``: the main job on a local cluster, end to end.

Starts (or reuses) the dev cluster, then shows which jurisdiction each broker belongs to under the
given config — the ground every routing decision stands on.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run the router demo on a local dev cluster")
    p.add_argument("--config", required=True, help="router YAML config (e.g. examples/router.yaml)")
    p.add_argument("--state-dir", help="dev cluster state directory (default as for `devcluster`)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from router.config import load_config  # noqa: PLC0415 - keep CLI start fast
    from router.devcluster.launcher import DevCluster  # noqa: PLC0415

    config = load_config(args.config)
    print("== starting the local Apache Kafka cluster (first run fetches Kafka with Maven)", flush=True)
    cluster = DevCluster(args.state_dir)
    info = cluster.up()
    print(f"bootstrap: {info.bootstrap}  (Kafka {info.kafka_version}; "
          f"{'cached artifacts' if info.artifacts_from_cache else 'fetched from Maven Central'})")
    print()
    print("== brokers and the jurisdiction their rack places them in")
    print(f"{'broker':>6}  {'rack':<16} {'jurisdiction':<12} listener")
    for n in info.nodes:
        j = config.jurisdiction_of_rack(n.rack) or "(none: data of no jurisdiction may be stored here)"
        print(f"{n.node_id:>6}  {n.rack:<16} {j:<12} {n.listener}")
    print()
    print("The cluster keeps running; stop it with `residency-router devcluster down` (or `make demo-down`).")
    return 0
