"""``residency-router run``: wire config, keys, placement and the core into the engine, then run.

Start-up fails fast, before the first record is consumed, when: the config lacks a section the
router needs; a configured topic or an ingress topic is out of place (every violation named; the
ingress topic holds raw data and must sit in its declared jurisdiction); with an ``access``
section, a live ACL lets a principal outside the plan reach a jurisdiction's topics or the ACLs
cannot be read (:func:`router.access.kafka.check_startup`; ``access.on_excess_grant: warn`` only
warns); an ingress topic may keep records longer than its ``max_retention`` or its config cannot be
read (:mod:`router.pipeline.ingress_retention`); the audit trail records a chain placement the
audit topic cannot hold (see :func:`audit_placement`); a key cannot be loaded.

Audit chains are one per ingress partition (one writer each) and may share audit partitions, so
the audit topic needs no particular partition count, and ingress partitions or topics added later
need none either.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.config.models import RouterConfig
from router.errors import ConfigError
from router.pipeline.config import PipelineConfig
from router.pipeline.engine import EngineSettings, EngineStats, TransactionalEngine
from router.telemetry.runtime import RouterTelemetry

if TYPE_CHECKING:
    from router.audit.record import PlacementSnapshot

log = logging.getLogger("router.app")


class _WatchPlacement:
    """Adapts :class:`router.placement.kafka.PlacementWatch` to what the processor asks.

    With ``jurisdiction_of_rack`` (and the ``jurisdictions_sha256`` of the config's jurisdictions
    section) it also offers :meth:`snapshot`, the verdict in force as the audit trail records it.
    """

    def __init__(self, watch: Any, *, jurisdiction_of_rack: Any = None, jurisdictions_sha256: str = "") -> None:
        self.watch = watch
        self._j_of_rack = jurisdiction_of_rack
        self._jurisdictions_sha256 = jurisdictions_sha256
        self._seen: tuple[Any, Any] = (None, None)
        """(the last report turned into a snapshot, its content without the time)"""
        self._snapshot: PlacementSnapshot | None = None

    def snapshot(self) -> PlacementSnapshot | None:
        """The :class:`router.audit.record.PlacementSnapshot` of the verdict in force, or None (no
        unexpired verdict, or no rack mapping given). A new snapshot is made only when a check saw a
        placement that differs from the last one (brokers, racks, replicas, verdicts, jurisdictions
        map); its ``taken_at_ms`` is the wall-clock time of that check. Re-checks that change nothing
        keep the snapshot, so chains get no placement record for them."""
        if self._j_of_rack is None:
            return None
        report = self.watch.report
        if report is None or self.watch.expired:
            return None
        seen_report, seen_body = self._seen
        if report is not seen_report:
            from router.audit.record import PlacementSnapshot  # noqa: PLC0415
            from router.placement.model import PlacementReport, canonical_json, snapshot_content  # noqa: PLC0415

            if not isinstance(report, PlacementReport):  # a watch that keeps no report of its own kind
                return None
            body = snapshot_content(report, self._j_of_rack, jurisdictions_sha256=self._jurisdictions_sha256)
            if body != seen_body or self._snapshot is None:
                # the report's time is on the watch's monotonic clock: carried over to the wall clock
                taken_ms = int((time.time() - (time.monotonic() - report.taken_at)) * 1000)
                self._snapshot = PlacementSnapshot(canonical_json({**body, "taken_at_ms": taken_ms}))
            self._seen = (report, body)
        return self._snapshot

    def permitted(self, topic: str, jurisdiction: str) -> bool:
        return bool(self.watch.permitted(topic, jurisdiction))

    def partitions(self, topic: str) -> int:
        report = self.watch.report
        placement = report.topics.get(topic) if report is not None else None
        return len(placement.partitions) if placement is not None else 1

    def verdict(self) -> str:
        report = self.watch.report
        if report is None or self.watch.expired:
            return f"expired: {self.watch.reason}"
        return (
            f"ok@{int(report.taken_at * 1000)}"
            if report.ok
            else "violations: " + "; ".join(t.topic for t in report.failures)
        )


def topic_message_limit(admin: Any, topics: list[str], *, timeout: float = 30.0) -> int:
    """The smallest ``max.message.bytes`` among ``topics`` (the broker refuses larger record
    batches for that topic): sealed outputs beyond it are quarantined without their payload
    instead of failing the transaction. Topics whose config cannot be read count as unlimited."""
    from confluent_kafka.admin import ConfigResource, ResourceType  # noqa: PLC0415

    if not topics:
        return 1 << 31
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics], request_timeout=timeout)
    limit = 1 << 31
    for future in futures.values():
        try:
            entry = future.result().get("max.message.bytes")
        except Exception:  # noqa: S112 - a missing topic fails start-up elsewhere, with its own message
            continue
        if entry is not None and entry.value is not None and str(entry.value).isdigit():
            limit = min(limit, int(entry.value))
    return limit


def audit_placement(topic: str, partitions: int, recorded: Mapping[int, int]) -> int:
    """The partition count audit chains are placed over: the one the trail already records
    (``recorded``: audit partition -> ``audit_partitions`` of its last record), else the audit
    topic's ``partitions``.

    Keeping the recorded count when the topic has grown since moves no chain (a chain's records
    stay in one partition and its tail is found there); the added partitions stay unused. Refuses
    (:class:`ConfigError`) a trail placed over more partitions than the topic has (a topic
    recreated smaller) or over several counts.
    """
    counts = sorted(set(recorded.values()))
    if not counts:
        return partitions
    if len(counts) > 1:
        raise ConfigError(
            f"audit topic {topic}: its partitions' last records place chains over different partition counts "
            f"({', '.join(map(str, counts))}); run `audit verify` and start a new audit topic (audit.topic)"
        )
    (placed,) = counts
    if placed > partitions:
        raise ConfigError(
            f"audit topic {topic} has {partitions} partitions but its chains are placed over {placed}: "
            "was it recreated with fewer? Restore it, or start a new audit topic (audit.topic)"
        )
    if placed < partitions:
        log.warning("audit topic %s has %d partitions; its chains stay placed over the first %d (the count its "
                    "trail records), the others stay unused", topic, partitions, placed)
    return placed


def engine_settings(
    pipe: PipelineConfig,
    *,
    bootstrap_config: dict[str, Any],
    ingress_topics: list[str],
    group_id: str,
    transactional_id: str,
    batch_size: int,
    consumer_overrides: dict[str, Any] | None = None,
) -> EngineSettings:
    """The engine's settings: the given clients, group and transactional id, and the commit, timeout
    and back-off settings of the ``pipeline`` section (``run`` and ``quarantine replay`` both
    transact with them)."""
    return EngineSettings(
        bootstrap_config=bootstrap_config,
        ingress_topics=ingress_topics,
        group_id=group_id,
        transactional_id=transactional_id,
        batch_size=batch_size,
        commit_interval_ms=pipe.commit_interval_ms,
        commit_max_records=pipe.commit_max_records,
        session_timeout_ms=pipe.session_timeout_ms,
        transaction_timeout_ms=pipe.transaction_timeout_ms,
        stall_backoff_max_s=pipe.stall_backoff_max_s,
        abort_escalate_after=pipe.abort_escalate_after,
        consumer_overrides=dict(consumer_overrides or {}),
    )


def _require(config: RouterConfig, *sections: str) -> None:
    missing = [s for s in sections if getattr(config, s, None) is None]
    if missing:
        raise ConfigError(f"`run` needs the config sections {', '.join(missing)}; see examples/router.yaml")


def default_instance_id() -> str:
    return os.environ.get("ROUTER_INSTANCE_ID") or socket.gethostname()


class RouterApp:
    """One router instance. Several with the same config and distinct instance ids share the work."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        bootstrap: str | None = None,
        instance_id: str | None = None,
        config_dir: Path | None = None,
        metrics_required: bool = True,
    ) -> None:
        """``metrics_required=False`` runs on without the HTTP endpoints when
        ``telemetry.metrics_address`` cannot be bound (a warning names it) instead of refusing."""
        _require(config, "pipeline", "keys", "audit", "residency", "policy")
        self.config = config
        self.instance_id = instance_id or default_instance_id()
        self.config_dir = config_dir
        props = dict(config.clusters["default"].client_properties())
        if bootstrap:
            props["bootstrap.servers"] = bootstrap
        self.client_props = props
        self.watch: Any = None
        self.engine: TransactionalEngine | None = None
        self.telemetry = RouterTelemetry(config.telemetry, instance_id=self.instance_id, required=metrics_required)

    def build(self) -> TransactionalEngine:
        from router.audit.chain import AuditChain  # noqa: PLC0415 - heavy imports after arg parsing
        from router.audit.kafka import read_chain_tails, read_recorded_placements  # noqa: PLC0415
        from router.envelope import Sealer  # noqa: PLC0415
        from router.keys.digest import DigestKeys  # noqa: PLC0415
        from router.keys.factory import build_dek_manager, build_jurisdiction_keys, build_signer  # noqa: PLC0415
        from router.pipeline.ingress_retention import check_startup as check_ingress_retention  # noqa: PLC0415
        from router.pipeline.processor import RouterProcessor, RouterSettings  # noqa: PLC0415
        from router.placement.kafka import PlacementWatch, admin_for, check_startup  # noqa: PLC0415
        from router.placement.model import jurisdictions_sha256  # noqa: PLC0415
        from router.routing.build import evaluator_for, ingress_of  # noqa: PLC0415
        from router.telemetry.keys import observe_keys  # noqa: PLC0415

        cfg = self.config
        assert cfg.pipeline is not None
        assert cfg.keys is not None
        assert cfg.audit is not None
        pipe, audit = cfg.pipeline, cfg.audit
        self.telemetry.start()  # endpoints up (and a busy address refused) before the start-up checks

        admin = admin_for(cfg, self.client_props["bootstrap.servers"])
        report = check_startup(cfg, admin)
        if cfg.access is not None:  # no principal outside the ACL plan may read a jurisdiction's topics
            from router.access.kafka import check_startup as check_acls  # noqa: PLC0415

            check_acls(cfg, admin)
        audit_topic_placement = report.topics.get(audit.topic)
        if audit_topic_placement is None:
            raise ConfigError(
                f"the audit topic {audit.topic!r} must be listed under 'topics' (jurisdiction "
                f"{audit.jurisdiction}) so that its placement is checked"
            )
        # raw CDC sits in clear on the ingress topics: each must keep it no longer than its max_retention
        check_ingress_retention(pipe, admin)
        audit_partitions = audit_placement(
            audit.topic, len(audit_topic_placement.partitions), read_recorded_placements(self.client_props, audit.topic)
        )

        configured = {t.name: t.jurisdiction for t in cfg.topics}
        assert cfg.policy is not None
        for j in cfg.jurisdictions:
            qt = cfg.policy.quarantine_topic.format(jurisdiction=j, entity="")
            if configured.get(qt) != j:
                raise ConfigError(
                    f"jurisdiction {j!r} has no quarantine topic: add {{name: {qt}, jurisdiction: {j}}} under 'topics' "
                    "(data bound to it that cannot be routed must be quarantined inside it)"
                )
        ingress_map = ingress_of(cfg)
        origins = {topic: spec.origin.jurisdiction for topic, spec in ingress_map.items()}
        evaluator = evaluator_for(cfg, self.config_dir, ingress=ingress_map)

        # the start-up check's brokers seed the watch's rack memory: a broker that dies before the
        # watch's first check still counts in its rack (router/placement/kafka.py)
        self.watch = PlacementWatch.from_config(cfg, admin, bootstrap=self.client_props["bootstrap.servers"],
                                                known_racks=report.brokers)
        self.watch.refresh()
        self.watch.start()

        jurisdiction_keys = observe_keys(build_jurisdiction_keys(cfg.keys), self.telemetry.keys)
        sealer = Sealer(build_dek_manager(cfg.keys, jurisdiction_keys), build_signer(cfg.keys))
        max_message = min(
            int(self.client_props.get("message.max.bytes", 1_000_000)),
            topic_message_limit(admin, [t.name for t in cfg.topics]),
        )
        quarantine_pattern = cfg.policy.quarantine_topic
        consumer_props = dict(self.client_props)

        def chain_tails(partition: int, sources: Sequence[tuple[str, int]]) -> Any:
            return read_chain_tails(consumer_props, audit.topic, partition, sources, group_id=pipe.group_id)

        processor = RouterProcessor(
            evaluator,
            _WatchPlacement(self.watch, jurisdiction_of_rack=cfg.jurisdiction_of_rack,
                            jurisdictions_sha256=jurisdictions_sha256(cfg)),
            sealer,
            AuditChain(),
            RouterSettings(
                quarantine_topic=lambda j: quarantine_pattern.format(jurisdiction=j, entity=""),
                audit_topic=audit.topic,
                instance_id=self.instance_id,
                origin_jurisdiction=origins.__getitem__,
                audit_jurisdiction=audit.jurisdiction,
                stall_on_placement_violation=cfg.placement.on_violation == "stall",
                max_output_bytes=max_message - 16_384,
                audit_partitions=audit_partitions,
            ),
            DigestKeys(jurisdiction_keys),
            chain_tails=chain_tails,
        )
        settings = engine_settings(
            pipe,
            bootstrap_config=self.client_props,
            ingress_topics=[i.topic for i in pipe.ingress],
            group_id=pipe.group_id,
            transactional_id=f"{pipe.transactional_id_prefix}-{self.instance_id}",
            batch_size=pipe.batch_size,
            # client.id names this instance among the group's members (`residency-router status`)
            consumer_overrides={"client.id": self.client_props.get("client.id")
                                or f"{pipe.transactional_id_prefix}-{self.instance_id}",
                                **self.telemetry.consumer_overrides()},
        )
        self.engine = TransactionalEngine(settings, processor)
        self.telemetry.attach(engine=self.engine, placement=self.watch)
        return self.engine

    def run(self, *, max_idle_s: float | None = None) -> EngineStats:
        try:
            engine = self.engine or self.build()
            return engine.run(max_idle_s=max_idle_s)
        finally:
            if self.watch is not None:
                self.watch.stop(5)
            self.telemetry.stop()
