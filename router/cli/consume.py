"""``residency-router consume``: read a routed topic with the regional consumer SDK and print what verified."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from router.consumer import RegionalConsumer, Verified
from router.errors import RouterError
from router.keys.trust import TrustBundle


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "consume", help="read a routed topic as a regional consumer: verify and decrypt each record"
    )
    p.add_argument("--config", required=True, help="router YAML config (its keys section)")
    p.add_argument("--jurisdiction", required=True, help="the jurisdiction whose key this reader holds")
    p.add_argument("--topic", required=True, action="append", help="topic to read (repeatable)")
    p.add_argument(
        "--trust",
        required=True,
        type=Path,
        help="trust bundle from `residency-router keys export-trust`: the signer public keys this reader "
        "accepts (records by a revoked or expired signer version are rejected); no private key is read",
    )
    p.add_argument("--group", default=None, help="consumer group (default: a fresh one, reading from the start)")
    p.add_argument("--bootstrap", help="override clusters.default.bootstrap")
    p.add_argument("--max", type=int, default=None, help="stop after N records")
    p.add_argument("--idle-timeout", type=float, default=5.0, help="stop after this many seconds without records")
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    p.set_defaults(handler=_consume)


def _consume(args: argparse.Namespace) -> int:
    import uuid  # noqa: PLC0415

    from router.config.loader import load_config  # noqa: PLC0415
    from router.kafka_read import check_connection  # noqa: PLC0415

    config = load_config(args.config)
    if config.keys is None:
        raise RouterError(f"{args.config} has no 'keys' section")
    cluster = config.clusters.get("default")
    if cluster is not None:  # otherwise from_config names what is missing
        props = dict(cluster.client_properties())
        if args.bootstrap:
            props["bootstrap.servers"] = args.bootstrap
        # a cluster refusing the client's TLS or authentication: exit 2 naming the setting, not "0 verified"
        check_connection(props)
    consumer = RegionalConsumer.from_config(
        config,
        jurisdiction=args.jurisdiction,
        topics=args.topic,
        group_id=args.group or f"residency-router-consume-{uuid.uuid4().hex[:8]}",
        trust=TrustBundle.load(args.trust),
        bootstrap=args.bootstrap,
    )
    ok = bad = 0
    with consumer:
        for item in consumer.records(max_records=args.max, idle_timeout_s=args.idle_timeout):
            where = {"topic": item.topic, "partition": item.partition, "offset": item.offset}
            if isinstance(item, Verified):
                ok += 1
                if args.json:
                    try:
                        payload: Any = json.loads(item.plaintext)
                    except ValueError:
                        payload = {"base64": base64.b64encode(item.plaintext).decode()}
                    print(
                        json.dumps(
                            {
                                **where,
                                "verified": True,
                                "event_id": item.ctx.event_id,
                                "entity": item.ctx.entity,
                                "operation": item.ctx.operation,
                                "classification": item.ctx.classification_level,
                                "payload": payload,
                            }
                        )
                    )
                else:
                    print(
                        f"ok   {item.topic}[{item.partition}]@{item.offset} {item.ctx.entity} "
                        f"{item.ctx.operation} {item.ctx.event_id} ({len(item.plaintext)} bytes)"
                    )
            else:
                bad += 1
                if args.json:
                    print(
                        json.dumps(
                            {**where, "verified": False, "error": type(item.error).__name__, "detail": str(item.error)}
                        )
                    )
                else:
                    print(
                        f"FAIL {item.topic}[{item.partition}]@{item.offset} {type(item.error).__name__}: {item.error}"
                    )
    print(f"{ok} verified, {bad} rejected", file=sys.stderr)
    return 0 if bad == 0 else 1
