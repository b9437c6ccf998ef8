"""The regional consumer SDK: read a routed topic, verify, decrypt, and get typed events.

Guarantees:

- reads with ``isolation.level=read_committed``: records of aborted router transactions are never
  seen;
- a record's plaintext is returned only after the envelope verified (signature, headers, topic,
  partition, jurisdiction, authentication tag); a record that fails any check comes back as a
  :class:`Rejected` carrying its typed error and position, never its plaintext;
- a key provider that is down (retriable) is retried with backoff; the record is not skipped.

Usage::

    with RegionalConsumer.from_config(cfg, jurisdiction="eu", topics=["crm.eu.contact"],
                                      group_id="llm-eu", public_keys=keys) as c:
        for item in c.records(max_records=100, idle_timeout_s=5):
            if isinstance(item, Verified):
                use(item.plaintext)
            else:
                report(item.error)   # typed: BadSignature, WrongTopic, ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from router.envelope import EnvelopeError, Opener, SealContext
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
    ) -> None:
        from confluent_kafka import Consumer  # noqa: PLC0415 - keep the pure part importable without a client

        self.jurisdiction = jurisdiction
        self._opener = opener
        self._retries = key_retry_attempts
        config = {
            "enable.auto.commit": True,
            "auto.offset.reset": "earliest",
            **consumer_config,
            "isolation.level": "read_committed",
        }
        self._consumer = Consumer(config)
        self._consumer.subscribe(topics)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        jurisdiction: str,
        topics: list[str],
        group_id: str,
        public_keys: PublicKeys,
        bootstrap: str | None = None,
        cluster: str = "default",
    ) -> RegionalConsumer:
        """Build from a :class:`router.config.RouterConfig` with a ``keys`` section."""
        from router.keys.factory import build_jurisdiction_keys  # noqa: PLC0415

        if config.keys is None:
            raise RouterError("the config has no 'keys' section: the consumer needs the jurisdiction's key")
        if jurisdiction not in config.keys.jurisdictions:
            raise RouterError(f"jurisdiction {jurisdiction!r} has no key under keys.jurisdictions")
        props = config.clusters[cluster].client_properties()
        if bootstrap:
            props["bootstrap.servers"] = bootstrap
        props["group.id"] = group_id
        opener = Opener(build_jurisdiction_keys(config.keys), public_keys)
        return cls(props, jurisdiction, topics, opener)

    def records(
        self, *, max_records: int | None = None, idle_timeout_s: float | None = None
    ) -> Iterator[Verified | Rejected]:
        """Yield verified or rejected records until ``max_records`` or ``idle_timeout_s`` of silence."""
        seen = 0
        idle_since = time.monotonic()
        while max_records is None or seen < max_records:
            msgs = self._consumer.consume(num_messages=500, timeout=0.5)
            if not msgs:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    return
                continue
            idle_since = time.monotonic()
            for m in msgs:
                if m.error() is not None:
                    continue
                yield self._open(m)
                seen += 1
                if max_records is not None and seen >= max_records:
                    return

    def _open(self, m: Any) -> Verified | Rejected:
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        delay = 0.1
        for attempt in range(self._retries + 1):
            try:
                opened = self._opener.open(
                    m.value() or b"",
                    m.headers(),
                    topic=topic,
                    partition=partition,
                    expected_jurisdiction=self.jurisdiction,
                )
                return Verified(topic, partition, offset, opened.ctx, opened.plaintext)
            except KeyUnavailable as err:
                if getattr(err, "retriable", False) and attempt < self._retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                return Rejected(topic, partition, offset, err)
            except EnvelopeError as err:
                return Rejected(topic, partition, offset, err)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RegionalConsumer:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()
