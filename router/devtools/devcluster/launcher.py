"""A real local Apache Kafka cluster in KRaft mode, one JVM per node, each with its own rack.

Every node is broker and controller. Ports are picked free at start; configs, data and logs live
in a state directory with a ``state.json`` that ``status`` and ``down`` read, so any process can
inspect or stop a cluster that another one started.

Guarantee of :meth:`DevCluster.up`: when it returns, every node is registered with its rack and a
topic with a replica on every node could be created (and was deleted again).

With ``proxy=True`` (``devcluster up --proxy``) each broker's client listener is fronted by a
loopback fault proxy (:mod:`router.devtools.netproxy`, run as one process recorded in the state):
the broker binds ``PLAINTEXT`` on one port and advertises the proxy's port, so every client
connection after the bootstrap goes through the proxy; replication uses a separate ``INTERNAL``
listener and the controllers their ``CONTROLLER`` listener, neither proxied, so a fault set on the
proxies separates the clients from the brokers only. ``direct_bootstrap`` (the ``INTERNAL``
listeners) reaches the brokers around the proxies, e.g. to check what a partitioned client did.

With ``secure=True`` (``devcluster up --secure``) every listener is TLS from a CA made for this
cluster, clients authenticate with SCRAM-SHA-512 (``SASL_SSL``, the bootstrap) or a client
certificate (``SSL``), and the ``StandardAuthorizer`` denies what no ACL allows; the layout and
the credential files are described in :mod:`router.devtools.devcluster.secure`.
:meth:`ClusterInfo.client_config` gives the librdkafka settings of a principal. The readiness
check authenticates as the super user. Fault proxies and ``secure`` are not combined.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from router.devtools.devcluster import artifacts
from router.devtools.devcluster import openbao as _openbao
from router.devtools.devcluster import secure as _secure
from router.devtools.devcluster.errors import DevClusterError
from router.devtools.devcluster.openbao import IssuerInfo
from router.devtools.devcluster.secure import SecurityInfo

log = logging.getLogger("router.devcluster")

DEFAULT_RACKS: tuple[str, ...] = ("eu-west-1a", "eu-central-1a", "us-east-1a")
DEFAULT_HEAP_MB = 512
PROBE_TOPIC = "__devcluster_probe"
STATE_FILE = "state.json"
PROXY_READY_FILE = "proxy.ready.json"
PROXY_LOG_FILE = "proxy.log"


def default_state_dir() -> Path:
    """``$ROUTER_DEVCLUSTER_STATE``, else ``$XDG_STATE_HOME/residency-router/devcluster``."""
    if env := os.environ.get("ROUTER_DEVCLUSTER_STATE"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "residency-router" / "devcluster"


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    rack: str
    port: int
    controller_port: int
    pid: int
    dir: str
    proxy_port: int | None = None
    """The port clients reach this broker on when a proxy fronts it (then advertised instead of ``port``)."""
    internal_port: int | None = None
    """The unproxied INTERNAL listener for replication, when a proxy fronts the client listener."""
    protocol: str = "PLAINTEXT"
    """Security protocol of the client listener on ``port``: ``PLAINTEXT``, or ``SASL_SSL`` when secured."""
    mtls_port: int | None = None
    """The ``SSL`` listener (client certificates required, also replication) of a secured node."""
    oauth_port: int | None = None
    """The ``OAUTH`` listener (SASL_SSL, OAUTHBEARER tokens of the dev issuer) with ``--oauth``."""

    @property
    def listener(self) -> str:
        return f"{self.protocol}://127.0.0.1:{self.port}"

    @property
    def advertised(self) -> str:
        return f"{self.protocol}://127.0.0.1:{self.proxy_port if self.proxy_port is not None else self.port}"

    def listeners(self) -> list[dict[str, str]]:
        """Every listener of the node: name, security protocol, ``host:port`` and what it serves."""
        out = [
            {
                "name": self.protocol,
                "protocol": self.protocol,
                "address": f"127.0.0.1:{self.port}",
                "serves": "clients, SCRAM-SHA-512" if self.protocol == "SASL_SSL" else "clients",
            }
        ]
        if self.mtls_port is not None:
            out.append(
                {
                    "name": "SSL",
                    "protocol": "SSL",
                    "address": f"127.0.0.1:{self.mtls_port}",
                    "serves": "clients with certificates, replication",
                }
            )
        if self.oauth_port is not None:
            out.append(
                {
                    "name": _secure.OAUTH_LISTENER,
                    "protocol": "SASL_SSL",
                    "address": f"127.0.0.1:{self.oauth_port}",
                    "serves": "clients, OAUTHBEARER tokens of the dev OpenBao",
                }
            )
        if self.internal_port is not None:
            out.append(
                {
                    "name": "INTERNAL",
                    "protocol": "PLAINTEXT",
                    "address": f"127.0.0.1:{self.internal_port}",
                    "serves": "replication, direct clients",
                }
            )
        out.append(
            {
                "name": "CONTROLLER",
                "protocol": "SSL" if self.mtls_port is not None else "PLAINTEXT",
                "address": f"127.0.0.1:{self.controller_port}",
                "serves": "controllers",
            }
        )
        return out

    @property
    def log_file(self) -> Path:
        return Path(self.dir) / "logs" / "server.log"

    @property
    def console_file(self) -> Path:
        return Path(self.dir) / "console.log"


@dataclass(frozen=True)
class ProxyInfo:
    """The fault proxy process in front of the brokers' client listeners."""

    pid: int
    control: str
    """``127.0.0.1:<port>`` of its JSON-lines control channel (:class:`router.devtools.netproxy.ProxyControl`)."""
    log: str


@dataclass(frozen=True)
class ClusterInfo:
    """What a running dev cluster looks like; also the content of ``state.json``."""

    bootstrap: str
    kafka_version: str
    state_dir: str
    nodes: tuple[NodeInfo, ...]
    cluster_id: str
    started_at: float
    artifacts_from_cache: bool = False
    running: dict[int, bool] = field(default_factory=dict)
    proxy: ProxyInfo | None = None
    proxy_running: bool = False
    security: SecurityInfo | None = None
    """Set for a cluster started with ``secure=True``: CA, super user, principals and their files."""
    oauth: IssuerInfo | None = None
    """Set for a cluster started with ``oauth=True``: the dev OpenBao that issues its tokens."""

    @property
    def oauth_bootstrap(self) -> str | None:
        """Bootstrap servers of the ``OAUTH`` (OAUTHBEARER) listeners, with ``--oauth``."""
        if self.oauth is None:
            return None
        return ",".join(f"127.0.0.1:{n.oauth_port}" for n in self.nodes)

    def approle_files(self, principal: str) -> tuple[Path, Path]:
        """The role-id and secret-id files of ``principal`` at the dev OpenBao (``--oauth``)."""
        if self.oauth is None or self.security is None:
            raise DevClusterError(f"the cluster in {self.state_dir} was started without --oauth; it issues no tokens")
        self.security.principal(principal)  # the error names the principals that exist
        return self.oauth.approle_files(Path(self.state_dir), principal)

    @property
    def mtls_bootstrap(self) -> str | None:
        """Bootstrap servers of the ``SSL`` (client certificate) listeners of a secured cluster."""
        if self.security is None:
            return None
        return ",".join(f"127.0.0.1:{n.mtls_port}" for n in self.nodes)

    def client_config(self, principal: str, via: _secure.Via = "scram") -> dict[str, Any]:
        """librdkafka settings that authenticate as ``principal`` (``scram`` over ``SASL_SSL``,
        ``mtls`` over ``SSL``, or ``oauth``: OAUTHBEARER tokens from the dev OpenBao, fetched with
        the principal's AppRole, over ``OAUTH``); see :func:`router.devtools.devcluster.secure.client_config`."""
        if self.security is None:
            raise DevClusterError(f"the cluster in {self.state_dir} was started without --secure; it has no principals")
        if via == "oauth":
            return self._oauth_client_config(principal)
        return _secure.client_config(
            self.security,
            principal,
            via,
            sasl_bootstrap=self.bootstrap,
            mtls_bootstrap=self.mtls_bootstrap or "",
        )

    def _oauth_client_config(self, principal: str) -> dict[str, Any]:
        from router.auth.tokens import OpenBaoIdentityTokens, shared  # noqa: PLC0415 - hvac only when used
        from router.keys.approle import AppRoleLogin  # noqa: PLC0415
        from router.keys.openbao import OpenBaoSession  # noqa: PLC0415

        role_file, secret_file = self.approle_files(principal)
        issuer = self.oauth
        assert issuer is not None
        assert self.security is not None

        def make() -> OpenBaoIdentityTokens:
            session = OpenBaoSession(issuer.address, AppRoleLogin(role_file, secret_file), verify=issuer.ca_file)
            return OpenBaoIdentityTokens(session, principal, principal_claim=issuer.principal_claim,
                                         setting=f"devcluster principal {principal!r}")

        source = shared(("devcluster", issuer.address, str(role_file), principal), make)
        return {
            "bootstrap.servers": self.oauth_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": source,
            "ssl.ca.location": self.security.ca,
            "ssl.endpoint.identification.algorithm": "https",
        }

    def admin_config(self) -> dict[str, str]:
        """Settings of a client with every right: plain bootstrap, or the super user when secured."""
        if self.security is None:
            return {"bootstrap.servers": self.bootstrap}
        return self.client_config(self.security.super_user, "scram")

    @property
    def direct_bootstrap(self) -> str:
        """Bootstrap servers that bypass the proxies (the same as ``bootstrap`` without proxies)."""
        if self.proxy is None:
            return self.bootstrap
        return ",".join(f"127.0.0.1:{n.internal_port}" for n in self.nodes)

    @property
    def all_running(self) -> bool:
        return all(self.running.get(n.node_id, False) for n in self.nodes) and (
            self.proxy is None or self.proxy_running
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "bootstrap": self.bootstrap,
            "direct_bootstrap": self.direct_bootstrap,
            "kafka_version": self.kafka_version,
            "cluster_id": self.cluster_id,
            "state_dir": self.state_dir,
            "started_at": self.started_at,
            "artifacts_from_cache": self.artifacts_from_cache,
            "brokers": [
                {
                    "id": n.node_id,
                    "rack": n.rack,
                    "listener": n.listener,
                    "advertised_listener": n.advertised,
                    "proxy": None if n.proxy_port is None else f"127.0.0.1:{n.proxy_port}",
                    "internal_listener": None if n.internal_port is None else f"INTERNAL://127.0.0.1:{n.internal_port}",
                    "listeners": n.listeners(),
                    "pid": n.pid,
                    "running": self.running.get(n.node_id, False),
                    "log": str(n.log_file),
                }
                for n in self.nodes
            ],
            "proxy": None
            if self.proxy is None
            else {
                "control": self.proxy.control,
                "pid": self.proxy.pid,
                "running": self.proxy_running,
                "log": self.proxy.log,
            },
            "security_protocol": "PLAINTEXT" if self.security is None else _secure.SASL_LISTENER,
            "mtls_bootstrap": self.mtls_bootstrap,
            "security": None if self.security is None else self.security.to_json(),
            "oauth": None
            if self.oauth is None
            else {
                **self.oauth.to_state(),
                "bootstrap": self.oauth_bootstrap,
                "approle_files": f"{self.state_dir}/principals/<name>/{{role-id,secret-id}}",
            },
        }

    @staticmethod
    def from_state(data: dict[str, Any]) -> ClusterInfo:
        return ClusterInfo(
            bootstrap=data["bootstrap"],
            kafka_version=data["kafka_version"],
            state_dir=data["state_dir"],
            nodes=tuple(NodeInfo(**n) for n in data["nodes"]),
            cluster_id=data["cluster_id"],
            started_at=data["started_at"],
            artifacts_from_cache=data.get("artifacts_from_cache", False),
            proxy=ProxyInfo(**data["proxy"]) if data.get("proxy") else None,
            security=SecurityInfo.from_state(data["security"]) if data.get("security") else None,
            oauth=IssuerInfo.from_state(data["oauth"]) if data.get("oauth") else None,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise DevClusterError(
                f"port {port} on 127.0.0.1 is in use; stop what listens there "
                "(e.g. `ss -ltnp | grep :{port}`) or choose another --port-base, or omit it to pick free ports".replace(
                    "{port}", str(port)
                )
            ) from None


def _kafka_uuid() -> str:
    """A random Kafka cluster id (base64url of 16 bytes), never starting with ``-``: kafka-storage's
    argument parser would take such an id for an option (as Kafka's own ``Uuid.randomUuid`` avoids)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _pid_alive(pid: int, state_dir: str) -> bool:
    """True if ``pid`` is running and is one of this state directory's JVMs (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (not Linux): trust the pid
    if not cmdline:  # zombie
        return False
    return state_dir.encode() in cmdline


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


_ERROR_LINE = re.compile(r"\b(ERROR|FATAL)\b|Exception|Error:|Out of Memory")


def _errors(*logs: Path, most: int = 20) -> str:
    """The ERROR / FATAL / exception lines of a node's logs (Kafka prints its whole config last, so
    a tail alone rarely shows why a node stopped)."""
    found: list[str] = []
    for path in logs:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += [line for line in text.splitlines() if _ERROR_LINE.search(line)]
    return "\n".join(found[:most])


PORT_ATTEMPTS = 3
"""Start-ups tried when a freely picked port is taken before a node binds it."""

_BIND_FAILURES = (b"Address already in use", b"BindException")


class RetryableStartError(DevClusterError):
    """A start-up that failed for a reason a new attempt can avoid (see :meth:`DevCluster.up`)."""

    def __init__(self, message: str, port_detail: str) -> None:
        super().__init__(message)
        self.port_detail = port_detail


class PortTakenError(RetryableStartError):
    """A node or proxy exited during start-up because a port it was given was taken."""


class SilentExitError(RetryableStartError):
    """A node died during start-up without logging any error (killed from outside, e.g. by the
    kernel's out-of-memory killer on a loaded host)."""


def _exit_status(pid: int) -> str:
    """How a node we started ended (signal or exit code), if its status is still ours to collect."""
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return ""
    if wpid == 0:
        return ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f" (killed by signal {sig}, {signal.Signals(sig).name})"
    if os.WIFEXITED(status):
        return f" (exit code {os.WEXITSTATUS(status)})"
    return ""


def _port_taken(*logs: Path) -> bool:
    """True if any of ``logs`` (whole files, read as bytes) reports a failed bind."""
    for path in logs:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(marker in data for marker in _BIND_FAILURES):
            return True
    return False


class DevCluster:
    """Start, inspect and stop a local cluster whose state lives in ``state_dir``."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()

    # -- state ----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def load(self) -> ClusterInfo | None:
        """The recorded cluster with the liveness of each node, or None if none is recorded."""
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise DevClusterError(
                f"{self.state_path} is unreadable ({err}); remove it and run `devcluster up` again"
            ) from None
        try:
            info = ClusterInfo.from_state(data)
        except (KeyError, TypeError):
            raise DevClusterError(
                f"{self.state_path} does not describe a cluster; remove it and run `devcluster up` again"
            ) from None
        running = {n.node_id: _pid_alive(n.pid, info.state_dir) for n in info.nodes}
        proxy_running = info.proxy is not None and _pid_alive(info.proxy.pid, info.state_dir)
        return ClusterInfo(**{**asdict_shallow(info), "running": running, "proxy_running": proxy_running})

    def _save(self, info: ClusterInfo) -> None:
        data = {
            "bootstrap": info.bootstrap,
            "kafka_version": info.kafka_version,
            "state_dir": info.state_dir,
            "nodes": [asdict(n) for n in info.nodes],
            "cluster_id": info.cluster_id,
            "started_at": info.started_at,
            "artifacts_from_cache": info.artifacts_from_cache,
            "proxy": asdict(info.proxy) if info.proxy is not None else None,
            "security": info.security.to_state() if info.security is not None else None,
            "oauth": info.oauth.to_state() if info.oauth is not None else None,
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(self.state_path)

    # -- up -------------------------------------------------------------------------------
    def up(
        self,
        racks: Sequence[str] = DEFAULT_RACKS,
        *,
        heap_mb: int = DEFAULT_HEAP_MB,
        port_base: int | None = None,
        timeout: float = 180.0,
        offline: bool = False,
        proxy: bool = False,
        secure: bool = False,
        principals: Sequence[str] | None = None,
        oauth: bool = False,
        token_ttl_s: int = _openbao.DEFAULT_TOKEN_TTL_S,
    ) -> ClusterInfo:
        """Start the cluster and return when it is usable (see the module docstring).

        ``oauth`` (needs ``secure``): start a dev OpenBao first as the cluster's token issuer
        (:mod:`router.devtools.devcluster.openbao`; tokens live ``token_ttl_s``) and add an
        ``OAUTH`` listener whose clients authenticate with its tokens only.

        ``proxy``: front each broker's client listener with a fault proxy (module docstring).
        ``secure``: TLS, SCRAM and client certificates, the StandardAuthorizer; ``principals``
        (default :data:`router.devtools.devcluster.secure.DEFAULT_PRINCIPALS`, the super user
        ``admin`` always added) get a password and a client certificate each.

        Free ports are picked before the nodes bind them, so another process may take one in
        between; a start-up that fails that way, or in which a node dies without logging any error
        (killed from outside), is tried again on other ports (up to :data:`PORT_ATTEMPTS` times,
        each retry logged) unless ``port_base`` fixed the ports.
        """
        attempt = 1
        while True:
            try:
                return self._up_once(racks, heap_mb=heap_mb, port_base=port_base, timeout=timeout,
                                     offline=offline, proxy=proxy, secure=secure, principals=principals,
                                     oauth=oauth, token_ttl_s=token_ttl_s)
            except RetryableStartError as err:
                if port_base is not None or attempt >= PORT_ATTEMPTS:
                    raise
                log.warning("dev cluster start-up attempt %d: %s; retrying on other ports", attempt, err.port_detail)
                self._remove_state()
                attempt += 1

    def _up_once(  # noqa: PLR0912, PLR0915 - preflight, config, format, launch, wait: one linear start-up
        self,
        racks: Sequence[str],
        *,
        heap_mb: int,
        port_base: int | None,
        timeout: float,
        offline: bool,
        proxy: bool,
        secure: bool,
        principals: Sequence[str] | None,
        oauth: bool = False,
        token_ttl_s: int = _openbao.DEFAULT_TOKEN_TTL_S,
    ) -> ClusterInfo:
        if not racks:
            raise DevClusterError("a dev cluster needs at least one node: give one --rack per node")
        if secure and proxy:
            raise DevClusterError(
                "--secure and --proxy cannot be combined: the fault proxies front PLAINTEXT listeners only; "
                "start a secured cluster without --proxy, or a proxied one without --secure"
            )
        if oauth and not secure:
            raise DevClusterError("--oauth needs --secure: tokens are accepted on a TLS (SASL_SSL) listener only")
        if oauth and token_ttl_s < 5:
            raise DevClusterError(f"--token-ttl {token_ttl_s}: give at least 5 seconds")
        if principals is not None and not secure:
            raise DevClusterError("--principal needs --secure: a cluster without security has no principals")
        names = _secure.principal_names(principals) if secure else ()
        existing = self._running_as_asked(proxy=proxy, secure=secure, principals=principals, names=names)
        if existing is not None:
            if (existing.oauth is not None) != oauth:
                raise DevClusterError(
                    f"a cluster recorded in {self.state_dir} runs "
                    + ("with" if existing.oauth is not None else "without")
                    + " --oauth; run `devcluster down` first to start it "
                    + ("with" if oauth else "without")
                )
            return existing

        java = artifacts.java_binary()
        artifacts.check_java(java)
        arts = artifacts.resolve(offline=offline)

        n = len(racks)
        # Without proxy: client, controller. With: proxy (what clients reach), controller, the
        # broker's own client listener, INTERNAL, and the proxies' control port. Secured: SASL_SSL
        # (client), controller, SSL (client certificates and replication).
        ports = _pick_ports(4 * n + 1 if proxy else (4 * n if oauth else 3 * n) if secure else 2 * n, port_base)
        client_ports, ctrl_ports = ports[:n], ports[n : 2 * n]
        mtls_ports = ports[2 * n : 3 * n] if secure else []
        oauth_ports = ports[3 * n : 4 * n] if oauth else []
        proxy_ports: list[int] = []
        internal_ports: list[int] = []
        control_port = 0
        if proxy:
            proxy_ports = client_ports
            client_ports = ports[2 * n : 3 * n]
            internal_ports = ports[3 * n : 4 * n]
            control_port = ports[4 * n]

        self.state_dir.mkdir(parents=True, exist_ok=True)
        state_dir = str(self.state_dir.resolve())
        cluster_id = _kafka_uuid()
        voters = ",".join(f"{i + 1}@127.0.0.1:{ctrl_ports[i]}" for i in range(n))
        rf = min(3, n)
        node_dirs = [Path(state_dir) / f"node-{i + 1}" for i in range(n)]
        security = _secure.provision(Path(state_dir), names, node_dirs, cluster_id) if secure else None
        issuer = _openbao.start(Path(state_dir), token_ttl_s=token_ttl_s, principals=names) if oauth else None
        for i, (rack, node_dir) in enumerate(zip(racks, node_dirs, strict=True)):
            (node_dir / "logs").mkdir(parents=True, exist_ok=True)
            listener_props = (
                _secure.broker_props(
                    client_ports[i],
                    mtls_ports[i],
                    ctrl_ports[i],
                    _secure.broker_keystore(node_dir),
                    _secure.ca_path(Path(state_dir)),
                    oauth_port=oauth_ports[i] if oauth else None,
                )
                | (_openbao.broker_props(issuer, _secure.OAUTH_LISTENER) if issuer is not None else {})
                if secure
                else _listener_props(
                    client_ports[i],
                    ctrl_ports[i],
                    proxy_ports[i] if proxy else None,
                    internal_ports[i] if proxy else None,
                )
            )
            props = {
                "process.roles": "broker,controller",
                "node.id": str(i + 1),
                "controller.quorum.voters": voters,
                **listener_props,
                "broker.rack": rack,
                "log.dirs": str(node_dir / "data"),
                "num.partitions": "1",
                "default.replication.factor": "1",
                "auto.create.topics.enable": "false",
                "offsets.topic.replication.factor": str(rf),
                "transaction.state.log.replication.factor": str(rf),
                "transaction.state.log.min.isr": str(min(2, rf)),
                "share.coordinator.state.topic.replication.factor": str(rf),
                "share.coordinator.state.topic.min.isr": str(min(2, rf)),
                "offsets.topic.num.partitions": "10",
                "transaction.state.log.num.partitions": "10",
                "group.initial.rebalance.delay.ms": "0",
                "num.network.threads": "2",
                "num.io.threads": "2",
                "num.recovery.threads.per.data.dir": "1",
                "log.retention.hours": "24",
                "log.segment.bytes": str(64 * 1024 * 1024),
                "delete.topic.enable": "true",
            }
            (node_dir / "server.properties").write_text(
                "".join(f"{k}={_escape_property(v)}\n" for k, v in props.items()), encoding="utf-8"
            )

        jvm = _jvm(java, heap_mb, arts.classpath, issuer)
        scram = _secure.scram_format_args(security) if security is not None else []
        for node_dir in node_dirs:
            fmt = subprocess.run(  # noqa: S603 - argument list built from our own paths
                [
                    *jvm,
                    f"-Dkafka.logs.dir={node_dir / 'logs'}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(node_dir / "server.properties"),
                    "--ignore-formatted",
                    *scram,
                ],
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            if fmt.returncode != 0:
                output = fmt.stdout + fmt.stderr
                if security is not None:
                    output = _secure.redact(output, security)
                raise DevClusterError(f"formatting the storage of {node_dir.name} failed:\n{output[-2000:]}")

        nodes: list[NodeInfo] = []
        proxy_info: ProxyInfo | None = None
        try:
            if proxy:
                proxy_info = self._start_proxy(
                    state_dir, dict(enumerate(zip(proxy_ports, client_ports, strict=True), start=1)), control_port
                )
            for i, (rack, node_dir) in enumerate(zip(racks, node_dirs, strict=True)):
                proc = _launch(jvm, node_dir)
                nodes.append(
                    NodeInfo(
                        i + 1,
                        rack,
                        client_ports[i],
                        ctrl_ports[i],
                        proc.pid,
                        str(node_dir),
                        proxy_ports[i] if proxy else None,
                        internal_ports[i] if proxy else None,
                        protocol=_secure.SASL_LISTENER if secure else "PLAINTEXT",
                        mtls_port=mtls_ports[i] if secure else None,
                        oauth_port=oauth_ports[i] if oauth else None,
                    )
                )
            info = ClusterInfo(
                bootstrap=",".join(f"127.0.0.1:{p}" for p in (proxy_ports if proxy else client_ports)),
                kafka_version=arts.version,
                state_dir=state_dir,
                nodes=tuple(nodes),
                cluster_id=cluster_id,
                started_at=time.time(),
                artifacts_from_cache=arts.from_cache,
                proxy=proxy_info,
                security=security,
                oauth=issuer,
            )
            self._save(info)
            self._wait_ready(info, timeout)
        except BaseException:
            self._stop_pids([n.pid for n in nodes] + ([proxy_info.pid] if proxy_info else [])
                            + ([issuer.pid] if issuer else []), state_dir)
            raise
        return ClusterInfo(
            **{
                **asdict_shallow(info),
                "running": {n.node_id: True for n in nodes},
                "proxy_running": proxy_info is not None,
            }
        )

    def _running_as_asked(
        self, *, proxy: bool, secure: bool, principals: Sequence[str] | None, names: Sequence[str]
    ) -> ClusterInfo | None:
        """The recorded cluster if it runs as asked (``up`` is then a no-op); None after clearing a
        stopped one's state; an error if it runs otherwise or only partly."""
        existing = self.load()
        if existing is None:
            return None
        if existing.all_running:
            if (existing.proxy is not None) != proxy:
                raise DevClusterError(
                    f"a cluster recorded in {self.state_dir} runs "
                    + ("with" if existing.proxy is not None else "without")
                    + " proxies; run `devcluster down` first to start it "
                    + ("with" if proxy else "without")
                )
            if (existing.security is not None) != secure:
                raise DevClusterError(
                    f"a cluster recorded in {self.state_dir} runs "
                    + ("with" if existing.security is not None else "without")
                    + " --secure; run `devcluster down` first to start it "
                    + ("with" if secure else "without")
                )
            if existing.security is not None and principals is not None:
                have = {p.name for p in existing.security.principals}
                if missing := [n for n in names if n not in have]:
                    raise DevClusterError(
                        f"the secured cluster recorded in {self.state_dir} has no principal "
                        + ", ".join(missing)
                        + "; principals are created at format time: run `devcluster down` and `up` again"
                    )
            return existing
        if any(existing.running.values()) or existing.proxy_running:
            raise DevClusterError(
                f"a cluster recorded in {self.state_dir} is partly running; run `devcluster down` first"
            )
        self._remove_state()
        return None

    @staticmethod
    def _start_proxy(state_dir: str, routes: dict[int, tuple[int, int]], control_port: int) -> ProxyInfo:
        """Start the proxy process (node id -> (listen port, broker port)); return once it listens."""
        ready = Path(state_dir) / PROXY_READY_FILE
        log_path = Path(state_dir) / PROXY_LOG_FILE
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "router.devtools.netproxy", "serve", "--control-port", str(control_port)]
        cmd += ["--ready-file", str(ready)]
        for node_id, (listen, upstream) in routes.items():
            cmd += ["--route", f"{node_id},{listen},127.0.0.1:{upstream}"]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=state_dir,
            )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None:
                raise DevClusterError(
                    f"the fault proxy exited during start-up (code {proc.returncode}); last lines of {log_path}:\n"
                    + _tail(log_path)
                )
            if time.monotonic() > deadline:
                DevCluster._stop_pids([proc.pid], state_dir)
                raise DevClusterError(f"the fault proxy did not listen within 30 s; see {log_path}")
            time.sleep(0.05)
        try:
            control = json.loads(ready.read_text(encoding="utf-8"))["control"]
        except (OSError, ValueError, KeyError):
            DevCluster._stop_pids([proc.pid], state_dir)
            raise DevClusterError(f"the fault proxy wrote an unreadable {ready}; see {log_path}") from None
        return ProxyInfo(pid=proc.pid, control=str(control), log=str(log_path))

    def _wait_ready(self, info: ClusterInfo, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keep CLI start fast

        admin = AdminClient({**info.admin_config(), "log_level": 0, "logger": _silent_logger()})
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        expected = {n.node_id: n.rack for n in info.nodes}
        while time.monotonic() < deadline:
            self._check_alive(info)
            try:
                desc = admin.describe_cluster(request_timeout=5).result()
                seen = {node.id: node.rack for node in desc.nodes}
                if seen == expected:
                    problem = self._probe_topic(admin, [n.node_id for n in info.nodes])
                    if problem is None:
                        return
                    last = f"brokers registered, probe topic not yet creatable: {problem}"
                else:
                    last = f"brokers registered so far: {seen}"
            except Exception as err:
                last = str(err)
            time.sleep(0.5)
        raise DevClusterError(
            f"the cluster did not become ready within {timeout:.0f}s ({last}). "
            f"Node logs are in {info.state_dir}/node-*/logs/server.log; last lines of node 1:\n"
            + _tail(info.nodes[0].log_file)
        )

    @staticmethod
    def _probe_topic(admin: Any, node_ids: list[int]) -> str | None:
        """Create and delete a topic with a replica on every node; None on success, else why not."""
        from confluent_kafka.admin import NewTopic  # noqa: PLC0415

        topic = f"{PROBE_TOPIC}-{uuid.uuid4().hex[:8]}"
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[node_ids])], request_timeout=10)[
                topic
            ].result()
            md = admin.list_topics(topic, timeout=10)
            replicas = sorted(md.topics[topic].partitions[0].replicas)
            if replicas != sorted(node_ids):
                return f"probe replicas {replicas} != {sorted(node_ids)}"
        except Exception as err:
            return repr(err)
        finally:
            with contextlib.suppress(Exception):
                admin.delete_topics([topic], request_timeout=10)[topic].result()
        return None

    def _check_alive(self, info: ClusterInfo) -> None:
        if info.proxy is not None and not _pid_alive(info.proxy.pid, info.state_dir):
            message = f"the fault proxy exited during start-up; last lines of {info.proxy.log}:\n" + _tail(
                Path(info.proxy.log)
            )
            if _port_taken(Path(info.proxy.log)):
                raise PortTakenError(message, "a fault proxy port was taken by another process")
            raise DevClusterError(message)
        for n in info.nodes:
            if not _pid_alive(n.pid, info.state_dir):
                log = n.log_file if n.log_file.exists() and n.log_file.stat().st_size else n.console_file
                text = _tail(log, 40)
                if _port_taken(n.log_file, n.console_file):
                    detail = f"port {n.port} or {n.controller_port} of broker {n.node_id} was taken by another process"
                    raise PortTakenError(
                        f"broker {n.node_id} (rack {n.rack}) exited during start-up: {detail}; run `devcluster up` "
                        f"again to pick other ports. Last lines of {log}:\n{text}",
                        detail,
                    )
                errors = _errors(n.log_file, n.console_file)
                if not errors:
                    detail = (f"broker {n.node_id} (rack {n.rack}) exited during start-up without logging an error"
                              f"{_exit_status(n.pid)}")
                    raise SilentExitError(f"{detail}. Last lines of {log}:\n{text}", detail)
                raise DevClusterError(
                    f"broker {n.node_id} (rack {n.rack}) exited during start-up. "
                    + (f"Errors it logged:\n{errors}\n" if errors else "")
                    + f"Last lines of {log}:\n{text}"
                )

    # -- one node (fault tests) ------------------------------------------------------------
    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (broker and controller), as a crash would; :meth:`start_node` brings it
        back with its data. For fault tests."""
        info = self._require()
        node = self._node(info, node_id)
        if _pid_alive(node.pid, info.state_dir):
            os.kill(node.pid, signal.SIGKILL)
            for _ in range(100):
                _reap(node.pid)
                if not _pid_alive(node.pid, info.state_dir):
                    return
                time.sleep(0.1)
            raise DevClusterError(f"node {node_id} (pid {node.pid}) did not die after SIGKILL")

    def start_node(self, node_id: int, *, heap_mb: int = DEFAULT_HEAP_MB, timeout: float = 120.0) -> ClusterInfo:
        """Start a stopped node again on its own ports and data, and return once the cluster
        reports every node registered."""
        info = self._require()
        node = self._node(info, node_id)
        if _pid_alive(node.pid, info.state_dir):
            raise DevClusterError(f"node {node_id} is running (pid {node.pid})")
        arts = artifacts.resolve(offline=True)
        proc = _launch(_jvm(artifacts.java_binary(), heap_mb, arts.classpath, info.oauth), Path(node.dir))
        nodes = tuple(replace(n, pid=proc.pid) if n.node_id == node_id else n for n in info.nodes)
        info = replace(info, nodes=nodes)
        self._save(info)
        self._wait_registered(info, timeout)
        loaded = self.load()
        assert loaded is not None
        return loaded

    def _require(self) -> ClusterInfo:
        info = self.load()
        if info is None:
            raise DevClusterError(f"no cluster is recorded in {self.state_dir}; run `devcluster up` first")
        return info

    @staticmethod
    def _node(info: ClusterInfo, node_id: int) -> NodeInfo:
        for n in info.nodes:
            if n.node_id == node_id:
                return n
        raise DevClusterError(f"no node {node_id} (nodes: {', '.join(str(n.node_id) for n in info.nodes)})")

    def _wait_registered(self, info: ClusterInfo, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keep CLI start fast

        admin = AdminClient({**info.admin_config(), "log_level": 0, "logger": _silent_logger()})
        expected = {n.node_id for n in info.nodes}
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive(info)
            try:
                seen = {node.id for node in admin.describe_cluster(request_timeout=5).result().nodes}
                if seen == expected:
                    return
                last = f"registered: {sorted(seen)}"
            except Exception as err:
                last = str(err)
            time.sleep(0.5)
        raise DevClusterError(f"the restarted node did not register within {timeout:.0f}s ({last})")

    # -- down -----------------------------------------------------------------------------
    def down(self, *, keep: bool = False, timeout: float = 30.0) -> ClusterInfo | None:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout``); remove state unless ``keep``."""
        info = self.load()
        if info is None:
            return None
        pids = [n.pid for n in info.nodes] + ([info.proxy.pid] if info.proxy is not None else [])
        pids += [info.oauth.pid] if info.oauth is not None else []
        self._stop_pids(pids, info.state_dir, timeout=timeout)
        if not keep:
            self._remove_state()
        return info

    @staticmethod
    def _stop_pids(pids: list[int], state_dir: str, timeout: float = 30.0) -> None:
        live = [p for p in pids if _pid_alive(p, state_dir)]
        for p in live:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while live and time.monotonic() < deadline:
            for p in list(live):
                _reap(p)
                if not _pid_alive(p, state_dir):
                    live.remove(p)
            time.sleep(0.2)
        for p in live:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        for p in live:
            for _ in range(50):
                _reap(p)
                if not _pid_alive(p, state_dir):
                    break
                time.sleep(0.1)

    def _remove_state(self) -> None:
        import shutil  # noqa: PLC0415

        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _jvm(java: str, heap_mb: int, classpath: str, issuer: IssuerInfo | None = None) -> list[str]:
    """The JVM command line shared by the storage tool and the brokers (``issuer``: the OAuth
    URLs they may fetch)."""
    return [
        java,
        *(_openbao.jvm_props(issuer) if issuer is not None else []),
        f"-Xmx{heap_mb}m",
        f"-Xms{min(heap_mb, 256)}m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={artifacts.LOG4J_CONFIG}",
        "-cp",
        classpath,
    ]


def _launch(jvm: list[str], node_dir: Path) -> subprocess.Popen[bytes]:
    """Start one node from its ``server.properties``, detached, console output appended to its
    ``console.log``."""
    with (node_dir / "console.log").open("ab") as console:
        return subprocess.Popen(  # noqa: S603 - argument list built from our own paths
            [*jvm, f"-Dkafka.logs.dir={node_dir / 'logs'}", "kafka.Kafka", str(node_dir / "server.properties")],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=node_dir,
        )


def _pick_ports(wanted: int, port_base: int | None) -> list[int]:
    if port_base is not None:
        ports = [port_base + i for i in range(wanted)]
        for p in ports:
            _check_port(p)
        return ports
    ports = []
    while len(ports) < wanted:
        p = _free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _listener_props(
    client_port: int, ctrl_port: int, proxy_port: int | None, internal_port: int | None
) -> dict[str, str]:
    """Listener settings of one node; with a proxy port, clients are sent there, replication is not."""
    if proxy_port is None or internal_port is None:
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{ctrl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
    internal = f"INTERNAL://127.0.0.1:{internal_port}"
    return {
        "listeners": f"PLAINTEXT://127.0.0.1:{client_port},{internal},CONTROLLER://127.0.0.1:{ctrl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port},{internal}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }


def _escape_property(value: str) -> str:
    """``value`` as a Java properties value: a backslash is the escape character there."""
    return value.replace("\\", "\\\\")


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started in this process, if it is ours."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def asdict_shallow(info: ClusterInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__dataclass_fields__}


def _silent_logger() -> Any:
    logger = logging.getLogger("router.devcluster.client")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
