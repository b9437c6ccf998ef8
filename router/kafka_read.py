"""Kafka clients for the command line.

- :func:`check_connection`: before a command does its work, make sure the cluster accepts the
  client's TLS and authentication, and otherwise fail at once with one line naming the
  ``clusters.<name>.security`` setting to fix (instead of a time-out or "brokers are down");
- :func:`admin_client`: an AdminClient whose TLS and authentication errors a failure path can fetch
  (:func:`router.config.security.reported_error`);
- the committed-record readers (audit trail, quarantine): a ``read_committed`` consumer that is
  assigned partitions and never joins a group or commits, and the partitions of a topic with an
  error that names the setting to check.

``confluent_kafka`` is imported inside the functions, so modules whose pure part must load without
a Kafka client can use these."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from router.config.security import ClientErrorReporter, attach_reporter, explain_client_error

CHECK_TIMEOUT_S = 10.0
_ROUND_S = 0.5

def _admin(conf: dict[str, Any]) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    return AdminClient(conf)


def _new_client(factory: Callable[[dict[str, Any]], Any], conf: dict[str, Any], cluster: str) -> Any:
    """``factory(conf)``; a constructor that fails for want of an OAUTHBEARER token (librdkafka waits
    for the first one, then raises "OAuth token not set") raises the line naming the setting, the
    token source's own failure first (:func:`router.config.security.explain_client_error`)."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        return factory(conf)
    except KafkaException as err:
        explained = explain_client_error(err, cluster)
        if explained is not None:
            raise explained from None
        raise


def check_connection(props: Mapping[str, Any], *, cluster: str = "default", timeout: float = CHECK_TIMEOUT_S,
                     client_factory: Callable[[dict[str, Any]], Any] | None = None,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """Raise the :class:`~router.errors.ConfigError` naming the setting to fix when the cluster
    refuses this client's TLS or authentication; return when it answers, or when it cannot tell.

    A throw-away AdminClient built from ``props`` (with a :class:`ClientErrorReporter` as its
    ``error_cb`` and as the handler of its librdkafka log lines, which are not printed: the raised
    line carries their text) asks
    for metadata in rounds of 0.5 s, polling its callbacks after each failed round. It returns as
    soon as a broker answers; raises as soon as librdkafka reports a TLS or authentication error
    (these come first, on the first connection attempt); and returns without a verdict when every
    broker is reported down without one (a cluster that is down, which the command reports its own
    way) or after ``timeout`` seconds (an unreachable network). A failure later in the command is
    still explained where its client is polled (:func:`admin_client`).
    """
    from confluent_kafka import KafkaException  # noqa: PLC0415

    reporter = ClientErrorReporter(cluster, log=False)
    librdkafka_log = logging.Logger(f"router.kafka_read.check_connection.{cluster}")  # unregistered: one per call
    librdkafka_log.addHandler(reporter.log_handler())
    librdkafka_log.propagate = False
    conf = {**props, "error_cb": reporter, "logger": librdkafka_log}
    admin = _new_client(client_factory or _admin, conf, cluster)
    deadline = clock() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(_ROUND_S, max(0.05, deadline - clock())))
        except KafkaException:
            pass
        else:
            return
        admin.poll(0)
        if reporter.first is not None:
            raise reporter.first
        if reporter.brokers_down or clock() >= deadline:
            return


def admin_client(props: Mapping[str, Any], *, cluster: str = "default") -> Any:
    """An AdminClient for ``props`` with a quiet :class:`ClientErrorReporter` attached: on a failure
    path, :func:`router.config.security.reported_error` polls it and returns the TLS or
    authentication error behind the failure, naming the setting."""
    reporter = ClientErrorReporter(cluster, log=False)
    return attach_reporter(_new_client(_admin, {**props, "error_cb": reporter}, cluster), reporter)


def committed_reader(consumer_config: Mapping[str, Any], *, group_prefix: str, group_id: str | None = None) -> Any:
    """A consumer reading committed records only, from the earliest offset, with end-of-partition
    events. ``group_id`` (default: a fresh ``<group_prefix>-<uuid>``) is used only to read that
    group's committed offsets: the consumer is assigned partitions, it never joins nor commits."""
    from confluent_kafka import Consumer  # noqa: PLC0415

    conf: dict[str, Any] = {"group.id": f"{group_prefix}-{uuid.uuid4().hex}", **consumer_config}
    if group_id is not None:
        conf["group.id"] = group_id
    conf.update({
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    return Consumer(conf)


def partitions_of(consumer: Any, topic: str, timeout: float, *, what: str, hint: str,
                  error: Callable[[str], Exception]) -> list[int]:
    """The sorted partition ids of ``topic``. Raises ``error(message)`` when the cluster cannot be
    read or the topic does not exist; the message names ``what`` the topic is and ends with
    ``hint`` (the setting to check)."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as err:
        raise error(f"could not read metadata of {what} {topic!r}: {err}") from None
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        why = t.error.str() if t is not None and t.error is not None else "it does not exist"
        raise error(f"{what} {topic!r} cannot be read: {why} ({hint})")
    return sorted(t.partitions)
