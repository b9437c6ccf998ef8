"""``residency-router devcluster up | status | down | proxy``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from router.devtools.devcluster.launcher import DEFAULT_HEAP_MB, DEFAULT_RACKS, ClusterInfo, DevCluster
from router.devtools.devcluster.openbao import DEFAULT_TOKEN_TTL_S
from router.devtools.devcluster.secure import DEFAULT_PRINCIPALS


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "devcluster",
        help="start, inspect or stop a local Apache Kafka cluster (KRaft, one rack per node)",
        description="A real Apache Kafka cluster from Maven Central, for development and tests.",
    )
    p.add_argument(
        "--state-dir",
        help="where configs, data and logs live (default: $ROUTER_DEVCLUSTER_STATE "
        "or ~/.local/state/residency-router/devcluster)",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    up = verbs.add_parser("up", help="start the cluster and wait until it is usable")
    up.add_argument(
        "--rack",
        action="append",
        dest="racks",
        metavar="RACK",
        help=f"broker.rack of one node; repeat per node (default: {' '.join(DEFAULT_RACKS)})",
    )
    up.add_argument(
        "--nodes", type=int, help="number of nodes; racks cycle through the defaults if --rack is not given"
    )
    up.add_argument("--heap-mb", type=int, default=DEFAULT_HEAP_MB, help="max heap per node (default: %(default)s)")
    up.add_argument("--port-base", type=int, help="use consecutive ports from here instead of free ones")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    up.add_argument("--offline", action="store_true", help="fail instead of running Maven if Kafka is not cached")
    up.add_argument(
        "--proxy",
        action="store_true",
        help="front each broker's client listener with a loopback fault proxy "
        "(replication is not proxied); switch faults with `devcluster proxy`",
    )
    up.add_argument(
        "--secure",
        action="store_true",
        help="TLS on every listener from a CA made for this cluster, SCRAM-SHA-512 (SASL_SSL) and client "
        "certificates (SSL), the StandardAuthorizer with only User:admin as super user; credentials are "
        "written under the state directory (0600), never printed. Not with --proxy",
    )
    up.add_argument(
        "--principal",
        action="append",
        dest="principals",
        metavar="NAME",
        help="with --secure: create this principal (password and client certificate); repeat. "
        f"admin is always created (default: {' '.join(DEFAULT_PRINCIPALS)})",
    )
    up.add_argument(
        "--oauth",
        action="store_true",
        help="with --secure: start a dev OpenBao as the cluster's token issuer and add an OAUTH listener "
        "(SASL_SSL, OAUTHBEARER only) whose brokers verify its identity tokens; each principal gets an "
        "AppRole (principals/<name>/role-id, secret-id) instead of needing its password",
    )
    up.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL_S, metavar="SECONDS",
                    help="with --oauth: lifetime of an issued token (default: %(default)s)")
    up.add_argument("--json", action="store_true", help="print one JSON object")
    up.set_defaults(handler=_up)

    st = verbs.add_parser("status", help="report the running cluster")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(handler=_status)

    px = verbs.add_parser(
        "proxy",
        help="set the fault mode of the proxies of a cluster started with --proxy",
        description="pass: forward; delay: hold each chunk --delay-ms; blackhole: forward nothing, "
        "keep connections (a partition); drop: reset every connection and refuse new ones.",
    )
    px.add_argument("mode", choices=("pass", "delay", "blackhole", "drop", "status"), help="the mode, or status")
    px.add_argument("--delay-ms", type=float, help="for delay: milliseconds each chunk is held")
    px.add_argument(
        "--broker",
        type=int,
        action="append",
        dest="brokers",
        metavar="ID",
        help="only this broker; repeat (default: all)",
    )
    px.add_argument(
        "--direction",
        choices=("both", "upstream", "downstream"),
        default="both",
        help="upstream = client to broker, downstream = broker to client (default: both)",
    )
    px.add_argument("--json", action="store_true", help="print the proxies' state as one JSON object")
    px.set_defaults(handler=_proxy)

    down = verbs.add_parser("down", help="stop every node (SIGTERM, then SIGKILL) and remove the state")
    down.add_argument("--keep", action="store_true", help="keep the state directory (data and logs)")
    down.add_argument("--timeout", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL")
    down.add_argument("--json", action="store_true", help="print one JSON object")
    down.set_defaults(handler=_down)


def _racks(args: argparse.Namespace) -> list[str]:
    if args.racks:
        if args.nodes is not None and args.nodes != len(args.racks):
            raise SystemExit(f"--nodes {args.nodes} contradicts the {len(args.racks)} --rack options given")
        return list(args.racks)
    n = args.nodes if args.nodes is not None else len(DEFAULT_RACKS)
    if n < 1:
        raise SystemExit("--nodes must be at least 1")
    return [DEFAULT_RACKS[i % len(DEFAULT_RACKS)] for i in range(n)]


def _print(info: ClusterInfo, as_json: bool, headline: str) -> None:
    if as_json:
        print(json.dumps(info.to_json(), indent=None))
        return
    print(headline)
    print(f"bootstrap: {info.bootstrap}")
    print(f"kafka:     {info.kafka_version}   state: {info.state_dir}")
    print(f"{'id':>3}  {'rack':<16} {'listener':<28} {'pid':>8}  state")
    for n in info.nodes:
        state = "running" if info.running.get(n.node_id) else "stopped"
        print(f"{n.node_id:>3}  {n.rack:<16} {n.listener:<28} {n.pid:>8}  {state}")
    if info.proxy is not None:
        state = "running" if info.proxy_running else "stopped"
        print(f"proxies:   control {info.proxy.control}, pid {info.proxy.pid} {state}, log {info.proxy.log}")
        print(f"direct:    {info.direct_bootstrap} (bypasses the proxies)")
        for n in info.nodes:
            print(f"{n.node_id:>3}  clients -> 127.0.0.1:{n.proxy_port} -> {n.listener}")
    if info.security is not None:
        sec = info.security
        print(f"security:  SASL_SSL + SCRAM-SHA-512 on bootstrap; SSL + client certificates on {info.mtls_bootstrap}")
        print(f"           CA {sec.ca}; super user User:{sec.super_user}; StandardAuthorizer, deny without ACL")
        print(f"principals: {', '.join(p.name for p in sec.principals)}")
        print(f"           credentials (0600): {info.state_dir}/principals/<name>/{{password,client.crt,client.key}}")
    if info.oauth is not None:
        print(f"oauth:     OAUTHBEARER on {info.oauth_bootstrap}; issuer {info.oauth.issuer} "
              f"(CA {info.oauth.ca_file}), tokens live {info.oauth.token_ttl_s} s, principal claim "
              f"{info.oauth.principal_claim}")
        print(f"           AppRole per principal (0600): {info.state_dir}/principals/<name>/{{role-id,secret-id}}")


def _up(args: argparse.Namespace) -> int:
    cluster = DevCluster(args.state_dir)
    if not args.json:
        print("starting the dev cluster ...", file=sys.stderr, flush=True)
    info = cluster.up(
        _racks(args),
        heap_mb=args.heap_mb,
        port_base=args.port_base,
        timeout=args.timeout,
        offline=args.offline,
        proxy=args.proxy,
        secure=args.secure,
        principals=args.principals,
        oauth=args.oauth,
        token_ttl_s=args.token_ttl,
    )
    source = (
        "Kafka artifacts: cache used, nothing downloaded"
        if info.artifacts_from_cache
        else "Kafka artifacts: resolved from Maven Central into the cache"
    )
    _print(info, args.json, f"dev cluster up ({source})")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = DevCluster(args.state_dir).load()
    if info is None:
        if args.json:
            print(json.dumps({"running": False}))
        else:
            print("no dev cluster recorded; start one with `residency-router devcluster up`")
        return 1
    _print(info, args.json, "dev cluster")
    return 0 if info.all_running else 1


def _proxy(args: argparse.Namespace) -> int:
    from router.devtools.devcluster.errors import DevClusterError  # noqa: PLC0415
    from router.devtools.netproxy import ProxyControl  # noqa: PLC0415

    info = DevCluster(args.state_dir).load()
    if info is None or info.proxy is None:
        raise DevClusterError("no dev cluster with proxies is recorded; start one with `devcluster up --proxy`")
    if not info.proxy_running:
        raise DevClusterError(f"the proxy process {info.proxy.pid} is not running; see {info.proxy.log}")
    ctl = ProxyControl(info.proxy.control)
    if args.mode == "status":
        answer = ctl.status()
    else:
        answer = ctl.set_mode(args.mode, delay_ms=args.delay_ms, brokers=args.brokers, direction=args.direction)
    if args.json:
        print(json.dumps(answer))
        return 0
    for p in answer["proxies"]:
        mode = p["mode"]
        shown = (
            mode["upstream"]
            if mode["upstream"] == mode["downstream"]
            else (f"upstream {mode['upstream']}, downstream {mode['downstream']}")
        )
        print(f"broker {p['id']}: {p['listen']} -> {p['upstream']}  {shown}  ({p['connections']} connections)")
    return 0


def _down(args: argparse.Namespace) -> int:
    info = DevCluster(args.state_dir).down(keep=args.keep, timeout=args.timeout)
    if args.json:
        print(json.dumps({"stopped": info is not None, "kept_state": bool(args.keep and info)}))
    elif info is None:
        print("no dev cluster recorded; nothing to stop")
    else:
        print(f"stopped {len(info.nodes)} node(s)" + (f"; state kept in {info.state_dir}" if args.keep else ""))
    return 0
