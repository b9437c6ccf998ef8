"""The regional consumer SDK: read a routed topic, verify, decrypt, and get typed events.

Guarantees:

- reads with ``isolation.level=read_committed``: records of aborted router transactions are never
  seen;
- a record's plaintext is returned only after the envelope verified (signature, headers, topic,
  partition, jurisdiction, authentication tag); a record that fails any check comes back as a
  :class:`Rejected` carrying its typed error and position, never its plaintext;
- offsets are committed only up to what the caller received: ``enable.auto.offset.store`` is off
  (whatever the given config says) and a record's offset is stored once the caller has taken it and
  asks for the next one (a verified record, or a :class:`Rejected` one: a non-retriable failure the
  caller sees). Auto-commit (on by default) and :meth:`RegionalConsumer.close` commit the stored
  offsets only, never a fetched record that was not handed out;
- a key provider that is down (retriable) is retried with backoff; if it stays down,
  :meth:`RegionalConsumer.records` raises the :class:`router.keys.errors.KeyUnavailable` and the
  record is neither skipped nor stored: the next :meth:`~RegionalConsumer.records` call (or the
  next consumer of the group) starts with it;
- at least once: the record the caller holds when it stops iterating (``break``, an exception in
  its loop) is not stored and is delivered again.

Usage::

    with RegionalConsumer.from_config(cfg, jurisdiction="eu", topics=["crm.eu.contact"],
                                      group_id="llm-eu", trust="bundle.json") as c:
        for item in c.records(max_records=100, idle_timeout_s=5):
            if isinstance(item, Verified):
                use(item.plaintext)
            else:
                report(item.error)   # typed: BadSignature, WrongTopic, ...
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from router.envelope import EnvelopeError, Opener, ReplayGuard, SealContext
from router.envelope.replay import DEFAULT_WINDOW
from router.errors import RouterError
from router.keys.errors import KeyUnavailable
from router.keys.protocol import PublicKeys


@dataclass(frozen=True, slots=True)
class Verified:
    """A record that passed every check."""

    topic: str
    partition: int
    offset: int
    ctx: SealContext
    plaintext: bytes = field(repr=False)
    replay_protected: bool = False
    """True for a version-2 envelope: its record key and source position were checked (a replay
    within ``replay_window`` offsets is a :class:`Rejected` ``Replayed``); False for version 1."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed verification; it never yields plaintext."""

    topic: str
    partition: int
    offset: int
    error: RouterError


class RegionalConsumer:
    """A read_committed confluent-kafka consumer that opens envelopes for one jurisdiction."""

    def __init__(
        self,
        consumer_config: dict[str, Any],
        jurisdiction: str,
        topics: list[str],
        opener: Opener,
        *,
        key_retry_attempts: int = 5,
        key_retry_backoff_s: float = 0.1,
        replay_window: int = DEFAULT_WINDOW,
    ) -> None:
        import confluent_kafka  # noqa: PLC0415 - keep the pure part importable without a client

        self.jurisdiction = jurisdiction
        self._opener = opener
        self._retries = key_retry_attempts
        self._backoff = key_retry_backoff_s
        self._replay = ReplayGuard(replay_window) if replay_window else None  # 0: no replay check
        self._topic_partition = confluent_kafka.TopicPartition
        self._kafka_error = confluent_kafka.KafkaException
        self._no_offset = confluent_kafka.KafkaError._NO_OFFSET
        config = {
            "enable.auto.commit": True,
            "auto.offset.reset": "earliest",
            **consumer_config,
            "isolation.level": "read_committed",
            # Offsets are stored by records() once the caller has a record, never on fetch.
            "enable.auto.offset.store": False,
        }
        self._consumer = confluent_kafka.Consumer(config)
        self._closed = False
        self._consumer.subscribe(topics)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        jurisdiction: str,
        topics: list[str],
        group_id: str,
        trust: str | Path | PublicKeys | None = None,
        public_keys: PublicKeys | None = None,
        bootstrap: str | None = None,
        cluster: str = "default",
    ) -> RegionalConsumer:
        """Build from a :class:`router.config.RouterConfig` with a ``keys`` section.

        ``trust`` is the trust bundle (a path to the file ``residency-router keys export-trust``
        writes, or a loaded :class:`~router.keys.trust.TrustBundle`): the signer public keys with
        their status, so a record signed by a revoked or expired signer version comes back
        :class:`Rejected` (``UntrustedSigner``). ``public_keys`` is any other
        :class:`~router.keys.protocol.PublicKeys`. Give exactly one; the signer's private key is
        never read. The jurisdiction's KEK comes from ``keys.jurisdictions``.
        """
        from router.keys.factory import build_jurisdiction_keys  # noqa: PLC0415
        from router.keys.trust import TrustBundle  # noqa: PLC0415

        if (trust is None) == (public_keys is None):
            raise RouterError("give the consumer exactly one of trust (a trust bundle) and public_keys")
        if isinstance(trust, (str, Path)):
            public_keys = TrustBundle.load(Path(trust))
        elif trust is not None:
            public_keys = trust
        assert public_keys is not None
        if config.keys is None:
            raise RouterError("the config has no 'keys' section: the consumer needs the jurisdiction's key")
        if jurisdiction not in config.keys.jurisdictions:
            raise RouterError(f"jurisdiction {jurisdiction!r} has no key under keys.jurisdictions")
        props = config.clusters[cluster].client_properties(cluster)
        if bootstrap:
            props["bootstrap.servers"] = bootstrap
        props["group.id"] = group_id
        opener = Opener(build_jurisdiction_keys(config.keys), public_keys)
        return cls(props, jurisdiction, topics, opener)

    def records(
        self, *, max_records: int | None = None, idle_timeout_s: float | None = None
    ) -> Iterator[Verified | Rejected]:
        """Yield verified or rejected records until ``max_records`` or ``idle_timeout_s`` of silence.

        A record's offset is stored (for the next commit) when the caller asks for the record after
        it. Raises :class:`router.keys.errors.KeyUnavailable` when a key stays unavailable through
        the retries; that record and the rest of its fetch are neither stored nor skipped (the
        consumer is rewound to them), so a later call delivers them.
        """
        seen = 0
        idle_since = time.monotonic()
        while max_records is None or seen < max_records:
            msgs = self._consumer.consume(num_messages=500, timeout=0.5)
            if not msgs:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    return
                continue
            idle_since = time.monotonic()
            batch = [m for m in msgs if m.error() is None]
            done = 0
            try:
                while done < len(batch):
                    m = batch[done]
                    item = self._open(m)
                    yield item
                    # The caller took the record and asks for the next: it is delivered.
                    done += 1
                    self._store(m)
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
            finally:
                if done < len(batch):
                    self._rewind(batch[done:])

    def commit(self) -> None:
        """Commit the stored offsets now (synchronously): everything delivered so far."""
        try:
            self._consumer.commit(asynchronous=False)
        except self._kafka_error as err:
            if err.args[0].code() != self._no_offset:  # nothing stored yet is not an error
                raise

    def _store(self, m: Any) -> None:
        # If the partition was revoked meanwhile, its new owner starts from the last commit and
        # delivers this record again (at least once), never skips it.
        with contextlib.suppress(self._kafka_error):
            self._consumer.store_offsets(offsets=[self._topic_partition(m.topic(), m.partition(), m.offset() + 1)])

    def _rewind(self, undelivered: list[Any]) -> None:
        """Seek each partition back to its first fetched record that was not delivered, so that
        the next poll returns it again instead of what followed it. After :meth:`close` (a
        generator finalised late) there is nothing to rewind: nothing past it was stored."""
        if self._closed:
            return
        first: dict[tuple[str, int], int] = {}
        for m in undelivered:
            key = (m.topic(), m.partition())
            first[key] = min(first.get(key, m.offset()), m.offset())
        for (topic, partition), offset in first.items():
            # Revoked meanwhile: nothing was stored past it, and its new owner reads it.
            with contextlib.suppress(self._kafka_error):
                self._consumer.seek(self._topic_partition(topic, partition, offset))

    def _open(self, m: Any) -> Verified | Rejected:
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                opened = self._opener.open(
                    m.value() or b"",
                    m.headers(),
                    topic=topic,
                    partition=partition,
                    expected_jurisdiction=self.jurisdiction,
                    key=m.key(),
                )
                if self._replay is not None:
                    self._replay.check(topic, partition, offset, opened)
                return Verified(topic, partition, offset, opened.ctx, opened.plaintext, opened.replay_protected)
            except EnvelopeError as err:  # UnknownKey included: not retriable, the record is refused
                return Rejected(topic, partition, offset, err)
            except KeyUnavailable as err:
                if not err.retriable:
                    return Rejected(topic, partition, offset, err)
                if attempt == self._retries:
                    raise  # still down: the caller must know; the record is not stored
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Commit the stored offsets (with auto-commit) and leave the group."""
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> RegionalConsumer:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()
