"""`residency-router devcluster up | status | down` (filled in by the launcher)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("devcluster", help="start, inspect or stop a local Kafka cluster")
    p.set_defaults(handler=lambda args: 0)
